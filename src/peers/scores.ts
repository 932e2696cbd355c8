/**
 * Peer scoring: the one place misbehaviour turns into consequences (docs/protocol.md,
 * "Peer scoring"). Every offence code (src/peers/offences.ts) has a fixed delta by level; scores
 * decay toward 0 with a half-life, so an honest peer's occasional fault is forgotten while a
 * persistent offender crosses the disconnect threshold, then the ban threshold.
 */
import { type OffenceCode, type PenaltyLevel, offenceLevel } from './offences.ts'

export type { PenaltyLevel } from './offences.ts'

/** Score deltas by level, as in Lodestar's peer manager. */
export const PENALTY: Record<PenaltyLevel, number> = {
  /** Provably malicious: forged state, forged header chain, invalid block. One is enough to ban. */
  fatal: -100,
  /** Invalid transaction, undecodable message, oversized frame. */
  high: -20,
  /** Timeouts, unanswered requests, broken promises. */
  mid: -5,
  /** Duplicates and other noise an honest but slow peer produces. */
  low: -1,
}

/** Below this the peer is disconnected. */
export const DISCONNECT_SCORE = -50
/** Below this the peer is banned for BAN_MS. */
export const BAN_SCORE = -100
export const BAN_MS = 30 * 60 * 1000
/** Scores halve every this many ms. */
export const SCORE_HALF_LIFE_MS = 10 * 60 * 1000
/** Limit of entries in the score table: the mildest-scored entries go first when full. */
export const MAX_SCORE_ENTRIES = 4_096

interface ScoreEntry {
  score: number
  updatedAt: number
  /** Offence counts by code: bounded by the number of codes. */
  reasons: Map<OffenceCode, number>
}

export type ScoreVerdict = 'ok' | 'disconnect' | 'ban'

export class PeerScores {
  /** BOUNDED: MAX_SCORE_ENTRIES; entries whose score decayed to ~0 are pruned. */
  private readonly entries = new Map<string, ScoreEntry>()
  /** BOUNDED: by expiry (BAN_MS) and MAX_SCORE_ENTRIES. */
  private readonly bans = new Map<string, number>()

  private entry(peerId: string, now: number): ScoreEntry {
    let entry = this.entries.get(peerId)
    if (entry === undefined) {
      if (this.entries.size >= MAX_SCORE_ENTRIES) this.prune(now)
      if (this.entries.size >= MAX_SCORE_ENTRIES) this.dropMildest(now)
      entry = { score: 0, updatedAt: now, reasons: new Map() }
      this.entries.set(peerId, entry)
    }
    const elapsed = now - entry.updatedAt
    if (elapsed > 0) {
      entry.score *= Math.pow(0.5, elapsed / SCORE_HALF_LIFE_MS)
      entry.updatedAt = now
    }
    return entry
  }

  private dropMildest(now: number): void {
    let mildest: string | undefined
    let mildestScore = -Infinity
    for (const [peerId, entry] of this.entries) {
      const score = entry.score * Math.pow(0.5, (now - entry.updatedAt) / SCORE_HALF_LIFE_MS)
      if (score > mildestScore) {
        mildestScore = score
        mildest = peerId
      }
    }
    if (mildest !== undefined) this.entries.delete(mildest)
  }

  score(peerId: string, now: number): number {
    return this.entries.has(peerId) ? this.entry(peerId, now).score : 0
  }

  /** Charges `code`'s penalty; the verdict says whether to disconnect or ban. */
  penalise(peerId: string, code: OffenceCode, now: number): ScoreVerdict {
    const entry = this.entry(peerId, now)
    entry.score += PENALTY[offenceLevel(code)]
    entry.reasons.set(code, (entry.reasons.get(code) ?? 0) + 1)
    if (entry.score <= BAN_SCORE) {
      if (this.bans.size >= MAX_SCORE_ENTRIES) this.prune(now)
      this.bans.set(peerId, now + BAN_MS)
      return 'ban'
    }
    return entry.score <= DISCONNECT_SCORE ? 'disconnect' : 'ok'
  }

  isBanned(peerId: string, now: number): boolean {
    const until = this.bans.get(peerId)
    if (until === undefined) return false
    if (until <= now) {
      this.bans.delete(peerId)
      return false
    }
    return true
  }

  /** Offence counts by code (net_peers). */
  reasons(peerId: string): Partial<Record<OffenceCode, number>> {
    return Object.fromEntries(this.entries.get(peerId)?.reasons ?? [])
  }

  /** Weight factor in [0.1, 1] for stake-weighted choices: penalised peers are chosen less. */
  selectionFactor(peerId: string, now: number): number {
    const score = this.score(peerId, now)
    return Math.max(0.1, 1 + score / 100)
  }

  /** Forgets peers whose score has decayed to nothing and bans that have expired (called periodically). */
  prune(now: number): void {
    for (const peerId of [...this.entries.keys()]) {
      if (Math.abs(this.entry(peerId, now).score) < 0.5) this.entries.delete(peerId)
    }
    for (const [peerId, until] of [...this.bans]) if (until <= now) this.bans.delete(peerId)
  }
}
