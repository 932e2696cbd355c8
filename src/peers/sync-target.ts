/**
 * Catch-up target choice (docs/protocol.md, "Defences"): a joiner must not be starved by peers
 * that claim a high head and never serve it. Claims are grouped by (height, hash); the target is
 * the claim with the most stake behind it, then the most peers, then the highest — not simply
 * the highest. Peers that broke their promises (advertised a head, did not serve it) are ruled
 * out by the PromiseTracker, and `isSynced` never says "synced" while an admitted peer not ruled
 * out claims more. Pure, with the tracker's time passed in.
 */
import type { OffenceCode } from './offences.ts'

/** One admitted peer's status claim. */
export interface HeadClaim {
  peerId: string
  height: number
  /** Head hash, hex. */
  hash: string
  stake: bigint
}

export interface SyncTarget {
  height: number
  hash: string
  /** Peers claiming it, best first (staked, then by stake): whom to ask. */
  peers: string[]
  /** Stake behind the claim. */
  stake: bigint
}

/**
 * The catch-up target among claims above `localHeight` from peers not ruled out: the most
 * stake behind one (height, hash), then the most claimants, then the highest, then the smallest
 * hash (deterministic). Undefined when nobody eligible is ahead.
 */
export function chooseSyncTarget(claims: readonly HeadClaim[], localHeight: number, isRuledOut: (peerId: string) => boolean): SyncTarget | undefined {
  /** BOUNDED: by the number of claims (admitted peers). */
  const groups = new Map<string, SyncTarget & { members: HeadClaim[] }>()
  for (const claim of claims) {
    if (claim.height <= localHeight || isRuledOut(claim.peerId)) continue
    const key = `${claim.height}:${claim.hash}`
    let group = groups.get(key)
    if (group === undefined) {
      group = { height: claim.height, hash: claim.hash, peers: [], stake: 0n, members: [] }
      groups.set(key, group)
    }
    if (group.members.some((member) => member.peerId === claim.peerId)) continue
    group.members.push(claim)
    group.stake += claim.stake > 0n ? claim.stake : 0n
  }
  let best: (SyncTarget & { members: HeadClaim[] }) | undefined
  for (const group of groups.values()) {
    if (best === undefined || better(group, best)) best = group
  }
  if (best === undefined) return undefined
  const peers = [...best.members].sort((a, b) => (b.stake > a.stake ? 1 : b.stake < a.stake ? -1 : a.peerId < b.peerId ? -1 : 1)).map((claim) => claim.peerId)
  return { height: best.height, hash: best.hash, peers, stake: best.stake }
}

function better(a: SyncTarget & { members: HeadClaim[] }, b: SyncTarget & { members: HeadClaim[] }): boolean {
  if (a.stake !== b.stake) return a.stake > b.stake
  if (a.members.length !== b.members.length) return a.members.length > b.members.length
  if (a.height !== b.height) return a.height > b.height
  return a.hash < b.hash
}

/** Never "synced" while an eligible peer claims more than our head. */
export function isSynced(localHeight: number, claims: readonly HeadClaim[], isRuledOut: (peerId: string) => boolean): boolean {
  return !claims.some((claim) => claim.height > localHeight && !isRuledOut(claim.peerId))
}

/** Broken promises before a peer is ruled out as a sync source. */
export const MAX_BROKEN_PROMISES = 3
/** How long a ruled-out peer stays out: long enough for the joiner to sync from others. */
export const RULED_OUT_MS = 10 * 60 * 1000
/** Broken promises older than this are forgotten (an honest peer's bad moment). */
export const BROKEN_PROMISE_MEMORY_MS = 10 * 60 * 1000
/** Limit of peers tracked. */
export const MAX_PROMISE_ENTRIES = 1_024

interface PromiseEntry {
  broken: number
  lastBrokenAt: number
  ruledOutUntil: number
}

/** What the shell does after a broken promise: charge the code; drop the peer if ruled out. */
export interface BrokenPromiseDecision {
  code: OffenceCode
  ruledOut: boolean
}

/**
 * Counts promises not kept: a peer advertised a head and, asked for it, did not serve it. Each
 * broken promise is the offence SYNC_PROMISE_BROKEN; after MAX_BROKEN_PROMISES the peer is ruled
 * out for RULED_OUT_MS. Keyed by peer id and kept across reconnects.
 */
export class PromiseTracker {
  /** BOUNDED: MAX_PROMISE_ENTRIES; expired entries pruned first, then the oldest. */
  private readonly entries = new Map<string, PromiseEntry>()

  broken(peerId: string, now: number): BrokenPromiseDecision {
    let entry = this.entries.get(peerId)
    if (entry !== undefined && now - entry.lastBrokenAt >= BROKEN_PROMISE_MEMORY_MS && entry.ruledOutUntil <= now) entry = undefined
    if (entry === undefined) {
      this.entries.delete(peerId)
      if (this.entries.size >= MAX_PROMISE_ENTRIES) this.prune(now)
      if (this.entries.size >= MAX_PROMISE_ENTRIES) {
        const oldest = this.entries.keys().next().value
        if (oldest !== undefined) this.entries.delete(oldest)
      }
      entry = { broken: 0, lastBrokenAt: now, ruledOutUntil: 0 }
      this.entries.set(peerId, entry)
    }
    entry.broken++
    entry.lastBrokenAt = now
    if (entry.broken >= MAX_BROKEN_PROMISES) entry.ruledOutUntil = now + RULED_OUT_MS
    return { code: 'SYNC_PROMISE_BROKEN', ruledOut: entry.ruledOutUntil > now }
  }

  /** The peer served what it advertised: its past broken promises are forgiven. */
  kept(peerId: string, now: number): void {
    const entry = this.entries.get(peerId)
    if (entry !== undefined && entry.ruledOutUntil <= now) this.entries.delete(peerId)
  }

  isRuledOut(peerId: string, now: number): boolean {
    const entry = this.entries.get(peerId)
    return entry !== undefined && entry.ruledOutUntil > now
  }

  brokenCount(peerId: string): number {
    return this.entries.get(peerId)?.broken ?? 0
  }

  prune(now: number): void {
    for (const [peerId, entry] of [...this.entries]) {
      if (entry.ruledOutUntil <= now && now - entry.lastBrokenAt >= BROKEN_PROMISE_MEMORY_MS) this.entries.delete(peerId)
    }
  }

  get size(): number {
    return this.entries.size
  }
}
