/**
 * Peer scoring: the one place misbehaviour turns into consequences (docs/protocol.md,
 * "Peer scoring"). Every action has a fixed delta; scores decay toward 0 with a half-life, so
 * an honest peer's occasional fault is forgotten while a persistent offender crosses the
 * disconnect threshold, then the ban threshold.
 */

/** Score deltas by tolerance, as in Lodestar's peer manager. */
export const PENALTY = {
  /** Provably malicious: forged state, forged header chain, invalid block. One is enough to ban. */
  fatal: -100,
  /** Invalid transaction, undecodable message, oversized frame. */
  high: -20,
  /** Timeouts, unanswered requests, unsolicited responses. */
  mid: -5,
  /** Duplicates and other noise an honest but slow peer produces. */
  low: -1,
} as const

export type PenaltyLevel = keyof typeof PENALTY

/** Below this the peer is disconnected. */
export const DISCONNECT_SCORE = -50
/** Below this the peer is banned for BAN_MS. */
export const BAN_SCORE = -100
export const BAN_MS = 30 * 60 * 1000
/** Scores halve every this many ms. */
export const SCORE_HALF_LIFE_MS = 10 * 60 * 1000

interface ScoreEntry {
  score: number
  updatedAt: number
  /** Penalty counts by reason, for net_peers. */
  reasons: Map<string, number>
}

export type ScoreVerdict = 'ok' | 'disconnect' | 'ban'

export class PeerScores {
  /** Bounded: entries of disconnected peers are dropped once their score decays to ~0 (see prune). */
  private readonly entries = new Map<string, ScoreEntry>()
  /** Bounded by the number of banned peers (each expires after BAN_MS). */
  private readonly bans = new Map<string, number>()

  private entry(peerId: string, now: number): ScoreEntry {
    let entry = this.entries.get(peerId)
    if (entry === undefined) {
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

  score(peerId: string, now: number): number {
    return this.entries.has(peerId) ? this.entry(peerId, now).score : 0
  }

  penalise(peerId: string, level: PenaltyLevel, reason: string, now: number): ScoreVerdict {
    const entry = this.entry(peerId, now)
    entry.score += PENALTY[level]
    entry.reasons.set(reason, (entry.reasons.get(reason) ?? 0) + 1)
    if (entry.score <= BAN_SCORE) {
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

  reasons(peerId: string): Record<string, number> {
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
