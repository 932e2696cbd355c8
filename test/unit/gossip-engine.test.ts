/**
 * GossipEngine (src/gossip/engine.ts) driven through a fake host and a fake clock: sends are
 * recorded per peer, the "mempool" and the block store are maps, randomness is seeded and time is
 * a plain number passed as `now`. The adapter's wake → setImmediate → flush is replaced by
 * explicit `flush(now)` / `tick(now)` calls, so every step is deterministic.
 */
import { evidenceId, voteId } from '../../src/codec/finality.ts'
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { toHexKey } from '../../src/codec/bytes.ts'
import { headerHash, toSignedTx } from '../../src/codec/objects.ts'
import { type GossipMessage, INV_BLOCK, INV_COMPACT_BLOCK, INV_TX, type InvItem, encodeGossip, gossipFrameItems } from '../../src/codec/wire.ts'
import { InboundLimits } from '../../src/peers/rate-limit.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { type GossipHost, GossipEngine, type GossipOptions, type GossipPeerInfo } from '../../src/gossip/engine.ts'
import type { Block, SignedTx } from '../../src/ledger/types.ts'
import { buildNext, memoryChain, transfer } from '../helpers/chain.ts'
import { seededRandom as seeded } from '../../src/util/random.ts'

const T0 = 1_000_000
const RECIPIENT = devKeypair(4000).publicKey


/** Distinct, validly signed transfers (sender dev key `10 + i`). */
const txCache = new Map<number, SignedTx>()
function tx(i: number): SignedTx {
  let signed = txCache.get(i)
  if (signed === undefined) {
    signed = transfer(10 + i, RECIPIENT, 1000n + BigInt(i), 0)
    txCache.set(i, signed)
  }
  return signed
}

interface Sent {
  peer: string
  message: GossipMessage
}

class FakeHost implements GossipHost {
  /** Every message the engine sent, in order. */
  sent: Sent[] = []
  readonly mempool = new Map<string, SignedTx>()
  readonly blocks = new Map<string, Block>()
  readonly deliveredTxs: Array<{ peer: string; txs: SignedTx[] }> = []
  readonly deliveredBlocks: Array<{ peer: string; block: Block }> = []
  wakes = 0
  /** An arrow property: the engine passes `host.random` around unbound. */
  readonly random: () => number

  constructor(random: () => number = seeded(1)) {
    this.random = random
  }

  send(peerId: string, message: GossipMessage): void {
    this.sent.push({ peer: peerId, message })
  }
  wake(): void {
    this.wakes++
  }
  hasTx(idHex: string): boolean {
    return this.mempool.has(idHex)
  }
  getTx(idHex: string): SignedTx | undefined {
    return this.mempool.get(idHex)
  }
  hasBlock(hashHex: string): boolean {
    return this.blocks.has(hashHex)
  }
  getBlock(hashHex: string): Block | undefined {
    return this.blocks.get(hashHex)
  }
  deliverTxs(peerId: string, txs: SignedTx[]): void {
    this.deliveredTxs.push({ peer: peerId, txs })
  }
  deliverBlock(peerId: string, block: Block): void {
    this.deliveredBlocks.push({ peer: peerId, block })
  }
  /** Offences the engine reported, in order. */
  readonly offences: Array<{ peer: string; code: string }> = []
  offence(peerId: string, code: string): void {
    this.offences.push({ peer: peerId, code })
  }

  addTx(signed: SignedTx): void {
    this.mempool.set(signed.idHex, signed)
  }

  /** Returns and clears what was sent since the last call. */
  take(): Sent[] {
    const out = this.sent
    this.sent = []
    return out
  }
}

function harness(peers: Array<Partial<GossipPeerInfo> & { id: string }>, options: Partial<GossipOptions> = {}, seed = 1) {
  const host = new FakeHost(seeded(seed))
  const engine = new GossipEngine(host, options)
  for (const peer of peers) engine.addPeer({ outbound: false, stake: 0n, ...peer }, T0)
  return { host, engine }
}

function ids(count: number, prefix = 'peer'): Array<{ id: string }> {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}${i}` }))
}

function itemHexes(items: InvItem[]): string[] {
  return items.map((item) => toHexKey(item.hash))
}

/** Every inventory hash a message carries (inv/getdata/notfound items, txs, blocktxn txs). */
function hashesIn(message: GossipMessage): string[] {
  switch (message.type) {
    case 'inv':
    case 'getdata':
    case 'notfound':
      return itemHexes(message.items)
    case 'txs':
    case 'blocktxn':
      return message.txs.map((signed) => signed.idHex)
    case 'block':
      return [toHexKey(headerHash(message.block.header)), ...message.block.txs.map((signed) => signed.idHex)]
    case 'cmpctblock':
      return [toHexKey(headerHash(message.header)), ...message.txids.map((id) => toHexKey(id))]
    case 'getblocktxn':
      return [toHexKey(message.blockHash)]
    case 'votes':
      return message.votes.map((vote) => toHexKey(voteId(vote)))
    case 'evidence':
      return message.evidence.map((evidence) => toHexKey(evidenceId(evidence)))
  }
}

function getdataTo(sent: Sent[], peer: string): InvItem[][] {
  return sent.filter((entry) => entry.peer === peer && entry.message.type === 'getdata').map((entry) => (entry.message as { items: InvItem[] }).items)
}

/** The single getdata message in `sent`, with its peer and the hashes it asks for. */
function onlyGetdata(sent: Sent[]): { peer: string; hexes: string[]; kinds: number[] } {
  const requests = sent.filter((entry) => entry.message.type === 'getdata')
  assert.equal(requests.length, 1, `expected one getdata, got ${JSON.stringify(requests.map((entry) => entry.peer))}`)
  const request = requests[0] as Sent
  const items = (request.message as { items: InvItem[] }).items
  return { peer: request.peer, hexes: itemHexes(items), kinds: items.map((item) => item.kind) }
}

function inv(...txs: SignedTx[]): GossipMessage {
  return { type: 'inv', items: txs.map((signed) => ({ kind: INV_TX, hash: signed.id })) }
}

describe('GossipEngine: publishing transactions', () => {
  for (const [peerCount, pushes] of [
    [1, 1],
    [2, 2],
    [5, 3],
    [10, 4],
    [16, 4],
  ] as const) {
    it(`a local tx with ${peerCount} peers is pushed in full to ${pushes} (about √peers) and announced to the rest`, () => {
      const { host, engine } = harness(ids(peerCount))
      const signed = tx(0)
      engine.relayTx(signed, undefined, T0)
      assert.ok(host.wakes > 0, 'a push asks for a flush')
      engine.flush(T0)
      const sent = host.take()
      const pushedTo = sent.filter((entry) => entry.message.type === 'txs')
      const announcedTo = sent.filter((entry) => entry.message.type === 'inv')
      assert.equal(pushedTo.length, pushes)
      assert.equal(announcedTo.length, peerCount - pushes)
      // Every peer hears of it exactly once, in one form or the other.
      assert.deepEqual(new Set(sent.map((entry) => entry.peer)).size, peerCount)
      assert.equal(sent.length, peerCount)
      for (const entry of pushedTo) {
        assert.deepEqual(entry.message, { type: 'txs', solicited: false, txs: [signed] })
        assert.equal(engine.counters(entry.peer)?.pushesSent, 1)
      }
      for (const entry of announcedTo) {
        assert.deepEqual(entry.message, { type: 'inv', items: [{ kind: INV_TX, hash: signed.id }] })
        assert.equal(engine.counters(entry.peer)?.announcementsSent, 1)
      }
      for (const { id } of ids(peerCount)) assert.ok(engine.peerKnows(id, signed.idHex))
    })
  }

  it('push targets are stake-weighted: staked peers get the full tx more often than unstaked ones', () => {
    // 12 peers, fan-out 4; two validators hold all the stake (weight 1 + 10 × 0.5 = 6 each).
    const peers = ids(12).map((peer, i) => ({ ...peer, stake: i < 2 ? 50n : 0n }))
    const random = seeded(7)
    const pushes = new Map<string, number>()
    const trials = 400
    for (let trial = 0; trial < trials; trial++) {
      const host = new FakeHost(random)
      const engine = new GossipEngine(host)
      engine.setTotalStake(100n)
      for (const peer of peers) engine.addPeer({ outbound: false, ...peer }, T0)
      engine.relayTx(tx(0), undefined, T0)
      engine.flush(T0)
      for (const entry of host.take()) if (entry.message.type === 'txs') pushes.set(entry.peer, (pushes.get(entry.peer) ?? 0) + 1)
    }
    const rate = (peerIds: string[]) => peerIds.reduce((sum, id) => sum + (pushes.get(id) ?? 0), 0) / (peerIds.length * trials)
    const staked = rate(['peer0', 'peer1'])
    const unstaked = rate(peers.slice(2).map((peer) => peer.id))
    // Exactly 4 pushes per trial in total.
    assert.equal([...pushes.values()].reduce((a, b) => a + b, 0), 4 * trials)
    assert.ok(staked > 2 * unstaked, `staked push rate ${staked} should far exceed unstaked ${unstaked}`)
    // The floor weight keeps unstaked peers reachable.
    assert.ok(unstaked > 0.05, `unstaked peers still get pushes (${unstaked})`)
  })

  it('without stake every peer is equally likely to be pushed to', () => {
    const peers = ids(9)
    const random = seeded(11)
    const pushes = new Map<string, number>()
    const trials = 900
    for (let trial = 0; trial < trials; trial++) {
      const host = new FakeHost(random)
      const engine = new GossipEngine(host)
      for (const peer of peers) engine.addPeer({ outbound: false, stake: 0n, ...peer }, T0)
      engine.relayTx(tx(0), undefined, T0)
      engine.flush(T0)
      for (const entry of host.take()) if (entry.message.type === 'txs') pushes.set(entry.peer, (pushes.get(entry.peer) ?? 0) + 1)
    }
    // Fan-out 3 of 9: each peer expects 300 pushes.
    for (const { id } of peers) {
      const count = pushes.get(id) ?? 0
      assert.ok(count > 230 && count < 370, `${id} pushed ${count} times`)
    }
  })

  it('a relayed tx is only announced, and never to the peer it came from', () => {
    const { host, engine } = harness(ids(6))
    const signed = tx(1)
    engine.relayTx(signed, 'peer0', T0)
    engine.flush(T0)
    const sent = host.take()
    assert.equal(sent.filter((entry) => entry.message.type === 'txs').length, 0, 'no full copy for a relayed tx')
    assert.deepEqual(sent.map((entry) => entry.peer).sort(), ['peer1', 'peer2', 'peer3', 'peer4', 'peer5'])
    for (const entry of sent) assert.deepEqual(entry.message, { type: 'inv', items: [{ kind: INV_TX, hash: signed.id }] })
    assert.ok(engine.peerKnows('peer0', signed.idHex), 'the sender is marked as knowing it')
    assert.equal(engine.counters('peer0')?.announcementsSent, 0)
  })

  it('a tx is never announced twice on a link, nor to a peer that announced it to us', () => {
    const { host, engine } = harness(ids(5))
    const signed = tx(2)
    // peer1 announces it first: we ask peer1.
    engine.onMessage('peer1', inv(signed), T0)
    engine.flush(T0)
    assert.deepEqual(onlyGetdata(host.take()), { peer: 'peer1', hexes: [signed.idHex], kinds: [INV_TX] })
    // peer2 pushes the full tx before peer1 answers; the node accepts it and relays it.
    engine.onMessage('peer2', { type: 'txs', solicited: false, txs: [signed] }, T0 + 1)
    assert.equal(host.deliveredTxs.length, 1)
    host.addTx(signed)
    engine.relayTx(signed, 'peer2', T0 + 1)
    engine.flush(T0 + 1)
    const first = host.take()
    assert.deepEqual(first.map((entry) => entry.peer).sort(), ['peer0', 'peer3', 'peer4'], 'neither the announcer nor the sender is told')
    // A second relay of the same tx (say it came in again from another path) sends nothing at all.
    engine.relayTx(signed, 'peer3', T0 + 500)
    engine.tick(T0 + 1_000)
    engine.relayTx(signed, undefined, T0 + 1_000)
    engine.tick(T0 + 2_000)
    assert.deepEqual(host.take(), [])
    for (const id of ['peer0', 'peer3', 'peer4']) assert.equal(engine.counters(id)?.announcementsSent, 1)
    for (const id of ['peer1', 'peer2']) assert.equal(engine.counters(id)?.announcementsSent, 0)
  })
})

/** `count` distinct unsigned stand-ins (the engine never checks signatures). */
const standInTxs = (count: number): SignedTx[] =>
  Array.from({ length: count }, (_, i) => toSignedTx({ chainId: 'grapevine-devnet', from: RECIPIENT, to: RECIPIENT, amount: BigInt(i + 1), fee: 1n, nonce: i, memo: new Uint8Array(0), signature: new Uint8Array(64) }))

/** The receiving peer: its own limits (the same table it enforces) check every frame as it arrives; what it got is recorded. */
function receiverOf(host: FakeHost) {
  const limits = new InboundLimits()
  const got = { refused: [] as string[], pushed: new Set<string>(), announced: new Set<string>(), frames: 0 }
  const receive = (now: number): void => {
    for (const { message } of host.take()) {
      got.frames++
      const bytes = encodeGossip(message)
      const decision = limits.checkGossipFrame('us', bytes.length, now, gossipFrameItems(bytes))
      if (!decision.allowed) got.refused.push(`${decision.limit} at ${now - T0} ms`)
      if (message.type === 'txs') for (const signed of message.txs) got.pushed.add(signed.idHex)
      if (message.type === 'inv') for (const item of message.items) got.announced.add(toHexKey(item.hash))
    }
  }
  return { got, receive }
}

describe('GossipEngine: pacing what it sends to a peer', () => {
  it("10,000 txs handed over at once reach a peer within its published gossipTxItems quota and never as a flood of announcements: pushes past the budget wait; every tx is pushed once", () => {
    const txs = standInTxs(10_000)
    // One peer: every local tx is pushed to it (√1 = 1).
    const { host, engine } = harness(ids(1))
    const { got, receive } = receiverOf(host)
    for (const signed of txs) engine.relayTx(signed, undefined, T0)
    engine.flush(T0)
    receive(T0)
    for (let now = T0 + 5; now <= T0 + 4_000; now += 5) {
      engine.tick(now)
      receive(now)
    }
    assert.deepEqual(got.refused, [], 'no frame refused by the receiver')
    assert.equal(got.pushed.size, txs.length, 'every tx pushed')
    // Announcements past the peer's tracked cap (5,000) would be charged as an inv flood.
    assert.equal(got.announced.size, 0, 'none announced instead')
    assert.equal(engine.counters('peer0')?.pushesSent, txs.length)
  })

  it('a thousand local txs one at a time, a flush after each, stay within the peer\'s gossipMessages quota: pushes wait and go out batched', () => {
    const txs = standInTxs(1_000)
    const { host, engine } = harness(ids(1))
    const { got, receive } = receiverOf(host)
    // One tx every millisecond for a second (an RPC client sending single-tx calls), each flushed at once.
    txs.forEach((signed, i) => {
      engine.relayTx(signed, undefined, T0 + i)
      engine.flush(T0 + i)
      receive(T0 + i)
    })
    for (let now = T0 + 1_000; now <= T0 + 3_000; now += 5) {
      engine.tick(now)
      receive(now)
    }
    assert.deepEqual(got.refused, [], 'no frame refused by the receiver')
    assert.equal(got.pushed.size, txs.length, 'every tx pushed')
    assert.ok(got.frames < txs.length / 2, `batched into ${got.frames} frames, not one per tx`)
  })
})

describe('GossipEngine: announcement batching', () => {
  it('one announcement leaves at once on an idle link; later ones within announceBatchMs leave together in ONE inv', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'src' }], { announceBatchMs: 100 })
    engine.relayTx(tx(0), 'src', T0)
    assert.equal(host.wakes, 1, 'an idle link asks for a flush at once')
    engine.flush(T0)
    let sent = host.take()
    assert.equal(sent.length, 1)
    assert.deepEqual(sent[0], { peer: 'a', message: inv(tx(0)) })

    engine.relayTx(tx(1), 'src', T0 + 10)
    engine.relayTx(tx(2), 'src', T0 + 20)
    assert.equal(host.wakes, 1, 'a busy link does not ask for a flush')
    engine.flush(T0 + 20)
    engine.tick(T0 + 99)
    assert.deepEqual(host.take(), [], 'nothing leaves inside the window')
    engine.tick(T0 + 100)
    sent = host.take()
    assert.equal(sent.length, 1, 'one inv message for the whole batch')
    assert.deepEqual(sent[0], { peer: 'a', message: inv(tx(1), tx(2)) })
    assert.equal(engine.counters('a')?.announcementsSent, 3)

    // The window restarts from the last flush: an announcement after it leaves at once again.
    engine.relayTx(tx(3), 'src', T0 + 250)
    assert.equal(host.wakes, 2)
    engine.flush(T0 + 250)
    assert.deepEqual(host.take(), [{ peer: 'a', message: inv(tx(3)) }])
  })

  it('windows are per peer: a busy link does not delay an idle one', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }, { id: 'src' }], { announceBatchMs: 100 })
    engine.relayTx(tx(0), 'b', T0) // announced to a and src
    engine.flush(T0)
    host.take()
    engine.relayTx(tx(1), 'src', T0 + 10) // a is inside its window; b is idle
    engine.flush(T0 + 10)
    assert.deepEqual(host.take(), [{ peer: 'b', message: inv(tx(1)) }])
    engine.tick(T0 + 100)
    assert.deepEqual(host.take(), [{ peer: 'a', message: inv(tx(1)) }])
  })
})

describe('GossipEngine: requesting missing objects', () => {
  it('a tx announced by several peers is requested from ONE announcer at a time, outbound then staked first', () => {
    const { host, engine } = harness(
      [
        { id: 'first' },
        { id: 'inPlain' },
        { id: 'inStaked', stake: 300n },
        { id: 'outPlain', outbound: true },
        { id: 'outStaked', outbound: true, stake: 100n },
      ],
      // No hedge before the timeout (the next test covers hedging): the order of asking is what is tested here.
      { requestTimeoutMs: 1_000, hedgeAfterMs: 1_000 },
    )
    engine.setTotalStake(400n)
    const signed = tx(0)
    // Announced in the order opposite to preference (after the first, which is asked at once).
    for (const [i, peer] of ['first', 'inPlain', 'inStaked', 'outPlain', 'outStaked'].entries()) engine.onMessage(peer, inv(signed), T0 + i)
    engine.flush(T0 + 5)
    assert.deepEqual(onlyGetdata(host.take()), { peer: 'first', hexes: [signed.idHex], kinds: [INV_TX] })
    assert.equal(engine.stats().inFlight, 1)

    // Each timeout moves to the next announcer: outbound by stake, then inbound by stake.
    let deadline = T0 + 1_000
    let previous = 'first'
    for (const next of ['outStaked', 'outPlain', 'inStaked', 'inPlain']) {
      engine.tick(deadline - 1)
      assert.deepEqual(host.take(), [], 'nothing before the deadline')
      engine.tick(deadline)
      assert.equal(engine.counters(previous)?.requestTimeouts, 1, `${previous} timed out`)
      assert.deepEqual(onlyGetdata(host.take()), { peer: next, hexes: [signed.idHex], kinds: [INV_TX] })
      assert.equal(engine.stats().inFlight, 1, 'still one request at a time')
      previous = next
      deadline += 1_000
    }
    // The delivery from the current announcer settles the want.
    engine.onMessage('inPlain', { type: 'txs', solicited: true, txs: [signed] }, deadline - 10)
    assert.deepEqual(host.deliveredTxs, [{ peer: 'inPlain', txs: [signed] }])
    assert.equal(engine.counters('inPlain')?.unsolicited, 0)
    assert.deepEqual(engine.stats().wanted, 0)
    engine.tick(deadline + 10_000)
    assert.deepEqual(host.take(), [])
  })

  it('announcers past maxAnnouncersPerItem: a preferred one takes the place of the least preferred untried one, so withholding Sybils that announced first cannot shut a validator out', () => {
    const sybils = ids(8, 'sybil')
    const { host, engine } = harness([...sybils, { id: 'validator', outbound: true, stake: 100n }, { id: 'lateSybil' }], { requestTimeoutMs: 1_000, maxAnnouncersPerItem: 8 })
    engine.setTotalStake(100n)
    const signed = tx(0)
    for (const [i, { id }] of sybils.entries()) engine.onMessage(id, inv(signed), T0 + i)
    engine.flush(T0 + 10)
    assert.equal(onlyGetdata(host.take()).peer, 'sybil0', 'the first announcer is asked at once')
    // The list is full: another unstaked inbound announcer is not taken, the validator is.
    engine.onMessage('lateSybil', inv(signed), T0 + 20)
    engine.onMessage('validator', inv(signed), T0 + 30)
    engine.flush(T0 + 30)
    assert.deepEqual(host.take(), [], 'the request out is left to run')
    // Eight announcements tracked, not nine: the Sybil that lost its place no longer counts the item against its allowance.
    assert.equal(engine.stats().tracked, 8)
    // sybil0 withholds: at its timeout the validator is asked, not the next of seven Sybils.
    engine.tick(T0 + 1_000)
    assert.deepEqual(onlyGetdata(host.take()), { peer: 'validator', hexes: [signed.idHex], kinds: [INV_TX] })
    engine.onMessage('validator', { type: 'txs', solicited: true, txs: [signed] }, T0 + 1_010)
    assert.deepEqual(host.deliveredTxs, [{ peer: 'validator', txs: [signed] }])
    assert.deepEqual(engine.stats().wanted, 0)
  })

  it('zero-stake announcers as a class fill at most a third of maxWanted: Sybils that announce and withhold cannot shut out a validator\'s announcement', () => {
    const sybils = ids(3, 'sybil')
    const { host, engine } = harness([...sybils, { id: 'validator', stake: 100n }], { maxWanted: 300, maxTrackedAnnouncementsPerPeer: 100, maxInFlightPerPeer: 10 })
    engine.setTotalStake(100n)
    // Each Sybil announces its whole tracked allowance of hashes nobody has.
    for (const [s, { id }] of sybils.entries()) {
      const items = Array.from({ length: 100 }, (_, k) => ({ kind: INV_TX, hash: new Uint8Array(32).fill(s + 1).map((byte, i) => (i < 2 ? (k >> (8 * i)) & 0xff : byte)) }))
      engine.onMessage(id, { type: 'inv', items }, T0)
    }
    assert.equal(engine.stats().wanted, 100, 'the zero-stake class holds a third of maxWanted')
    engine.flush(T0)
    host.take()
    // The wanted set has room left for the staked class: the validator's tx is asked for.
    const signed = tx(0)
    engine.onMessage('validator', inv(signed), T0 + 1)
    engine.flush(T0 + 1)
    assert.deepEqual(onlyGetdata(host.take()), { peer: 'validator', hexes: [signed.idHex], kinds: [INV_TX] })
  })

  /** A block announced by `first` and then by a validator (and an unstaked 'other' peer present): `first` is asked. */
  async function blockAskedOf(first: string, txs: SignedTx[] = []) {
    const chain = await memoryChain()
    const { block } = buildNext(chain, txs)
    const hash = headerHash(block.header)
    const { host, engine } = harness([{ id: first }, { id: 'validator', stake: 100n }, { id: 'other' }], { requestTimeoutMs: 1_000 })
    engine.setTotalStake(100n)
    const blockInv: GossipMessage = { type: 'inv', items: [{ kind: INV_BLOCK, hash }] }
    engine.onMessage(first, blockInv, T0)
    engine.onMessage('validator', blockInv, T0 + 1)
    engine.flush(T0 + 1)
    assert.equal(onlyGetdata(host.take()).peer, first)
    return { chain, block, hash, hex: toHexKey(hash), host, engine }
  }

  it('a block copy the node refuses (a forged body) does not end the search: the announcers not yet asked are asked in turn', async () => {
    const { chain, block, hex, host, engine } = await blockAskedOf('forger')
    // The forger answers with a copy; the node imports it, and refuses it.
    engine.onMessage('forger', { type: 'block', solicited: true, block }, T0 + 10)
    assert.equal(host.deliveredBlocks.length, 1)
    assert.equal(engine.stats().wanted, 0, 'the delivery settled the want')
    engine.blockCopyFailed(hex, T0 + 20)
    engine.flush(T0 + 20)
    assert.deepEqual(onlyGetdata(host.take()), { peer: 'validator', hexes: [hex], kinds: [INV_COMPACT_BLOCK] }, 'the validator is asked at once')

    // Imported instead: nothing is asked again, even if a refusal were reported late.
    const second = buildNext(chain, [], block.header.slot + 2).block
    const secondHash = headerHash(second.header)
    const secondInv: GossipMessage = { type: 'inv', items: [{ kind: INV_BLOCK, hash: secondHash }] }
    engine.onMessage('other', secondInv, T0 + 30)
    engine.onMessage('validator', secondInv, T0 + 31)
    engine.flush(T0 + 31)
    host.take()
    engine.onMessage('other', { type: 'block', solicited: true, block: second }, T0 + 40)
    engine.relayBlock(second, secondHash, 'other', T0 + 50)
    host.take()
    engine.blockCopyFailed(toHexKey(secondHash), T0 + 60)
    engine.flush(T0 + 60)
    assert.deepEqual(host.take().filter((sent) => sent.message.type === 'getdata'), [])
  })

  it('a compact block whose sender never sends the missing txs times out like a request: the announcers not yet asked are asked', async () => {
    const { block, hash, hex, host, engine } = await blockAskedOf('withholder', [tx(0), tx(1)])
    // Its compact block names txs we lack; it is asked for them and never answers.
    engine.onMessage('withholder', { type: 'cmpctblock', solicited: true, header: block.header, txids: block.txs.map((signed) => signed.id) }, T0 + 10)
    engine.flush(T0 + 10)
    assert.deepEqual(host.take().map((sent) => [sent.peer, sent.message.type]), [['withholder', 'getblocktxn']])
    engine.tick(T0 + 1_009)
    assert.deepEqual(host.take(), [], 'nothing before the deadline')
    engine.tick(T0 + 1_010)
    assert.deepEqual(onlyGetdata(host.take()), { peer: 'validator', hexes: [hex], kinds: [INV_COMPACT_BLOCK] })
    assert.equal(engine.counters('withholder')?.requestTimeouts, 1)
    // Its late answer is not taken for the block: the pending compact block is gone.
    engine.onMessage('withholder', { type: 'blocktxn', blockHash: hash, txs: block.txs }, T0 + 1_020)
    assert.equal(host.deliveredBlocks.length, 0)
  })

  it('a request unanswered for hedgeAfterMs is also made of the next announcer, and so on; the first is not asked again and its late answer is one we asked for', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'alone' }], { requestTimeoutMs: 2_000, hedgeAfterMs: 500 })
    const signed = tx(0)
    engine.onMessage('a', inv(signed), T0)
    engine.flush(T0)
    assert.equal(onlyGetdata(host.take()).peer, 'a')
    engine.onMessage('b', inv(signed), T0 + 10)
    engine.onMessage('c', inv(signed), T0 + 20)
    engine.tick(T0 + 499)
    assert.deepEqual(host.take(), [], 'not before hedgeAfterMs')
    engine.tick(T0 + 500)
    assert.equal(onlyGetdata(host.take()).peer, 'b')
    engine.tick(T0 + 999)
    assert.deepEqual(host.take(), [])
    engine.tick(T0 + 1_000)
    assert.equal(onlyGetdata(host.take()).peer, 'c', 'b withholds too: the next one')
    engine.tick(T0 + 1_600)
    assert.deepEqual(host.take(), [], 'no announcer left to add: c keeps its full timeout')
    engine.onMessage('c', { type: 'txs', solicited: true, txs: [signed] }, T0 + 1_610)
    assert.deepEqual(host.deliveredTxs, [{ peer: 'c', txs: [signed] }])
    // a's answer just before its timeout: a copy we asked for, so a duplicate, not unsolicited.
    host.addTx(signed)
    engine.onMessage('a', { type: 'txs', solicited: true, txs: [signed] }, T0 + 1_990)
    assert.equal(engine.counters('a')?.unsolicited, 0)
    assert.equal(host.deliveredTxs.length, 1)

    // One announcer: nothing to hedge to, it keeps its full timeout.
    const other = tx(1)
    engine.onMessage('alone', inv(other), T0 + 3_000)
    engine.flush(T0 + 3_000)
    assert.equal(onlyGetdata(host.take()).peer, 'alone')
    engine.tick(T0 + 4_000)
    assert.deepEqual(host.take().filter((sent) => sent.message.type === 'getdata'), [])
  })

  it('on request timeout the next announcer is asked', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }], { requestTimeoutMs: 300 })
    const signed = tx(0)
    engine.onMessage('a', inv(signed), T0)
    engine.onMessage('b', inv(signed), T0 + 50)
    engine.flush(T0 + 50)
    assert.equal(onlyGetdata(host.take()).peer, 'a')
    engine.tick(T0 + 299)
    assert.deepEqual(host.take(), [])
    assert.equal(engine.counters('a')?.requestTimeouts, 0)
    engine.tick(T0 + 300)
    assert.equal(onlyGetdata(host.take()).peer, 'b')
    assert.equal(engine.counters('a')?.requestTimeouts, 1)
    assert.equal(engine.counters('b')?.requestsSent, 1)
    // The next announcer's answer settles it.
    engine.onMessage('b', { type: 'txs', solicited: true, txs: [signed] }, T0 + 310)
    assert.equal(host.deliveredTxs.length, 1)
    assert.equal(engine.counters('b')?.requestTimeouts, 0)
  })

  it('on notfound the next announcer is asked at once', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }, { id: 'c' }])
    const signed = tx(0)
    engine.onMessage('a', inv(signed), T0)
    engine.onMessage('b', inv(signed), T0)
    engine.onMessage('c', inv(signed), T0)
    engine.flush(T0)
    assert.equal(onlyGetdata(host.take()).peer, 'a')
    engine.onMessage('a', { type: 'notfound', items: [{ kind: INV_TX, hash: signed.id }] }, T0 + 5)
    engine.flush(T0 + 5)
    assert.equal(onlyGetdata(host.take()).peer, 'b', 'no waiting for the timeout')
    assert.equal(engine.counters('a')?.notFoundReceived, 1)
    assert.equal(engine.counters('a')?.unsolicited, 0)
    assert.equal(engine.counters('a')?.requestTimeouts, 0)
  })

  it('when every announcer failed the want is dropped', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }, { id: 'c' }], { requestTimeoutMs: 100 })
    const signed = tx(0)
    engine.onMessage('a', inv(signed), T0)
    engine.onMessage('b', inv(signed), T0)
    engine.flush(T0)
    assert.equal(onlyGetdata(host.take()).peer, 'a')
    engine.onMessage('a', { type: 'notfound', items: [{ kind: INV_TX, hash: signed.id }] }, T0 + 1)
    engine.flush(T0 + 1)
    assert.equal(onlyGetdata(host.take()).peer, 'b')
    assert.equal(engine.stats().wanted, 1)
    engine.tick(T0 + 101)
    assert.deepEqual(host.take(), [], 'no announcer left to ask')
    assert.equal(engine.stats().wanted, 0)
    assert.equal(engine.stats().inFlight, 0)
    engine.tick(T0 + 10_000)
    assert.deepEqual(host.take(), [])
    // c never announced it, so it is never asked; a fresh announcement starts a fresh want.
    engine.onMessage('c', inv(signed), T0 + 10_001)
    engine.flush(T0 + 10_001)
    assert.equal(onlyGetdata(host.take()).peer, 'c')
  })

  it('in-flight requests per peer are bounded by maxInFlightPerPeer; waiting wants go out on tick as slots free', () => {
    const { host, engine } = harness([{ id: 'a' }], { maxInFlightPerPeer: 2 })
    const txs = [0, 1, 2, 3, 4].map(tx)
    engine.onMessage('a', inv(...txs), T0)
    engine.flush(T0)
    assert.deepEqual(onlyGetdata(host.take()).hexes, [txs[0], txs[1]].map((signed) => (signed as SignedTx).idHex))
    assert.deepEqual({ wanted: engine.stats().wanted, inFlight: engine.stats().inFlight }, { wanted: 5, inFlight: 2 })
    engine.tick(T0 + 1)
    assert.deepEqual(host.take(), [], 'no slot free yet')

    engine.onMessage('a', { type: 'txs', solicited: true, txs: [txs[0] as SignedTx] }, T0 + 2)
    assert.deepEqual(host.take(), [], 'a delivery does not request by itself')
    engine.tick(T0 + 3)
    assert.deepEqual(onlyGetdata(host.take()).hexes, [(txs[2] as SignedTx).idHex])
    assert.equal(engine.stats().inFlight, 2)

    engine.onMessage('a', { type: 'txs', solicited: true, txs: [txs[1] as SignedTx, txs[2] as SignedTx] }, T0 + 4)
    engine.tick(T0 + 5)
    assert.deepEqual(onlyGetdata(host.take()).hexes, [txs[3], txs[4]].map((signed) => (signed as SignedTx).idHex))
    engine.onMessage('a', { type: 'txs', solicited: true, txs: [txs[3] as SignedTx, txs[4] as SignedTx] }, T0 + 6)
    assert.deepEqual({ wanted: engine.stats().wanted, inFlight: engine.stats().inFlight }, { wanted: 0, inFlight: 0 })
    assert.equal(host.deliveredTxs.flatMap((entry) => entry.txs).length, 5)
    assert.equal(engine.counters('a')?.unsolicited, 0)
  })

  it('a want whose announcer is busy is asked of another announcer with a free slot', () => {
    const { host, engine } = harness([{ id: 'busy', outbound: true }, { id: 'free' }], { maxInFlightPerPeer: 1 })
    engine.onMessage('busy', inv(tx(0), tx(1)), T0)
    engine.onMessage('free', inv(tx(1)), T0)
    engine.flush(T0)
    const sent = host.take()
    assert.deepEqual(getdataTo(sent, 'busy').flat().map((item) => toHexKey(item.hash)), [tx(0).idHex])
    assert.deepEqual(getdataTo(sent, 'free').flat().map((item) => toHexKey(item.hash)), [tx(1).idHex])
    assert.equal(engine.counters('busy')?.requestsSent, 1, 'busy was not asked beyond its bound')
  })

  it('removePeer moves its in-flight requests to the next announcer', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }])
    engine.onMessage('a', inv(tx(0), tx(1)), T0)
    engine.onMessage('b', inv(tx(1), tx(0)), T0)
    engine.flush(T0)
    assert.equal(onlyGetdata(host.take()).peer, 'a')
    engine.removePeer('a', T0 + 10)
    assert.equal(engine.hasPeer('a'), false)
    engine.flush(T0 + 10)
    const moved = onlyGetdata(host.take())
    assert.equal(moved.peer, 'b')
    assert.deepEqual(moved.hexes.sort(), [tx(0).idHex, tx(1).idHex].sort())
    assert.equal(engine.stats().inFlight, 2)
    // Nothing is ever sent to the removed peer again.
    engine.tick(T0 + 60_000)
    assert.ok(host.take().every((entry) => entry.peer !== 'a'))
  })

  it('requestFrom asks the given peer for a block (in compact form); with a request already out, that peer is asked next', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain, [])
    const hash = headerHash(block.header)
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }, { id: 'c' }], { requestTimeoutMs: 500 })
    engine.onMessage('b', { type: 'inv', items: [{ kind: INV_BLOCK, hash }] }, T0)
    engine.flush(T0)
    assert.equal(onlyGetdata(host.take()).peer, 'b')
    // Asking a specific peer puts it first, but the request already out to b is not doubled.
    engine.requestFrom('c', hash, T0 + 1)
    engine.flush(T0 + 1)
    assert.deepEqual(host.take(), [])
    engine.tick(T0 + 500)
    assert.deepEqual(onlyGetdata(host.take()), { peer: 'c', hexes: [toHexKey(hash)], kinds: [INV_COMPACT_BLOCK] })

    // A fresh block: requestFrom sends a getdata at once to that peer.
    const { host: host2, engine: engine2 } = harness([{ id: 'a' }, { id: 'b' }])
    engine2.requestFrom('b', hash, T0)
    engine2.flush(T0)
    assert.deepEqual(onlyGetdata(host2.take()), { peer: 'b', hexes: [toHexKey(hash)], kinds: [INV_COMPACT_BLOCK] })
    // Known blocks and unknown peers are not asked for.
    host2.blocks.set(toHexKey(hash), block)
    engine2.requestFrom('a', hash, T0 + 1)
    engine2.requestFrom('nobody', new Uint8Array(32).fill(9), T0 + 1)
    engine2.flush(T0 + 1)
    assert.deepEqual(host2.take(), [])
    // The peer answers with the compact block: it is solicited and the block is delivered.
    engine2.onMessage('b', { type: 'cmpctblock', solicited: true, header: block.header, txids: [] }, T0 + 2)
    assert.equal(host2.deliveredBlocks.length, 0, 'already stored blocks are not delivered again')
    assert.equal(engine2.counters('b')?.unsolicited, 0)
    assert.equal(engine2.counters('b')?.duplicates, 1)
  })
})

describe('GossipEngine: answering and counting deliveries', () => {
  it('getdata for a known tx answers with txs(solicited); an unknown one with notfound', () => {
    const { host, engine } = harness([{ id: 'a' }])
    const known = tx(0)
    const unknown = tx(1)
    host.addTx(known)
    engine.onMessage(
      'a',
      {
        type: 'getdata',
        items: [
          { kind: INV_TX, hash: known.id },
          { kind: INV_TX, hash: unknown.id },
        ],
      },
      T0,
    )
    assert.deepEqual(host.take(), [
      { peer: 'a', message: { type: 'txs', solicited: true, txs: [known] } },
      { peer: 'a', message: { type: 'notfound', items: [{ kind: INV_TX, hash: unknown.id }] } },
    ])
    assert.equal(engine.counters('a')?.requestsReceived, 2)
    // The asker now knows the tx: it is not announced to it later.
    engine.relayTx(known, undefined, T0 + 1)
    engine.flush(T0 + 1)
    assert.deepEqual(host.take(), [])
  })

  it('getdata for blocks answers in the form asked for', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain, [tx(0)])
    const hash = headerHash(block.header)
    const { host, engine } = harness([{ id: 'a' }])
    host.blocks.set(toHexKey(hash), block)
    engine.onMessage('a', { type: 'getdata', items: [{ kind: INV_COMPACT_BLOCK, hash }] }, T0)
    engine.onMessage('a', { type: 'getdata', items: [{ kind: INV_BLOCK, hash }] }, T0)
    engine.onMessage('a', { type: 'getdata', items: [{ kind: INV_BLOCK, hash: new Uint8Array(32) }] }, T0)
    assert.deepEqual(host.take(), [
      { peer: 'a', message: { type: 'cmpctblock', solicited: true, header: block.header, txids: [tx(0).id] } },
      { peer: 'a', message: { type: 'block', solicited: true, block } },
      { peer: 'a', message: { type: 'notfound', items: [{ kind: INV_BLOCK, hash: new Uint8Array(32) }] } },
    ])
  })

  it('duplicate deliveries and unsolicited responses are counted per peer', () => {
    const { host, engine } = harness([{ id: 'dup' }, { id: 'stray' }, { id: 'honest' }])
    const have = tx(0)
    host.addTx(have)
    // A push of something we have: a duplicate, not unsolicited (pushes are allowed).
    engine.onMessage('dup', { type: 'txs', solicited: false, txs: [have] }, T0)
    engine.onMessage('dup', { type: 'txs', solicited: false, txs: [have] }, T0)
    // "Solicited" answers nobody asked for, a stray notfound and a stray blocktxn.
    engine.onMessage('stray', { type: 'txs', solicited: true, txs: [tx(1)] }, T0)
    engine.onMessage('stray', { type: 'notfound', items: [{ kind: INV_TX, hash: tx(2).id }] }, T0)
    engine.onMessage('stray', { type: 'blocktxn', blockHash: new Uint8Array(32).fill(1), txs: [] }, T0)
    // An answer to a real request: neither.
    engine.onMessage('honest', inv(tx(3)), T0)
    engine.flush(T0)
    engine.onMessage('honest', { type: 'txs', solicited: true, txs: [tx(3)] }, T0 + 1)

    assert.deepEqual(pick(engine.counters('dup')), { duplicates: 2, unsolicited: 0, txsReceived: 2 })
    assert.deepEqual(pick(engine.counters('stray')), { duplicates: 0, unsolicited: 3, txsReceived: 1 })
    assert.deepEqual(pick(engine.counters('honest')), { duplicates: 0, unsolicited: 0, txsReceived: 1 })
    const stats = engine.stats()
    assert.equal(stats.duplicates, 2)
    assert.equal(stats.unsolicited, 3)
    assert.equal(stats.txsReceived, 4)
    // The duplicates were not handed to the node again; the fresh ones were.
    assert.deepEqual(
      host.deliveredTxs.map((entry) => [entry.peer, entry.txs.map((signed) => signed.idHex)]),
      [
        ['stray', [tx(1).idHex]],
        ['honest', [tx(3).idHex]],
      ],
    )
  })

  it('an answer to our request that lost the race to another copy is a duplicate, not unsolicited', () => {
    const { host, engine } = harness([{ id: 'slow' }, { id: 'fast' }], { requestTimeoutMs: 1_000 })
    const signed = tx(0)
    engine.onMessage('slow', inv(signed), T0)
    engine.flush(T0)
    assert.equal(onlyGetdata(host.take()).peer, 'slow')
    // Another peer pushes it meanwhile; the node accepts and relays it.
    engine.onMessage('fast', { type: 'txs', solicited: false, txs: [signed] }, T0 + 5)
    host.addTx(signed)
    engine.relayTx(signed, 'fast', T0 + 5)
    // Then the peer we asked answers, honestly and in time.
    engine.onMessage('slow', { type: 'txs', solicited: true, txs: [signed] }, T0 + 20)
    assert.deepEqual(pick(engine.counters('slow')), { duplicates: 1, unsolicited: 0, txsReceived: 1 })
    engine.tick(T0 + 5_000)
    assert.equal(engine.counters('slow')?.requestTimeouts, 0)
    assert.equal(engine.stats().inFlight, 0)
  })

  it('messages from a peer that was never added are ignored', () => {
    const { host, engine } = harness([{ id: 'a' }])
    engine.onMessage('ghost', inv(tx(0)), T0)
    engine.onMessage('ghost', { type: 'getdata', items: [{ kind: INV_TX, hash: tx(0).id }] }, T0)
    engine.flush(T0)
    assert.deepEqual(host.take(), [])
    assert.equal(engine.stats().wanted, 0)
    assert.equal(engine.counters('ghost'), undefined)
  })
})

function pick(counters: ReturnType<GossipEngine['counters']>) {
  assert.ok(counters !== undefined)
  return { duplicates: counters.duplicates, unsolicited: counters.unsolicited, txsReceived: counters.txsReceived }
}

describe('GossipEngine: compact blocks', () => {
  let block: Block
  let blockHash: Uint8Array
  let blockTxs: SignedTx[]

  before(async () => {
    const chain = await memoryChain()
    blockTxs = [tx(0), tx(1), tx(2), tx(3)]
    block = buildNext(chain, blockTxs).block
    assert.equal(block.txs.length, 4, 'test block carries every tx')
    blockHash = headerHash(block.header)
  })

  const compact = (solicited = false): GossipMessage => ({ type: 'cmpctblock', solicited, header: block.header, txids: block.txs.map((signed) => signed.id) })

  function assertDeliveredWhole(host: FakeHost, peer: string) {
    assert.equal(host.deliveredBlocks.length, 1)
    const delivered = host.deliveredBlocks[0] as { peer: string; block: Block }
    assert.equal(delivered.peer, peer)
    assert.deepEqual(delivered.block.header, block.header)
    assert.deepEqual(
      delivered.block.txs.map((signed) => signed.idHex),
      block.txs.map((signed) => signed.idHex),
    )
  }

  it('a cmpctblock whose txs are all in the mempool is delivered as a full block at once', () => {
    const { host, engine } = harness([{ id: 'a' }])
    for (const signed of blockTxs) host.addTx(signed)
    engine.onMessage('a', compact(), T0)
    engine.flush(T0)
    assert.deepEqual(host.take(), [], 'nothing to ask for')
    assertDeliveredWhole(host, 'a')
    assert.equal(engine.counters('a')?.blocksReceived, 1)
    assert.ok(engine.peerKnows('a', toHexKey(blockHash)))
  })

  it('missing txs are fetched with getblocktxn for exactly the missing indexes; the blocktxn completes the block', () => {
    const { host, engine } = harness([{ id: 'a' }, { id: 'b' }])
    host.addTx(blockTxs[0] as SignedTx)
    host.addTx(blockTxs[2] as SignedTx)
    engine.onMessage('a', compact(), T0)
    assert.deepEqual(host.take(), [{ peer: 'a', message: { type: 'getblocktxn', blockHash, indexes: [1, 3] } }])
    assert.equal(host.deliveredBlocks.length, 0, 'not delivered before the missing txs arrive')
    // The answer from another peer is not accepted for a's compact block.
    engine.onMessage('b', { type: 'blocktxn', blockHash, txs: [blockTxs[1] as SignedTx, blockTxs[3] as SignedTx] }, T0 + 1)
    assert.equal(host.deliveredBlocks.length, 0)
    assert.equal(engine.counters('b')?.unsolicited, 1)
    engine.onMessage('a', { type: 'blocktxn', blockHash, txs: [blockTxs[1] as SignedTx, blockTxs[3] as SignedTx] }, T0 + 2)
    assertDeliveredWhole(host, 'a')
    assert.equal(engine.counters('a')?.unsolicited, 0)
    assert.equal(engine.counters('a')?.invalid, 0)
    // A second blocktxn for the same block is stray.
    engine.onMessage('a', { type: 'blocktxn', blockHash, txs: [blockTxs[1] as SignedTx, blockTxs[3] as SignedTx] }, T0 + 3)
    assert.equal(engine.counters('a')?.unsolicited, 1)
    assert.equal(host.deliveredBlocks.length, 1)
  })

  for (const [name, wrong] of [
    ['wrong txs', () => [tx(7), tx(8)]],
    ['right txs in the wrong order', () => [blockTxs[3] as SignedTx, blockTxs[1] as SignedTx]],
    ['too few txs', () => [blockTxs[1] as SignedTx]],
  ] as const) {
    it(`a blocktxn with ${name} falls back to getdata for the full block`, () => {
      const { host, engine } = harness([{ id: 'a' }])
      host.addTx(blockTxs[0] as SignedTx)
      host.addTx(blockTxs[2] as SignedTx)
      engine.onMessage('a', compact(), T0)
      host.take()
      engine.onMessage('a', { type: 'blocktxn', blockHash, txs: wrong() }, T0 + 1)
      assert.equal(host.deliveredBlocks.length, 0, 'an inconsistent block is not delivered')
      assert.equal(engine.counters('a')?.invalid, 1)
      engine.flush(T0 + 1)
      assert.deepEqual(onlyGetdata(host.take()), { peer: 'a', hexes: [toHexKey(blockHash)], kinds: [INV_BLOCK] })
      // The full block then arrives as the answer: delivered, and counted as the answer it is.
      engine.onMessage('a', { type: 'block', solicited: true, block }, T0 + 2)
      assertDeliveredWhole(host, 'a')
      assert.equal(engine.counters('a')?.unsolicited, 0)
      assert.equal(engine.stats().inFlight, 0)
    })
  }

  it('the full-block fallback is a tracked request: it times out like any other', () => {
    const { host, engine } = harness([{ id: 'a' }], { requestTimeoutMs: 200 })
    engine.onMessage('a', compact(), T0)
    engine.onMessage('a', { type: 'blocktxn', blockHash, txs: [tx(9)] }, T0 + 1)
    engine.flush(T0 + 1)
    assert.equal(onlyGetdata(host.take()).peer, 'a')
    assert.equal(engine.stats().inFlight, 1)
    engine.tick(T0 + 200)
    assert.equal(engine.counters('a')?.requestTimeouts, 0)
    engine.tick(T0 + 201)
    assert.equal(engine.counters('a')?.requestTimeouts, 1)
    assert.equal(engine.stats().inFlight, 0)
  })

  it('a notfound answering our getblocktxn drops the pending compact block without counting it unsolicited', () => {
    const { host, engine } = harness([{ id: 'a' }])
    engine.onMessage('a', compact(), T0)
    assert.equal(host.take()[0]?.message.type, 'getblocktxn')
    engine.onMessage('a', { type: 'notfound', items: [{ kind: INV_BLOCK, hash: blockHash }] }, T0 + 1)
    assert.equal(engine.counters('a')?.unsolicited, 0)
    assert.equal(engine.counters('a')?.notFoundReceived, 1)
    // The pending block is gone: a late blocktxn is stray.
    engine.onMessage('a', { type: 'blocktxn', blockHash, txs: block.txs }, T0 + 2)
    assert.equal(host.deliveredBlocks.length, 0)
    assert.equal(engine.counters('a')?.unsolicited, 1)
  })

  it('a cmpctblock whose txid count disagrees with its header is invalid and not delivered', () => {
    const { host, engine } = harness([{ id: 'a' }])
    engine.onMessage('a', { type: 'cmpctblock', solicited: false, header: block.header, txids: [tx(0).id] }, T0)
    engine.flush(T0)
    assert.deepEqual(host.take(), [])
    assert.equal(host.deliveredBlocks.length, 0)
    assert.equal(engine.counters('a')?.invalid, 1)
  })

  it('getblocktxn is answered from the block store, notfound when unknown or out of range', () => {
    const { host, engine } = harness([{ id: 'a' }])
    host.blocks.set(toHexKey(blockHash), block)
    engine.onMessage('a', { type: 'getblocktxn', blockHash, indexes: [3, 0] }, T0)
    engine.onMessage('a', { type: 'getblocktxn', blockHash, indexes: [4] }, T0)
    engine.onMessage('a', { type: 'getblocktxn', blockHash: new Uint8Array(32), indexes: [0] }, T0)
    assert.deepEqual(host.take(), [
      { peer: 'a', message: { type: 'blocktxn', blockHash, txs: [blockTxs[3], blockTxs[0]] } },
      { peer: 'a', message: { type: 'notfound', items: [{ kind: INV_BLOCK, hash: blockHash }] } },
      { peer: 'a', message: { type: 'notfound', items: [{ kind: INV_BLOCK, hash: new Uint8Array(32) }] } },
    ])
  })

  it('a new block goes out at once even when answers have spent the peer\'s message budget; pushed txs wait', () => {
    const { host, engine } = harness(ids(1), { outboundMessages: { tokens: 10, periodMs: 1_000, burst: 10 } })
    for (let i = 0; i < 20; i++) host.addTx(tx(100 + i))
    // Twenty single-item getdata answered: twice the budget, spent in debt.
    for (let i = 0; i < 20; i++) engine.onMessage('peer0', { type: 'getdata', items: [{ kind: INV_TX, hash: tx(100 + i).id }] }, T0)
    assert.equal(host.take().length, 20, 'answers are never held back')
    engine.relayTx(tx(200), undefined, T0)
    engine.relayBlock(block, blockHash, undefined, T0)
    engine.flush(T0)
    assert.deepEqual(host.take().map((entry) => entry.message.type), ['cmpctblock'], 'the block leaves; the push waits')
    // Two seconds later the debt is paid and the push goes.
    engine.flush(T0 + 2_000)
    assert.deepEqual(host.take().map((entry) => entry.message.type), ['txs'])
  })

  it('a new block goes out as a compact block to √peers and as inv to the rest, never back to its sender', () => {
    const { host, engine } = harness(ids(10))
    engine.relayBlock(block, blockHash, 'peer0', T0)
    engine.flush(T0)
    const sent = host.take()
    assert.ok(sent.every((entry) => entry.peer !== 'peer0'))
    const compacts = sent.filter((entry) => entry.message.type === 'cmpctblock')
    const invs = sent.filter((entry) => entry.message.type === 'inv')
    assert.equal(compacts.length, 4)
    assert.equal(invs.length, 5)
    for (const entry of compacts) assert.deepEqual(entry.message, compact(false))
    for (const entry of invs) assert.deepEqual(entry.message, { type: 'inv', items: [{ kind: INV_BLOCK, hash: blockHash }] })
    for (const entry of sent) assert.ok(hashesIn(entry.message).includes(toHexKey(blockHash)))
  })
})

// ---------------------------------------------------------------- offences and per-peer caps (fake clock)

describe('gossip offences and per-peer caps', () => {
  const randomItems = (count: number, seed: number): InvItem[] =>
    Array.from({ length: count }, (_, i) => {
      const hash = new Uint8Array(32)
      new DataView(hash.buffer).setUint32(0, seed)
      new DataView(hash.buffer).setUint32(4, i)
      return { kind: INV_TX, hash }
    })

  it('ANNOUNCEMENTS_OVERFLOW: a peer past maxTrackedAnnouncementsPerPeer is reported once per message and its extra items are ignored', () => {
    const { host, engine } = harness([{ id: 'flooder' }, { id: 'honest' }], { maxTrackedAnnouncementsPerPeer: 10, maxInFlightPerPeer: 4 })
    engine.onMessage('flooder', { type: 'inv', items: randomItems(25, 1) }, T0)
    assert.deepEqual(host.offences, [{ peer: 'flooder', code: 'ANNOUNCEMENTS_OVERFLOW' }])
    assert.equal(engine.stats().tracked, 10)
    assert.equal(engine.counters('flooder')?.announcementsDropped, 15)
    // Another peer's announcements are not held back by the flooder's allowance.
    engine.onMessage('honest', { type: 'inv', items: randomItems(3, 2) }, T0)
    assert.equal(engine.stats().tracked, 13)
  })

  it('GOSSIP_NOT_DELIVERED: a getdata that times out is reported once per tick per peer and releases its tracked slot', () => {
    const { host, engine } = harness([{ id: 'silent' }], { maxInFlightPerPeer: 5, requestTimeoutMs: 100 })
    engine.onMessage('silent', { type: 'inv', items: randomItems(5, 3) }, T0)
    engine.flush(T0)
    engine.tick(T0 + 101)
    assert.deepEqual(host.offences, [{ peer: 'silent', code: 'GOSSIP_NOT_DELIVERED' }])
    assert.equal(engine.stats().tracked, 0, 'every announcer failed: the wants are dropped')
    assert.equal(engine.stats().wanted, 0)
  })

  it('GOSSIP_UNSOLICITED and GOSSIP_DUPLICATE are reported once per message; a copy we asked for is not a duplicate', () => {
    const { host, engine } = harness([{ id: 'a' }])
    const known = tx(1)
    host.addTx(known)
    engine.onMessage('a', { type: 'txs', solicited: true, txs: [known, tx(2)] }, T0)
    assert.deepEqual(host.offences.map((o) => o.code), ['GOSSIP_UNSOLICITED', 'GOSSIP_DUPLICATE'])
  })

  it('retries of waiting wants are bounded per tick (maxRetriesPerTick), visiting all of them in turn', () => {
    const { host, engine } = harness([{ id: 'busy' }], { maxInFlightPerPeer: 1, maxRetriesPerTick: 3, maxTrackedAnnouncementsPerPeer: 100 })
    engine.onMessage('busy', { type: 'inv', items: randomItems(10, 4) }, T0)
    assert.equal(engine.stats().unrequested, 9)
    engine.flush(T0)
    host.take()
    // Nothing frees up: each tick looks at 3 of the 9, never all of them.
    engine.tick(T0 + 1)
    assert.equal(engine.stats().unrequested, 9)
    assert.equal(host.take().filter((s) => s.message.type === 'getdata').length, 0)
  })
})
