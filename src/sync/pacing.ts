/**
 * Client-side pacing: a syncing node keeps each peer's published per-peer quotas
 * (src/peers/rate-limit.ts, the same table the peer enforces) with a safety margin, so an honest
 * sync never trips a peer's rate limit — it waits on the injected timers instead of being
 * refused and charged. A request costs what the server will charge it (`syncRequestCost`), plus
 * one `syncRequests` token.
 */
import type { SyncRequest, SyncResponse } from '../codec/wire.ts'
import { BUSY_BACKOFF_MS, type LimitName, type LimitRule, MAX_LIMITER_KEYS, PACING_MARGIN, RATE_LIMITED_ANSWER, RATE_LIMITS, RateLimiterGCRA, pacedQuota, syncRequestCost, unusedLeaves } from '../peers/rate-limit.ts'
import { type Runtime, sleep } from '../util/clock.ts'
import type { SyncRequestTransport } from './interfaces.ts'

const MAX_BUSY_PEERS = MAX_LIMITER_KEYS

export class PacedTransport implements SyncRequestTransport {
  /** BOUNDED: one limiter per limit name; each bounded by MAX_LIMITER_KEYS peers. */
  private readonly limiters = new Map<LimitName, RateLimiterGCRA>()
  /** Peers that said "busy", until when. BOUNDED: entries expire and go on the next request to them; capped at MAX_BUSY_PEERS. */
  private readonly busyUntil = new Map<string, number>()

  constructor(
    private readonly inner: SyncRequestTransport,
    private readonly runtime: Runtime,
    rules: Record<LimitName, LimitRule> = RATE_LIMITS,
    margin = PACING_MARGIN,
  ) {
    for (const name of Object.keys(rules) as LimitName[]) this.limiters.set(name, new RateLimiterGCRA(pacedQuota(rules[name].perPeer, margin)))
  }

  async request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse> {
    const { limit, cost } = syncRequestCost(request)
    const charges: Array<[RateLimiterGCRA, number]> = []
    const byItems = this.limiters.get(limit)
    const byCount = this.limiters.get('syncRequests')
    if (byItems !== undefined) charges.push([byItems, cost])
    if (byCount !== undefined) charges.push([byCount, 1])
    for (;;) {
      const now = this.runtime.clock()
      const busyMs = (this.busyUntil.get(peerId) ?? now) - now
      if (busyMs <= 0) this.busyUntil.delete(peerId)
      const waitMs = Math.max(0, busyMs, ...charges.map(([limiter, amount]) => limiter.delayMs(peerId, amount, now)))
      if (waitMs === 0) break
      await sleep(this.runtime.timers, Math.ceil(waitMs))
    }
    const now = this.runtime.clock()
    for (const [limiter, amount] of charges) limiter.allows(peerId, Math.min(amount, limiter.burst), now)
    const response = await this.inner.request(peerId, request, timeoutMs)
    if (response.type === 'error' && response.message === RATE_LIMITED_ANSWER) {
      if (this.busyUntil.size >= MAX_BUSY_PEERS) this.busyUntil.clear()
      this.busyUntil.set(peerId, this.runtime.clock() + BUSY_BACKOFF_MS)
    }
    // The peer gives back what a getLeaves did not use (refundLeaves); we do the same.
    const unused = unusedLeaves(request, response.type === 'leaves' ? response.leaves.length : 0)
    if (unused > 0) byItems?.refund(peerId, Math.min(unused, byItems.burst), this.runtime.clock())
    return response
  }

  syncBytesReceived(): number {
    return this.inner.syncBytesReceived()
  }
}

/**
 * Our anti-entropy status polls, kept within each peer's published `status` quota (with the
 * margin), as PacedTransport keeps its sync quotas. A poll the peer refuses costs both sides: the
 * peer charges us RATE_LIMITED, and we, seeing the stream close unanswered, charge it
 * STATUS_FAILED. Two validators polling each other faster than the quota (a short
 * `statusIntervalMs` with one staked peer) graylisted each other within a minute, stopped
 * hearing each other's blocks and votes, and split the chain for as long as the scores took to
 * decay. The round polls only peers whose budget has room (the handshake's exchange, which this
 * does not see, fits in the margin).
 */
export class StatusPacing {
  /** BOUNDED: MAX_LIMITER_KEYS peers (RateLimiterGCRA). */
  private readonly limiter: RateLimiterGCRA
  /** Peers whose last poll failed: not polled again before `until`. BOUNDED: MAX_LIMITER_KEYS; the oldest goes first. */
  private readonly backoff = new Map<string, { until: number; failures: number }>()

  constructor(rules: Record<LimitName, LimitRule> = RATE_LIMITS, margin = PACING_MARGIN) {
    this.limiter = new RateLimiterGCRA(pacedQuota(rules.status.perPeer, margin))
  }

  /** Whether a status poll to `peerId` now stays within its quota and past its backoff. */
  allows(peerId: string, now: number): boolean {
    const backoff = this.backoff.get(peerId)
    if (backoff !== undefined && now < backoff.until) return false
    return this.limiter.wouldAllow(peerId, 1, now)
  }

  /** A status poll to `peerId` goes out now. */
  spend(peerId: string, now: number): void {
    this.limiter.allows(peerId, 1, now)
  }

  /**
   * The poll failed: the peer is not polled again for STATUS_BACKOFF_FIRST_MS, doubled per
   * failure in a row up to STATUS_BACKOFF_MAX_MS. A peer that ignores us (it graylisted us,
   * rightly or not) refuses every poll; polled at the round's pace, each refusal charged
   * STATUS_FAILED would graylist it back within seconds — one side's penalty made mutual.
   */
  failed(peerId: string, now: number): void {
    const failures = (this.backoff.get(peerId)?.failures ?? 0) + 1
    this.backoff.delete(peerId)
    if (this.backoff.size >= MAX_LIMITER_KEYS) {
      const oldest = this.backoff.keys().next().value
      if (oldest !== undefined) this.backoff.delete(oldest)
    }
    this.backoff.set(peerId, { until: now + Math.min(STATUS_BACKOFF_MAX_MS, STATUS_BACKOFF_FIRST_MS * 2 ** (failures - 1)), failures })
  }

  /** The poll was answered: no backoff. */
  answered(peerId: string): void {
    this.backoff.delete(peerId)
  }
}

/** After a failed status poll, that peer is not polled again for this long (doubled per failure in a row). */
export const STATUS_BACKOFF_FIRST_MS = 5_000
/** The longest backoff: a peer that never answers is polled about once a minute. */
export const STATUS_BACKOFF_MAX_MS = 60_000
