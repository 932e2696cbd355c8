/**
 * Virtual time: a clock and `Timers` driven by an event queue, so the real engines run on
 * simulated time with no real timer. Events run in (time, insertion) order; after each one the
 * promise chains it started are allowed to settle before the next event runs, so async code
 * (block import, batched ingest) sees the same order on every run with the same seed.
 *
 * Settling costs one trip through the event loop (a setImmediate, ~µs). At simulator scale
 * (millions of events) `settle: 'timestamp'` settles once per distinct timestamp instead: every
 * event due at time t runs, then the promise chains they started settle (still at time t, so
 * what they schedule at t runs before the clock moves on). Deterministic either way.
 */
import type { Clock, TimerHandle, Timers } from '../util/clock.ts'
import { Heap } from '../util/heap.ts'

/** An event is its own handle (no closure per event: millions of them at simulator scale). */
class VirtualEvent implements TimerHandle {
  cancelled = false
  constructor(
    readonly at: number,
    readonly seq: number,
    readonly run: () => void,
  ) {}
  cancel(): void {
    this.cancelled = true
  }
}

interface Bucket {
  /** Run events are cleared (undefined) so they can be collected before the bucket is done. */
  events: Array<VirtualEvent | undefined>
  next: number
}

/**
 * Events ordered by (time, insertion): one FIFO bucket per distinct time and a heap of the
 * distinct times, so the heap work is per timestamp, not per event (at simulator scale many
 * events share a timestamp). Same order as one heap over (time, seq).
 */
class EventQueue {
  /** BOUNDED: one bucket per distinct pending time. */
  private readonly buckets = new Map<number, Bucket>()
  private readonly times = new Heap<number>((a, b) => a < b)
  size = 0

  push(event: VirtualEvent): void {
    let bucket = this.buckets.get(event.at)
    if (bucket === undefined) {
      bucket = { events: [], next: 0 }
      this.buckets.set(event.at, bucket)
      this.times.push(event.at)
    }
    bucket.events.push(event)
    this.size++
  }

  private front(): Bucket | undefined {
    for (;;) {
      const at = this.times.peek()
      if (at === undefined) return undefined
      const bucket = this.buckets.get(at) as Bucket
      if (bucket.next < bucket.events.length) return bucket
      this.buckets.delete(at)
      this.times.pop()
    }
  }

  peek(): VirtualEvent | undefined {
    const bucket = this.front()
    return bucket?.events[bucket.next]
  }

  pop(): VirtualEvent | undefined {
    const bucket = this.front()
    if (bucket === undefined) return undefined
    const event = bucket.events[bucket.next] as VirtualEvent
    bucket.events[bucket.next++] = undefined
    this.size--
    return event
  }
}

/** Lets every microtask and every setImmediate queued so far run (the domain's async steps). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export class VirtualTime {
  private current: number
  private seq = 0
  /** BOUNDED: by what the simulated nodes schedule (each engine's timers are themselves bounded). */
  private readonly queue = new EventQueue()
  /** Events run so far. */
  eventsRun = 0

  readonly clock: Clock = () => this.current
  readonly timers: Timers = {
    schedule: (delayMs, callback) => this.schedule(delayMs, callback),
  }

  /** 'event': settle after every event (default); 'timestamp': once per distinct event time. */
  readonly settleMode: 'event' | 'timestamp'
  /** Settles (event-loop trips) so far. */
  settles = 0

  constructor(startMs: number, options: { settle?: 'event' | 'timestamp' } = {}) {
    this.current = startMs
    this.settleMode = options.settle ?? 'event'
  }

  /** Whether to settle now, after an event ran: always per event; per timestamp when the clock is about to move. */
  private mustSettle(): boolean {
    if (this.settleMode === 'event') return true
    const next = this.queue.peek()
    return next === undefined || next.at > this.current
  }

  private settleNow(): Promise<void> {
    this.settles++
    return settle()
  }

  get now(): number {
    return this.current
  }

  get pending(): number {
    return this.queue.size
  }

  schedule(delayMs: number, callback: () => void): TimerHandle {
    const event = new VirtualEvent(this.current + Math.max(0, delayMs), this.seq++, callback)
    this.queue.push(event)
    return event
  }

  /** Runs every event due up to `untilMs` (then the clock reads `untilMs`). */
  async runUntil(untilMs: number): Promise<void> {
    await settle()
    for (;;) {
      const next = this.queue.peek()
      if (next === undefined || next.at > untilMs) break
      this.queue.pop()
      if (next.cancelled) continue
      this.current = next.at
      this.eventsRun++
      next.run()
      if (this.mustSettle()) await this.settleNow()
    }
    this.current = Math.max(this.current, untilMs)
  }

  /** Advances by `ms` of virtual time. */
  runFor(ms: number): Promise<void> {
    return this.runUntil(this.current + ms)
  }

  /**
   * Runs until `done()` holds (checked after every event) or `limitMs` of virtual time passed.
   * Returns whether it held.
   */
  async runUntilTrue(done: () => boolean, limitMs: number): Promise<boolean> {
    const deadline = this.current + limitMs
    await settle()
    if (done()) return true
    for (;;) {
      const next = this.queue.peek()
      if (next === undefined || next.at > deadline) break
      this.queue.pop()
      if (next.cancelled) continue
      this.current = next.at
      this.eventsRun++
      next.run()
      if (!this.mustSettle()) continue
      await this.settleNow()
      if (done()) return true
    }
    this.current = Math.max(this.current, deadline)
    return done()
  }
}
