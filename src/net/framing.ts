/**
 * Stream framing: u32be(length) || payload. The reader refuses a frame whose declared length
 * exceeds the protocol's maximum before buffering it, so a peer cannot make us hold more than
 * one maximal frame per stream.
 */
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
