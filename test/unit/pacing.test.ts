// Client-side pacing (src/sync/pacing.ts): a syncing node keeps a peer's published per-peer
// quotas, waiting on the injected timers instead of being refused and charged.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { StatusMessage, SyncRequest, SyncResponse } from '../../src/codec/wire.ts'
import { type LimitName, type LimitRule, RATE_LIMITS, RateLimiterGCRA } from '../../src/peers/rate-limit.ts'
import { VirtualTime } from '../../src/sim/virtual-time.ts'
import { SyncManager, type SyncNode } from '../../src/sync/manager.ts'
import { PacedTransport, STATUS_BACKOFF_MAX_MS } from '../../src/sync/pacing.ts'
import { TOLERANCES } from '../../src/peers/tolerance.ts'
import { silentLogger } from '../../src/util/logger.ts'
import { memoryChain } from '../helpers/chain.ts'

const LEAF = { keyHash: new Uint8Array(32), balance: 1n, nonce: 0 }

function harness(rules: Record<LimitName, LimitRule>) {
  const time = new VirtualTime(0)
  const sent: Array<{ at: number; peerId: string; request: SyncRequest }> = []
  const inner = {
    request: async (peerId: string, request: SyncRequest): Promise<SyncResponse> => {
      sent.push({ at: time.now, peerId, request })
      // Full pages: every leaf asked for comes back (no refund).
      return { type: 'leaves', leaves: Array.from({ length: request.type === 'getLeaves' ? request.max : 0 }, () => LEAF), more: false }
    },
    syncBytesReceived: () => 0,
  }
  const paced = new PacedTransport(inner, { clock: time.clock, timers: time.timers, random: () => 0.5 }, rules, 1)
  return { time, sent, paced }
}

const leaves = (max: number): SyncRequest => ({ type: 'getLeaves', subtree: new Uint8Array(32), depth: 0, startAfter: undefined, max })

describe('client-side pacing', () => {
  it('spreads getLeaves over time so the peer\'s per-peer quota is never passed', async () => {
    // 20,000 leaves per 10 s: a burst of two 8,192-leaf pages, then one page every ~4.1 s.
    const rules = { ...RATE_LIMITS, getLeaves: { ...RATE_LIMITS.getLeaves, perPeer: { tokens: 20_000, periodMs: 10_000 } } }
    const { time, sent, paced } = harness(rules)
    const answers = Array.from({ length: 5 }, () => paced.request('a', leaves(8_192), 5_000))
    await time.runFor(30_000)
    await Promise.all(answers)
    const times = sent.map((entry) => entry.at)
    assert.equal(times.length, 5)
    assert.deepEqual(times.slice(0, 2), [0, 0], 'the burst leaves at once')
    // The peer's own limiter (the same GCRA and quota) allows every request when it arrives.
    const server = new RateLimiterGCRA(rules.getLeaves.perPeer)
    for (const entry of sent) assert.ok(server.allows('us', 8_192, entry.at), `refused at ${entry.at} ms`)
    assert.ok((times[2] as number) > 0 && (times[4] as number) > (times[3] as number), `later pages waited: ${times.join(', ')}`)
    // Without pacing the third page would have been refused.
    const unpaced = new RateLimiterGCRA(rules.getLeaves.perPeer)
    assert.deepEqual([0, 0, 0].map(() => unpaced.allows('us', 8_192, 0)), [true, true, false])
  })

  it('paces each peer on its own budget', async () => {
    const rules = { ...RATE_LIMITS, getLeaves: { ...RATE_LIMITS.getLeaves, perPeer: { tokens: 8_192, periodMs: 10_000 } } }
    const { time, sent, paced } = harness(rules)
    const answers = [paced.request('a', leaves(8_192), 5_000), paced.request('b', leaves(8_192), 5_000), paced.request('a', leaves(8_192), 5_000)]
    await time.runFor(20_000)
    await Promise.all(answers)
    const at = (peerId: string) => sent.filter((entry) => entry.peerId === peerId).map((entry) => entry.at)
    assert.deepEqual(at('b'), [0], 'b is not slowed by a')
    assert.equal(at('a')[0], 0)
    assert.ok((at('a')[1] as number) >= 9_000, `a's second page waits for its budget (${at('a')[1]})`)
  })

  it('a request larger than the whole quota waits for a full budget, never forever', async () => {
    const rules = { ...RATE_LIMITS, getLeaves: { ...RATE_LIMITS.getLeaves, perPeer: { tokens: 1_000, periodMs: 10_000 } } }
    const { time, sent, paced } = harness(rules)
    const answers = [paced.request('a', leaves(65_536), 5_000), paced.request('a', leaves(65_536), 5_000)]
    await time.runFor(30_000)
    await Promise.all(answers)
    assert.equal(sent.length, 2)
  })
})

describe('client-side pacing and refunds', () => {
  it('a page that came back short gives its unused leaves back to our own budget, as the peer does', async () => {
    const rules = { ...RATE_LIMITS, getLeaves: { ...RATE_LIMITS.getLeaves, perPeer: { tokens: 10_000, periodMs: 10_000 } } }
    const time = new VirtualTime(0)
    const sent: number[] = []
    const inner = {
      request: async (): Promise<SyncResponse> => {
        sent.push(time.now)
        // Small subtrees: 100 leaves per page of 8,192 asked.
        return { type: 'leaves', more: false, leaves: Array.from({ length: 100 }, () => ({ keyHash: new Uint8Array(32), balance: 1n, nonce: 0 })) }
      },
      syncBytesReceived: () => 0,
    }
    const paced = new PacedTransport(inner, { clock: time.clock, timers: time.timers, random: () => 0.5 }, rules, 1)
    for (let i = 0; i < 5; i++) {
      const answer = paced.request('a', leaves(8_192), 5_000)
      await time.runFor(1)
      await answer
    }
    // Without the refund the second page would wait ~6 s; with it, all five leave within milliseconds.
    assert.ok((sent[4] as number) < 100, `pages sent at ${sent.join(', ')} ms`)
  })
})

/** A node on a fresh memory chain, and the status of a peer level with it (same head, same mempool digest). */
async function levelNode(): Promise<{ node: SyncNode; level: StatusMessage }> {
  const chain = await memoryChain()
  const digest = new Uint8Array(32)
  const node = { chain, store: chain.store, mempoolDigest: () => digest } as unknown as SyncNode
  const level: StatusMessage = {
    genesisHash: chain.genesisHash,
    headHeight: chain.head.header.height,
    headHash: chain.head.hash,
    finalizedHeight: chain.finalized.height,
    finalizedHash: chain.finalized.hash,
    stateRoot: chain.head.header.stateRoot,
    mempoolDigest: digest,
    mempoolSize: 0,
  }
  return { node, level }
}

/** A SyncManager polling `peers` every 500 ms for `ms` of virtual time; no sync request is expected. */
async function runRounds(time: VirtualTime, node: SyncNode, peers: ConstructorParameters<typeof SyncManager>[0]['peers'], ms: number): Promise<void> {
  const transport = {
    request: async (): Promise<SyncResponse> => {
      throw new Error('no sync request expected')
    },
    syncBytesReceived: () => 0,
  }
  const manager = new SyncManager({ node, peers, transport, runtime: { clock: time.clock, timers: time.timers, random: () => 0.5 }, log: silentLogger() }, { statusIntervalMs: 500 })
  manager.start()
  await time.runFor(ms)
  manager.stop()
}

describe('client-side pacing of status polls', () => {
  it('the anti-entropy round never polls a peer\'s status past its published quota, however short statusIntervalMs is', async () => {
    // One staked peer, polled every 500 ms (the integration tests' interval): twice what its
    // status quota (10 per 10 s) allows. Unpaced, the peer refused every other poll once its
    // burst was spent, each refusal cost both sides (RATE_LIMITED there, STATUS_FAILED here), and
    // two devnet validators graylisted each other and split the chain.
    const time = new VirtualTime(0)
    // The peer is level with us, mempools equal: a round is its status poll and nothing else.
    const { node, level: status } = await levelNode()
    // The peer's own limiter, the same GCRA and quota it enforces; its handshake exchange took one token.
    const server = new RateLimiterGCRA(RATE_LIMITS.status.perPeer)
    assert.ok(server.allows('us', 1, time.now))
    const polls: number[] = []
    const refused: number[] = []
    const offences: string[] = []
    const peers = {
      list: () => [{ id: 'validator', stake: 400n, status }],
      refreshStatus: async () => {
        polls.push(time.now)
        if (!server.allows('us', 1, time.now)) {
          refused.push(time.now)
          // What the peer does: closes the stream unanswered (and charges us RATE_LIMITED).
          throw new Error('stream closed before an answer')
        }
        return status
      },
      offence: (_peerId: string, code: string) => void offences.push(code),
      selectionFactor: () => 1,
    }
    await runRounds(time, node, peers, 60_000)

    assert.deepEqual(refused, [], `polls refused at ${refused.join(', ')} ms`)
    assert.deepEqual(offences, [], 'no STATUS_FAILED charged to an honest peer')
    // Still polled about as often as the quota allows (8 of its 10 per 10 s, the rest is margin).
    assert.ok(polls.length >= 50, `${polls.length} polls in 60 s`)
  })

  it('a peer that refuses every status poll (it ignores us) is polled ever more rarely, about once a minute at most', async () => {
    // One side's penalty must not become mutual: a peer that graylisted us refuses our polls, and
    // polled at the round's pace each refusal charged STATUS_FAILED graylisted it back in seconds.
    const time = new VirtualTime(0)
    const chain = await memoryChain()
    const node = { chain, store: chain.store, mempoolDigest: () => new Uint8Array(32) } as unknown as SyncNode
    const polls: number[] = []
    const peers = {
      list: () => [{ id: 'validator', stake: 400n, status: undefined }],
      refreshStatus: async () => {
        polls.push(time.now)
        throw new Error('stream closed before an answer')
      },
      offence: () => undefined,
      selectionFactor: () => 1,
    }
    await runRounds(time, node, peers, 10 * 60_000)
    const gaps = polls.slice(1).map((at, i) => at - (polls[i] as number))
    assert.ok(gaps.every((gap, i) => i === 0 || gap >= (gaps[i - 1] as number) || gap >= STATUS_BACKOFF_MAX_MS), `gaps grow: ${gaps.join(', ')}`)
    assert.ok(gaps.slice(-3).every((gap) => gap >= STATUS_BACKOFF_MAX_MS && gap <= STATUS_BACKOFF_MAX_MS + 1_000), `about once a minute in the end: ${gaps.slice(-3).join(', ')}`)
    // Within STATUS_FAILED's tolerance (3 a minute), so refusals are not charged once it backs off.
    const lastMinute = polls.filter((at) => at > time.now - 60_000).length
    assert.ok(lastMinute <= TOLERANCES.STATUS_FAILED.free, `${lastMinute} polls in the last minute`)
  })
})

describe('catch-up retries a claim no run reached', () => {
  it('a zero-stake peer claiming a higher head that the rounds never poll is still tried each round, and ruled out after its broken promises', async () => {
    // The joiner beside an honest validator that gossip keeps it level with: no poll shows a better
    // head (a zero-stake liar's is polled in few rounds; here its polls answer level), but the
    // liar's last status claims more. Before, nothing tried that claim again once a catch-up run
    // had ended without reaching it (runs start on a better poll or on admission).
    const time = new VirtualTime(0)
    const { node, level } = await levelNode()
    const lie: StatusMessage = { ...level, headHeight: level.headHeight + 20, headHash: new Uint8Array(32).fill(7) }
    const offences: Array<{ peerId: string; code: string }> = []
    const peers = {
      list: () => [
        { id: 'validator', stake: 400n, status: level },
        { id: 'liar', stake: 0n, status: lie },
      ],
      refreshStatus: async () => level,
      offence: (peerId: string, code: string) => void offences.push({ peerId, code }),
      selectionFactor: () => 1,
    }
    const asked: string[] = []
    const transport = {
      request: async (peerId: string): Promise<SyncResponse> => {
        asked.push(peerId)
        throw new Error('could not negotiate the sync protocol')
      },
      syncBytesReceived: () => 0,
    }
    const manager = new SyncManager({ node, peers, transport, runtime: { clock: time.clock, timers: time.timers, random: () => 0.5 }, log: silentLogger() }, { statusIntervalMs: 500 })
    manager.start()
    await time.runFor(10_000)
    manager.stop()
    assert.ok(asked.includes('liar'), `its claim was tried: ${JSON.stringify({ asked, offences, status: manager.status() })}`)
    assert.equal(manager.isRuledOut('liar'), true, `ruled out: ${JSON.stringify(offences)}`)
    assert.ok(offences.filter((entry) => entry.peerId === 'liar' && entry.code === 'SYNC_PROMISE_BROKEN').length >= 3)
    assert.ok(offences.every((entry) => entry.peerId === 'liar'), 'nothing charged to the validator')
  })
})

describe('a claim that is never tried does not switch mempool reconciliation off', () => {
  it('a zero-stake peer claiming a head far ahead with no certificate (never a target) leaves the rounds reconciling mempools with the validator', async () => {
    const time = new VirtualTime(0)
    const { node, level } = await levelNode()
    // The validator is level with us but holds other transactions: a round reconciles with it.
    const validatorStatus: StatusMessage = { ...level, mempoolDigest: new Uint8Array(32).fill(1), mempoolSize: 5 }
    const lie: StatusMessage = { ...level, headHeight: level.headHeight + 1_000, headHash: new Uint8Array(32).fill(7) }
    const peers = {
      list: () => [
        { id: 'validator', stake: 400n, status: validatorStatus },
        { id: 'liar', stake: 0n, status: lie },
      ],
      refreshStatus: async (peerId: string) => (peerId === 'liar' ? lie : validatorStatus),
      offence: () => undefined,
      selectionFactor: () => 1,
    }
    const digestAsks: string[] = []
    const transport = {
      request: async (peerId: string, request: SyncRequest): Promise<SyncResponse> => {
        if (request.type === 'getMempoolDigest') digestAsks.push(peerId)
        return { type: 'error', message: 'nothing to serve' }
      },
      syncBytesReceived: () => 0,
    }
    const manager = new SyncManager({ node, peers, transport, runtime: { clock: time.clock, timers: time.timers, random: () => 0.5 }, log: silentLogger() }, { statusIntervalMs: 500 })
    manager.start()
    await time.runFor(10_000)
    manager.stop()
    assert.equal(manager.isRuledOut('liar'), false, 'never tried, so never charged')
    assert.ok(digestAsks.filter((peerId) => peerId === 'validator').length >= 5, `mempool rounds with the validator: ${digestAsks.length}`)
  })
})
