/**
 * Stream framing: u32be(length) || payload. The reader refuses a frame whose declared length
 * exceeds the protocol's maximum before buffering it, so a peer cannot make us hold more than
 * one maximal frame per stream.
 */
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError'
}

export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length)
  new DataView(out.buffer).setUint32(0, payload.length)
  out.set(payload, 4)
  return out
}

/** `frame` without the copy: the 4-byte header and the payload as a list (a sync answer is up to MAX_SYNC_FRAME_BYTES). */
export function frameList(payload: Uint8Array): Uint8ArrayList {
  const header = new Uint8Array(4)
  new DataView(header.buffer).setUint32(0, payload.length)
  return new Uint8ArrayList(header, payload)
}

export class FrameReader {
  /** Bounded: at most one partial frame of maxFrameBytes plus one chunk. */
  private readonly buffer = new Uint8ArrayList()

  constructor(private readonly maxFrameBytes: number) {}

  /** Adds a chunk and returns every frame it completes. Throws FrameTooLargeError. */
  push(chunk: Uint8Array | Uint8ArrayList): Uint8Array[] {
    this.buffer.append(chunk)
    const frames: Uint8Array[] = []
    while (this.buffer.byteLength >= 4) {
      const length = this.buffer.getUint32(0)
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(`frame of ${length} bytes exceeds ${this.maxFrameBytes}`)
      if (this.buffer.byteLength < 4 + length) break
      frames.push(this.buffer.subarray(4, 4 + length))
      this.buffer.consume(4 + length)
    }
    return frames
  }

  get buffered(): number {
    return this.buffer.byteLength
  }
}

/** Reads exactly one frame from a request/response stream, bounded in size and time. */
export function readOneFrame(stream: Stream, maxBytes: number, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader(maxBytes)
    const cleanup = () => {
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no answer within ${timeoutMs} ms`))
    }, timeoutMs)
    const onMessage = (event: { data: Parameters<FrameReader['push']>[0] }) => {
      try {
        const frames = reader.push(event.data)
        if (frames.length > 0) {
          cleanup()
          resolve(frames[0] as Uint8Array)
        }
      } catch (error) {
        cleanup()
        reject(error as Error)
      }
    }
    const onClose = () => {
      cleanup()
      reject(new Error('stream closed before an answer'))
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
  })
}
