/** Small byte helpers shared by every module: hex in JSON, comparisons in maps and sorting. */

const HEX_RE = /^(0x)?([0-9a-fA-F]{2})*$/

/** Lower-case hex with the `0x` prefix used everywhere in JSON (addresses, hashes, txs). */
export function toHex(bytes: Uint8Array): string {
  return '0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** Node's native hex encoder, callable on any Uint8Array (about twice as fast as Buffer.from(...).toString('hex')). */
const nativeHexSlice = (Buffer.prototype as unknown as { hexSlice?: (this: Uint8Array, start: number, end: number) => string }).hexSlice

/** Hex without the prefix: the key of every map (txids, hashes, addresses), so it is on hot paths. */
export function toHexKey(bytes: Uint8Array): string {
  if (nativeHexSlice !== undefined) return nativeHexSlice.call(bytes, 0, bytes.length)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export class HexError extends Error {
  override name = 'HexError'
}

/** The hex string is longer than the caller's `maxBytes` (refused before it is parsed). */
export class HexTooLongError extends HexError {
  override name = 'HexTooLongError'
}

/**
 * Parses `0x`-prefixed (or bare) hex. `expectedBytes` pins the length; `maxBytes` bounds it
 * before any allocation so an oversized string is refused cheaply.
 */
export function fromHex(text: string, options: { expectedBytes?: number; maxBytes?: number } = {}): Uint8Array {
  const digits = text.startsWith('0x') || text.startsWith('0X') ? text.length - 2 : text.length
  if (options.maxBytes !== undefined && digits > options.maxBytes * 2) {
    throw new HexTooLongError(`hex string longer than ${options.maxBytes} bytes`)
  }
  if (!HEX_RE.test(text)) throw new HexError('not a hex string (expected 0x followed by an even number of hex digits)')
  const body = text.startsWith('0x') || text.startsWith('0X') ? text.slice(2) : text
  const bytes = new Uint8Array(Buffer.from(body, 'hex'))
  if (options.expectedBytes !== undefined && bytes.length !== options.expectedBytes) {
    throw new HexError(`expected ${options.expectedBytes} bytes, got ${bytes.length}`)
  }
  return bytes
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

/** Lexicographic order: negative when a < b. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).compare(b)
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}
