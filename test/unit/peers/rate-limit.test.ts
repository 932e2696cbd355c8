/** Rate limits (src/peers/rate-limit.ts) on a fake clock: the GCRA, the limit table, the node-wide cap. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { INV_TX, MAX_INV_ITEMS, type SyncRequest, encodeGossip, invItemsInFrame } from '../../../src/codec/wire.ts'
import { ANSWER_DEADLINE_BASE_MS, answerDeadlineMs, burstOf, BUSY_BACKOFF_MS, BUSY_GRACE_REQUESTS, BusyWindows, chargeRefusal, classQuota, InboundLimits, LimitCharges, type LimitName, MAX_LIMIT_CHARGE_KEYS, MAX_LIMITER_KEYS, MAX_REQUESTS_IN_FLIGHT_PER_PEER, MAX_TRACKED_ANNOUNCEMENTS_PER_PEER, MIN_ANSWER_READ_BYTES_PER_S, RATE_LIMIT_CHARGE_INTERVAL_MS, RATE_LIMITS, RateLimiterGCRA, syncRequestCost, UNSTAKED_SERVING_SHARE, unusedLeaves } from '../../../src/peers/rate-limit.ts'

const T0 = 1_700_000_000_000
const hashes = (n: number) => Array.from({ length: n }, () => new Uint8Array(32))

describe('RateLimiterGCRA', () => {
  it('allows a burst of the quota, then one token per interval', () => {
    const limiter = new RateLimiterGCRA({ tokens: 10, periodMs: 1_000 })
    for (let i = 0; i < 10; i++) assert.equal(limiter.allows('p', 1, T0), true)
    assert.equal(limiter.allows('p', 1, T0), false)
    assert.equal(limiter.allows('p', 1, T0 + 99), false)
    assert.equal(limiter.allows('p', 1, T0 + 100), true)
    assert.equal(limiter.allows('q', 10, T0), true, 'keys are independent')
  })

  it('a burst below the quota: at most the burst at once, the rate unchanged', () => {
    const limiter = new RateLimiterGCRA({ tokens: 100, periodMs: 10_000, burst: 25 })
    assert.equal(limiter.available('p', T0), 25)
    assert.equal(limiter.allows('p', 25, T0), true)
    assert.equal(limiter.allows('p', 1, T0), false)
    assert.equal(limiter.delayMs('p', 1, T0), 100, 'one token per 100 ms, as without a burst')
    assert.equal(limiter.allows('p', 1, T0 + 100), true)
    assert.equal(limiter.allows('p', 26, T0 + 1e9), false, 'a cost above the burst is never allowed')
    assert.equal(limiter.delayMs('q', 1_000, T0), 0, 'pacing treats a cost above the burst as the burst')
  })

  it('charges a cost in tokens; a refused cost spends nothing', () => {
    const limiter = new RateLimiterGCRA({ tokens: 100, periodMs: 10_000 })
    assert.equal(limiter.allows('p', 60, T0), true)
    assert.equal(limiter.allows('p', 60, T0), false)
    assert.equal(limiter.available('p', T0), 40)
    assert.equal(limiter.allows('p', 40, T0), true)
    assert.equal(limiter.allows('p', 101, T0 + 1e9), false, 'a cost above the quota is never allowed')
  })

  it('wouldAllow asks without spending', () => {
    const limiter = new RateLimiterGCRA({ tokens: 1, periodMs: 1_000 })
    assert.equal(limiter.wouldAllow('p', 1, T0), true)
    assert.equal(limiter.wouldAllow('p', 1, T0), true)
    assert.equal(limiter.allows('p', 1, T0), true)
    assert.equal(limiter.wouldAllow('p', 1, T0), false)
  })

  it('forget drops a peer (it left); prune drops refilled keys', () => {
    const limiter = new RateLimiterGCRA({ tokens: 1, periodMs: 1_000 })
    limiter.allows('p', 1, T0)
    limiter.allows('q', 1, T0)
    limiter.forget('p')
    assert.equal(limiter.allows('p', 1, T0), true)
    limiter.prune(T0 + 1_000)
    assert.equal(limiter.size, 0)
  })

  it(`keys are capped at MAX_LIMITER_KEYS (${MAX_LIMITER_KEYS})`, () => {
    const limiter = new RateLimiterGCRA({ tokens: 1, periodMs: 1_000 })
    for (let i = 0; i < MAX_LIMITER_KEYS * 2; i++) limiter.allows(`p${i}`, 1, T0 + i)
    assert.ok(limiter.size <= MAX_LIMITER_KEYS && limiter.size > MAX_LIMITER_KEYS - 10)
  })

  it('rejects a quota without tokens', () => {
    assert.throws(() => new RateLimiterGCRA({ tokens: 0, periodMs: 1_000 }), RangeError)
  })
})

describe('sync requests cost what they ask for', () => {
  const cases: [SyncRequest, LimitName, number][] = [
    [{ type: 'getHeaders', locator: hashes(3), max: 512 }, 'getHeaders', 512],
    [{ type: 'getBlocks', hashes: hashes(128) }, 'getBlocks', 128],
    [{ type: 'getNodes', hashes: hashes(1_024) }, 'getNodes', 1_024],
    [{ type: 'getLeaves', subtree: new Uint8Array(32), depth: 0, startAfter: undefined, max: 65_536 }, 'getLeaves', 65_536],
    [{ type: 'getMempoolDigest' }, 'getMempoolDigest', 1],
    [{ type: 'getMempoolIds', buckets: [1, 2, 3] }, 'getMempoolIds', 3],
    [{ type: 'getTxs', ids: hashes(7) }, 'getTxs', 7],
    [{ type: 'getBlocks', hashes: [] }, 'getBlocks', 1],
  ]
  for (const [request, limit, cost] of cases) {
    it(`${request.type} of ${cost} costs ${cost} under ${limit}`, () => {
      assert.deepEqual(syncRequestCost(request), { limit, cost })
    })
  }

  it('every per-peer quota admits one maximal request (protocol maxima)', () => {
    const maxima: Partial<Record<LimitName, number>> = { getHeaders: 512, getBlocks: 128, getNodes: 1_024, getLeaves: 65_536, getMempoolIds: 256, getTxs: 1_024, gossipBytes: 8 * 1024 * 1024 + 64 * 1024, syncBytes: 65_536 }
    for (const [name, max] of Object.entries(maxima) as [LimitName, number][]) {
      assert.ok(RATE_LIMITS[name].perPeer.tokens >= max, name)
      const node = RATE_LIMITS[name].node
      if (node !== undefined) assert.ok(node.tokens >= RATE_LIMITS[name].perPeer.tokens, `${name}: the node-wide cap is above one peer's`)
    }
  })
})

describe('InboundLimits', () => {
  it('RATE_LIMITED: a peer past its getLeaves budget is refused by its own quota', () => {
    // The per-peer quota alone (the node-wide one, with its smaller burst, is the next test's).
    const limits = new InboundLimits({ ...RATE_LIMITS, getLeaves: { perPeer: RATE_LIMITS.getLeaves.perPeer, why: 'per peer only' } })
    const big: SyncRequest = { type: 'getLeaves', subtree: new Uint8Array(32), depth: 0, startAfter: undefined, max: 65_536 }
    const maximalRanges = Math.floor(burstOf(RATE_LIMITS.getLeaves.perPeer) / 65_536)
    for (let i = 0; i < maximalRanges; i++) assert.deepEqual(limits.checkSyncRequest('p', big, T0, true), { allowed: true }, `range ${i + 1} of its budget`)
    assert.deepEqual(limits.checkSyncRequest('p', big, T0, true), { allowed: false, limit: 'getLeaves', scope: 'peer', cost: 65_536 })
    // (q is staked here: p has spent most of the unstaked class's node-wide share.)
    assert.deepEqual(limits.checkSyncRequest('q', big, T0, true), { allowed: true }, 'another peer has its own budget')
  })

  it('the node-wide cap on sync serving holds for all peers together; a peer refused by it still spent its own budget', () => {
    const limits = new InboundLimits()
    const request: SyncRequest = { type: 'getBlocks', hashes: hashes(128) }
    const perPeer = RATE_LIMITS.getBlocks.perPeer.tokens / 128
    // Unstaked identities: together they get only the unstaked class's share of the node quota.
    const nodeWide = Math.floor(burstOf(classQuota(RATE_LIMITS.getBlocks.node ?? { tokens: 0, periodMs: 1 }, false)) / 128)
    let allowed = 0
    let nodeRefusals = 0
    // 20 unstaked identities each asking their full budget: together they get only their class's share.
    for (let peer = 0; peer < 20; peer++) {
      for (let i = 0; i < perPeer; i++) {
        const decision = limits.checkSyncRequest(`sybil${peer}`, request, T0)
        if (decision.allowed) allowed++
        else if (decision.scope === 'node') nodeRefusals++
      }
    }
    assert.equal(allowed, nodeWide)
    assert.ok(nodeRefusals > 0)
    // A peer refused by the node cap still paid for asking: its next request is its own offence.
    assert.equal(limits.state('sybil19', T0).getBlocks, 0)
    const again = limits.checkSyncRequest('sybil19', request, T0)
    assert.equal(again.allowed === false && again.scope, 'peer')
    // Ten seconds later the node serves again.
    assert.equal(limits.checkSyncRequest('honest', request, T0 + 10_000).allowed, true)
  })

  it('a gossip frame is charged one message and its bytes, before decoding', () => {
    const limits = new InboundLimits()
    const { tokens } = RATE_LIMITS.gossipMessages.perPeer
    for (let i = 0; i < tokens; i++) assert.equal(limits.checkGossipFrame('p', 100, T0).allowed, true)
    assert.deepEqual(limits.checkGossipFrame('p', 100, T0), { allowed: false, limit: 'gossipMessages', scope: 'peer', cost: 1 })
    assert.equal(limits.checkGossipFrame('q', 8 * 1024 * 1024, T0).allowed, true)
    assert.equal(limits.checkGossipFrame('q', 8 * 1024 * 1024, T0).allowed, true)
    assert.deepEqual(limits.checkGossipFrame('q', 8 * 1024 * 1024, T0), { allowed: false, limit: 'gossipBytes', scope: 'peer', cost: 8 * 1024 * 1024 })
  })

  it('inv items are charged by count; a maximal inv at once, then the rate', () => {
    const limits = new InboundLimits()
    assert.equal(burstOf(RATE_LIMITS.gossipInvItems.perPeer), MAX_INV_ITEMS, 'the burst is one maximal inv: any inv the protocol allows can pass')
    assert.equal(limits.check('p', 'gossipInvItems', MAX_INV_ITEMS, T0).allowed, true)
    assert.equal(limits.check('p', 'gossipInvItems', 1, T0).allowed, false, 'the burst is one maximal inv')
    assert.equal(limits.check('p', 'gossipInvItems', 1_024, T0 + 124).allowed, false)
    assert.equal(limits.check('p', 'gossipInvItems', 1_024, T0 + 125).allowed, true, '8,192 per second')
  })

  it('forget prunes a peer that left', () => {
    const limits = new InboundLimits()
    limits.check('p', 'status', RATE_LIMITS.status.perPeer.tokens, T0)
    assert.equal(limits.check('p', 'status', 1, T0).allowed, false)
    limits.forget('p')
    assert.equal(limits.check('p', 'status', 1, T0).allowed, true)
  })

  it('per-peer caps on tracked announcements and requests in flight (Bitcoin Core)', () => {
    assert.equal(MAX_TRACKED_ANNOUNCEMENTS_PER_PEER, 5_000)
    assert.equal(MAX_REQUESTS_IN_FLIGHT_PER_PEER, 100)
  })

  it('an inv frame is charged its hashes from its length, before decoding (all or nothing)', () => {
    const hash = new Uint8Array(32)
    const inv = encodeGossip({ type: 'inv', items: Array.from({ length: MAX_INV_ITEMS }, () => ({ kind: INV_TX, hash })) })
    assert.equal(invItemsInFrame(inv), MAX_INV_ITEMS, 'read from the length: an item is 33 bytes')
    assert.equal(invItemsInFrame(encodeGossip({ type: 'getdata', items: [{ kind: INV_TX, hash }] })), 0, 'only inv is charged items')
    const limits = new InboundLimits()
    for (let i = 0; i < burstOf(RATE_LIMITS.gossipInvItems.perPeer) / MAX_INV_ITEMS; i++) assert.equal(limits.checkGossipFrame('p', inv.length, T0, { inv: invItemsInFrame(inv), txs: 0 }).allowed, true)
    assert.deepEqual(limits.checkGossipFrame('p', inv.length, T0, { inv: MAX_INV_ITEMS, txs: 0 }), { allowed: false, limit: 'gossipInvItems', scope: 'peer', cost: MAX_INV_ITEMS })
    // The refused frame spent nothing: a frame without hashes still passes.
    const messagesLeft = limits.state('p', T0).gossipMessages
    assert.equal(limits.checkGossipFrame('p', 100, T0, { inv: 0, txs: 0 }).allowed, true)
    assert.equal(limits.state('p', T0).gossipMessages, messagesLeft - 1)
  })

  it('syncRequests: each sync request frame is charged one request and its bytes, before decoding', () => {
    const limits = new InboundLimits()
    const { periodMs } = RATE_LIMITS.syncRequests.perPeer
    for (let i = 0; i < burstOf(RATE_LIMITS.syncRequests.perPeer); i++) assert.equal(limits.checkSyncFrame('p', 50, T0).allowed, true)
    assert.deepEqual(limits.checkSyncFrame('p', 50, T0), { allowed: false, limit: 'syncRequests', scope: 'peer', cost: 1 })
    assert.equal(limits.checkSyncFrame('p', 50, T0 + periodMs).allowed, true)
  })

  it(`zero-stake askers as a class get ${UNSTAKED_SERVING_SHARE.toFixed(3)} of each node-wide quota; staked askers keep the rest`, () => {
    const node = RATE_LIMITS.getLeaves.node ?? { tokens: 0, periodMs: 1 }
    const unstaked = classQuota(node, false)
    const staked = classQuota(node, true)
    assert.equal(unstaked.tokens + staked.tokens, node.tokens, 'together at most the node quota')
    assert.equal(unstaked.tokens, Math.floor(node.tokens * UNSTAKED_SERVING_SHARE))
    const limits = new InboundLimits()
    const big: SyncRequest = { type: 'getLeaves', subtree: new Uint8Array(32), depth: 0, startAfter: undefined, max: 65_536 }
    let unstakedServed = 0
    for (let peer = 0; peer < 20; peer++) for (let i = 0; i < 2; i++) if (limits.checkSyncRequest(`sybil${peer}`, big, T0, false).allowed) unstakedServed++
    assert.equal(unstakedServed, Math.floor(burstOf(unstaked) / 65_536), '20 identities get only their class share (of its burst, at one moment)')
    assert.equal(burstOf(unstaked) + burstOf(staked), burstOf(node), 'the bursts split the same way')
    // The crowd spent none of the staked share: a validator is served at once.
    assert.equal(limits.checkSyncRequest('validator', big, T0, true).allowed, true)
    assert.equal(limits.checkSyncRequest('validator', big, T0, true).allowed, true)
  })

  it('answerDeadlineMs: a base plus the answer size at the least read rate, capped', () => {
    assert.equal(answerDeadlineMs(0, 10_000), ANSWER_DEADLINE_BASE_MS)
    assert.equal(answerDeadlineMs(MIN_ANSWER_READ_BYTES_PER_S, 10_000), ANSWER_DEADLINE_BASE_MS + 1_000)
    assert.equal(answerDeadlineMs(64 * MIN_ANSWER_READ_BYTES_PER_S, 10_000), 10_000)
    assert.equal(answerDeadlineMs(0, 1_500), 1_500, 'never above the configured deadline')
  })
})

describe('what a refusal costs (LimitCharges)', () => {
  const quota = { tokens: 100, periodMs: 1_000 }

  it(`RATE_LIMITED: at most once per limit per ${RATE_LIMIT_CHARGE_INTERVAL_MS} ms for refusals short of a flood`, () => {
    let state = undefined as ReturnType<typeof chargeRefusal>['state'] | undefined
    const charges: Array<string | undefined> = []
    for (const at of [0, 10, RATE_LIMIT_CHARGE_INTERVAL_MS - 1, RATE_LIMIT_CHARGE_INTERVAL_MS]) {
      const step = chargeRefusal(state, quota, 1, T0 + at)
      state = step.state
      charges.push(step.charge)
    }
    assert.deepEqual(charges, ['RATE_LIMITED', undefined, undefined, 'RATE_LIMITED'])
  })

  it('RATE_LIMIT_FLOOD: each whole quota refused within one period is a flood, charged at once', () => {
    let state = undefined as ReturnType<typeof chargeRefusal>['state'] | undefined
    const charges: Array<string | undefined> = []
    // Refusals of 40 each: the 3rd brings the refused total to 120 ≥ 100, the 5th to 100 again.
    for (let i = 0; i < 5; i++) {
      const step = chargeRefusal(state, quota, 40, T0 + i)
      state = step.state
      charges.push(step.charge)
    }
    assert.deepEqual(charges, ['RATE_LIMITED', undefined, 'RATE_LIMIT_FLOOD', undefined, 'RATE_LIMIT_FLOOD'])
    // A new period starts the refused count again.
    const later = chargeRefusal(state, quota, 40, T0 + 1_000)
    assert.equal(later.charge, 'RATE_LIMITED')
    assert.equal(later.state.refused, 40)
  })

  it('a getLeaves spammer is flooded once a whole quota was refused; records are per peer and forgotten', () => {
    const charges = new LimitCharges()
    const toFlood = Math.ceil(burstOf(RATE_LIMITS.getLeaves.perPeer) / 65_536)
    assert.equal(charges.refused('p', 'getLeaves', 65_536, T0), 'RATE_LIMITED')
    for (let i = 1; i < toFlood - 1; i++) assert.equal(charges.refused('p', 'getLeaves', 65_536, T0 + 1), undefined, 'within the charge interval: free')
    assert.equal(charges.refused('p', 'getLeaves', 65_536, T0 + 1), 'RATE_LIMIT_FLOOD')
    assert.equal(charges.refused('q', 'getLeaves', 65_536, T0 + 1), 'RATE_LIMITED', 'per peer')
    charges.forget('p')
    assert.equal(charges.refused('p', 'getLeaves', 1, T0 + 2), 'RATE_LIMITED', 'forgotten when it left')
  })

  it(`LimitCharges holds at most MAX_LIMIT_CHARGE_KEYS (${MAX_LIMIT_CHARGE_KEYS}) records`, () => {
    const charges = new LimitCharges()
    for (let i = 0; i < MAX_LIMIT_CHARGE_KEYS + 10; i++) charges.refused(`p${i}`, 'status', 1, T0)
    assert.equal(charges.size, MAX_LIMIT_CHARGE_KEYS)
  })
})

describe('getLeaves refunds', () => {
  it('a getLeaves is charged its max before it runs and gets back what it did not serve', () => {
    const limits = new InboundLimits()
    const request: SyncRequest = { type: 'getLeaves', subtree: new Uint8Array(32), depth: 2, startAfter: undefined, max: 8_192 }
    const start = limits.state('p', T0).getLeaves
    assert.deepEqual(limits.checkSyncRequest('p', request, T0), { allowed: true })
    assert.equal(limits.state('p', T0).getLeaves, start - 8_192, 'charged what it asks for')
    limits.refundLeaves('p', request, 3_000, T0)
    assert.equal(limits.state('p', T0).getLeaves, start - 3_000, 'only the 3,000 leaves served stay charged')
    assert.equal(unusedLeaves(request, 3_000), 5_192)
    assert.equal(unusedLeaves({ type: 'getNodes', hashes: [] }, 0), 0, 'only leaf ranges are refunded')
  })
})

describe('BusyWindows: a peer told "busy" must back off', () => {
  it('allows what was in flight, refuses the rest until the backoff ends', () => {
    const busy = new BusyWindows()
    assert.equal(busy.allows('spammer', 0), true, 'nobody is held before a busy answer')
    busy.toldBusy('spammer', 1_000)
    for (let i = 0; i < BUSY_GRACE_REQUESTS; i++) assert.equal(busy.allows('spammer', 1_001 + i), true, `in flight ${i}`)
    assert.equal(busy.allows('spammer', 1_010), false, 'asked again at once')
    assert.equal(busy.allows('other', 1_010), true, 'another peer is not held')
    assert.equal(busy.allows('spammer', 1_000 + BUSY_BACKOFF_MS), true, 'backed off long enough')
    assert.equal(busy.size, 0, 'the window is gone once over')
  })

  it('an honest client that backs off is never refused, however often it is told busy', () => {
    const busy = new BusyWindows()
    let now = 0
    for (let round = 0; round < 20; round++) {
      busy.toldBusy('joiner', now)
      for (let i = 0; i < 3; i++) assert.equal(busy.allows('joiner', now + 5), true)
      now += BUSY_BACKOFF_MS + 10
      assert.equal(busy.allows('joiner', now), true)
    }
  })

  it('a peer that flooded its own quota loses the grace: its next request was sent after a refusal', () => {
    const busy = new BusyWindows()
    busy.toldBusy('flooder', 1_000)
    busy.toldBusy('honest', 1_000)
    assert.equal(busy.allows('flooder', 1_001), true, 'in flight')
    busy.revokeGrace('flooder')
    assert.equal(busy.allows('flooder', 1_002), false, 'no grace after a flood')
    for (let i = 0; i < BUSY_GRACE_REQUESTS; i++) assert.equal(busy.allows('honest', 1_002 + i), true, 'another peer keeps its grace')
    busy.revokeGrace('never-told')
    assert.equal(busy.allows('never-told', 1_003), true, 'without a busy window nothing changes')
    assert.equal(busy.allows('flooder', 1_000 + BUSY_BACKOFF_MS), true, 'the window still ends')
  })

  it('holds at most its cap of peers, and forgets a peer that left', () => {
    const busy = new BusyWindows(4)
    for (let i = 0; i < 10; i++) busy.toldBusy(`p${i}`, 0)
    assert.equal(busy.size, 4)
    busy.forget('p9')
    assert.equal(busy.size, 3)
  })
})
