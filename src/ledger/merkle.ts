/**
 * Merkle root of a list of txids (the header's txRoot), shaped as in RFC 6962: leaves are
 * H(0x00 || id), inner nodes H(0x01 || left || right), and a list of n > 1 splits at the largest
 * power of two below n. No duplicated last element, so no two lists share a root (unlike Bitcoin's
 * CVE-2012-2459 mutation). The empty list's root is the zero hash.
 */
import { ZERO_HASH, sha256Concat } from '../crypto/hash.ts'

const LEAF_PREFIX = new Uint8Array([0x00])
const NODE_PREFIX = new Uint8Array([0x01])

export function merkleRoot(ids: readonly Uint8Array[]): Uint8Array {
  if (ids.length === 0) return ZERO_HASH
  return subtreeRoot(ids, 0, ids.length)
}

function subtreeRoot(ids: readonly Uint8Array[], start: number, end: number): Uint8Array {
  const count = end - start
  if (count === 1) return sha256Concat(LEAF_PREFIX, ids[start] as Uint8Array)
  let split = 1
  while (split * 2 < count) split *= 2
  return sha256Concat(NODE_PREFIX, subtreeRoot(ids, start, start + split), subtreeRoot(ids, start + split, end))
}
