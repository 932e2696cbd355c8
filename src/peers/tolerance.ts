/**
 * Tolerance for noise (docs/protocol.md, "Defences"): honest peers send a few duplicates
 * (racing pushes), a stray unsolicited answer (ours timed out first) and the odd undelivered
 * announcement (the tx left their mempool). Each such event is free up to a tolerance per window;
 * a message with events past it is charged its offence code — once, or, for a code counted per
 * item (`eventsPerCharge`), once per that many items past the tolerance, so that a message of 256
 * useless txs costs what 256 single-tx messages would, not what one does. Fixed windows: cheap,
 * and a flood is caught within one window.
 */
import type { OffenceCode } from './offences.ts'

export interface ToleranceRule {
  /** Events per window that cost nothing. */
  free: number
  windowMs: number
  /** One line: why this much is free. */
  why: string
  /** Counted per item: one charge per this many events past the tolerance in one message (default: one charge per message). */
  eventsPerCharge?: number
  /** Most charges one message can draw (with eventsPerCharge). */
  maxChargesPerMessage?: number
}

/** The noise codes that are charged only past a tolerance; every other code is charged each time. */
export const TOLERANCES = {
  GOSSIP_DUPLICATE: { free: 50, windowMs: 10_000, why: 'a push racing an announcement makes a few copies per new object; 50 per 10 s is a busy honest link' },
  GOSSIP_UNSOLICITED: { free: 5, windowMs: 10_000, why: 'an answer that arrives after our request timed out and moved on looks unsolicited' },
  GOSSIP_NOT_DELIVERED: { free: 10, windowMs: 60_000, why: 'a tx can leave an honest mempool (mined, evicted) between its inv and our getdata' },
  SYNC_REQUEST_FAILED: { free: 3, windowMs: 60_000, why: 'a slow link times out now and then; persistent failure is not honest service' },
  STATUS_FAILED: { free: 3, windowMs: 60_000, why: 'a busy peer misses a poll now and then, and one that ignores us refuses them (polls back off: ~1 a minute)' },
  TX_IGNORED: {
    free: 1_000,
    windowMs: 10_000,
    why: 'counted per tx: txs a block included or replaced while they were in flight come back ignored; 100 a second is a busy honest link',
    // Past the tolerance, a charge per 12 ignored txs (~0.15 ms of our work for nothing), at most
    // −20 per message: a flooder of full frames (256) is graylisted (−40) within two of them.
    eventsPerCharge: 12,
    maxChargesPerMessage: 20,
  },
  TX_UNPAYABLE: {
    free: 100,
    windowMs: 10_000,
    why: 'counted per tx: a relay admitted the tx while its sender could pay, so only a block spending that balance meanwhile makes one; none in 60,000 transfers at 1,350 tx/s on a 4-node devnet',
    // As TX_IGNORED past the tolerance: a flood of full frames of unfunded txs is graylisted
    // within three frames (768 txs) instead of after ~1,500.
    eventsPerCharge: 12,
    maxChargesPerMessage: 20,
  },
} as const satisfies Partial<Record<OffenceCode, ToleranceRule>>

export type TolerantCode = keyof typeof TOLERANCES

/** One key's count in its current window. */
export interface ToleranceState {
  windowStart: number
  count: number
}

/**
 * The pure step: counts `count` events (one message's worth, default 1) at `now`; `charges` says
 * how many times to charge this message: 0 within the tolerance, else 1, or for a rule counted per
 * item one per `eventsPerCharge` of its events past the tolerance (at most `maxChargesPerMessage`).
 */
export function tolerate(state: ToleranceState | undefined, rule: ToleranceRule, now: number, count = 1): { state: ToleranceState; charges: number } {
  const fresh = state === undefined || now - state.windowStart >= rule.windowMs || now < state.windowStart
  const next: ToleranceState = fresh ? { windowStart: now, count } : { windowStart: state.windowStart, count: state.count + count }
  const past = Math.min(count, next.count - rule.free)
  if (past <= 0) return { state: next, charges: 0 }
  if (rule.eventsPerCharge === undefined) return { state: next, charges: 1 }
  return { state: next, charges: Math.min(rule.maxChargesPerMessage ?? Infinity, Math.ceil(past / rule.eventsPerCharge)) }
}

/** Limit of (peer, code) windows tracked. */
export const MAX_TOLERANCE_KEYS = 4_096

/** Per-peer tolerance windows, kept across reconnects until their window ends. */
export class ToleranceCounter {
  /** BOUNDED: MAX_TOLERANCE_KEYS; expired windows pruned first, then the oldest. */
  private readonly windows = new Map<string, ToleranceState>()

  /** Counts `count` `code` events (one message) from `peerId`: how many times to charge it (0: free). */
  note(peerId: string, code: TolerantCode, now: number, count = 1): number {
    const key = `${code}\u0000${peerId}`
    const rule = TOLERANCES[code]
    const { state, charges } = tolerate(this.windows.get(key), rule, now, count)
    if (!this.windows.has(key) && this.windows.size >= MAX_TOLERANCE_KEYS) this.prune(now)
    if (!this.windows.has(key) && this.windows.size >= MAX_TOLERANCE_KEYS) {
      const oldest = this.windows.keys().next().value
      if (oldest !== undefined) this.windows.delete(oldest)
    }
    this.windows.set(key, state)
    return charges
  }

  /** Drops windows that have ended (called periodically). */
  prune(now: number): void {
    for (const [key, state] of [...this.windows]) {
      const code = key.slice(0, key.indexOf('\u0000')) as TolerantCode
      if (now - state.windowStart >= TOLERANCES[code].windowMs) this.windows.delete(key)
    }
  }

  get size(): number {
    return this.windows.size
  }
}
