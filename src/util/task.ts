/**
 * A repeating task that never overlaps itself and stops on `stop()`: the next run is scheduled
 * only after the previous one finished. Errors are handed to `onError`, never thrown into the
 * event loop.
 */
export class RepeatingTask {
  private timer: NodeJS.Timeout | undefined
  private running = false
  private stopped = true

  constructor(
    private readonly run: () => Promise<void> | void,
    private readonly intervalMs: number | (() => number),
    private readonly onError: (error: unknown) => void,
  ) {}

  start(initialDelayMs?: number): void {
    if (!this.stopped) return
    this.stopped = false
    this.schedule(initialDelayMs ?? this.nextDelay())
  }

  private nextDelay(): number {
    return typeof this.intervalMs === 'function' ? this.intervalMs() : this.intervalMs
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => void this.tick(), Math.max(0, delayMs))
    this.timer.unref?.()
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return
    this.running = true
    try {
      await this.run()
    } catch (error) {
      this.onError(error)
    } finally {
      this.running = false
      this.schedule(this.nextDelay())
    }
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }
}
