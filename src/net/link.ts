/**
 * The sending half of a long-lived stream: frames queued in one task of the event loop (the
 * fair inbox's drain, a timer, an I/O callback) leave in one `stream.send()` as that task ends,
 * on a microtask (batching is ~25× faster than a frame per message). Not on a setImmediate: one
 * queued from the inbox's drain or the engine's flush, which run in the check phase, ran only in
 * the loop's next iteration, behind its timers and every socket read of its poll phase — a wait
 * at every hop: p99 propagation on the 16-node benchmark, median of interleaved runs, was
 * 62.2 ms with it against 54.2 ms now (docs/benchmarks.md, "Sends leave as their task ends").
 * A full write buffer is waited out on the stream's 'drain' event (not `onDrain()`, which
 * resolves early in @libp2p/utils 7.4.1). A peer that stops reading is cut off once the queue
 * passes its bound.
 */
import type { Stream } from '@libp2p/interface'

export class SlowPeerError extends Error {
  override name = 'SlowPeerError'
}

export interface LinkOptions {
  /** Bytes queued behind a full stream before the stream is aborted. */
  maxQueuedBytes: number
  /** Called with each frame's payload size as it is handed to the stream. */
  onSent?: (payloadBytes: number) => void
}

export class OutboundLink {
  /** Payloads waiting to be framed and sent; bounded by maxQueuedBytes (framing included). */
  private queue: Uint8Array[] = []
  private queuedBytes = 0
  private scheduled = false
  private waitingForDrain = false
  private closed = false

  constructor(
    readonly stream: Stream,
    private readonly options: LinkOptions,
  ) {
    stream.addEventListener('close', () => {
      this.closed = true
      this.queue = []
    })
  }

  get isOpen(): boolean {
    return !this.closed && this.stream.status === 'open'
  }

  /** Queues one message; it leaves with the others queued in this turn. */
  send(payload: Uint8Array): void {
    if (!this.isOpen) return
    this.queue.push(payload)
    this.queuedBytes += 4 + payload.length
    this.options.onSent?.(payload.length)
    if (this.queuedBytes > this.options.maxQueuedBytes) {
      this.closed = true
      this.queue = []
      this.stream.abort(new SlowPeerError(`peer is not reading: ${this.queuedBytes} bytes queued`))
      return
    }
    if (!this.scheduled && !this.waitingForDrain) {
      this.scheduled = true
      queueMicrotask(() => this.pump())
    }
  }

  private pump(): void {
    this.scheduled = false
    if (!this.isOpen || this.queue.length === 0) return
    // One buffer for the turn's frames: u32be(length) || payload each, copied once.
    const batch = new Uint8Array(this.queuedBytes)
    const view = new DataView(batch.buffer)
    let offset = 0
    for (const payload of this.queue) {
      view.setUint32(offset, payload.length)
      batch.set(payload, offset + 4)
      offset += 4 + payload.length
    }
    this.queue = []
    this.queuedBytes = 0
    let accepted: boolean
    try {
      accepted = this.stream.send(batch)
    } catch {
      this.closed = true
      return
    }
    if (!accepted) {
      this.waitingForDrain = true
      this.stream.addEventListener(
        'drain',
        () => {
          this.waitingForDrain = false
          if (this.queue.length > 0) this.pump()
        },
        { once: true },
      )
    }
  }

  async close(): Promise<void> {
    this.closed = true
    try {
      await this.stream.close()
    } catch {
      this.stream.abort(new Error('close failed'))
    }
  }
}
