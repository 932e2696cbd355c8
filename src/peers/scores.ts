/**
 * Peer scoring: the one place misbehaviour turns into consequences (docs/protocol.md,
 * "Defences"). Every offence code (src/peers/offences.ts) has a fixed delta by level, every
 * reward code a small capped bonus; scores decay toward 0 with a half-life, so an honest peer's
 * occasional fault is forgotten while a persistent offender crosses the graylist, disconnect and
 * ban thresholds in turn. Entries are keyed by peer id and outlive the connection, so a
 * reconnect gains nothing; bans double on repeat, freeze decay while they last, can be exported
 * to the store and imported after a restart, and enough banned identities from one address group
 * ban the group. Sans-IO: time is passed in.
 */
import { type OffenceCode, type PenaltyLevel, type RewardCode, OFFENCES, REWARDS, offenceLevel } from './offences.ts'

export type { PenaltyLevel } from './offences.ts'

/** Score deltas by level, as in Lodestar's peer manager. */
export const PENALTY: Record<PenaltyLevel, number> = {
  /** Provably malicious: forged state, forged header chain, invalid block. One is enough to ban. */
  fatal: -100,
  /**
   * Invalid transaction, undecodable message, oversized frame: two of them disconnect. One alone
   * stays above the graylist, so the second is always decoded and seen: at −20 the first two left
   * a peer graylisted at −40, its later frames dropped undecoded, and whether a third was seen
   * before that depended on the victim's timing.
   */
  high: -30,
  /** Timeouts, unanswered requests, broken promises, rate-limit hits: ten of them disconnect. */
  mid: -5,
  /** Duplicates and other noise an honest but slow peer produces (only past a tolerance). */
  low: -1,
}

/** Lowest total score: a floor keeps a banned peer's recovery time bounded (Lighthouse's range). */
export const SCORE_MIN = -100
/** Highest total score (rewards are capped far below it by MAX_REWARD_SCORE). */
export const SCORE_MAX = 100
/** Cap on the reward part: goodwill absorbs at most two mid offences and never a fatal one. */
export const MAX_REWARD_SCORE = 10
/**
 * At or below: the peer's gossip and requests are ignored and it earns no rewards (gossipsub's
 * graylist). Below one high offence (with 10 to spare for noise), above the disconnect by two mid ones.
 */
export const GRAYLIST_SCORE = -40
/** At or below: disconnected and not re-admitted until the score decays above it. */
export const DISCONNECT_SCORE = -50
/** At or below (or any fatal offence): banned for the current ban duration. */
export const BAN_SCORE = -100
/** First ban's length. */
export const BAN_MS = 30 * 60 * 1000
/** Each repeat ban doubles the length, up to this (a day: long enough to be costly, short enough to forgive a fixed bug). */
export const MAX_BAN_MS = 24 * 60 * 60 * 1000
/** How long an expired ban is remembered, so the next one is longer. */
export const BAN_MEMORY_MS = 7 * 24 * 60 * 60 * 1000
/** Scores halve every this many ms (Lodestar's 10 min). */
export const SCORE_HALF_LIFE_MS = 10 * 60 * 1000
/** More than this many banned identities in one address group bans the group (Lighthouse: 5 per IP). */
export const MAX_BANNED_PER_ADDRESS_GROUP = 5
/** How long an address-group ban lasts: long enough to stop an identity factory, short enough for a shared NAT to recover. */
export const ADDRESS_GROUP_BAN_MS = 60 * 60 * 1000
/** A score this close to 0 is forgotten by `prune`. */
export const FORGET_BELOW_SCORE = 0.5
/** Limit of entries in the score table: the best-scored entries go first when full. */
export const MAX_SCORE_ENTRIES = 4_096
/** Limit of remembered peer bans (active or within BAN_MEMORY_MS). */
export const MAX_BAN_ENTRIES = 4_096
/** Limit of address-group bans. */
export const MAX_ADDRESS_GROUP_BANS = 1_024

/** Where a peer stands, for admission, gossip handling and `net_peers`. */
export type ScoreState = 'ok' | 'graylisted' | 'disconnect' | 'banned'

/** What to do right after an offence: the shell disconnects on 'disconnect' and 'ban'. */
export type ScoreVerdict = 'ok' | 'disconnect' | 'ban'

/** A `net_peers`-ready view of one peer's score. */
export interface ScoreView {
  /** penalty + reward, clamped to [SCORE_MIN, SCORE_MAX]. */
  score: number
  /** Decayed sum of penalties (≤ 0). */
  penalty: number
  /** Decayed sum of rewards, in [0, MAX_REWARD_SCORE]. */
  reward: number
  /** Offences by code since the entry was created. */
  offences: Partial<Record<OffenceCode, number>>
  /** Rewards by code since the entry was created. */
  rewards: Partial<Record<RewardCode, number>>
  state: ScoreState
  /** When the current ban ends (clock ms), if banned. */
  bannedUntil?: number
  /** How many times this peer id has been banned (within BAN_MEMORY_MS). */
  banCount: number
}

/** A ban as a plain JSON-safe record, for the store. */
export type BanRecord =
  | { kind: 'peer'; peerId: string; untilMs: number; count: number; addressGroup?: string }
  | { kind: 'addressGroup'; addressGroup: string; untilMs: number }

interface ScoreEntry {
  penalty: number
  reward: number
  updatedAt: number
  /** BOUNDED: by the number of offence codes. */
  offences: Map<OffenceCode, number>
  /** BOUNDED: by the number of reward codes. */
  rewards: Map<RewardCode, number>
}

interface PeerBan {
  until: number
  count: number
  addressGroup: string | undefined
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value))
}

/** The ban length for the `count`-th ban: BAN_MS doubled per repeat, capped at MAX_BAN_MS. */
export function banDurationMs(count: number): number {
  return Math.min(MAX_BAN_MS, BAN_MS * Math.pow(2, Math.max(0, count - 1)))
}

/** The state a total score puts a peer in (bans aside). */
export function stateOfScore(score: number): ScoreState {
  if (score <= BAN_SCORE) return 'banned'
  if (score <= DISCONNECT_SCORE) return 'disconnect'
  if (score <= GRAYLIST_SCORE) return 'graylisted'
  return 'ok'
}

export class PeerScores {
  /** BOUNDED: MAX_SCORE_ENTRIES; entries whose score decayed to ~0 are pruned, the best-scored go first when full. */
  private readonly entries = new Map<string, ScoreEntry>()
  /** BOUNDED: MAX_BAN_ENTRIES; expire BAN_MEMORY_MS after the ban ends. */
  private readonly bans = new Map<string, PeerBan>()
  /** BOUNDED: MAX_ADDRESS_GROUP_BANS; expire at their end. */
  private readonly groupBans = new Map<string, number>()
  /** Last address group seen per peer id. BOUNDED: MAX_SCORE_ENTRIES, oldest first. */
  private readonly groups = new Map<string, string>()

  /** Decays the entry to `now`; time inside a ban does not count (bans freeze decay). */
  private decay(peerId: string, entry: ScoreEntry, now: number): void {
    let from = entry.updatedAt
    const ban = this.bans.get(peerId)
    if (ban !== undefined && ban.until > from) from = Math.min(now, ban.until)
    const elapsed = now - from
    if (elapsed > 0) {
      const factor = Math.pow(0.5, elapsed / SCORE_HALF_LIFE_MS)
      entry.penalty *= factor
      entry.reward *= factor
    }
    if (now > entry.updatedAt) entry.updatedAt = now
  }

  private entry(peerId: string, now: number): ScoreEntry {
    let entry = this.entries.get(peerId)
    if (entry === undefined) {
      if (this.entries.size >= MAX_SCORE_ENTRIES) this.prune(now)
      if (this.entries.size >= MAX_SCORE_ENTRIES) this.dropBestScored(now)
      entry = { penalty: 0, reward: 0, updatedAt: now, offences: new Map(), rewards: new Map() }
      this.entries.set(peerId, entry)
      return entry
    }
    this.decay(peerId, entry, now)
    return entry
  }

  /** Full table: forgetting a well-behaved peer costs it only its reward, never an offender its penalty. */
  private dropBestScored(now: number): void {
    let best: string | undefined
    let bestScore = -Infinity
    for (const peerId of this.entries.keys()) {
      const score = this.score(peerId, now)
      if (score > bestScore) {
        bestScore = score
        best = peerId
      }
    }
    if (best !== undefined) this.entries.delete(best)
  }

  private total(entry: ScoreEntry): number {
    return clamp(entry.penalty + entry.reward, SCORE_MIN, SCORE_MAX)
  }

  /** Records the peer's address group (from its remote address), for address-group bans. */
  noteAddressGroup(peerId: string, addressGroup: string): void {
    this.groups.delete(peerId)
    if (this.groups.size >= MAX_SCORE_ENTRIES) {
      const oldest = this.groups.keys().next().value
      if (oldest !== undefined) this.groups.delete(oldest)
    }
    this.groups.set(peerId, addressGroup)
  }

  score(peerId: string, now: number): number {
    const entry = this.entries.get(peerId)
    if (entry === undefined) return 0
    this.decay(peerId, entry, now)
    return this.total(entry)
  }

  /** Charges `code`'s penalty `times` times (a tolerated code counted per item); the verdict says whether to disconnect or ban. */
  penalise(peerId: string, code: OffenceCode, now: number, times = 1): ScoreVerdict {
    const entry = this.entry(peerId, now)
    const level = offenceLevel(code)
    entry.offences.set(code, (entry.offences.get(code) ?? 0) + 1)
    if (this.isBanned(peerId, now)) return 'ban'
    if (level === 'fatal') {
      // Provably malicious: no goodwill survives it.
      entry.reward = 0
      entry.penalty = SCORE_MIN
    } else {
      entry.penalty = clamp(entry.penalty + PENALTY[level] * times, SCORE_MIN, 0)
    }
    const total = this.total(entry)
    if (total <= BAN_SCORE) {
      this.ban(peerId, now)
      return 'ban'
    }
    return total <= DISCONNECT_SCORE ? 'disconnect' : 'ok'
  }

  /** Credits `code`'s reward, capped; a graylisted or banned peer earns nothing (only decay lifts it). */
  reward(peerId: string, code: RewardCode, now: number): void {
    if (this.state(peerId, now) !== 'ok') return
    const entry = this.entry(peerId, now)
    entry.rewards.set(code, (entry.rewards.get(code) ?? 0) + 1)
    entry.reward = Math.min(MAX_REWARD_SCORE, entry.reward + REWARDS[code].points)
  }

  private ban(peerId: string, now: number): void {
    const previous = this.bans.get(peerId)
    const count = previous !== undefined && previous.until + BAN_MEMORY_MS > now ? previous.count + 1 : 1
    const addressGroup = this.groups.get(peerId) ?? previous?.addressGroup
    this.setBan(peerId, { until: now + banDurationMs(count), count, addressGroup }, now)
    if (addressGroup !== undefined && this.bannedInGroup(addressGroup, now) > MAX_BANNED_PER_ADDRESS_GROUP) {
      this.setGroupBan(addressGroup, now + ADDRESS_GROUP_BAN_MS, now)
    }
  }

  private setBan(peerId: string, ban: PeerBan, now: number): void {
    this.bans.delete(peerId)
    if (this.bans.size >= MAX_BAN_ENTRIES) this.pruneBans(now)
    if (this.bans.size >= MAX_BAN_ENTRIES) {
      // Still full of live bans: the one ending first goes.
      let first: string | undefined
      let firstUntil = Infinity
      for (const [id, { until }] of this.bans) {
        if (until < firstUntil) {
          firstUntil = until
          first = id
        }
      }
      if (first !== undefined) this.bans.delete(first)
    }
    this.bans.set(peerId, ban)
  }

  private setGroupBan(addressGroup: string, until: number, now: number): void {
    this.groupBans.delete(addressGroup)
    if (this.groupBans.size >= MAX_ADDRESS_GROUP_BANS) this.pruneBans(now)
    if (this.groupBans.size >= MAX_ADDRESS_GROUP_BANS) {
      const oldest = this.groupBans.keys().next().value
      if (oldest !== undefined) this.groupBans.delete(oldest)
    }
    this.groupBans.set(addressGroup, until)
  }

  private bannedInGroup(addressGroup: string, now: number): number {
    let count = 0
    for (const ban of this.bans.values()) if (ban.addressGroup === addressGroup && ban.until > now) count++
    return count
  }

  isBanned(peerId: string, now: number): boolean {
    const ban = this.bans.get(peerId)
    return ban !== undefined && ban.until > now
  }

  isAddressGroupBanned(addressGroup: string, now: number): boolean {
    const until = this.groupBans.get(addressGroup)
    return until !== undefined && until > now
  }

  /** ok / graylisted / disconnect / banned: what admission and gossip handling ask. */
  state(peerId: string, now: number): ScoreState {
    if (this.isBanned(peerId, now)) return 'banned'
    return stateOfScore(this.score(peerId, now))
  }

  /** Gossip and requests from this peer are ignored (graylisted or worse). */
  isGraylisted(peerId: string, now: number): boolean {
    return this.state(peerId, now) !== 'ok'
  }

  /** Offence counts by code (net_peers). */
  reasons(peerId: string): Partial<Record<OffenceCode, number>> {
    return Object.fromEntries(this.entries.get(peerId)?.offences ?? [])
  }

  /** Everything `net_peers` shows about a peer's score. */
  view(peerId: string, now: number): ScoreView {
    const entry = this.entries.get(peerId)
    if (entry !== undefined) this.decay(peerId, entry, now)
    const ban = this.bans.get(peerId)
    const banCount = ban !== undefined && ban.until + BAN_MEMORY_MS > now ? ban.count : 0
    const view: ScoreView = {
      score: entry === undefined ? 0 : this.total(entry),
      penalty: entry?.penalty ?? 0,
      reward: entry?.reward ?? 0,
      offences: Object.fromEntries(entry?.offences ?? []),
      rewards: Object.fromEntries(entry?.rewards ?? []),
      state: this.state(peerId, now),
      banCount,
    }
    if (ban !== undefined && ban.until > now) view.bannedUntil = ban.until
    return view
  }

  /**
   * Weight factor for stake-weighted choices: 0 for a graylisted or worse peer (never chosen),
   * else in [0.1, 1 + MAX_REWARD_SCORE/100], so penalised peers are chosen less.
   */
  selectionFactor(peerId: string, now: number): number {
    if (this.state(peerId, now) !== 'ok') return 0
    return Math.max(0.1, 1 + this.score(peerId, now) / 100)
  }

  /** Bans by hand (admin RPC): as a ban by score, with its growing duration and address-group count. */
  banNow(peerId: string, now: number): void {
    const entry = this.entry(peerId, now)
    entry.reward = 0
    entry.penalty = SCORE_MIN
    this.ban(peerId, now)
  }

  /** Lifts a ban by hand (admin RPC); the score is left to decay. */
  unban(peerId: string): boolean {
    return this.bans.delete(peerId)
  }

  unbanAddressGroup(addressGroup: string): boolean {
    return this.groupBans.delete(addressGroup)
  }

  /** Live and remembered bans as JSON-safe records, for the store. */
  exportBans(now: number): BanRecord[] {
    this.pruneBans(now)
    const out: BanRecord[] = []
    for (const [peerId, ban] of this.bans) {
      const record: BanRecord = { kind: 'peer', peerId, untilMs: ban.until, count: ban.count }
      if (ban.addressGroup !== undefined) record.addressGroup = ban.addressGroup
      out.push(record)
    }
    for (const [addressGroup, until] of this.groupBans) out.push({ kind: 'addressGroup', addressGroup, untilMs: until })
    return out
  }

  /**
   * Restores bans from the store. Input is checked record by record (a damaged store must not
   * ban forever): malformed records are skipped, a ban ends at most MAX_BAN_MS from `now`, a
   * count is capped. A banned peer's score is set to the floor so decay resumes from there.
   * Returns how many records were taken.
   */
  importBans(records: unknown, now: number): number {
    if (!Array.isArray(records)) return 0
    let taken = 0
    for (const record of records.slice(0, MAX_BAN_ENTRIES + MAX_ADDRESS_GROUP_BANS) as unknown[]) {
      if (typeof record !== 'object' || record === null) continue
      const r = record as Record<string, unknown>
      if (typeof r.untilMs !== 'number' || !Number.isFinite(r.untilMs)) continue
      const until = Math.min(r.untilMs, now + MAX_BAN_MS)
      if (r.kind === 'peer' && typeof r.peerId === 'string' && r.peerId.length > 0 && r.peerId.length <= 128) {
        if (until + BAN_MEMORY_MS <= now) continue
        const count = typeof r.count === 'number' && Number.isInteger(r.count) ? clamp(r.count, 1, 64) : 1
        const addressGroup = typeof r.addressGroup === 'string' && r.addressGroup.length <= 64 ? r.addressGroup : undefined
        this.setBan(r.peerId, { until, count, addressGroup }, now)
        if (until > now) {
          const entry = this.entry(r.peerId, now)
          entry.penalty = SCORE_MIN
          entry.reward = 0
        }
        taken++
      } else if (r.kind === 'addressGroup' && typeof r.addressGroup === 'string' && r.addressGroup.length <= 64) {
        if (until <= now) continue
        this.setGroupBan(r.addressGroup, until, now)
        taken++
      }
    }
    return taken
  }

  private pruneBans(now: number): void {
    for (const [peerId, ban] of [...this.bans]) if (ban.until + BAN_MEMORY_MS <= now) this.bans.delete(peerId)
    for (const [group, until] of [...this.groupBans]) if (until <= now) this.groupBans.delete(group)
  }

  /** Forgets peers whose score has decayed to nothing and bans that have expired (called periodically). */
  prune(now: number): void {
    for (const [peerId, entry] of [...this.entries]) {
      this.decay(peerId, entry, now)
      if (Math.abs(this.total(entry)) < FORGET_BELOW_SCORE && !this.isBanned(peerId, now)) this.entries.delete(peerId)
    }
    this.pruneBans(now)
  }

  /** Entries held (tests and metrics). */
  get size(): number {
    return this.entries.size
  }
}

/** Every offence code with its level, delta and why: the source of docs/protocol.md's score table. */
export function scoreTable(): { code: OffenceCode; level: PenaltyLevel; delta: number; why: string }[] {
  return (Object.keys(OFFENCES) as OffenceCode[]).map((code) => ({
    code,
    level: OFFENCES[code].level,
    delta: PENALTY[OFFENCES[code].level],
    why: OFFENCES[code].why,
  }))
}
