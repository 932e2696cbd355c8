/** Sync target choice and the promise tracker (src/peers/sync-target.ts), on a fake clock. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  BROKEN_PROMISE_MEMORY_MS,
  type HeadClaim,
  MAX_BROKEN_PROMISES,
  MAX_PROMISE_ENTRIES,
  PromiseTracker,
  RULED_OUT_MS,
  chooseSyncTarget,
  isSynced,
} from '../../../src/peers/sync-target.ts'

const T0 = 1_700_000_000_000
const none = () => false
const claim = (peerId: string, height: number, hash: string, stake = 0n): HeadClaim => ({ peerId, height, hash, stake })

describe('chooseSyncTarget', () => {
  it('prefers the claim backed by stake over a higher unstaked one', () => {
    const claims = [claim('liar', 10_000, 'ff'), claim('v1', 120, 'aa', 30n), claim('v2', 119, 'bb', 20n)]
    const target = chooseSyncTarget(claims, 0, none)
    assert.deepEqual(target, { height: 120, hash: 'aa', peers: ['v1'], stake: 30n })
  })

  it('sums stake over peers claiming the same head', () => {
    const claims = [claim('v1', 120, 'aa', 30n), claim('v2', 121, 'cc', 40n), claim('v3', 120, 'aa', 20n), claim('s', 120, 'aa')]
    const target = chooseSyncTarget(claims, 0, none)
    assert.deepEqual(target, { height: 120, hash: 'aa', peers: ['v1', 'v3', 's'], stake: 50n })
  })

  it('without stake, prefers the claim backed by several peers, then the higher one', () => {
    const claims = [claim('a', 500, 'ff'), claim('b', 100, 'aa'), claim('c', 100, 'aa')]
    assert.equal(chooseSyncTarget(claims, 0, none)?.height, 100)
    assert.equal(chooseSyncTarget([claim('a', 500, 'ff'), claim('b', 100, 'aa')], 0, none)?.height, 500)
  })

  it('excludes peers ruled out and claims not above our head', () => {
    const claims = [claim('v1', 120, 'aa', 30n), claim('s', 200, 'bb')]
    assert.equal(chooseSyncTarget(claims, 0, (id) => id === 'v1')?.peers[0], 's')
    assert.equal(chooseSyncTarget(claims, 200, none), undefined)
    assert.equal(chooseSyncTarget([claim('v1', 120, 'aa', 30n), claim('v1', 120, 'aa', 30n)], 0, none)?.stake, 30n, 'a peer counts once')
  })
})

describe('isSynced', () => {
  it('never says synced while an admitted, not-ruled-out peer claims more', () => {
    const claims = [claim('v1', 100, 'aa', 30n), claim('liar', 130, 'ff')]
    assert.equal(isSynced(100, claims, none), false)
    assert.equal(isSynced(100, claims, (id) => id === 'liar'), true)
    assert.equal(isSynced(130, claims, none), true)
    assert.equal(isSynced(0, [], none), true)
  })
})

describe('PromiseTracker', () => {
  it('SYNC_PROMISE_BROKEN: each broken promise is the offence; after MAX_BROKEN_PROMISES the peer is ruled out', () => {
    const tracker = new PromiseTracker()
    for (let i = 1; i < MAX_BROKEN_PROMISES; i++) assert.deepEqual(tracker.broken('liar', T0 + i), { code: 'SYNC_PROMISE_BROKEN', ruledOut: false })
    assert.deepEqual(tracker.broken('liar', T0 + 10), { code: 'SYNC_PROMISE_BROKEN', ruledOut: true })
    assert.equal(tracker.isRuledOut('liar', T0 + 10), true)
    assert.equal(tracker.isRuledOut('liar', T0 + 10 + RULED_OUT_MS), false)
  })

  it('kept forgives past broken promises; old ones are forgotten', () => {
    const tracker = new PromiseTracker()
    tracker.broken('p', T0)
    tracker.broken('p', T0)
    tracker.kept('p', T0 + 1)
    assert.equal(tracker.brokenCount('p'), 0)
    tracker.broken('q', T0)
    tracker.broken('q', T0)
    assert.equal(tracker.broken('q', T0 + BROKEN_PROMISE_MEMORY_MS).ruledOut, false, 'the earlier two were forgotten')
  })

  it('survives reconnects: keyed by peer id, cleared only by time', () => {
    const tracker = new PromiseTracker()
    for (let i = 0; i < MAX_BROKEN_PROMISES; i++) tracker.broken('liar', T0)
    tracker.kept('liar', T0 + 1)
    assert.equal(tracker.isRuledOut('liar', T0 + 1), true, 'a ruled-out peer cannot clear itself')
    tracker.prune(T0 + RULED_OUT_MS + BROKEN_PROMISE_MEMORY_MS)
    assert.equal(tracker.size, 0)
  })

  it(`is capped at MAX_PROMISE_ENTRIES (${MAX_PROMISE_ENTRIES})`, () => {
    const tracker = new PromiseTracker()
    for (let i = 0; i < MAX_PROMISE_ENTRIES + 20; i++) tracker.broken(`p${i}`, T0)
    assert.equal(tracker.size, MAX_PROMISE_ENTRIES)
  })
})
