/**
 * Sync-protocol attacks on real libp2p against a live 3-validator devnet whose state holds
 * 8,000 accounts (so a leaf range is a big answer): request spam from one identity and from 20,
 * and peers that ask and never read the answer. For each: honest transactions still reach every
 * node, the victim keeps producing its blocks, served work stays within the quotas, and the
 * attackers end graylisted, disconnected or banned.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { SyncRequest } from '../../src/codec/wire.ts'
import { RATE_LIMITS, burstOf, classQuota } from '../../src/peers/rate-limit.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { MAX_UNSTAKED_LEAVES_PER_ANSWER } from '../../src/sync/server.ts'
import { type Devnet, admittedRaw, cutOff, honestTxReachesAll, startDevnet, victimKeepsProducing } from '../helpers/attack.ts'
import { type RawPeer, peerSet, services, sleep, stopAll, waitFor } from '../helpers/net.ts'

/** Every leaf of the state (the victim's head state root), as many as an answer may carry. */
const bigLeaves = (node: RunningNode): Extract<SyncRequest, { type: 'getLeaves' }> => ({ type: 'getLeaves', subtree: node.node.chain.head.header.stateRoot, depth: 0, startAfter: undefined, max: 65_536 })
/**
 * About the whole state (~8,000 leaves) at an honest page's cost (8,192, what a syncing node asks):
 * 4 readers × 2 of these fit the unstaked class's node-wide getLeaves burst (one maximal page,
 * 65,536), so every answer is really built and sent.
 */
const stateLeaves = (node: RunningNode): SyncRequest => ({ ...bigLeaves(node), max: 8_192 })

describe('sync attacks against a live devnet', { timeout: 110_000 }, () => {
  let devnet: Devnet
  let victim: RunningNode
  const raws: RawPeer[] = []
  let nonce = 0

  before(async () => {
    devnet = await startDevnet(3, { fundedCount: 8_000, node: { network: { inboundConnectionThreshold: 10_000, answerDeadlineMs: 1_500 } } })
    victim = devnet.victim
  })
  after(() => stopAll(devnet.nodes, raws))

  const reasons = (peerId: string) => peerSet(victim).scores.reasons(peerId)
  async function stillHealthy(): Promise<void> {
    const height = devnet.nodes[1]?.node.chain.head.header.height ?? 0
    await honestTxReachesAll(devnet.nodes, devnet.nodes[1] as RunningNode, 61, nonce++)
    await victimKeepsProducing(victim, devnet.nodes[1] as RunningNode, height)
  }

  /** Sends `request` as fast as answers come back until `stop()`; counts answers that were served. */
  function spam(raw: RawPeer, victimId: Parameters<RawPeer['syncRequest']>[0], request: SyncRequest) {
    let running = true
    let served = 0
    let refused = 0
    /** Leaves actually received: what the getLeaves quota bounds (the unused part of a page is refunded). */
    let leaves = 0
    const loops = Array.from({ length: 4 }, async () => {
      while (running) {
        try {
          const answer = await raw.syncRequest(victimId, request, 3_000)
          if (answer.type === 'error') refused++
          else {
            served++
            if (answer.type === 'leaves') leaves += answer.leaves.length
          }
        } catch {
          await sleep(20)
        }
      }
    })
    return {
      stats: () => ({ served, refused, leaves }),
      stop: async () => {
        running = false
        await Promise.all(loops)
      },
    }
  }

  // First, while the node-wide getLeaves quota is untouched: these answers are big and really sent
  // (stateLeaves: the unstaked class's node-wide burst holds eight of them).
  it('SYNC_ANSWER_UNREAD: peers that ask and never read lose their answers (nothing stays buffered) and are cut off', async () => {
    const attackers = await Promise.all(Array.from({ length: 4 }, () => admittedRaw(victim)))
    for (const { raw } of attackers) raws.push(raw)
    const before = process.memoryUsage().rss
    for (const { raw, victimId } of attackers) {
      for (let i = 0; i < 2; i++) await raw.requestAndNeverRead(victimId, stateLeaves(victim)).catch(() => undefined)
    }
    await waitFor('every reader that never reads charged', () => attackers.every(({ raw }) => (reasons(raw.peerId).SYNC_ANSWER_UNREAD ?? 0) >= 1), {
      timeoutMs: 10_000,
      detail: () => attackers.map(({ raw }) => reasons(raw.peerId)),
    })
    await stillHealthy()
    const grown = (process.memoryUsage().rss - before) / (1024 * 1024)
    assert.ok(grown < 200, `RSS grew ${grown.toFixed(0)} MiB`)
    // Keep asking and never reading: past a few more deadlines they are cut off.
    const leavesAnswers = async () =>
      (await victim.metrics.messages.get()).values.find((v) => v.labels.direction === 'out' && v.labels.protocol === 'sync' && v.labels.type === 'leaves')?.value ?? 0
    const answersBefore = await leavesAnswers()
    const asking = Date.now()
    // Until each is cut off: a cut-off one's redials are held unanswered (the host tarpit) until they time out.
    for (let round = 0; round < 30 && !attackers.every(({ raw }) => cutOff(victim, raw.peerId)); round++) {
      await Promise.all(
        attackers
          .filter(({ raw }) => !cutOff(victim, raw.peerId))
          .flatMap(({ raw, victimId }) => Array.from({ length: 4 }, () => raw.requestAndNeverRead(victimId, bigLeaves(victim)).catch(() => undefined))),
      )
      await sleep(200)
    }
    // An unread answer keeps its whole charge (no refund): each peer had at most its getLeaves
    // quota's worth of maximal answers built — 480 requests, a handful of answers.
    const perPeer = RATE_LIMITS.getLeaves.perPeer
    const quotaAnswers = (perPeer.tokens / 65_536) * (1 + (Date.now() - asking) / perPeer.periodMs)
    const built = (await leavesAnswers()) - answersBefore
    assert.ok(built <= attackers.length * quotaAnswers, `${built} answers built for 4 peers that never read (quota ${quotaAnswers.toFixed(1)} each)`)
    await waitFor('the readers that never read cut off', () => attackers.every(({ raw }) => cutOff(victim, raw.peerId)), {
      timeoutMs: 15_000,
      detail: () => attackers.map(({ raw }) => reasons(raw.peerId)),
    })
  })

  it('SYNC_ANSWER_UNREAD: an answer left unread keeps its whole charge; one that is read gets back what its page did not use, not what it asked beyond the page', async () => {
    const reader = await admittedRaw(victim)
    const ignorer = await admittedRaw(victim)
    raws.push(reader.raw, ignorer.raw)
    // 65,536 asked from near the end of the key space: a zero-stake asker's page is at most 8,192
    // (MAX_UNSTAKED_LEAVES_PER_ANSWER), and this one holds ~1/256 of the ~8,000 accounts.
    const tail: SyncRequest = { ...bigLeaves(victim), startAfter: new Uint8Array(32).fill(0xff, 0, 1) }
    const limits = services(victim).limits
    // The unstaked class's node-wide burst is one maximal page: wait until the earlier attacks'
    // charges have refilled, so the reader's page is built (not refused as busy).
    await waitFor('the node-wide getLeaves share refilled', () => limits.nodeAvailable('getLeaves', false, Date.now()) >= 65_536, { timeoutMs: 30_000 })
    const answer = await reader.raw.syncRequest(reader.victimId, tail)
    assert.ok(answer.type === 'leaves' && answer.leaves.length < 200, `a short tail page: ${answer.type === 'leaves' ? answer.leaves.length : answer.type}`)
    // Unread: built or refused as busy (the reader's page took the class's burst), charged in full either way.
    await ignorer.raw.requestAndNeverRead(ignorer.victimId, tail)
    const tokens = (peerId: string) => limits.state(peerId, Date.now()).getLeaves
    const full = burstOf(RATE_LIMITS.getLeaves.perPeer)
    await waitFor('the ignorer charged', () => tokens(ignorer.raw.peerId) < full - 50_000, { timeoutMs: 2_000 })
    // Both were charged 65,536 (and refill alike); the reader got back the ~8,100 its page did not
    // use (plus the refill of the moments between the two charges), not the ~65,000 it did not get.
    // The refund lands once the victim sees the reader close its end: waited for.
    const pageUnused = MAX_UNSTAKED_LEAVES_PER_ANSWER - (answer.type === 'leaves' ? answer.leaves.length : 0)
    const difference = () => tokens(reader.raw.peerId) - tokens(ignorer.raw.peerId)
    await waitFor('the reader refunded', () => difference() > pageUnused - 500, { timeoutMs: 2_000, detail: () => ({ difference: difference(), pageUnused }) })
    assert.ok(difference() < 30_000, `reader − ignorer = ${difference()} tokens (the page's unused part: ${pageUnused})`)
  })

  it('RATE_LIMITED: sync-request spam from one identity is refused past its budget and cut off', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    const started = Date.now()
    const attack = spam(raw, victimId, bigLeaves(victim))
    await waitFor('the spammer cut off', () => cutOff(victim, raw.peerId), { timeoutMs: 10_000, detail: () => ({ codes: reasons(raw.peerId), ...attack.stats() }) })
    const cutOffMs = Date.now() - started
    assert.ok(cutOffMs < 5_000, `cut off in ${cutOffMs} ms`)
    await stillHealthy()
    await attack.stop()
    // Served within its quota: the leaves it received never pass the per-peer burst plus the refill
    // (a page is charged its max and the unused part refunded, so the quota bounds leaves served).
    const elapsed = (Date.now() - started) / 10_000
    assert.ok(attack.stats().leaves <= RATE_LIMITS.getLeaves.perPeer.tokens * (1 + elapsed), JSON.stringify(attack.stats()))
    assert.ok((reasons(raw.peerId).RATE_LIMITED ?? 0) > 0)
  })

  it('RATE_LIMITED: a graylisted peer that still asks is reset without an answer, and charged until disconnected', async () => {
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    const mempoolDigest: SyncRequest = { type: 'getMempoolDigest' }
    assert.notEqual((await raw.syncRequest(victimId, mempoolDigest)).type, 'error', 'answered while in good standing')
    // A high and three mid offences (−45): graylisted (≤ −40) with room for decay, not yet disconnected (> −50).
    peerSet(victim).offence(raw.peerId, 'SYNC_UNDECODABLE_REQUEST')
    for (let i = 0; i < 3; i++) peerSet(victim).offence(raw.peerId, 'SYNC_USELESS_ANSWER')
    assert.equal(peerSet(victim).scores.state(raw.peerId, Date.now()), 'graylisted')
    await assert.rejects(raw.syncRequest(victimId, mempoolDigest), 'a reset, not a "rate limited" answer')
    assert.ok((reasons(raw.peerId).RATE_LIMITED ?? 0) >= 1, JSON.stringify(reasons(raw.peerId)))
    for (let i = 0; i < 10 && peerSet(victim).scores.state(raw.peerId, Date.now()) === 'graylisted'; i++) await raw.syncRequest(victimId, mempoolDigest).catch(() => undefined)
    await waitFor('the graylisted asker disconnected', () => peerSet(victim).scores.state(raw.peerId, Date.now()) !== 'graylisted', { timeoutMs: 5_000, detail: () => ({ reasons: reasons(raw.peerId), score: peerSet(victim).score(raw.peerId) }) })
  })

  it('SYNC_BUSY_IGNORED: told busy (the unstaked share held by an unread page), a peer that asks again at once is cut off', async () => {
    // One unread maximal page holds the unstaked class's node-wide burst (no refund while unread).
    const holder = await admittedRaw(victim)
    raws.push(holder.raw)
    const limits = services(victim).limits
    await waitFor('the node-wide getLeaves share refilled', () => limits.nodeAvailable('getLeaves', false, Date.now()) >= 65_536, { timeoutMs: 30_000 })
    await holder.raw.requestAndNeverRead(holder.victimId, bigLeaves(victim))
    await waitFor('the share held', () => limits.nodeAvailable('getLeaves', false, Date.now()) < 16_384, { timeoutMs: 2_000 })
    // Pages of 16,384: told "busy" (the share refills at ~35,000 a second), and its own quota's
    // burst (131,072; node-wide refusals are charged to the asker) holds eight, the busy grace; past
    // them it floods its own quota and loses the grace.
    const { raw, victimId } = await admittedRaw(victim)
    raws.push(raw)
    const attack = spam(raw, victimId, { ...bigLeaves(victim), max: 16_384 })
    try {
      await waitFor('the spammer cut off', () => cutOff(victim, raw.peerId), { timeoutMs: 10_000, detail: () => ({ codes: reasons(raw.peerId), ...attack.stats() }) })
    } finally {
      await attack.stop()
    }
    assert.ok((reasons(raw.peerId).SYNC_BUSY_IGNORED ?? 0) > 0, JSON.stringify({ codes: reasons(raw.peerId), ...attack.stats() }))
    await stillHealthy()
  })

  it('SYNC_BUSY_IGNORED, RATE_LIMIT_FLOOD: spam from 20 identities is held to the node-wide cap, and each that asks again at once when refused is cut off', async () => {
    const attackers = await Promise.all(Array.from({ length: 20 }, () => admittedRaw(victim)))
    for (const { raw } of attackers) raws.push(raw)
    const started = Date.now()
    const attacks = attackers.map(({ raw, victimId }) => spam(raw, victimId, bigLeaves(victim)))
    try {
      await waitFor('every spammer cut off', () => attackers.every(({ raw }) => cutOff(victim, raw.peerId)), {
        timeoutMs: 15_000,
        detail: () => attackers.map(({ raw }) => reasons(raw.peerId)),
      })
    } finally {
      await Promise.all(attacks.map((attack) => attack.stop()))
    }
    const cutOffMs = Date.now() - started
    await stillHealthy()
    const leaves = attacks.reduce((sum, attack) => sum + attack.stats().leaves, 0)
    // All 20 (unstaked) together got at most their class's share of the node-wide quota, in leaves served.
    const nodeBudget = classQuota(RATE_LIMITS.getLeaves.node ?? { tokens: 0, periodMs: 1 }, false).tokens
    const windows = 1 + (Date.now() - started) / 10_000
    assert.ok(leaves <= nodeBudget * windows, `served ${leaves} leaves in ${cutOffMs} ms (class budget ${nodeBudget} per 10 s)`)
    const hits = (await victim.metrics.limitHits.get()).values
    assert.ok(hits.some((value) => value.labels.scope === 'node' && value.value > 0), 'the node-wide cap refused some')
    // Refused — "busy" by the node-wide share (charged to the asker's own quota too) or over their
    // own budget — they asked again at once instead of backing off: that is what cut each one off.
    // Pages of 65,536 usually spend the own quota before the busy grace of eight runs out.
    const persisted = attackers.filter(({ raw }) => {
      const codes = reasons(raw.peerId)
      return (codes.SYNC_BUSY_IGNORED ?? 0) > 0 || (codes.RATE_LIMIT_FLOOD ?? 0) > 0
    }).length
    assert.equal(persisted, 20, JSON.stringify(attackers.map(({ raw }) => reasons(raw.peerId))))
  })


})
