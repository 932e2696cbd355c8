import { createHash, hash as oneShotHash } from 'node:crypto'

/** Every hash in Grapevine (ids, Merkle nodes, leader draws) is SHA-256: native, fast, 32 bytes. */
export const HASH_BYTES = 32

/** The all-zero hash: the root of an empty tree, the parent of the genesis block. */
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES)

/** A plain Uint8Array over a Buffer's memory: `.slice()` on it copies, as everywhere else. */
function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

/** SHA-256 of one byte string. */
export function sha256(data: Uint8Array): Uint8Array {
  return plain(oneShotHash('sha256', data, 'buffer'))
}

/** SHA-256 of the concatenation of several byte strings, without building the concatenation. */
export function sha256Concat(...parts: Uint8Array[]): Uint8Array {
  const hasher = createHash('sha256')
  for (const part of parts) hasher.update(part)
  return plain(hasher.digest())
}

