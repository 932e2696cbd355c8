/** Rate limits (src/peers/rate-limit.ts) on a fake clock: the GCRA, the limit table, the node-wide cap. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { SyncRequest } from '../../../src/codec/wire.ts'
import {
  InboundLimits,
  type LimitName,
  MAX_LIMITER_KEYS,
  MAX_REQUESTS_IN_FLIGHT_PER_PEER,
  MAX_TRACKED_ANNOUNCEMENTS_PER_PEER,
  RATE_LIMITS,
  RateLimiterGCRA,
  syncRequestCost,
} from '../../../src/peers/rate-limit.ts'

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
    const limits = new InboundLimits()
    const big: SyncRequest = { type: 'getLeaves', subtree: new Uint8Array(32), depth: 0, startAfter: undefined, max: 65_536 }
    assert.deepEqual(limits.checkSyncRequest('p', big, T0), { allowed: true })
    assert.deepEqual(limits.checkSyncRequest('p', big, T0), { allowed: true })
    assert.deepEqual(limits.checkSyncRequest('p', big, T0), { allowed: false, limit: 'getLeaves', scope: 'peer' })
    assert.deepEqual(limits.checkSyncRequest('q', big, T0), { allowed: true }, 'another peer has its own budget')
  })

  it('the node-wide cap on sync serving holds for all peers together; a peer refused by it still spent its own budget', () => {
    const limits = new InboundLimits()
    const request: SyncRequest = { type: 'getBlocks', hashes: hashes(128) }
    const perPeer = RATE_LIMITS.getBlocks.perPeer.tokens / 128
    const nodeWide = (RATE_LIMITS.getBlocks.node?.tokens ?? 0) / 128
    let allowed = 0
    let nodeRefusals = 0
    // 20 identities each asking their full budget: together they get only the node's share.
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
    assert.deepEqual(limits.checkGossipFrame('p', 100, T0), { allowed: false, limit: 'gossipMessages', scope: 'peer' })
    assert.equal(limits.checkGossipFrame('q', 8 * 1024 * 1024, T0).allowed, true)
    assert.equal(limits.checkGossipFrame('q', 8 * 1024 * 1024, T0).allowed, true)
    assert.deepEqual(limits.checkGossipFrame('q', 8 * 1024 * 1024, T0), { allowed: false, limit: 'gossipBytes', scope: 'peer' })
  })

  it('inv items are charged by count', () => {
    const limits = new InboundLimits()
    assert.equal(limits.check('p', 'gossipInvItems', 4_096, T0).allowed, true)
    assert.equal(limits.check('p', 'gossipInvItems', 4_096, T0).allowed, true)
    assert.equal(limits.check('p', 'gossipInvItems', 4_096, T0).allowed, false)
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
})
