/**
 * Big leaf ranges, served one at a time (or a few). Such an answer is collected in slices with a
 * yield between them; but every request being collected adds a slice to each turn of the event
 * loop, so twenty spammers' requests served at once make every turn twenty slices long and an
 * honest gossip frame waits behind all of them. (Every other sync request is one bounded task,
 * answered at once, not queued here.) Here at most `concurrency` requests are collected at once;
 * the rest wait their turn in a bounded FIFO (at most `maxPerPeer` of one peer), and a request
 * that finds it full is refused as busy (`RATE_LIMITED_ANSWER`: the client backs off and
 * asks again; not an offence — the queue is everyone's). Quotas bound how much is served over
 * time; this bounds how much of one moment serving may take.
 */

export interface ServeQueueLimits {
  /** Requests collected at once. */
  concurrency: number
  /** Requests waiting, all peers together. */
  maxQueued: number
  /** Requests of one peer waiting or being collected. */
  maxPerPeer: number
}

export const SERVE_QUEUE_LIMITS: ServeQueueLimits = {
  // One: each turn of the event loop gives serving at most one slice (~0.5 ms); the gossip path
  // takes several turns, so every extra slice per turn is paid several times by each honest tx.
  concurrency: 1,
  // A join paces itself to a few range requests in flight per peer; 64 covers a dozen joiners at once.
  maxQueued: 64,
  // An honest client keeps at most ~7 requests in flight to one peer (state sync 3, chain sync 2, mempool, finality).
  maxPerPeer: 8,
}

interface Waiting {
  peerId: string
  start: () => void
}

export class ServeQueue {
  private running = 0
  /** BOUNDED: limits.maxQueued. */
  private readonly waiting: Waiting[] = []
  /** BOUNDED: peers with a request waiting or running (≤ maxQueued + concurrency). */
  private readonly perPeer = new Map<string, number>()

  constructor(private readonly limits: ServeQueueLimits = SERVE_QUEUE_LIMITS) {}

  /**
   * Runs `job` for `peerId` when a slot is free; `undefined` at once when the peer already has
   * `maxPerPeer` requests here or the queue is full (busy: refuse the request).
   */
  run<T>(peerId: string, job: () => T | Promise<T>): Promise<T> | undefined {
    const mine = this.perPeer.get(peerId) ?? 0
    if (mine >= this.limits.maxPerPeer) return undefined
    if (this.running >= this.limits.concurrency && this.waiting.length >= this.limits.maxQueued) return undefined
    this.perPeer.set(peerId, mine + 1)
    const started = this.running < this.limits.concurrency ? Promise.resolve() : new Promise<void>((start) => this.waiting.push({ peerId, start }))
    if (this.running < this.limits.concurrency) this.running++
    return started.then(job).finally(() => this.done(peerId))
  }

  private done(peerId: string): void {
    const left = (this.perPeer.get(peerId) ?? 1) - 1
    if (left <= 0) this.perPeer.delete(peerId)
    else this.perPeer.set(peerId, left)
    const next = this.waiting.shift()
    if (next === undefined) this.running--
    else next.start()
  }

  /** Requests being collected and waiting (metrics, tests). */
  get size(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length }
  }
}
