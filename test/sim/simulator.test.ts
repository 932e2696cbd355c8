// The discrete-event simulator's pieces: wire sizes, latency and FIFO, bandwidth, loss, churn,
// determinism, every strategy reaching the nodes, and the Demers k = 1 residue.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type GossipMessage, INV_TX, encodeGossip } from '../../src/codec/wire.ts'
import { rumorTable } from '../../src/sim/demers.ts'
import { FRAME_OVERHEAD_BYTES, WINDOW_UPDATE_BYTES, gossipSize } from '../../src/sim/model.ts'
import { runPartition } from '../../src/sim/partition.ts'
import { type SimEndpoint, type SimMessage, SimNetwork } from '../../src/sim/sim-network.ts'
import { buildWorkload, runSim } from '../../src/sim/simulator.ts'
import { STRATEGIES } from '../../src/sim/strategies.ts'
import { VirtualTime } from '../../src/sim/virtual-time.ts'
import { seededRandom } from '../../src/util/random.ts'

/** A two-node network recording what arrives and when. */
function pair(options: { fixedMs: number; jitter?: number; lossRate?: number; uplinkMbps?: number; resolutionMs?: number }) {
  const time = new VirtualTime(0, { settle: 'timestamp' })
  const network = new SimNetwork(time, {
    latency: { fixedMs: options.fixedMs, jitter: options.jitter ?? 0 },
    lossRate: options.lossRate ?? 0,
    resolutionMs: options.resolutionMs ?? 0,
    adversaryDelayMs: 0,
    random: seededRandom(5),
  })
  const arrivals: Array<{ at: number; round: number }> = []
  const sink: SimEndpoint = { onConnect: () => {}, onDisconnect: () => {}, onMessage: (_from, message: SimMessage) => arrivals.push({ at: time.now, round: message.type === 'control' ? message.round : -1 }) }
  const silent: SimEndpoint = { onConnect: () => {}, onDisconnect: () => {}, onMessage: () => {} }
  network.addNode(silent, 0, options.uplinkMbps ?? 1_000)
  network.addNode(sink, 0, options.uplinkMbps ?? 1_000)
  network.seal()
  network.connect(0, 1)
  return { time, network, arrivals }
}

const control = (round: number, bytes: number): SimMessage => ({ type: 'control', kind: 'status', bytes, round })

describe('simulator pieces', { timeout: 60_000 }, () => {
  it('gossipSize is the exact encoded size of inv, getdata, notfound and txs', () => {
    const { txs } = buildWorkload(5, 0, 1)
    const items = txs.map((signed) => ({ kind: INV_TX, hash: signed.id }))
    const messages: GossipMessage[] = [
      { type: 'inv', items },
      { type: 'getdata', items: items.slice(0, 2) },
      { type: 'notfound', items: [] },
      { type: 'txs', solicited: true, txs },
      { type: 'txs', solicited: false, txs: txs.slice(0, 1) },
    ]
    for (const message of messages) {
      assert.equal(gossipSize(message), encodeGossip(message).length, message.type)
    }
  })

  it('latency: a fixed link delivers after its delay plus serialization; jittered messages stay in order (FIFO)', async () => {
    const fixed = pair({ fixedMs: 50, uplinkMbps: 8 })
    fixed.network.send(0, 1, control(1, 1_000 - FRAME_OVERHEAD_BYTES))
    await fixed.time.runUntil(1_000)
    // 1,000 bytes at 8 Mbit/s = 1 ms on the uplink, then 50 ms on the link.
    assert.deepEqual(fixed.arrivals, [{ at: 51, round: 1 }])

    const jittery = pair({ fixedMs: 50, jitter: 1 })
    for (let round = 0; round < 200; round++) jittery.network.send(0, 1, control(round, 10))
    await jittery.time.runUntil(1_000)
    assert.equal(jittery.arrivals.length, 200)
    assert.deepEqual(jittery.arrivals.map((a) => a.round), Array.from({ length: 200 }, (_, i) => i), 'in send order')
    assert.ok(jittery.arrivals.every((a, i) => i === 0 || a.at >= (jittery.arrivals[i - 1]?.at ?? 0)))
    assert.ok((jittery.arrivals.at(-1)?.at ?? 0) > 50, 'jitter adds delay')
  })

  it('bandwidth: a message occupies the uplink for size / bandwidth, so the next one waits', async () => {
    const { network, time, arrivals } = pair({ fixedMs: 10, uplinkMbps: 1 })
    // 125,000 bytes at 1 Mbit/s = 1,000 ms each.
    network.send(0, 1, control(1, 125_000 - FRAME_OVERHEAD_BYTES))
    network.send(0, 1, control(2, 125_000 - FRAME_OVERHEAD_BYTES))
    await time.runUntil(5_000)
    assert.deepEqual(arrivals.map((a) => Math.round(a.at)), [1_010, 2_010])
  })

  it('wire bytes: a frame costs its size + 34 B of framing to send, and its receiver writes a 30 B window update back', async () => {
    const { network, time, arrivals } = pair({ fixedMs: 5 })
    network.send(0, 1, control(1, 100))
    network.send(0, 1, control(2, 200))
    await time.runUntil(100)
    assert.equal(arrivals.length, 2)
    assert.equal(network.bytesSent[0], 100 + 200 + 2 * FRAME_OVERHEAD_BYTES)
    assert.equal(network.bytesSent[1], 2 * WINDOW_UPDATE_BYTES)
    assert.equal(network.totals.bytes, 300 + 2 * (FRAME_OVERHEAD_BYTES + WINDOW_UPDATE_BYTES))
    assert.deepEqual([FRAME_OVERHEAD_BYTES, WINDOW_UPDATE_BYTES], [34, 30])
  })

  it('loss: about the configured share of messages is lost', async () => {
    const { network, time, arrivals } = pair({ fixedMs: 5, lossRate: 0.3 })
    for (let round = 0; round < 2_000; round++) network.send(0, 1, control(round, 10))
    await time.runUntil(1_000)
    assert.ok(Math.abs(arrivals.length - 1_400) < 100, `${arrivals.length} of 2,000 arrived`)
    assert.equal(network.totals.lost + arrivals.length, 2_000)
  })

  it('determinism: the same seed gives the same run, another seed another', async () => {
    const run = (seed: number) => runSim({ nodes: 150, txs: 20, rate: 100, seed, tailLimitMs: 20_000 })
    const [a, b, c] = [await run(3), await run(3), await run(4)]
    assert.equal(a.events, b.events)
    assert.equal(a.bytesPerNodePerTx, b.bytesPerNodePerTx)
    assert.deepEqual(a.hops.histogram, b.hops.histogram)
    assert.deepEqual(a.deliveryCurve, b.deliveryCurve)
    assert.notEqual(a.events, c.events)
  })

  it('churn: nodes leaving and rejoining still end up with every tx (ours: rumor + anti-entropy)', async () => {
    const result = await runSim({ nodes: 200, txs: 30, rate: 20, churnPerSecond: 0.02, churnDownMs: 3_000, seed: 2, tailLimitMs: 30_000 })
    assert.equal(result.delivery.share, 1)
  })

  it('30% silent droppers: ours still delivers every tx to every honest node', async () => {
    const result = await runSim({ nodes: 300, txs: 20, rate: 50, adversary: 0.3, adversaryKind: 'drop', seed: 5, tailLimitMs: 40_000 })
    assert.equal(result.delivery.share, 1)
    assert.equal(result.nodes.adversaries, 90)
  })

  for (const strategy of STRATEGIES) {
    it(`strategy ${strategy} reaches the nodes`, async () => {
      const result = await runSim({ nodes: 150, txs: 10, rate: 50, strategy, k: 3, seed: 1, tailLimitMs: 15_000 })
      // Rumor mongering leaves a residue by design (Demers); the rest must reach everyone.
      const floor = strategy.startsWith('rumor') ? 0.8 : 1
      assert.ok(result.delivery.share >= floor, `${strategy}: ${result.delivery.share}`)
    })
  }

  it('partition and heal on complete nodes: the halves diverge, then every node has one head and one state root', async () => {
    const result = await runPartition({ nodes: 16, validators: 4, partitionMs: 8_000, limitMs: 30_000 })
    assert.ok(result.headsBeforeHeal >= 2, 'diverged while cut')
    assert.ok(result.converged, `converged within ${result.convergedMs} ms`)
  })

  it('Demers rumor mongering, feedback + counter, k = 1 at n = 1,000: residue near the paper\'s 0.18', () => {
    const [row] = rumorTable(1_000, [1], 'feedback-counter', 5)
    assert.ok(row !== undefined && row.residue > 0.12 && row.residue < 0.24, `residue ${row?.residue}`)
    assert.ok(row !== undefined && row.traffic > 1.4 && row.traffic < 2.0, `traffic ${row?.traffic}`)
  })
})
