/**
 * Rate limits (docs/protocol.md, "Defences"): a GCRA limiter asked a pure question —
 * `allows(key, cost, now)` — before a message is decoded or a request served (discv5's
 * `rateLimiterGRCA`). Every protocol and message kind has a per-peer quota; sync serving also
 * has a node-wide quota, so all peers together cannot take more than a set share of the node.
 * A request costs what it asks for (a `getLeaves` of 65,536 costs 65,536). A refusal by the
 * peer's own quota is the peer's offence (RATE_LIMITED); a refusal by the node-wide quota is not
 * (someone else spent it), the request is just refused. Sans-IO: time is passed in.
 */
import type { FrameItems, SyncRequest } from '../codec/wire.ts'
import type { OffenceCode } from './offences.ts'
import { UNSTAKED_CLASS_SHARE } from './selection.ts'

/** `tokens` per `periodMs`, with a burst of up to `burst` (default: `tokens`) at once. */
export interface Quota {
  tokens: number
  periodMs: number
  /** Most tokens spent at once from a full bucket (≤ tokens); the rate stays tokens per period. */
  burst?: number
}

/** A quota's burst: at most its tokens, at least one token. */
export function burstOf(quota: Quota): number {
  return Math.max(1, Math.min(quota.tokens, quota.burst ?? quota.tokens))
}

/**
 * Generic cell rate algorithm: each key stores its theoretical arrival time (TAT); a cost is
 * allowed while TAT + cost × interval stays within one period of now. Memory: one number per key.
 */
export class RateLimiterGCRA {
  /** BOUNDED: maxKeys; keys whose bucket is full again (TAT ≤ now) are dropped first. */
  private readonly tats = new Map<string, number>()
  private readonly intervalMs: number
  /** How far ahead of now a key's TAT may run: the burst, in time. */
  private readonly toleranceMs: number
  readonly burst: number

  constructor(
    readonly quota: Quota,
    private readonly maxKeys: number = MAX_LIMITER_KEYS,
  ) {
    if (!(quota.tokens > 0) || !(quota.periodMs > 0)) throw new RangeError('a quota needs tokens > 0 and periodMs > 0')
    this.intervalMs = quota.periodMs / quota.tokens
    this.burst = burstOf(quota)
    this.toleranceMs = this.burst * this.intervalMs
  }

  /** Whether `cost` would be allowed now, without spending it. */
  wouldAllow(key: string, cost: number, now: number): boolean {
    if (cost <= 0) return true
    const tat = Math.max(this.tats.get(key) ?? now, now)
    return tat + cost * this.intervalMs - now <= this.toleranceMs + 1e-9
  }

  /** Spends `cost` tokens of `key` whether or not they are there (a debt: `available` is 0 until it is paid off). */
  charge(key: string, cost: number, now: number): void {
    if (cost > 0) this.spend(key, cost, now)
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

  /**
   * How long until `cost` would be allowed (0: now). A cost above the quota's burst is treated as
   * the whole burst, so a client pacing itself never waits forever.
   */
  delayMs(key: string, cost: number, now: number): number {
    const effective = Math.min(cost, this.burst)
    if (effective <= 0) return 0
    const tat = Math.max(this.tats.get(key) ?? now, now)
    return Math.max(0, tat + effective * this.intervalMs - now - this.toleranceMs)
  }

  /** Gives back `amount` tokens spent by `key` (never more than its bucket holds). */
  refund(key: string, amount: number, now: number): void {
    const tat = this.tats.get(key)
    if (tat === undefined || amount <= 0) return
    this.tats.set(key, Math.max(now, tat - amount * this.intervalMs))
  }

  /** Tokens available to `key` now (net_peers shows this as the rate-limit state). */
  available(key: string, now: number): number {
    const tat = Math.max(this.tats.get(key) ?? now, now)
    return Math.max(0, Math.floor((this.toleranceMs - (tat - now)) / this.intervalMs + 1e-9))
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

/** Leaves a `getLeaves` was charged for and did not get (0 for any other request). */
export function unusedLeaves(request: SyncRequest, served: number): number {
  if (request.type !== 'getLeaves') return 0
  return Math.max(0, syncRequestCost(request).cost - Math.max(1, served))
}

/** The `error` answer of a refused sync request: a client retries later (it is not "cannot serve"). */
export const RATE_LIMITED_ANSWER = 'rate limited'

/**
 * After a "rate limited" answer the client asks that peer again no sooner than this (SyncPacing);
 * the server holds it to that (BusyWindows): a request arriving within it, past what the client
 * may have had in flight, ignores the answer.
 */
export const BUSY_BACKOFF_MS = 1_000
/** Requests a client may still have in flight to a peer when its "rate limited" answer arrives (the serve queue's per-peer cap). */
export const BUSY_GRACE_REQUESTS = 8

/** Limit of keys in one limiter: far above the admitted-peer cap (50), so only a bug reaches it. */
export const MAX_LIMITER_KEYS = 1_024

/**
 * Share of a peer's quota a sender allows itself (slack for clock skew and the peer's own
 * accounting): sync requests (src/sync/pacing.ts), status polls and gossip items
 * (src/gossip/engine.ts) keep to it, so an honest node never trips its peers' limits.
 */
export const PACING_MARGIN = 0.8

/** The share of a peer's quota we allow ourselves: `margin` of its tokens and of its burst, at least one each. */
export function pacedQuota(quota: Quota, margin: number): Quota {
  return { tokens: Math.max(1, Math.floor(quota.tokens * margin)), periodMs: quota.periodMs, burst: Math.max(1, Math.floor(burstOf(quota) * margin)) }
}

/** Per peer: announcements tracked (inv items not yet fetched or dropped) — Bitcoin Core's txrequest cap. */
export const MAX_TRACKED_ANNOUNCEMENTS_PER_PEER = 5_000
/** Per peer: our requests in flight to it — Bitcoin Core's cap; more would just queue behind a slow peer. */
export const MAX_REQUESTS_IN_FLIGHT_PER_PEER = 100

/** What a limit is on: a protocol's messages, its bytes, or one sync request kind's items. */
export type LimitName =
  | 'gossipMessages'
  | 'gossipBytes'
  | 'gossipInvItems'
  | 'gossipTxItems'
  | 'status'
  | 'syncRequests'
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

/**
 * Every inbound limit, per peer and (for sync serving) node-wide. Each per-peer quota admits one
 * maximal request. Node-wide quotas keep their whole period as burst, except getLeaves (the
 * dearest to serve, ~4 µs a leaf): a smaller burst everywhere (a quarter was tried) left honest
 * unstaked joiners that share a server answered "busy" until their header requests gave up; how
 * much of one moment serving takes is bounded by the ServeQueue.
 */
export const RATE_LIMITS: Record<LimitName, LimitRule> = {
  gossipMessages: { perPeer: { tokens: 200, periodMs: SECOND }, why: 'a busy honest link batches announcements every few ms: 200 frames/s is ample' },
  gossipBytes: { perPeer: { tokens: 16 * 1024 * 1024, periodMs: SECOND }, why: 'two maximal (8 MiB) blocks per second; bytes are charged from the frame header, before decoding' },
  gossipInvItems: { perPeer: { tokens: 8_192, periodMs: SECOND, burst: 1_024 }, why: 'hashes announced: far above honest tx rates, and it bounds the announcement tracker’s work (a maximal inv of 1,024 at once, ~9 ms of tracking; 4,096 let one flooder take ~35 ms before its first refusal)' },
  gossipTxItems: { perPeer: { tokens: 8_192, periodMs: SECOND, burst: 4_096 }, why: 'txs pushed or delivered: a peer relays each tx once, and a full devnet slot holds 5,000; counted from the header, so a flood of txs we would refuse costs no decoding past it' },
  status: { perPeer: { tokens: 10, periodMs: TEN_SECONDS }, why: 'one exchange on connect and one per anti-entropy round (every few seconds)' },
  syncRequests: { perPeer: { tokens: 200, periodMs: TEN_SECONDS, burst: 12 }, why: 'request streams, counted before decoding: an honest sync asks a few big requests per second with at most ~8 in flight (burst 12), a spammer thousands' },
  syncBytes: { perPeer: { tokens: 256 * 1024, periodMs: SECOND }, why: 'request frames: a few maximal (64 KiB) requests per second' },
  getHeaders: { perPeer: { tokens: 2_048, periodMs: TEN_SECONDS }, node: { tokens: 8_192, periodMs: TEN_SECONDS }, why: 'charged its max (≤ 512): four full batches per 10 s per peer' },
  getBlocks: { perPeer: { tokens: 2_048, periodMs: TEN_SECONDS }, node: { tokens: 8_192, periodMs: TEN_SECONDS }, why: 'charged its hash count (≤ 128): a catch-up from one peer at ~160 blocks/s (Lodestar: 1,024 per 10 s); the node cap bounds all peers together' },
  getNodes: { perPeer: { tokens: 16_384, periodMs: TEN_SECONDS }, node: { tokens: 65_536, periodMs: TEN_SECONDS }, why: 'charged its hash count (≤ 1,024): a state sync descends a few thousand nodes per round' },
  getLeaves: {
    perPeer: { tokens: 262_144, periodMs: TEN_SECONDS, burst: 131_072 },
    node: { tokens: 1_048_576, periodMs: TEN_SECONDS, burst: 3 * 65_536 },
    why: 'charged its max (≤ 65,536): an honest joiner pacing itself fetches ~26k accounts/s from one peer (1M in ~40 s) in pages of 8,192, so two maximal pages at once are plenty (a burst of four let each of 20 spammers spend ~12 sync streams, ~2 ms of libp2p work each, before it was cut off); the node cap bounds all peers together, its burst one maximal page for the unstaked class (a third): a full 10 s burst let 20 spammers have ~40 pages (~1.4 s of trie walk) built at once',
  },
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

/** A limiter's answer: allowed, or refused (with the refused cost) by the peer's quota (an offence) or the node's (not one). */
export type LimitDecision = { allowed: true } | { allowed: false; limit: LimitName; scope: 'peer' | 'node'; cost: number }

/**
 * Zero-stake askers as a class get this share of every node-wide sync-serving quota; staked
 * askers keep the rest for themselves (a reserved share). The selection rule's third: identities
 * are free, so however many unstaked peers ask, together they cannot take more.
 */
export const UNSTAKED_SERVING_SHARE = UNSTAKED_CLASS_SHARE

/** The node-wide quota of one class: `share` of the node quota (at least one token), its burst in the same share. */
export function classQuota(node: Quota, staked: boolean): Quota {
  const share = (amount: number): number => {
    const unstaked = Math.max(1, Math.floor(amount * UNSTAKED_SERVING_SHARE))
    return staked ? Math.max(1, amount - unstaked) : unstaked
  }
  return { tokens: share(node.tokens), periodMs: node.periodMs, burst: share(burstOf(node)) }
}

/** Every inbound limit of a node: one GCRA per limit for peers, one per node-wide quota. */
export class InboundLimits {
  /** BOUNDED: one per LimitName. */
  private readonly perPeer = new Map<LimitName, RateLimiterGCRA>()
  /** BOUNDED: one per LimitName with a node quota; keys 'staked' and 'unstaked' (classQuota each). */
  private readonly node = new Map<LimitName, { staked: RateLimiterGCRA; unstaked: RateLimiterGCRA }>()

  constructor(rules: Record<LimitName, LimitRule> = RATE_LIMITS) {
    for (const name of Object.keys(rules) as LimitName[]) {
      const rule = rules[name]
      this.perPeer.set(name, new RateLimiterGCRA(rule.perPeer))
      if (rule.node !== undefined) this.node.set(name, { staked: new RateLimiterGCRA(classQuota(rule.node, true), 1), unstaked: new RateLimiterGCRA(classQuota(rule.node, false), 1) })
    }
  }

  /**
   * Charges `cost` to `peerId` under `limit`, and to the node if that limit has a node quota.
   * Refused by its own quota: nothing is spent. Refused by the node's: the node spends nothing,
   * but the peer's quota is still charged — asking costs the asker, so a crowd of identities
   * cannot hammer a full node-wide quota for free; past its own budget each one is RATE_LIMITED.
   * The node-wide quota is split by class (`classQuota`): an unstaked asker draws on the
   * unstaked share only, a staked one on the reserved rest.
   */
  check(peerId: string, limit: LimitName, cost: number, now: number, staked = false): LimitDecision {
    const peer = this.perPeer.get(limit)
    if (peer === undefined) return { allowed: true }
    if (!peer.wouldAllow(peerId, cost, now)) return { allowed: false, limit, scope: 'peer', cost }
    peer.allows(peerId, cost, now)
    const node = this.node.get(limit)
    if (node !== undefined && !(staked ? node.staked : node.unstaked).allows(NODE_KEY, cost, now)) return { allowed: false, limit, scope: 'node', cost }
    return { allowed: true }
  }

  /**
   * Frames charged from their header alone, before decoding, all or nothing: each pair is a
   * limit and its cost (a gossip frame: one message, its bytes, the inv hashes its length implies).
   */
  checkAll(peerId: string, charges: ReadonlyArray<readonly [LimitName, number]>, now: number): LimitDecision {
    for (const [limit, cost] of charges) {
      const limiter = this.perPeer.get(limit)
      if (limiter !== undefined && !limiter.wouldAllow(peerId, cost, now)) return { allowed: false, limit, scope: 'peer', cost }
    }
    for (const [limit, cost] of charges) this.perPeer.get(limit)?.allows(peerId, cost, now)
    return { allowed: true }
  }

  /** A gossip frame from its header (before decoding): one message, `bytes` bytes, and the inv hashes and txs its header implies. */
  checkGossipFrame(peerId: string, bytes: number, now: number, items: FrameItems = { inv: 0, txs: 0 }): LimitDecision {
    return this.checkAll(
      peerId,
      [
        ['gossipMessages', 1],
        ['gossipBytes', bytes],
        ['gossipInvItems', items.inv],
        ['gossipTxItems', items.txs],
      ],
      now,
    )
  }

  /** A sync request frame from its header (before decoding): one request and `bytes` bytes. */
  checkSyncFrame(peerId: string, bytes: number, now: number): LimitDecision {
    return this.checkAll(
      peerId,
      [
        ['syncRequests', 1],
        ['syncBytes', bytes],
      ],
      now,
    )
  }

  /** A decoded sync request, charged its items (after its frame passed `checkSyncFrame`). */
  checkSyncRequest(peerId: string, request: SyncRequest, now: number, staked = false): LimitDecision {
    const { limit, cost } = syncRequestCost(request)
    return this.check(peerId, limit, cost, now, staked)
  }

  /**
   * A served `getLeaves` was charged its `max` before it ran (a request costs what it asks for);
   * the part it did not use is given back, so the quota bounds the leaves actually served and an
   * honest joiner whose subtrees are smaller than a page is not slowed by pages it never got.
   */
  refundLeaves(peerId: string, request: SyncRequest, served: number, now: number, staked = false): void {
    const unused = unusedLeaves(request, served)
    if (unused <= 0) return
    this.perPeer.get('getLeaves')?.refund(peerId, unused, now)
    const node = this.node.get('getLeaves')
    if (node !== undefined) (staked ? node.staked : node.unstaked).refund(NODE_KEY, unused, now)
  }

  /** Tokens left in a node-wide quota for one class of askers (0 where the limit has none). */
  nodeAvailable(limit: LimitName, staked: boolean, now: number): number {
    const node = this.node.get(limit)
    return node === undefined ? 0 : (staked ? node.staked : node.unstaked).available(NODE_KEY, now)
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

/**
 * Peers told "rate limited" because the node as a whole was busy (a node-wide quota or the serve
 * queue full — not the peer's fault, so not an offence): for BUSY_BACKOFF_MS each may send at most
 * BUSY_GRACE_REQUESTS more sync requests (already in flight when the answer reached it). An honest
 * client backs off and never exceeds that; a spammer that asks again at once is refused and
 * charged like a hit on its own `syncRequests` quota — so twenty identities hammering a busy node
 * are cut off as fast as one hammering its own quota. A peer charged RATE_LIMIT_FLOOD has shown it
 * ignores refusals: it loses the grace (`revokeGrace`), since its next request was not in flight
 * but sent after a refusal. Pure: time is passed in.
 */
export class BusyWindows {
  /** BOUNDED: maxEntries (admitted peers, whose entries go when they leave); the oldest goes first. */
  private readonly windows = new Map<string, { until: number; asked: number }>()

  constructor(private readonly maxEntries = MAX_LIMITER_KEYS) {}

  /** We answered `peerId` "rate limited" for want of a node-wide share: its backoff starts (or goes on). */
  toldBusy(peerId: string, now: number): void {
    const window = this.windows.get(peerId)
    if (window !== undefined && now < window.until) {
      window.until = now + BUSY_BACKOFF_MS
      return
    }
    this.windows.delete(peerId)
    if (this.windows.size >= this.maxEntries) {
      const oldest = this.windows.keys().next().value
      if (oldest !== undefined) this.windows.delete(oldest)
    }
    this.windows.set(peerId, { until: now + BUSY_BACKOFF_MS, asked: 0 })
  }

  /** A sync request from `peerId` arrived: false when it ignores a busy answer (refuse and charge it). */
  allows(peerId: string, now: number): boolean {
    const window = this.windows.get(peerId)
    if (window === undefined) return true
    if (now >= window.until) {
      this.windows.delete(peerId)
      return true
    }
    window.asked++
    return window.asked <= BUSY_GRACE_REQUESTS
  }

  /** `peerId` flooded its own quota: within its busy window (if any), no request is in-flight grace any more. */
  revokeGrace(peerId: string): void {
    const window = this.windows.get(peerId)
    if (window !== undefined) window.asked = Math.max(window.asked, BUSY_GRACE_REQUESTS)
  }

  forget(peerId: string): void {
    this.windows.delete(peerId)
  }

  get size(): number {
    return this.windows.size
  }
}

/** RATE_LIMITED is charged at most once per limit per this period: an honest burst costs one mid penalty, not one per frame. */
export const RATE_LIMIT_CHARGE_INTERVAL_MS = 500
/** Limit of (peer, limit) charge records: far above admitted peers × limits. */
export const MAX_LIMIT_CHARGE_KEYS = 4_096

/** One (peer, limit) record: when RATE_LIMITED was last charged, and what was refused in the current period. */
export interface LimitChargeState {
  lastChargedAt: number | undefined
  windowStart: number
  refused: number
}

/**
 * The pure step: a refusal of `cost` by the peer's own `quota`. RATE_LIMITED at most once per
 * RATE_LIMIT_CHARGE_INTERVAL_MS; and each time the cost refused within one period adds up to a
 * whole quota — the peer asked for at least twice its budget: a flood, not a burst —
 * RATE_LIMIT_FLOOD. So what a flooder costs us is bounded by its quota: past it, it is cut off
 * within a few quotas' worth of refusals, however fast it sends.
 */
export function chargeRefusal(state: LimitChargeState | undefined, quota: Quota, cost: number, now: number): { state: LimitChargeState; charge: OffenceCode | undefined } {
  const fresh = state === undefined || now - state.windowStart >= quota.periodMs || now < state.windowStart
  const next: LimitChargeState = fresh ? { lastChargedAt: state?.lastChargedAt, windowStart: now, refused: 0 } : { ...state }
  next.refused += Math.max(1, cost)
  const budget = burstOf(quota)
  if (next.refused >= budget) {
    next.refused -= budget
    next.lastChargedAt = now
    return { state: next, charge: 'RATE_LIMIT_FLOOD' }
  }
  if (next.lastChargedAt === undefined || now - next.lastChargedAt >= RATE_LIMIT_CHARGE_INTERVAL_MS || now < next.lastChargedAt) {
    next.lastChargedAt = now
    return { state: next, charge: 'RATE_LIMITED' }
  }
  return { state: next, charge: undefined }
}

/** Per (peer, limit) refusal records: what each refusal by a peer's own quota costs it (`chargeRefusal`). */
export class LimitCharges {
  /** BOUNDED: MAX_LIMIT_CHARGE_KEYS; a peer's records go when it leaves (`forget`), the oldest when full. */
  private readonly records = new Map<string, LimitChargeState>()

  constructor(private readonly rules: Record<LimitName, LimitRule> = RATE_LIMITS) {}

  /** A refusal of `cost` under `limit` by `peerId`'s own quota: the offence to charge, if any. */
  refused(peerId: string, limit: LimitName, cost: number, now: number): OffenceCode | undefined {
    const key = `${peerId}\u0000${limit}`
    const { state, charge } = chargeRefusal(this.records.get(key), this.rules[limit].perPeer, cost, now)
    if (!this.records.has(key) && this.records.size >= MAX_LIMIT_CHARGE_KEYS) {
      const oldest = this.records.keys().next().value
      if (oldest !== undefined) this.records.delete(oldest)
    }
    this.records.set(key, state)
    return charge
  }

  forget(peerId: string): void {
    for (const key of [...this.records.keys()]) if (key.startsWith(`${peerId}\u0000`)) this.records.delete(key)
  }

  get size(): number {
    return this.records.size
  }
}

/** A sync answer's read deadline starts at this much, for any answer (a round trip and a slow start). */
export const ANSWER_DEADLINE_BASE_MS = 2_000
/** …plus its size at this read rate: a peer that reads slower than 1 MiB/s holds our buffers too long. */
export const MIN_ANSWER_READ_BYTES_PER_S = 1_048_576

/** How long a peer has to read an answer of `bytes` (closing its end) before SYNC_ANSWER_UNREAD: adaptive, capped at `maxMs`. */
export function answerDeadlineMs(bytes: number, maxMs: number): number {
  return Math.min(maxMs, ANSWER_DEADLINE_BASE_MS + Math.ceil((bytes * 1_000) / MIN_ANSWER_READ_BYTES_PER_S))
}
