/**
 * Connection policy (docs/protocol.md, "Defences"): which inbound peer to admit or evict, which
 * validators to dial, which peers to keep as anchors, and when a stalled head calls for more
 * validators. Pure functions returning decisions; the shell (src/net, src/node) acts on them.
 * Identities are free and stake is not: validators and outbound peers never lose their place to
 * an unstaked inbound, and unstaked inbound peers are capped in total and per address group.
 */
import type { Direction } from './transport.ts'
import type { ScoreState } from './scores.ts'
import { weightedSample } from './selection.ts'

/** Why an inbound connection was refused: stable codes, used as metric labels. */
export const REFUSAL_REASONS = {
  BANNED: 'the peer id is banned',
  ADDRESS_GROUP_BANNED: 'its address group is banned (too many banned identities there); staked peers are exempt',
  LOW_SCORE: 'its score is at or below the disconnect threshold: it may come back once decayed',
  INBOUND_FULL: 'every inbound slot is taken and no one may be evicted for it',
  ADDRESS_GROUP_FULL: 'its address group already holds maxInboundPerGroup unstaked inbound slots',
  ADDRESS_COOLDOWN: 'its host recently brought a refused identity (banned, low score, banned group): refused before the handshake (AddressCooldowns)',
  ADDRESS_PROBATION: 'its host’s cooldown is over, but the few handshakes a second granted to such hosts are spent (PROBATION_HANDSHAKES): refused before the handshake, no strike',
  HANDSHAKE_BUDGET: 'its host has no record and is not trusted, and the handshakes a second granted to such hosts are spent (FRESH_HANDSHAKES): refused before the handshake, no strike',
} as const
export type RefusalReason = keyof typeof REFUSAL_REASONS

/** Refusals that say the identity is unwelcome (not merely that slots are full): its host cools down (AddressCooldowns). */
export const IDENTITY_REFUSALS: ReadonlySet<string> = new Set<RefusalReason>(['BANNED', 'LOW_SCORE', 'ADDRESS_GROUP_BANNED'])

/** Why a connected peer is dropped: stable codes, used as metric labels. */
export const EVICTION_REASONS = {
  EVICTED_FOR_STAKED: 'an unstaked inbound peer made room for a validator',
  EVICTED_FOR_INBOUND: 'the inbound slots were full; the newest peer of the most crowded address group made room',
  SCORE_DISCONNECT: 'its score fell to the disconnect threshold',
  SCORE_BAN: 'its score fell to the ban threshold, or it committed a fatal offence',
} as const
export type EvictionReason = keyof typeof EVICTION_REASONS

/** What the policy knows of a connected peer. */
export interface ConnectedPeer {
  id: string
  direction: Direction
  stake: bigint
  addressGroup: string
  /** When it connected (clock ms): long-lived peers are protected. */
  connectedAt: number
  /** Last first delivery of a valid new tx (clock ms). */
  lastNovelTxAt?: number
  /** Last first delivery of a valid new block (clock ms). */
  lastNovelBlockAt?: number
  /** Smoothed round-trip time; undefined if never measured (not protected by latency). */
  latencyMs?: number
}

/** An inbound connection asking for a slot. */
export interface InboundCandidate {
  id: string
  stake: bigint
  addressGroup: string
  /** From PeerScores.state. */
  scoreState: ScoreState
  /** From PeerScores.isAddressGroupBanned. */
  addressGroupBanned: boolean
}

export interface InboundLimits {
  /** Inbound slots in total. */
  maxInbound: number
  /** Unstaked inbound slots per address group. */
  maxInboundPerGroup: number
}

/** Defaults: Bitcoin Core-like proportions for a 50-peer node. */
export const DEFAULT_INBOUND_LIMITS: InboundLimits = {
  /** 50 admitted peers minus the outbound slots (MAX_OUTBOUND_PEERS). */
  maxInbound: 38,
  /** Four per /16: a small hosting provider can still run several nodes; a Sybil farm cannot fill the node. */
  maxInboundPerGroup: 4,
}

/**
 * How many inbound peers each protection keeps from eviction (Bitcoin Core's
 * `SelectNodeToEvict`): an attacker must beat honest peers on every axis at once to take over.
 */
export const EVICTION_PROTECTION = {
  /** Distinct address groups kept (one peer each, the longest-lived): an attacker cannot fake network diversity cheaply. */
  byAddressGroup: 4,
  /** Lowest latency kept: proximity is hard to fake from afar. */
  byLatency: 8,
  /** Most recent novel tx deliverers kept: useful peers are hard to fake without spending fees. */
  byNovelTx: 4,
  /** Most recent novel block deliverers kept: blocks only come from leaders. */
  byNovelBlock: 4,
  /** Fraction of the remaining kept by uptime: Sybils that arrive late cannot displace the old guard. */
  uptimeFraction: 0.5,
} as const

export type InboundDecision =
  | { action: 'accept' }
  | { action: 'refuse'; reason: RefusalReason }
  | { action: 'acceptAndEvict'; evict: string; reason: EvictionReason }

function evictable(peer: ConnectedPeer): boolean {
  return peer.direction === 'inbound' && peer.stake <= 0n
}

function groupCounts(peers: readonly ConnectedPeer[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const peer of peers) counts.set(peer.addressGroup, (counts.get(peer.addressGroup) ?? 0) + 1)
  return counts
}

/** Removes up to `count` peers with the highest `key` (ties: the longest-lived) from `pool`. */
function protect(pool: ConnectedPeer[], count: number, key: (peer: ConnectedPeer) => number | undefined): ConnectedPeer[] {
  const ranked = pool
    .filter((peer) => key(peer) !== undefined)
    .sort((a, b) => (key(b) as number) - (key(a) as number) || a.connectedAt - b.connectedAt || (a.id < b.id ? -1 : 1))
  const keep = new Set(ranked.slice(0, count))
  return pool.filter((peer) => !keep.has(peer))
}

/**
 * The newest member of the most crowded address group among the unstaked inbound peers left
 * once the protections have kept theirs; undefined if the protections keep everyone.
 * Outbound and staked peers are never candidates.
 */
export function selectEvictionVictim(peers: readonly ConnectedPeer[]): string | undefined {
  let pool = peers.filter(evictable)
  // One per address group, the longest-lived of it, for the most distinct groups.
  const oldestPerGroup = new Map<string, ConnectedPeer>()
  for (const peer of [...pool].sort((a, b) => a.connectedAt - b.connectedAt)) {
    if (!oldestPerGroup.has(peer.addressGroup)) oldestPerGroup.set(peer.addressGroup, peer)
  }
  const groupKeepers = new Set([...oldestPerGroup.values()].sort((a, b) => a.connectedAt - b.connectedAt).slice(0, EVICTION_PROTECTION.byAddressGroup))
  pool = pool.filter((peer) => !groupKeepers.has(peer))
  pool = protect(pool, EVICTION_PROTECTION.byLatency, (peer) => (peer.latencyMs === undefined ? undefined : -peer.latencyMs))
  pool = protect(pool, EVICTION_PROTECTION.byNovelTx, (peer) => peer.lastNovelTxAt)
  pool = protect(pool, EVICTION_PROTECTION.byNovelBlock, (peer) => peer.lastNovelBlockAt)
  pool = protect(pool, Math.floor(pool.length * EVICTION_PROTECTION.uptimeFraction), (peer) => -peer.connectedAt)
  return newestOfMostCrowded(pool)
}

function newestOfMostCrowded(pool: readonly ConnectedPeer[]): string | undefined {
  if (pool.length === 0) return undefined
  const counts = groupCounts(pool)
  let victim: ConnectedPeer | undefined
  for (const peer of pool) {
    if (victim === undefined) {
      victim = peer
      continue
    }
    const a = counts.get(peer.addressGroup) as number
    const b = counts.get(victim.addressGroup) as number
    if (a > b || (a === b && (peer.connectedAt > victim.connectedAt || (peer.connectedAt === victim.connectedAt && peer.id > victim.id)))) victim = peer
  }
  return victim?.id
}

/**
 * Whether an inbound connection gets a slot. Staked candidates ignore the per-group cap and the
 * address-group ban, and when the slots are full evict an unstaked inbound peer — by the
 * protections if they leave someone, else the newest of the most crowded group regardless:
 * stake outranks every protection. An unstaked candidate is capped per group and, when full,
 * may displace only an unprotected unstaked peer.
 */
export function admitInbound(candidate: InboundCandidate, peers: readonly ConnectedPeer[], limits: InboundLimits = DEFAULT_INBOUND_LIMITS): InboundDecision {
  if (candidate.scoreState === 'banned') return { action: 'refuse', reason: 'BANNED' }
  if (candidate.scoreState === 'disconnect') return { action: 'refuse', reason: 'LOW_SCORE' }
  const staked = candidate.stake > 0n
  if (!staked && candidate.addressGroupBanned) return { action: 'refuse', reason: 'ADDRESS_GROUP_BANNED' }
  const others = peers.filter((peer) => peer.id !== candidate.id)
  const inbound = others.filter((peer) => peer.direction === 'inbound')
  if (!staked) {
    const sameGroup = inbound.filter((peer) => peer.stake <= 0n && peer.addressGroup === candidate.addressGroup).length
    if (sameGroup >= limits.maxInboundPerGroup) return { action: 'refuse', reason: 'ADDRESS_GROUP_FULL' }
  }
  if (inbound.length < limits.maxInbound) return { action: 'accept' }
  if (staked) {
    const victim = selectEvictionVictim(others) ?? newestOfMostCrowded(others.filter(evictable))
    if (victim === undefined) return { action: 'refuse', reason: 'INBOUND_FULL' }
    return { action: 'acceptAndEvict', evict: victim, reason: 'EVICTED_FOR_STAKED' }
  }
  // Count the candidate in its group: it may only displace someone from a group at least as crowded as its own would be.
  const victim = selectEvictionVictim(others)
  if (victim === undefined) return { action: 'refuse', reason: 'INBOUND_FULL' }
  const counts = groupCounts(others.filter(evictable))
  const victimGroup = others.find((peer) => peer.id === victim)?.addressGroup as string
  if ((counts.get(victimGroup) ?? 0) < (counts.get(candidate.addressGroup) ?? 0) + 1) return { action: 'refuse', reason: 'INBOUND_FULL' }
  return { action: 'acceptAndEvict', evict: victim, reason: 'EVICTED_FOR_INBOUND' }
}

// ---- outbound

/** Outbound slots: Bitcoin Core keeps 8 full-relay + 2 block-relay-only; ours all relay, and are kept for validators first. */
export const MAX_OUTBOUND_PEERS = 12
/** Anchors kept across restarts (Bitcoin Core keeps 2; a small validator set makes a few more cheap and useful). */
export const MAX_ANCHORS = 4
/** Extra validators dialled per heartbeat when the head stalls. */
export const STALL_EXTRA_DIALS = 4
/** Slots without a new head, while the schedule expects blocks, before the head counts as stalled. */
export const STALL_SLOTS = 6
/** Distinct scheduled leaders (other than us) that must have missed, so one offline validator is not a stall. */
export const STALL_MIN_LEADERS = 2
/** Most recent slots the stall check looks at: bounds the work per call. */
export const STALL_LOOKBACK_SLOTS = 64

export interface ValidatorPeer {
  /** The validator's libp2p peer id (its identity key). */
  peerId: string
  stake: bigint
}

/** What the node knows for one heartbeat of outbound planning. */
export interface OutboundInputs {
  validators: readonly ValidatorPeer[]
  /** Peer ids with a live connection (any direction). */
  connected: ReadonlySet<string>
  /** Outbound connections now. */
  outboundCount: number
  /** Peer ids not to dial (banned, low score, ourselves). */
  excluded: ReadonlySet<string>
  /** Anchors loaded at start, not yet redialled. */
  anchors: readonly Anchor[]
  /** From `headStalled`. */
  stalled: boolean
  random: () => number
}

export type DialReason = 'ANCHOR' | 'VALIDATOR' | 'STALLED'
export interface OutboundPlan {
  dial: { peerId: string; address?: string; reason: DialReason }[]
}

/**
 * Stake-weighted sample of `count` validators we are not connected to and may dial: a bigger
 * stake is more likely to be dialled (and more costly for an attacker to impersonate: never).
 */
export function chooseValidatorsToDial(validators: readonly ValidatorPeer[], connected: ReadonlySet<string>, excluded: ReadonlySet<string>, count: number, random: () => number): string[] {
  const candidates = validators.filter((v) => v.stake > 0n && !connected.has(v.peerId) && !excluded.has(v.peerId))
  const total = candidates.reduce((sum, v) => sum + v.stake, 0n)
  if (total <= 0n) return []
  return weightedSample(candidates, count, (v) => Number(v.stake) / Number(total), random).map((v) => v.peerId)
}

/**
 * One heartbeat's dials: anchors first (they were good before the restart), then validators up
 * to the outbound target, plus STALL_EXTRA_DIALS more validators past it when the head stalls.
 */
export function planOutbound(inputs: OutboundInputs, maxOutbound: number = MAX_OUTBOUND_PEERS): OutboundPlan {
  const dial: OutboundPlan['dial'] = []
  const chosen = new Set<string>()
  let free = Math.max(0, maxOutbound - inputs.outboundCount)
  for (const anchor of inputs.anchors) {
    if (free <= 0) break
    if (inputs.connected.has(anchor.peerId) || inputs.excluded.has(anchor.peerId) || chosen.has(anchor.peerId)) continue
    const entry: OutboundPlan['dial'][number] = { peerId: anchor.peerId, reason: 'ANCHOR' }
    if (anchor.address !== undefined) entry.address = anchor.address
    dial.push(entry)
    chosen.add(anchor.peerId)
    free--
  }
  const skip = new Set([...inputs.excluded, ...chosen])
  for (const peerId of chooseValidatorsToDial(inputs.validators, inputs.connected, skip, free, inputs.random)) {
    dial.push({ peerId, reason: 'VALIDATOR' })
    chosen.add(peerId)
  }
  if (inputs.stalled) {
    const more = new Set([...skip, ...chosen])
    for (const peerId of chooseValidatorsToDial(inputs.validators, inputs.connected, more, STALL_EXTRA_DIALS, inputs.random)) {
      dial.push({ peerId, reason: 'STALLED' })
    }
  }
  return { dial }
}

/** A peer to redial after a restart, as a JSON-safe record for the store. */
export interface Anchor {
  peerId: string
  address?: string
}

export interface AnchorCandidate {
  peerId: string
  address?: string
  direction: Direction
  stake: bigint
  connectedAt: number
  scoreState: ScoreState
}

/**
 * The anchors to persist: outbound peers in good standing, staked first, then the longest
 * connected — the ones an attacker is least likely to control.
 */
export function selectAnchors(peers: readonly AnchorCandidate[], max: number = MAX_ANCHORS): Anchor[] {
  return peers
    .filter((peer) => peer.direction === 'outbound' && peer.scoreState === 'ok')
    .sort((a, b) => Number(b.stake > 0n) - Number(a.stake > 0n) || a.connectedAt - b.connectedAt || (a.peerId < b.peerId ? -1 : 1))
    .slice(0, max)
    .map((peer) => (peer.address === undefined ? { peerId: peer.peerId } : { peerId: peer.peerId, address: peer.address }))
}

export interface StallInputs {
  /** Slot of our head block. */
  headSlot: number
  /** The slot now. */
  currentSlot: number
  /** The leader's validator id of a slot (the leader schedule). */
  leaderOf: (slot: number) => string
  /** Our own validator id, if we are one: our own missed slots say nothing about our peers. */
  self?: string
}

/**
 * The head has stalled while the leader schedule says blocks should exist: at least STALL_SLOTS
 * ended slots since our head's, and among them at least STALL_MIN_LEADERS distinct leaders other than
 * us. Then we are likely cut off from the producers (eclipsed or partitioned) and should dial
 * more validators.
 */
export function headStalled(inputs: StallInputs): boolean {
  // Only slots that have ended count: the current one may still bring its block.
  const missed = inputs.currentSlot - inputs.headSlot - 1
  if (missed < STALL_SLOTS) return false
  const leaders = new Set<string>()
  const from = Math.max(inputs.headSlot + 1, inputs.currentSlot - STALL_LOOKBACK_SLOTS)
  for (let slot = from; slot < inputs.currentSlot; slot++) {
    const leader = inputs.leaderOf(slot)
    if (leader !== inputs.self) leaders.add(leader)
    if (leaders.size >= STALL_MIN_LEADERS) return true
  }
  return false
}
