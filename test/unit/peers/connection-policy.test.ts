/** Connection policy (src/peers/connection-policy.ts): admission, eviction, dialling, anchors, stalls. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type ConnectedPeer,
  DEFAULT_INBOUND_LIMITS,
  EVICTION_REASONS,
  type InboundCandidate,
  MAX_ANCHORS,
  REFUSAL_REASONS,
  STALL_EXTRA_DIALS,
  STALL_SLOTS,
  admitInbound,
  chooseValidatorsToDial,
  headStalled,
  planOutbound,
  selectAnchors,
  selectEvictionVictim,
} from '../../../src/peers/connection-policy.ts'
import { seededRandom } from '../../../src/util/random.ts'

const limits = { maxInbound: 10, maxInboundPerGroup: 3 }

function peer(id: string, over: Partial<ConnectedPeer> = {}): ConnectedPeer {
  return { id, direction: 'inbound', stake: 0n, addressGroup: `ip4:10.${id.length}`, connectedAt: 0, ...over }
}

function candidate(id: string, over: Partial<InboundCandidate> = {}): InboundCandidate {
  return { id, stake: 0n, addressGroup: 'ip4:99.1', scoreState: 'ok', addressGroupBanned: false, ...over }
}

/** 10 silent unstaked Sybils, each in its own /16 except for a crowded one holding three. */
function sybils(): ConnectedPeer[] {
  return Array.from({ length: 10 }, (_, i) => peer(`sybil${i}`, { addressGroup: i < 3 ? 'ip4:66.6' : `ip4:70.${i}`, connectedAt: 1_000 + i }))
}

describe('admitInbound', () => {
  it('accepts while there are free slots', () => {
    assert.deepEqual(admitInbound(candidate('a'), [peer('x')], limits), { action: 'accept' })
  })

  it('BANNED: a banned peer id is refused', () => {
    assert.deepEqual(admitInbound(candidate('a', { scoreState: 'banned' }), [], limits), { action: 'refuse', reason: 'BANNED' })
  })

  it('LOW_SCORE: a peer at or below the disconnect threshold is refused until its score decays', () => {
    assert.deepEqual(admitInbound(candidate('a', { scoreState: 'disconnect' }), [], limits), { action: 'refuse', reason: 'LOW_SCORE' })
    assert.deepEqual(admitInbound(candidate('a', { scoreState: 'graylisted' }), [], limits), { action: 'accept' })
  })

  it('ADDRESS_GROUP_BANNED: an unstaked peer from a banned group is refused; a validator is not', () => {
    assert.deepEqual(admitInbound(candidate('a', { addressGroupBanned: true }), [], limits), { action: 'refuse', reason: 'ADDRESS_GROUP_BANNED' })
    assert.deepEqual(admitInbound(candidate('v', { addressGroupBanned: true, stake: 10n }), [], limits), { action: 'accept' })
  })

  it('ADDRESS_GROUP_FULL: unstaked inbound peers are capped per address group; validators are not', () => {
    const peers = [peer('a', { addressGroup: 'ip4:1.1' }), peer('b', { addressGroup: 'ip4:1.1' }), peer('c', { addressGroup: 'ip4:1.1' })]
    assert.deepEqual(admitInbound(candidate('d', { addressGroup: 'ip4:1.1' }), peers, limits), { action: 'refuse', reason: 'ADDRESS_GROUP_FULL' })
    assert.deepEqual(admitInbound(candidate('d', { addressGroup: 'ip4:1.2' }), peers, limits), { action: 'accept' })
    assert.deepEqual(admitInbound(candidate('v', { addressGroup: 'ip4:1.1', stake: 5n }), peers, limits), { action: 'accept' })
  })

  it('EVICTED_FOR_STAKED: a validator arriving when the slots are full of Sybils evicts one', () => {
    const decision = admitInbound(candidate('validator', { stake: 25n }), sybils(), limits)
    assert.equal(decision.action, 'acceptAndEvict')
    assert.ok(decision.action === 'acceptAndEvict' && decision.reason === 'EVICTED_FOR_STAKED')
  })

  it('validators and outbound peers never lose their place to an unstaked inbound', () => {
    const peers = [
      ...Array.from({ length: 6 }, (_, i) => peer(`val${i}`, { stake: 10n, connectedAt: 5_000 + i })),
      ...Array.from({ length: 4 }, (_, i) => peer(`out${i}`, { direction: 'outbound', connectedAt: 5_000 + i })),
    ]
    // Inbound slots: 6 staked inbound; make them full.
    const full = { maxInbound: 6, maxInboundPerGroup: 3 }
    assert.deepEqual(admitInbound(candidate('sybil'), peers, full), { action: 'refuse', reason: 'INBOUND_FULL' })
    // A validator finds no unstaked peer to evict either: refused, not evicting a validator.
    assert.deepEqual(admitInbound(candidate('val9', { stake: 1n }), peers, full), { action: 'refuse', reason: 'INBOUND_FULL' })
    assert.equal(selectEvictionVictim(peers), undefined)
  })

  it('a staked arrival evicts even when every unstaked peer is protected: stake outranks protection', () => {
    // Three unstaked peers, each in its own group: all protected by address-group diversity.
    const peers = [peer('a', { addressGroup: 'ip4:1.1' }), peer('b', { addressGroup: 'ip4:1.2' }), peer('c', { addressGroup: 'ip4:1.3', connectedAt: 9 })]
    assert.equal(selectEvictionVictim(peers), undefined)
    const decision = admitInbound(candidate('v', { stake: 1n }), peers, { maxInbound: 3, maxInboundPerGroup: 3 })
    assert.deepEqual(decision, { action: 'acceptAndEvict', evict: 'c', reason: 'EVICTED_FOR_STAKED' })
  })

  it('EVICTED_FOR_INBOUND: an unstaked arrival from a fresh group displaces the newest of the most crowded group', () => {
    const peers = [
      ...Array.from({ length: 20 }, (_, i) => peer(`crowd${i}`, { addressGroup: `ip4:66.${i % 2}`, connectedAt: 100 + i })),
      ...Array.from({ length: 4 }, (_, i) => peer(`lone${i}`, { addressGroup: `ip4:80.${i}`, connectedAt: 1 + i })),
    ]
    const decision = admitInbound(candidate('new', { addressGroup: 'ip4:90.1' }), peers, { maxInbound: 24, maxInboundPerGroup: 10 })
    assert.deepEqual(decision, { action: 'acceptAndEvict', evict: 'crowd19', reason: 'EVICTED_FOR_INBOUND' })
  })

  it('INBOUND_FULL: an unstaked arrival may not displace a peer from a less crowded group than its own', () => {
    const peers = Array.from({ length: 20 }, (_, i) => peer(`p${i}`, { addressGroup: `ip4:50.${i}`, connectedAt: i }))
    peers.push(peer('mine', { addressGroup: 'ip4:66.6', connectedAt: 100 }))
    const decision = admitInbound(candidate('new', { addressGroup: 'ip4:66.6' }), peers, { maxInbound: 21, maxInboundPerGroup: 4 })
    assert.deepEqual(decision, { action: 'refuse', reason: 'INBOUND_FULL' })
  })

  it('eviction protects long-lived, recently useful and low-latency peers', () => {
    const peers: ConnectedPeer[] = Array.from({ length: 40 }, (_, i) => peer(`p${i}`, { addressGroup: 'ip4:5.5', connectedAt: 1_000 + i }))
    // The newest peer is the one that delivered a novel block: protected.
    ;(peers[39] as ConnectedPeer).lastNovelBlockAt = 5_000
    ;(peers[38] as ConnectedPeer).lastNovelTxAt = 5_000
    ;(peers[37] as ConnectedPeer).latencyMs = 3
    const victim = selectEvictionVictim(peers)
    assert.equal(victim, 'p36')
  })

  it('eviction reasons and refusal reasons are stable codes with a why', () => {
    for (const table of [EVICTION_REASONS, REFUSAL_REASONS]) {
      for (const [code, why] of Object.entries(table)) {
        assert.match(code, /^[A-Z_]+$/)
        assert.ok(why.length > 10)
      }
    }
    assert.ok(DEFAULT_INBOUND_LIMITS.maxInboundPerGroup < DEFAULT_INBOUND_LIMITS.maxInbound)
  })
})

describe('outbound', () => {
  const validators = [
    { peerId: 'v1', stake: 70n },
    { peerId: 'v2', stake: 20n },
    { peerId: 'v3', stake: 10n },
    { peerId: 'v0', stake: 0n },
  ]

  it('chooseValidatorsToDial: stake-weighted among validators not connected and not excluded', () => {
    const random = seededRandom(1)
    const firsts = new Map<string, number>()
    for (let i = 0; i < 2_000; i++) {
      const [first] = chooseValidatorsToDial(validators, new Set(), new Set(), 1, random)
      firsts.set(first as string, (firsts.get(first as string) ?? 0) + 1)
    }
    assert.ok((firsts.get('v1') ?? 0) > (firsts.get('v2') ?? 0) && (firsts.get('v2') ?? 0) > (firsts.get('v3') ?? 0))
    assert.equal(firsts.get('v0'), undefined, 'no stake, not a validator to dial')
    assert.deepEqual(chooseValidatorsToDial(validators, new Set(['v1']), new Set(['v2']), 5, random), ['v3'])
  })

  it('planOutbound: anchors first, then validators up to the outbound target', () => {
    const plan = planOutbound(
      { validators, connected: new Set(['v3']), outboundCount: 0, excluded: new Set(), anchors: [{ peerId: 'a1', address: '/ip4/1.2.3.4/tcp/1' }, { peerId: 'v3' }], stalled: false, random: seededRandom(2) },
      3,
    )
    assert.deepEqual(plan.dial[0], { peerId: 'a1', address: '/ip4/1.2.3.4/tcp/1', reason: 'ANCHOR' })
    assert.deepEqual(plan.dial.slice(1).map((d) => d.reason), ['VALIDATOR', 'VALIDATOR'])
    assert.deepEqual(new Set(plan.dial.slice(1).map((d) => d.peerId)), new Set(['v1', 'v2']))
    const full = planOutbound({ validators, connected: new Set(), outboundCount: 3, excluded: new Set(), anchors: [], stalled: false, random: seededRandom(2) }, 3)
    assert.deepEqual(full.dial, [])
  })

  it('STALLED: a stalled head dials extra validators past the outbound target', () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ peerId: `v${i}`, stake: 10n }))
    const plan = planOutbound({ validators: many, connected: new Set(), outboundCount: 3, excluded: new Set(), anchors: [], stalled: true, random: seededRandom(3) }, 3)
    assert.equal(plan.dial.length, STALL_EXTRA_DIALS)
    assert.ok(plan.dial.every((d) => d.reason === 'STALLED'))
  })

  it('selectAnchors: outbound peers in good standing, staked first, then longest connected', () => {
    const anchors = selectAnchors([
      { peerId: 'in', direction: 'inbound', stake: 10n, connectedAt: 0, scoreState: 'ok' },
      { peerId: 'old', direction: 'outbound', stake: 0n, connectedAt: 1, scoreState: 'ok' },
      { peerId: 'bad', direction: 'outbound', stake: 10n, connectedAt: 0, scoreState: 'graylisted' },
      { peerId: 'val', direction: 'outbound', stake: 10n, connectedAt: 50, scoreState: 'ok', address: '/ip4/1.1.1.1/tcp/1' },
      ...Array.from({ length: 10 }, (_, i) => ({ peerId: `o${i}`, direction: 'outbound' as const, stake: 0n, connectedAt: 10 + i, scoreState: 'ok' as const })),
    ])
    assert.equal(anchors.length, MAX_ANCHORS)
    assert.deepEqual(anchors.slice(0, 2), [{ peerId: 'val', address: '/ip4/1.1.1.1/tcp/1' }, { peerId: 'old' }])
    assert.deepEqual(JSON.parse(JSON.stringify(anchors)), anchors)
  })

  it('headStalled: only when enough ended slots had leaders other than us', () => {
    const rotating = (slot: number) => `v${slot % 4}`
    assert.equal(headStalled({ headSlot: 100, currentSlot: 100 + STALL_SLOTS, leaderOf: rotating }), false)
    assert.equal(headStalled({ headSlot: 100, currentSlot: 101 + STALL_SLOTS, leaderOf: rotating }), true)
    // Every missed slot was ours: our own downtime, not an eclipse.
    assert.equal(headStalled({ headSlot: 100, currentSlot: 200, leaderOf: () => 'me', self: 'me' }), false)
    // One other leader offline for a while: not a stall either.
    assert.equal(headStalled({ headSlot: 100, currentSlot: 200, leaderOf: () => 'v9', self: 'me' }), false)
    // A long stall looks at a bounded window only.
    let calls = 0
    headStalled({ headSlot: 0, currentSlot: 1_000_000, leaderOf: () => (calls++, 'me'), self: 'me' })
    assert.ok(calls <= 64)
  })
})
