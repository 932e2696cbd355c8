/**
 * The one binary codec: fixed-width big-endian integers and length-prefixed byte strings.
 *
 * Canonical by construction: every value has exactly one encoding (no varints, no optional
 * fields, no maps), and `Reader` refuses trailing bytes, out-of-range integers and any length
 * above the caller's bound before it allocates. Every object and wire message is built from
 * these few primitives, so "decode then re-encode gives the same bytes" holds for all of them.
 */

export class DecodeError extends Error {
  override name = 'DecodeError'
}

export const MAX_U64 = (1n << 64n) - 1n
const TWO_POW_32 = 0x1_0000_0000

export class Writer {
  private buffer: Uint8Array
  private view: DataView
  private offset = 0

  constructor(initialCapacity = 256) {
    this.buffer = new Uint8Array(initialCapacity)
    this.view = new DataView(this.buffer.buffer)
  }

  private reserve(extra: number): void {
    const needed = this.offset + extra
    if (needed <= this.buffer.length) return
    let capacity = Math.max(16, this.buffer.length * 2)
    while (capacity < needed) capacity *= 2
    const next = new Uint8Array(capacity)
    next.set(this.buffer.subarray(0, this.offset))
    this.buffer = next
    this.view = new DataView(next.buffer)
  }

  u8(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError(`u8 out of range: ${value}`)
    this.reserve(1)
    this.buffer[this.offset++] = value
    return this
  }

  u16(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`u16 out of range: ${value}`)
    this.reserve(2)
    this.view.setUint16(this.offset, value)
    this.offset += 2
    return this
  }

  u32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`u32 out of range: ${value}`)
    this.reserve(4)
    this.view.setUint32(this.offset, value)
    this.offset += 4
    return this
  }

  /** A u64 carried as a JS number: heights, slots, nonces, timestamps (at most 2^53 - 1). Two words, not a BigInt per value. */
  u53(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`u64 (safe integer) out of range: ${value}`)
    this.reserve(8)
    this.view.setUint32(this.offset, Math.floor(value / TWO_POW_32))
    this.view.setUint32(this.offset + 4, value >>> 0)
    this.offset += 8
    return this
  }

  u64(value: bigint): this {
    if (value < 0n || value > MAX_U64) throw new RangeError(`u64 out of range: ${value}`)
    this.reserve(8)
    this.view.setBigUint64(this.offset, value)
    this.offset += 8
    return this
  }

  /** Raw bytes of a length both sides know (hashes, keys, signatures). */
  fixed(bytes: Uint8Array, length: number): this {
    if (bytes.length !== length) throw new RangeError(`expected ${length} bytes, got ${bytes.length}`)
    return this.raw(bytes)
  }

  /** Bytes already encoded by this codec (a nested object). */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length)
    this.buffer.set(bytes, this.offset)
    this.offset += bytes.length
    return this
  }

  /** u8 length then bytes. */
  bytes8(bytes: Uint8Array): this {
    return this.u8(bytes.length).raw(bytes)
  }

  /** u16 length then bytes. */
  bytes16(bytes: Uint8Array): this {
    return this.u16(bytes.length).raw(bytes)
  }

  /** u32 length then bytes. */
  bytes32(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes)
  }

  get length(): number {
    return this.offset
  }

  /** Drops what was written past `length` (a record refused half-way is not left half-written). */
  truncate(length: number): this {
    if (!(Number.isInteger(length) && length >= 0 && length <= this.offset)) throw new RangeError(`truncate to ${length} of ${this.offset}`)
    this.offset = length
    return this
  }

  /** Overwrites a u8 already written at `at` (a header whose value is known only at the end). */
  setU8At(at: number, value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError(`u8 out of range: ${value}`)
    if (!(at >= 0 && at + 1 <= this.offset)) throw new RangeError(`u8 at ${at} is not written yet`)
    this.buffer[at] = value
    return this
  }

  /** Overwrites a u32 already written at `at`. */
  setU32At(at: number, value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`u32 out of range: ${value}`)
    if (!(at >= 0 && at + 4 <= this.offset)) throw new RangeError(`u32 at ${at} is not written yet`)
    this.view.setUint32(at, value)
    return this
  }

  /** The encoded bytes as a view of the buffer, not a copy (for a large answer sent once; nothing may be written after). */
  finishView(): Uint8Array {
    return this.buffer.subarray(0, this.offset)
  }

  /** The encoded bytes (a copy sized exactly). */
  finish(): Uint8Array {
    return this.buffer.slice(0, this.offset)
  }
}

export class Reader {
  private readonly view: DataView
  private offset = 0

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get position(): number {
    return this.offset
  }

  get remaining(): number {
    return this.bytes.length - this.offset
  }

  private need(count: number, what: string): void {
    if (count > this.bytes.length - this.offset) {
      throw new DecodeError(`truncated: ${what} needs ${count} bytes, ${this.bytes.length - this.offset} left`)
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what)
    return this.bytes[this.offset++] as number
  }

  u16(what = 'u16'): number {
    this.need(2, what)
    const value = this.view.getUint16(this.offset)
    this.offset += 2
    return value
  }

  u32(what = 'u32'): number {
    this.need(4, what)
    const value = this.view.getUint32(this.offset)
    this.offset += 4
    return value
  }

  u64(what = 'u64'): bigint {
    this.need(8, what)
    const value = this.view.getBigUint64(this.offset)
    this.offset += 8
    return value
  }

  /** A u64 that must fit a JS safe integer; larger values are refused, not rounded. */
  u53(what = 'u64'): number {
    this.need(8, what)
    const high = this.view.getUint32(this.offset)
    const low = this.view.getUint32(this.offset + 4)
    // 2^53 - 1 has 21 bits in the high word.
    if (high > 0x1fffff) throw new DecodeError(`${what} above 2^53 - 1`)
    this.offset += 8
    return high * 0x1_0000_0000 + low
  }

  /** A u32 count, refused above `max` before anything is allocated for it. */
  count(max: number, what = 'count'): number {
    const value = this.u32(what)
    if (value > max) throw new DecodeError(`${what} ${value} exceeds limit ${max}`)
    return value
  }

  /** A view (no copy) of the next `length` bytes. */
  fixed(length: number, what = 'bytes'): Uint8Array {
    this.need(length, what)
    const out = this.bytes.subarray(this.offset, this.offset + length)
    this.offset += length
    return out
  }

  bytes8(max: number, what = 'bytes'): Uint8Array {
    const length = this.u8(what)
    if (length > max) throw new DecodeError(`${what} length ${length} exceeds limit ${max}`)
    return this.fixed(length, what)
  }

  bytes16(max: number, what = 'bytes'): Uint8Array {
    const length = this.u16(what)
    if (length > max) throw new DecodeError(`${what} length ${length} exceeds limit ${max}`)
    return this.fixed(length, what)
  }

  bytes32(max: number, what = 'bytes'): Uint8Array {
    const length = this.u32(what)
    if (length > max) throw new DecodeError(`${what} length ${length} exceeds limit ${max}`)
    return this.fixed(length, what)
  }

  /** The bytes consumed between `start` and the current position (a view). */
  since(start: number): Uint8Array {
    return this.bytes.subarray(start, this.offset)
  }

  /** Decoding ends here: trailing bytes make the input non-canonical. */
  end(what = 'value'): void {
    if (this.offset !== this.bytes.length) {
      throw new DecodeError(`${this.bytes.length - this.offset} trailing bytes after ${what}`)
    }
  }
}

/** Runs `decode` over all of `bytes`, requiring it to consume them exactly. */
export function decodeExact<T>(bytes: Uint8Array, decode: (reader: Reader) => T, what: string): T {
  const reader = new Reader(bytes)
  const value = decode(reader)
  reader.end(what)
  return value
}
