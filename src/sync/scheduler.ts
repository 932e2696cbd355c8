/**
 * One request scheduler for chain sync and state sync: per-peer in-flight slots, peers excluded
 * for this run, and a wake-up for the driver loop when a request settles or new work appears.
 * Time only through the injected `Timers`.
 */
import { type TimerHandle, type Timers } from '../util/clock.ts'

export class RequestScheduler {
  /** BOUNDED: by the peers offered as candidates (admitted peers), entries dropped at zero. */
  private readonly inFlight = new Map<string, number>()
  /** BOUNDED: by the peers offered as candidates during one run. */
  private readonly excluded = new Set<string>()
  private total = 0
  private waiter: { resolve: () => void; timer: TimerHandle } | undefined

  constructor(
    private readonly timers: Timers,
    readonly maxInFlightPerPeer: number,
  ) {}

  exclude(peerId: string): void {
    this.excluded.add(peerId)
  }

  isExcluded(peerId: string): boolean {
    return this.excluded.has(peerId)
  }

  get totalInFlight(): number {
    return this.total
  }

  /**
   * Fills free slots: for each candidate not excluded, while it has a free slot and `take()`
   * yields work, `start(peerId, work)` sends it (and must return the request's promise).
   */
  fill<W>(candidates: readonly string[], take: () => W | undefined, start: (peerId: string, work: W) => Promise<unknown>): void {
    for (const peerId of candidates) {
      if (this.excluded.has(peerId)) continue
      while ((this.inFlight.get(peerId) ?? 0) < this.maxInFlightPerPeer) {
        const work = take()
        if (work === undefined) return
        this.inFlight.set(peerId, (this.inFlight.get(peerId) ?? 0) + 1)
        this.total++
        void start(peerId, work)
          .catch(() => undefined)
          .finally(() => {
            const left = (this.inFlight.get(peerId) ?? 1) - 1
            if (left <= 0) this.inFlight.delete(peerId)
            else this.inFlight.set(peerId, left)
            this.total--
            this.wake()
          })
      }
    }
  }

  /** Wakes the driver waiting in `waitForWake`. */
  wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    this.waiter = undefined
    waiter.timer.cancel()
    waiter.resolve()
  }

  /** Resolves on the next `wake()` or after `timeoutMs`, whichever comes first. */
  waitForWake(timeoutMs: number): Promise<void> {
    this.wake()
    return new Promise((resolve) => {
      const timer = this.timers.schedule(timeoutMs, () => this.wake())
      this.waiter = { resolve, timer }
    })
  }
}
