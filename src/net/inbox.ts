/**
 * Fair inbound processing (Bitcoin Core's message handler: one message per peer per pass, round
 * robin). Frames from every peer's gossip stream wait in that peer's queue; a drain on the event
 * loop's check phase takes one frame from each peer in turn until a time budget is spent, then
 * yields, so I/O and timers run between slices. A peer that sends faster than we process fills
 * only its own queue: past `pauseBytes` its stream is paused (yamux stops granting it window, so
 * TCP pushes back on the sender), and its frames wait behind one frame of every other peer — a
 * flooder cannot hold the event loop or delay an honest peer's frame by more than one pass.
 */
import { performance } from 'node:perf_hooks'

/** How long one drain may run before it yields to I/O and timers: one honest frame waits at most about this per pass. */
export const INBOX_SLICE_MS = 4
/** Bytes queued for one peer before its stream is paused; it resumes below half. One maximal frame always gets in. */
export const INBOX_PAUSE_BYTES = 1024 * 1024

/** What the inbox needs of a stream: pause and resume its reading. */
export interface PausableSource {
  pause(): void
  resume(): void
}

interface PeerQueue {
  /** Frames, or the rest of a frame's work (`pushFront`: a big message handled in parts). */
  frames: Array<Uint8Array | (() => void)>
  bytes: number
  source: PausableSource | undefined
  paused: boolean
  process: (bytes: Uint8Array) => void
}

export class FairInbox {
  /** BOUNDED: one entry per peer with queued frames (peers are capped by the session table); each queue by pauseBytes plus what arrives while paused (the stream's read-buffer cap). */
  private readonly queues = new Map<string, PeerQueue>()
  private scheduled = false

  constructor(
    /** A frame whose processing threw (a bug, not the peer's input: decoding errors are handled by `process`). */
    private readonly onError: (peerId: string, error: unknown) => void,
    private readonly options: { sliceMs: number; pauseBytes: number } = { sliceMs: INBOX_SLICE_MS, pauseBytes: INBOX_PAUSE_BYTES },
  ) {}

  /** Queues one frame of `peerId` (read from `source`), to be handed to `process` in its turn. */
  push(peerId: string, bytes: Uint8Array, source: PausableSource | undefined, process: (bytes: Uint8Array) => void): void {
    let queue = this.queues.get(peerId)
    if (queue === undefined) {
      queue = { frames: [], bytes: 0, source, paused: false, process }
      this.queues.set(peerId, queue)
    }
    queue.source ??= source
    queue.frames.push(bytes)
    queue.bytes += bytes.length
    if (!queue.paused && queue.bytes >= this.options.pauseBytes && queue.source !== undefined) {
      queue.paused = true
      try {
        queue.source.pause()
      } catch {
        // A stream closing meanwhile cannot be paused; nothing more will come from it.
      }
    }
    this.schedule()
  }

  /**
   * The rest of the work of the frame being handled for `peerId`, ahead of its next frames: a big
   * message is handled in parts, one part per pass, so it cannot hold the event loop either.
   * Only from within that peer's `process` call.
   */
  pushFront(peerId: string, rest: () => void, process: (bytes: Uint8Array) => void): void {
    let queue = this.queues.get(peerId)
    if (queue === undefined) {
      queue = { frames: [], bytes: 0, source: undefined, paused: false, process }
      this.queues.set(peerId, queue)
    }
    queue.frames.unshift(rest)
    this.schedule()
  }

  /** Bytes queued for a peer (0 when none). */
  queuedBytes(peerId: string): number {
    return this.queues.get(peerId)?.bytes ?? 0
  }

  /** The peer left: its queued frames go. */
  forget(peerId: string): void {
    this.queues.delete(peerId)
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => this.drain())
  }

  /** Round robin, one frame per peer per pass, until the queues are empty or the slice is spent. */
  drain(): void {
    this.scheduled = false
    const deadline = performance.now() + this.options.sliceMs
    while (this.queues.size > 0) {
      for (const [peerId, queue] of [...this.queues]) {
        const next = queue.frames.shift()
        if (next === undefined) {
          this.queues.delete(peerId)
          continue
        }
        if (next instanceof Uint8Array) queue.bytes -= next.length
        if (queue.frames.length === 0) this.queues.delete(peerId)
        if (queue.paused && queue.bytes < this.options.pauseBytes / 2) {
          queue.paused = false
          try {
            queue.source?.resume()
          } catch {
            // Closed meanwhile.
          }
        }
        try {
          if (next instanceof Uint8Array) queue.process(next)
          else next()
        } catch (error) {
          this.onError(peerId, error)
        }
      }
      if (performance.now() >= deadline) break
    }
    if (this.queues.size > 0) this.schedule()
  }
}
