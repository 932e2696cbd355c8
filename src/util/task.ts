/**
 * A repeating task that never overlaps itself and stops on `stop()`: the next run is scheduled
 * only after the previous one finished, on the injected `Timers`. Each run gets an abort signal
 * that fires on `stop()`, so a long run can end mid-flight. Errors are handed to `onError`, never
 * thrown into the event loop.
 */
import { type TimerHandle, type Timers, systemTimers } from './clock.ts'

export class RepeatingTask {
  private timer: TimerHandle | undefined
  private running = false
  private stopped = true
  private abort = new AbortController()

  constructor(
    private readonly run: (signal: AbortSignal) => Promise<void> | void,
    private readonly intervalMs: number | (() => number),
    private readonly onError: (error: unknown) => void,
    private readonly timers: Timers = systemTimers,
  ) {}

  start(initialDelayMs?: number): void {
    if (!this.stopped) return
    this.stopped = false
    this.abort = new AbortController()
    this.schedule(initialDelayMs ?? this.nextDelay())
  }

  private nextDelay(): number {
    return typeof this.intervalMs === 'function' ? this.intervalMs() : this.intervalMs
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    this.timer = this.timers.schedule(Math.max(0, delayMs), () => void this.tick())
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return
    this.running = true
    try {
      await this.run(this.abort.signal)
    } catch (error) {
      if (!this.stopped) this.onError(error)
    } finally {
      this.running = false
      this.schedule(this.nextDelay())
    }
  }

  stop(): void {
    this.stopped = true
    this.abort.abort()
    this.timer?.cancel()
    this.timer = undefined
  }
}
