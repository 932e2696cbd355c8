/**
 * Gossip attacks on real libp2p against a live 3-validator devnet (node 0 is the victim): garbage
 * bytes and oversized frames, an inv flood whose getdata is never answered, unsolicited and
 * duplicate data, unfunded transactions with valid signatures, and a frame opened and never finished. For each: honest transactions still
 * reach every node, the victim keeps producing its blocks, the engine's structures stay bounded,
 * and the attacker ends graylisted, disconnected or banned.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { INV_TX, MAX_GOSSIP_FRAME_BYTES, MAX_INV_ITEMS } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { frame } from '../../src/net/framing.ts'
import { MAX_TRACKED_ANNOUNCEMENTS_PER_PEER } from '../../src/peers/rate-limit.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { transfer } from '../helpers/chain.ts'
import { type Devnet, admittedRaw, cutOff, honestTxReachesAll, victimKeepsProducing } from '../helpers/attack.ts'
import { type RawPeer, peerSet, services, sleep, stopAll, waitFor } from '../helpers/net.ts'

describe('gossip attacks against a live devnet', { timeout: 110_000 }, () => {
  let devnet: Devnet
  let victim: RunningNode
  const raws: RawPeer[] = []
  let nonce = 0

  before(async () => {
    const { startDevnet } = await import('../helpers/attack.ts')
    // A short frame deadline so a half-sent frame is caught within the test.
    devnet = await startDevnet(3, { node: { network: { inboundConnectionThreshold: 10_000, frameDeadlineMs: 1_500 } } })
    victim = devnet.victim
  })
  after(() => stopAll(devnet.nodes, raws))

  const reasons = (peerId: string) => peerSet(victim).scores.reasons(peerId)

  async function stillHealthy(): Promise<void> {
    const height = devnet.nodes[1]?.node.chain.head.header.height ?? 0
    await honestTxReachesAll(devnet.nodes, devnet.nodes[1] as RunningNode, 60, nonce++)
    await victimKeepsProducing(victim, devnet.nodes[1] as RunningNode, height)
  }

  it('FRAME_TOO_LARGE, GOSSIP_UNDECODABLE: garbage bytes and oversized frames cut the attacker off', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    // Well-framed garbage: undecodable, one high penalty each; two cut the attacker off.
    for (let i = 0; i < 2; i++) await raw.sendRaw(victimId, frame(new Uint8Array([0x7e, ...randomBytes(64)])))
    await waitFor('undecodable penalties', () => (reasons(raw.peerId).GOSSIP_UNDECODABLE ?? 0) >= 2)
    await waitFor('the attacker cut off', () => cutOff(victim, raw.peerId) && !raw.connectedTo(victim.network?.peerId ?? ''))

    // Another: random bytes whose first four read as a length far above the maximum. Each closes
    // the stream it came on; the second, on a new stream, cuts the attacker off.
    const big = await admittedRaw(victim)
    raws.push(big.raw)
    for (let i = 1; i <= 2; i++) {
      const header = new Uint8Array(4)
      new DataView(header.buffer).setUint32(0, MAX_GOSSIP_FRAME_BYTES + 12_345)
      await big.raw.sendRaw(big.victimId, new Uint8Array([...header, ...randomBytes(32)]))
      await waitFor('FRAME_TOO_LARGE', () => (reasons(big.raw.peerId).FRAME_TOO_LARGE ?? 0) >= i)
      await waitFor('the stream closed', () => !big.raw.gossipStreamOpen(big.victimId))
    }
    await waitFor('the second attacker cut off', () => cutOff(victim, big.raw.peerId) && !big.raw.connectedTo(victim.network?.peerId ?? ''))
    await stillHealthy()
  })

  it('ANNOUNCEMENTS_OVERFLOW, GOSSIP_NOT_DELIVERED, RATE_LIMITED, RATE_LIMIT_FLOOD: an inv flood whose getdata is never answered', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    const engine = services(victim).engine
    const started = Date.now()
    // 8 × 4,096 random txids in a burst, then more while the honest network works.
    const flood = async (messages: number) => {
      for (let m = 0; m < messages; m++) {
        const items = Array.from({ length: MAX_INV_ITEMS }, () => ({ kind: INV_TX, hash: new Uint8Array(randomBytes(32)) }))
        await raw.send(victimId, { type: 'inv', items }).catch(() => undefined)
      }
    }
    await flood(8)
    await sleep(200)
    // Bounded: the flooder's tracked announcements and the requests in flight to it.
    const stats = engine.stats()
    assert.ok(stats.tracked <= MAX_TRACKED_ANNOUNCEMENTS_PER_PEER, `tracked announcements bounded: ${stats.tracked}`)
    assert.ok(stats.wanted <= MAX_TRACKED_ANNOUNCEMENTS_PER_PEER + 100, `wanted bounded: ${stats.wanted}`)
    assert.ok((engine.counters(raw.peerId)?.requestsSent ?? 0) <= 100 || !engine.hasPeer(raw.peerId), 'at most 100 requests in flight to it')
    // The flood goes on until the victim stops listening to it.
    let flooding = true
    const background = (async () => {
      while (flooding) {
        await flood(1)
        await sleep(50)
      }
    })()
    try {
      await waitFor('the flooder cut off', () => cutOff(victim, raw.peerId), { timeoutMs: 10_000, detail: () => reasons(raw.peerId) })
      const cutOffMs = Date.now() - started
      const bounded = engine.stats()
      assert.ok(bounded.tracked <= MAX_TRACKED_ANNOUNCEMENTS_PER_PEER, `tracked announcements bounded under the flood: ${bounded.tracked}`)
      assert.ok(cutOffMs < 5_000, `cut off in ${cutOffMs} ms`)
      // Past its burst (one maximal inv) every further maximal inv is refused whole: a refused
      // burst within the period is a flood (RATE_LIMIT_FLOOD); slower floods earn RATE_LIMITED or,
      // past the tracker's cap, ANNOUNCEMENTS_OVERFLOW.
      const codes = reasons(raw.peerId)
      assert.ok((codes.ANNOUNCEMENTS_OVERFLOW ?? 0) + (codes.RATE_LIMITED ?? 0) + (codes.RATE_LIMIT_FLOOD ?? 0) > 0, JSON.stringify(codes))
      await stillHealthy()
    } finally {
      // However the assertions end, the flood stops (a failing test must not run on until the file's timeout).
      flooding = false
      await background
    }
    // Graylisted, it leaves the engine: its announcements are released, nothing waits on it.
    assert.equal(engine.hasPeer(raw.peerId), false, 'a graylisted peer is out of the gossip engine')
    await waitFor('the wanted set drained', () => engine.stats().wanted < 100, { timeoutMs: 10_000, detail: () => engine.stats() })
  })

  it('GOSSIP_UNSOLICITED: data marked as an answer that nobody asked for, past the tolerance', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    // Valid txs the victim never asked for, marked solicited.
    for (let i = 0; i < 60; i++) {
      const txs = [transfer(70, devKeypair(7_000).publicKey, 1n, i, 1n, victim.node.genesis.chainId)]
      await raw.send(victimId, { type: 'txs', solicited: true, txs }).catch(() => undefined)
      if (i % 10 === 9) await sleep(20)
    }
    await waitFor('the attacker cut off', () => cutOff(victim, raw.peerId), { timeoutMs: 10_000, detail: () => reasons(raw.peerId) })
    assert.ok((reasons(raw.peerId).GOSSIP_UNSOLICITED ?? 0) > 0, JSON.stringify(reasons(raw.peerId)))
    await stillHealthy()
  })

  it('GOSSIP_DUPLICATE: the same data pushed over and over, past the tolerance', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    const txs = Array.from({ length: 4 }, (_, i) => transfer(71 + i, devKeypair(7_000).publicKey, 1n, 0, 1n, victim.node.genesis.chainId))
    for (let i = 0; i < 120; i++) {
      await raw.send(victimId, { type: 'txs', solicited: false, txs }).catch(() => undefined)
      if (i % 10 === 9) await sleep(20)
    }
    await waitFor('the attacker cut off', () => cutOff(victim, raw.peerId), { timeoutMs: 10_000, detail: () => reasons(raw.peerId) })
    assert.ok((reasons(raw.peerId).GOSSIP_DUPLICATE ?? 0) > 0, JSON.stringify(reasons(raw.peerId)))
    await stillHealthy()
  })

  it('TX_UNPAYABLE: valid signatures from unfunded keys, past a tolerance of their own: cut off within three full frames', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    // Full frames of distinct txs that no node can accept (their senders hold nothing): each is
    // cheap to refuse (funds before the signature), but work for nothing. Under TX_IGNORED's
    // tolerance (1,000 free per 10 s) the sender was cut off after six frames; TX_UNPAYABLE
    // allows 100, so three: 256 − 100 = 156 past it (−13), 256 more (−20, the cap), then −20 again.
    const unpayableSeen = async () => (await victim.metrics.rejected.get()).values.find((v) => v.labels.code === 'TX_INSUFFICIENT_FUNDS')?.value ?? 0
    let frames = 0
    while (frames < 6 && !cutOff(victim, raw.peerId)) {
      const txs = Array.from({ length: 256 }, (_, k) => transfer(20_000 + 256 * frames + k, devKeypair(7_001).publicKey, 1n, 0, 1n, victim.node.genesis.chainId))
      const before = await unpayableSeen()
      await raw.send(victimId, { type: 'txs', solicited: false, txs })
      frames++
      await waitFor('the frame checked, or its sender cut off', async () => cutOff(victim, raw.peerId) || (await unpayableSeen()) >= before + txs.length, { timeoutMs: 10_000, detail: () => reasons(raw.peerId) })
    }
    assert.ok(cutOff(victim, raw.peerId), `not cut off after ${frames} frames: ${JSON.stringify(reasons(raw.peerId))}`)
    assert.ok(frames <= 3, `cut off only after ${frames} frames: ${JSON.stringify(reasons(raw.peerId))}`)
    assert.ok((reasons(raw.peerId).TX_UNPAYABLE ?? 0) > 0, JSON.stringify(reasons(raw.peerId)))
    assert.equal(reasons(raw.peerId).TX_IGNORED, undefined, 'txs that cannot be paid are not charged as TX_IGNORED')
    await stillHealthy()
  })

  it('FRAME_INCOMPLETE: a frame opened and never finished', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    const header = new Uint8Array(4)
    new DataView(header.buffer).setUint32(0, 100_000)
    // Half a frame on the gossip stream, then silence.
    await raw.sendRaw(victimId, new Uint8Array([...header, ...randomBytes(1_000)]))
    // A sync stream opened with nothing on it: the server gives up on it after its read deadline.
    await raw.openAndStall(victimId, raw.protocols.sync, new Uint8Array([0, 0]))
    await waitFor('FRAME_INCOMPLETE', () => (reasons(raw.peerId).FRAME_INCOMPLETE ?? 0) >= 1, { timeoutMs: 5_000 })
    await stillHealthy()
  })
})
