// The simulator's CPU model (src/sim/cpu.ts) on virtual time: FIFO per host, cores, service time
// before delivery, contention on one host that a host per node does not have, and a whole run
// where sharing one CPU slows propagation down.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { INV_TX } from '../../src/codec/wire.ts'
import { parseSimArgs } from '../../src/sim/cli.ts'
import { CpuModel, type HostPlacement, HostCpus } from '../../src/sim/cpu.ts'
import { CALIBRATED_CPU_COSTS, type CpuCosts, type PingCosts, parseCpuCosts, receiveCostMs } from '../../src/sim/cpu-costs.ts'
import { FRAME_OVERHEAD_BYTES } from '../../src/sim/model.ts'
import { type SimEndpoint, type SimMessage, SimNetwork } from '../../src/sim/sim-network.ts'
import { buildWorkload, runSim } from '../../src/sim/simulator.ts'
import { VirtualTime } from '../../src/sim/virtual-time.ts'
import { seededRandom } from '../../src/util/random.ts'

const FREE: CpuCosts = { sendFrameMs: 0, sendPerByteMs: 0, receiveFrameMs: 0, receivePerByteMs: 0, invItemMs: 0, getdataItemMs: 0, txMs: 0, txVerifyMs: 0, tickMs: 0 }
const PING: PingCosts = { intervalMs: 10_000, cpuMs: 4, wireBytes: 500 }

/** `nodes` nodes on a network with 10 ms links, each recording [node, at, round] when a message is handled. */
function network(nodes: number, cpu: { placement: HostPlacement; cores?: number; costs: Partial<CpuCosts> } | undefined, options: { resolutionMs?: number; uplinkMbps?: number; linkMs?: number } = {}) {
  const time = new VirtualTime(0, { settle: 'timestamp' })
  const model = cpu === undefined ? undefined : new CpuModel(nodes, { placement: cpu.placement, cores: cpu.cores ?? 1, costs: { ...FREE, ...cpu.costs }, ping: PING })
  const net = new SimNetwork(time, {
    latency: { fixedMs: options.linkMs ?? 10, jitter: 0 },
    lossRate: 0,
    resolutionMs: options.resolutionMs ?? 0,
    adversaryDelayMs: 0,
    random: seededRandom(1),
    ...(model === undefined ? {} : { cpu: model }),
  })
  const handled: Array<{ node: number; at: number; round: number }> = []
  for (let i = 0; i < nodes; i++) {
    const endpoint: SimEndpoint = {
      onConnect: () => {},
      onDisconnect: () => {},
      onMessage: (_from, message: SimMessage) => handled.push({ node: i, at: time.now, round: message.type === 'control' ? message.round : -1 }),
    }
    net.addNode(endpoint, 0, options.uplinkMbps ?? Number.POSITIVE_INFINITY)
  }
  net.seal()
  return { time, net, handled, model }
}

const control = (round: number, bytes = 10): SimMessage => ({ type: 'control', kind: 'status', bytes, round })

describe('simulator CPU model', { timeout: 120_000 }, () => {
  it('a cost table from another run: sim-calibrate.ts --json output (its "node path" medians) or a bare table, every constant checked', () => {
    const measured = { ...CALIBRATED_CPU_COSTS, sendFrameMs: 0.09831, receiveFrameMs: 0.10575 }
    assert.deepEqual(parseCpuCosts({ loadAverage: 1, medians: { sporadic: FREE, 'node path': measured }, committed: CALIBRATED_CPU_COSTS }), measured)
    assert.deepEqual(parseCpuCosts(measured), measured)
    const { tickMs: _dropped, ...missing } = measured
    assert.throws(() => parseCpuCosts(missing), /tickMs is undefined/)
    assert.throws(() => parseCpuCosts({ ...measured, txMs: -1 }), /txMs is -1/)
    assert.throws(() => parseCpuCosts({ ...measured, txMs: '0.1' }), /txMs is "0.1"/)
    assert.throws(() => parseCpuCosts(null), /is an object/)
  })

  it('--costs FILE: the table from sim-calibrate.ts --json output (its last line) is the run\'s, named as measured there; a file without one is a clear error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grapevine-costs-'))
    try {
      const measured = { ...CALIBRATED_CPU_COSTS, txMs: 0.10295 }
      const file = join(dir, 'calibration.out')
      writeFileSync(file, `sim CPU calibration …\n  a table\n${JSON.stringify({ medians: { 'node path': measured } })}\n`)
      const { options } = parseSimArgs(['--nodes', '16', '--costs', file])
      assert.deepEqual(options.cpuCosts, measured)
      assert.match(options.cpuCostsSource ?? '', /sim-calibrate\.ts/)
      const text = join(dir, 'text.out')
      writeFileSync(text, 'no table here\n')
      assert.throws(() => parseSimArgs(['--costs', text]), /last line is not JSON/)
      assert.throws(() => parseSimArgs(['--costs']), /needs a file/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('one core serves jobs first come, first served; a job submitted to an idle CPU starts at once', () => {
    const cpus = new HostCpus(1, 1)
    assert.deepEqual([cpus.run(0, 0, 2), cpus.run(0, 0, 3), cpus.run(0, 1, 1)], [2, 5, 6])
    assert.equal(cpus.run(0, 10, 1), 11, 'idle: no wait')
    assert.equal(cpus.waitMs, 0 + 2 + 4 + 0)
    assert.equal(cpus.maxWaitMs, 4)
    assert.equal(cpus.busyMs[0], 7)
  })

  it('GC: every job costs its share less, and after each 1 / pausesPerWorkMs ms of work the host stops for a pause; the CPU in all is the table\'s', () => {
    const gc = { pausesPerWorkMs: 1 / 10, pauseMs: [2, 4], shareOfCpu: 0.2 }
    const cpu = new HostCpus(1, 1, gc)
    // Jobs of 5 ms at the table cost: 4 ms of work each; a pause after every 10 ms of work.
    const ends = [0, 0, 0, 0, 0].map(() => cpu.run(0, 0, 5))
    // Work 4, 8, 12 (pause 2 after the 3rd: 10 ms of work passed), 16, 20 (pause 4).
    assert.deepEqual(ends, [4, 8, 12, 18, 22])
    assert.equal(cpu.gcPauses, 2)
    assert.equal(cpu.gcPauseMs, 6)
    assert.equal(cpu.run(0, 0, 5), 30, 'the pause after the 5th job holds the next one back')
    // 6 jobs × 5 ms = 30 ms at the table's cost; modelled: 24 ms of work + 6 ms of pauses.
    assert.equal(cpu.busyMs[0], 30)
    const plain = new HostCpus(1, 1)
    assert.equal(plain.run(0, 0, 5), 5, 'without GC a job costs the table')
    assert.equal(plain.gcPauses, 0)
  })

  it('host stalls: one under way holds a job back, one that begins during a job stops it for its length, one over before a job is not felt; nothing is charged as work', () => {
    // perSecond 10 and u = 1 − e^−1 give a gap of exactly 100 ms; the next value picks the length.
    const U100 = 1 - Math.exp(-1)
    const draws = [U100, 0, U100, 0.99, U100, 0, U100, 0]
    let next = 0
    const cpu = new HostCpus(1, 1, undefined, { costs: { perSecond: 10, lengthMs: [5, 20] }, random: () => draws[next++] ?? 0 })
    // First stall at 100 (5 ms).
    assert.equal(cpu.run(0, 10, 20), 30, 'before the first stall: the table cost')
    assert.equal(cpu.run(0, 95, 10), 110, 'the stall at 100 stops this job for 5 ms')
    // Next at 105 + 100 = 205 (20 ms): a job due at 210 waits for its end at 225.
    assert.equal(cpu.run(0, 210, 1), 226)
    assert.deepEqual([cpu.stallsFelt, cpu.stallMs], [2, 5 + 15])
    // Next at 325 (5 ms), over by 330: a job at 400 does not feel it; the one after begins at 430.
    assert.equal(cpu.run(0, 400, 1), 401)
    assert.equal(cpu.stallsFelt, 2)
    assert.equal(cpu.startAt(0, 431), 435, 'a timer due inside a stall runs at its end')
    assert.equal(cpu.busyMs[0], 20 + 10 + 1 + 1, 'stalls are not CPU work')
    assert.equal(new HostCpus(1, 1).run(0, 95, 10), 105, 'without stalls')
  })

  it('cores: a host with 2 cores runs two jobs side by side, the third waits for the first free core', () => {
    const cpus = new HostCpus(1, 2)
    // The fourth goes to the core free first (the second, at 4), not behind the third.
    assert.deepEqual([cpus.run(0, 0, 4), cpus.run(0, 0, 4), cpus.run(0, 0, 4), cpus.run(0, 1, 1)], [4, 4, 8, 5])
    // Hosts do not share cores.
    const two = new HostCpus(2, 1)
    assert.deepEqual([two.run(0, 0, 4), two.run(1, 0, 4), two.run(0, 0, 4)], [4, 4, 8])
  })

  it('service time delays delivery: send cost, then the link, then the receive cost before the handler runs', async () => {
    const free = network(2, undefined)
    free.net.connect(0, 1)
    free.net.send(0, 1, control(1))
    await free.time.runUntil(100)
    assert.deepEqual(free.handled, [{ node: 1, at: 10, round: 1 }])

    const costed = network(2, { placement: 'per-node', costs: { sendFrameMs: 2, receiveFrameMs: 3 } })
    costed.net.connect(0, 1)
    costed.net.send(0, 1, control(1))
    await costed.time.runUntil(100)
    assert.deepEqual(costed.handled, [{ node: 1, at: 2 + 10 + 3, round: 1 }])

    // Per byte: 1,000 wire bytes at 1 µs/B sending and 2 µs/B receiving add 1 ms and 2 ms.
    const bytes = network(2, { placement: 'per-node', costs: { sendPerByteMs: 0.001, receivePerByteMs: 0.002 } })
    bytes.net.connect(0, 1)
    bytes.net.send(0, 1, control(1, 1_000 - FRAME_OVERHEAD_BYTES))
    await bytes.time.runUntil(100)
    assert.equal(bytes.handled[0]?.at, 1 + 10 + 2)
  })

  it('contention: two pairs on one host queue behind each other; with a host per node they do not', async () => {
    const run = async (placement: HostPlacement) => {
      const { net, time, handled } = network(4, { placement, costs: { sendFrameMs: 2, receiveFrameMs: 3 } })
      net.connect(0, 1)
      net.connect(2, 3)
      net.send(0, 1, control(1))
      net.send(2, 3, control(2))
      await time.runUntil(100)
      return handled.map((h) => [h.node, h.at])
    }
    // Own hosts: both handled 2 + 10 + 3 ms after the send.
    assert.deepEqual(await run('per-node'), [[1, 15], [3, 15]])
    // One host: the second send waits for the first (ends at 4, arrives 14); the second receive
    // waits for the first (12–15), so it runs 15–18.
    assert.deepEqual(await run('one-host'), [[1, 15], [3, 18]])
  })

  it('a host with 2 cores takes the same two pairs in parallel', async () => {
    const { net, time, handled } = network(4, { placement: 'one-host', cores: 2, costs: { sendFrameMs: 2, receiveFrameMs: 3 } })
    net.connect(0, 1)
    net.connect(2, 3)
    net.send(0, 1, control(1))
    net.send(2, 3, control(2))
    await time.runUntil(100)
    assert.deepEqual(handled.map((h) => [h.node, h.at]), [[1, 15], [3, 15]])
  })

  it('a message handled within its timestamp still waits for an earlier one to the same node (rounded times)', async () => {
    // A: an inv of 10 items costs 2.5 ms to handle, arrives at 1.369 (rounded 2), handled at 3.869 (rounded 4).
    // B: a larger control message behind A on a slow uplink arrives at 3.269 (rounded 4), its
    // event scheduled before A's handler event; its cost is tiny, so it too is done by 4.
    const { net, time, handled } = network(2, { placement: 'per-node', costs: { invItemMs: 0.25, receiveFrameMs: 0.01 } }, { resolutionMs: 1, uplinkMbps: 8, linkMs: 1 })
    const got: string[] = []
    handled.length = 0
    net.setEndpoint(1, { onConnect: () => {}, onDisconnect: () => {}, onMessage: (_from, message) => got.push(`${message.type}@${time.now}`) })
    net.connect(0, 1)
    const items = Array.from({ length: 10 }, (_, i) => ({ kind: INV_TX, hash: new Uint8Array(32).fill(i) }))
    net.send(0, 1, { type: 'inv', items })
    net.send(0, 1, control(2, 1_900 - FRAME_OVERHEAD_BYTES))
    await time.runUntil(100)
    assert.deepEqual(got, ['inv@4', 'control@4'])
  })

  it('a connection-monitor ping: each end pays half its CPU (the pinged one when it arrives), each direction half its bytes, no handler runs', async () => {
    const { net, time, handled, model } = network(3, { placement: 'one-host', costs: { sendFrameMs: 1, receiveFrameMs: 1 } })
    net.connect(0, 1)
    net.ping(0, 1, PING.wireBytes)
    // A message sent right after queues behind the pinger's half (0–2 ms) for its send (2–3),
    // arrives at 13, and its receive waits for the pinged end's half, which began when the ping
    // arrived at 2 + 10 (12–14): handled at 15.
    net.send(0, 1, control(1))
    await time.runUntil(100)
    assert.deepEqual(handled, [{ node: 1, at: 15, round: 1 }])
    assert.equal(model?.cpus.busyMs[0], PING.cpuMs + 2)
    assert.equal(net.bytesSent[0], PING.wireBytes / 2 + 10 + FRAME_OVERHEAD_BYTES)
    net.ping(0, 2, PING.wireBytes)
    assert.equal(net.bytesSent[2], 0, 'no connection, no ping')
  })

  it('connection liveness in a run: each node pings each connection once per intervalMs at a phase of its own, on the CPU and in the bytes', async () => {
    const ring = Array.from({ length: 8 }, (_, i) => [i, (i + 1) % 8] as const)
    const base = { nodes: 8, txs: 15, rate: 1, edges: ring, stake: 'none', announceBatchMs: 25, statusIntervalMs: 0, fixedLatencyMs: 0.05, jitter: 0, resolutionMs: 0, uplinkMbps: 10_000, seed: 1, hosts: 'one-host', pingCosts: PING } as const
    const off = await runSim({ ...base, connectionMonitor: false })
    const on = await runSim({ ...base, connectionMonitor: true })
    // Injections from 1 s after the nodes started, one a second for 15 s: every node pings both
    // its ring neighbours (each link from both ends) once or twice in that time.
    const pingsPerDirectedLink = ((on.bytesPerNodePerTx - off.bytesPerNodePerTx) * 8 * 15) / (2 * ring.length * PING.wireBytes)
    assert.ok(pingsPerDirectedLink >= 1 && pingsPerDirectedLink <= 2.01, `${pingsPerDirectedLink} pings per directed link`)
    // Spread, not a burst: no tx waits behind all 16 pings at once (libp2p's monitor made one wait 16 × 4 ms).
    assert.ok(on.allNodesLatencyMs.max < off.allNodesLatencyMs.max + (16 * PING.cpuMs) / 2, `max ${on.allNodesLatencyMs.max} vs ${off.allNodesLatencyMs.max}`)
  })

  it('a tx the node already holds costs no signature check', () => {
    const { txs } = buildWorkload(2, 0, 1)
    const costs: CpuCosts = { ...FREE, txMs: 0.1, txVerifyMs: 0.5 }
    const message: SimMessage = { type: 'txs', solicited: true, txs }
    assert.equal(receiveCostMs(costs, message, 0, 2), 2 * 0.1 + 2 * 0.5)
    assert.equal(receiveCostMs(costs, message, 0, 0), 2 * 0.1)
  })

  it('a whole run: 16 nodes sharing one core propagate slower than with a host each, and both slower than free CPU', async () => {
    const base = { nodes: 16, txs: 60, rate: 20, degree: 3, ring: true, announceBatchMs: 25, statusIntervalMs: 0, fixedLatencyMs: 0.05, jitter: 0, resolutionMs: 0, uplinkMbps: 10_000, seed: 1 } as const
    // Costs of the calibrated table's order (fixed here, so the test does not move with a re-calibration).
    const heavy: CpuCosts = { sendFrameMs: 0.2, sendPerByteMs: 0.00001, receiveFrameMs: 0.25, receivePerByteMs: 0.00001, invItemMs: 0.005, getdataItemMs: 0.002, txMs: 0.2, txVerifyMs: 0.1, tickMs: 0.003 }
    const oneHost = await runSim({ ...base, hosts: 'one-host', cpuCosts: heavy })
    const perNode = await runSim({ ...base, hosts: 'per-node', cpuCosts: heavy })
    const free = await runSim({ ...base, hosts: 'off' })
    for (const result of [oneHost, perNode, free]) assert.equal(result.delivery.share, 1)
    assert.ok(free.allNodesLatencyMs.p50 < perNode.allNodesLatencyMs.p50, `free ${free.allNodesLatencyMs.p50} < per-node ${perNode.allNodesLatencyMs.p50}`)
    assert.ok(perNode.allNodesLatencyMs.p50 < oneHost.allNodesLatencyMs.p50, `per-node ${perNode.allNodesLatencyMs.p50} < one-host ${oneHost.allNodesLatencyMs.p50}`)
    assert.ok((oneHost.cpu?.meanWaitMs ?? 0) > (perNode.cpu?.meanWaitMs ?? 0), 'queueing on the shared host')
    assert.equal(free.cpu, undefined)
    assert.equal(oneHost.cpu?.hosts, 1)
    assert.equal(perNode.cpu?.hosts, 16)
    // Deterministic with the CPU model too.
    const again = await runSim({ ...base, hosts: 'one-host', cpuCosts: heavy })
    assert.deepEqual(again.allNodesLatencyMs, oneHost.allNodesLatencyMs)
    assert.equal(again.events, oneHost.events)
  })
})
