/**
 * Rate limits (docs/protocol.md, "Defences"): a GCRA limiter asked a pure question —
 * `allows(key, cost, now)` — before a message is decoded or a request served (discv5's
 * `rateLimiterGRCA`). Every protocol and message kind has a per-peer quota; sync serving also
 * has a node-wide quota, so all peers together cannot take more than a set share of the node.
 * A request costs what it asks for (a `getLeaves` of 65,536 costs 65,536). A refusal by the
 * peer's own quota is the peer's offence (RATE_LIMITED); a refusal by the node-wide quota is not
 * (someone else spent it), the request is just refused. Sans-IO: time is passed in.
 */
import type { SyncRequest } from '../codec/wire.ts'

/** `tokens` per `periodMs`, with a burst of up to `tokens` at once. */
export interface Quota {
  tokens: number
  periodMs: number
}

/**
 * Generic cell rate algorithm: each key stores its theoretical arrival time (TAT); a cost is
 * allowed while TAT + cost × interval stays within one period of now. Memory: one number per key.
 */
export class RateLimiterGCRA {
  /** BOUNDED: maxKeys; keys whose bucket is full again (TAT ≤ now) are dropped first. */
  private readonly tats = new Map<string, number>()
  private readonly intervalMs: number

  constructor(
    readonly quota: Quota,
    private readonly maxKeys: number = MAX_LIMITER_KEYS,
  ) {
    if (!(quota.tokens > 0) || !(quota.periodMs > 0)) throw new RangeError('a quota needs tokens > 0 and periodMs > 0')
    this.intervalMs = quota.periodMs / quota.tokens
  }

  /** Whether `cost` would be allowed now, without spending it. */
  wouldAllow(key: string, cost: number, now: number): boolean {
    if (cost <= 0) return true
    const tat = Math.max(this.tats.get(key) ?? now, now)
    return tat + cost * this.intervalMs - now <= this.quota.periodMs
  }

  /** Spends `cost` tokens of `key` if they are there; false (nothing spent) otherwise. */
  allows(key: string, cost: number, now: number): boolean {
    if (!this.wouldAllow(key, cost, now)) return false
    if (cost > 0) this.spend(key, cost, now)
    return true
  }

  private spend(key: string, cost: number, now: number): void {
    const tat = Math.max(this.tats.get(key) ?? now, now)
    if (!this.tats.has(key) && this.tats.size >= this.maxKeys) this.prune(now)
    if (!this.tats.has(key) && this.tats.size >= this.maxKeys) {
      // Still full: the key closest to a full bucket loses the least by being forgotten.
      let fullest: string | undefined
      let lowest = Infinity
      for (const [k, t] of this.tats) {
        if (t < lowest) {
          lowest = t
          fullest = k
        }
      }
      if (fullest !== undefined) this.tats.delete(fullest)
    }
    this.tats.set(key, tat + cost * this.intervalMs)
  }

  /** Tokens available to `key` now (net_peers shows this as the rate-limit state). */
  available(key: string, now: number): number {
    const tat = Math.max(this.tats.get(key) ?? now, now)
    return Math.max(0, Math.floor((this.quota.periodMs - (tat - now)) / this.intervalMs + 1e-9))
  }

  /** Forgets `key` (the peer left). */
  forget(key: string): void {
    this.tats.delete(key)
  }

  /** Drops keys whose bucket has refilled: they are equivalent to absent ones. */
  prune(now: number): void {
    for (const [key, tat] of [...this.tats]) if (tat <= now) this.tats.delete(key)
  }

  get size(): number {
    return this.tats.size
  }
}

/** Limit of keys in one limiter: far above the admitted-peer cap (50), so only a bug reaches it. */
export const MAX_LIMITER_KEYS = 1_024

/** Per peer: announcements tracked (inv items not yet fetched or dropped) — Bitcoin Core's txrequest cap. */
export const MAX_TRACKED_ANNOUNCEMENTS_PER_PEER = 5_000
/** Per peer: our requests in flight to it — Bitcoin Core's cap; more would just queue behind a slow peer. */
export const MAX_REQUESTS_IN_FLIGHT_PER_PEER = 100

/** What a limit is on: a protocol's messages, its bytes, or one sync request kind's items. */
export type LimitName =
  | 'gossipMessages'
  | 'gossipBytes'
  | 'gossipInvItems'
  | 'status'
  | 'syncBytes'
  | 'getHeaders'
  | 'getBlocks'
  | 'getNodes'
  | 'getLeaves'
  | 'getMempoolDigest'
  | 'getMempoolIds'
  | 'getTxs'
  | 'getFinality'

export interface LimitRule {
  perPeer: Quota
  /** All peers together (sync serving only): the node's share of work for others. */
  node?: Quota
  /** One line: why this much. */
  why: string
}

const SECOND = 1_000
const TEN_SECONDS = 10_000

/** Every inbound limit, per peer and (for sync serving) node-wide. Each per-peer quota admits one maximal request. */
export const RATE_LIMITS: Record<LimitName, LimitRule> = {
  gossipMessages: { perPeer: { tokens: 200, periodMs: SECOND }, why: 'a busy honest link batches announcements every few ms: 200 frames/s is ample' },
  gossipBytes: { perPeer: { tokens: 16 * 1024 * 1024, periodMs: SECOND }, why: 'two maximal (8 MiB) blocks per second; bytes are charged from the frame header, before decoding' },
  gossipInvItems: { perPeer: { tokens: 8_192, periodMs: SECOND }, why: 'hashes announced: far above honest tx rates, and it bounds the announcement tracker’s work' },
  status: { perPeer: { tokens: 10, periodMs: TEN_SECONDS }, why: 'one exchange on connect and one per anti-entropy round (every few seconds)' },
  syncBytes: { perPeer: { tokens: 256 * 1024, periodMs: SECOND }, why: 'request frames: a few maximal (64 KiB) requests per second' },
  getHeaders: { perPeer: { tokens: 2_048, periodMs: TEN_SECONDS }, node: { tokens: 8_192, periodMs: TEN_SECONDS }, why: 'charged its max (≤ 512): four full batches per 10 s per peer' },
  getBlocks: { perPeer: { tokens: 512, periodMs: TEN_SECONDS }, node: { tokens: 2_048, periodMs: TEN_SECONDS }, why: 'charged its hash count (≤ 128): blocks are the dearest to read and send (Lodestar: 1,024 per 10 s)' },
  getNodes: { perPeer: { tokens: 16_384, periodMs: TEN_SECONDS }, node: { tokens: 65_536, periodMs: TEN_SECONDS }, why: 'charged its hash count (≤ 1,024): a state sync descends a few thousand nodes per round' },
  getLeaves: { perPeer: { tokens: 131_072, periodMs: TEN_SECONDS }, node: { tokens: 524_288, periodMs: TEN_SECONDS }, why: 'charged its max (≤ 65,536): two maximal ranges per 10 s per peer' },
  getMempoolDigest: { perPeer: { tokens: 10, periodMs: TEN_SECONDS }, node: { tokens: 200, periodMs: TEN_SECONDS }, why: 'one per anti-entropy round' },
  getMempoolIds: { perPeer: { tokens: 1_024, periodMs: TEN_SECONDS }, node: { tokens: 8_192, periodMs: TEN_SECONDS }, why: 'charged its bucket count (≤ 256; each bucket may list many ids)' },
  getTxs: { perPeer: { tokens: 8_192, periodMs: TEN_SECONDS }, node: { tokens: 32_768, periodMs: TEN_SECONDS }, why: 'charged its id count (≤ 1,024)' },
  getFinality: { perPeer: { tokens: 20, periodMs: TEN_SECONDS }, node: { tokens: 400, periodMs: TEN_SECONDS }, why: 'a certificate (≤ 66 KiB) per join or status round; a few per peer' },
}

/** The limit a sync request falls under and what it costs: the items it asks for, at least 1. */
export function syncRequestCost(request: SyncRequest): { limit: LimitName; cost: number } {
  switch (request.type) {
    case 'getHeaders':
      return { limit: 'getHeaders', cost: Math.max(1, request.max) }
    case 'getBlocks':
      return { limit: 'getBlocks', cost: Math.max(1, request.hashes.length) }
    case 'getNodes':
      return { limit: 'getNodes', cost: Math.max(1, request.hashes.length) }
    case 'getLeaves':
      return { limit: 'getLeaves', cost: Math.max(1, request.max) }
    case 'getMempoolDigest':
      return { limit: 'getMempoolDigest', cost: 1 }
    case 'getMempoolIds':
      return { limit: 'getMempoolIds', cost: Math.max(1, request.buckets.length) }
    case 'getTxs':
      return { limit: 'getTxs', cost: Math.max(1, request.ids.length) }
    case 'getFinality':
      return { limit: 'getFinality', cost: 1 }
  }
}

/** A limiter's answer: allowed, or refused by the peer's quota (an offence) or the node's (not one). */
export type LimitDecision = { allowed: true } | { allowed: false; limit: LimitName; scope: 'peer' | 'node' }

/** Every inbound limit of a node: one GCRA per limit for peers, one per node-wide quota. */
export class InboundLimits {
  /** BOUNDED: one per LimitName. */
  private readonly perPeer = new Map<LimitName, RateLimiterGCRA>()
  /** BOUNDED: one per LimitName with a node quota. */
  private readonly node = new Map<LimitName, RateLimiterGCRA>()

  constructor(rules: Record<LimitName, LimitRule> = RATE_LIMITS) {
    for (const name of Object.keys(rules) as LimitName[]) {
      const rule = rules[name]
      this.perPeer.set(name, new RateLimiterGCRA(rule.perPeer))
      if (rule.node !== undefined) this.node.set(name, new RateLimiterGCRA(rule.node, 1))
    }
  }

  /**
   * Charges `cost` to `peerId` under `limit`, and to the node if that limit has a node quota.
   * Refused by its own quota: nothing is spent. Refused by the node's: the node spends nothing,
   * but the peer's quota is still charged — asking costs the asker, so a crowd of identities
   * cannot hammer a full node-wide quota for free; past its own budget each one is RATE_LIMITED.
   */
  check(peerId: string, limit: LimitName, cost: number, now: number): LimitDecision {
    const peer = this.perPeer.get(limit)
    if (peer === undefined) return { allowed: true }
    if (!peer.wouldAllow(peerId, cost, now)) return { allowed: false, limit, scope: 'peer' }
    peer.allows(peerId, cost, now)
    const node = this.node.get(limit)
    if (node !== undefined && !node.allows(NODE_KEY, cost, now)) return { allowed: false, limit, scope: 'node' }
    return { allowed: true }
  }

  /** A gossip frame from its header (before decoding): one message and `bytes` bytes. */
  checkGossipFrame(peerId: string, bytes: number, now: number): LimitDecision {
    const messages = this.perPeer.get('gossipMessages')
    const byteLimit = this.perPeer.get('gossipBytes')
    if (messages !== undefined && !messages.wouldAllow(peerId, 1, now)) return { allowed: false, limit: 'gossipMessages', scope: 'peer' }
    if (byteLimit !== undefined && !byteLimit.wouldAllow(peerId, bytes, now)) return { allowed: false, limit: 'gossipBytes', scope: 'peer' }
    messages?.allows(peerId, 1, now)
    byteLimit?.allows(peerId, bytes, now)
    return { allowed: true }
  }

  /** A decoded sync request, charged its items (after its frame passed `syncBytes`). */
  checkSyncRequest(peerId: string, request: SyncRequest, now: number): LimitDecision {
    const { limit, cost } = syncRequestCost(request)
    return this.check(peerId, limit, cost, now)
  }

  /** Tokens left per limit for a peer (net_peers). */
  state(peerId: string, now: number): Record<LimitName, number> {
    const out = {} as Record<LimitName, number>
    for (const [name, limiter] of this.perPeer) out[name] = limiter.available(peerId, now)
    return out
  }

  /** The peer left: its buckets go (reconnecting gains at most one burst, and costs a handshake). */
  forget(peerId: string): void {
    for (const limiter of this.perPeer.values()) limiter.forget(peerId)
  }

  prune(now: number): void {
    for (const limiter of this.perPeer.values()) limiter.prune(now)
  }
}

const NODE_KEY = 'node'
