/**
 * Trie node encoding (docs/protocol.md, "State trie"). Nodes are content-addressed:
 * nodeHash = SHA-256(encoding).
 *
 *   leaf   = 0x00 || keyHash (32) || balance (u64) || nonce (u64)             49 bytes
 *   branch = 0x01 || childMask (u16, bit i = nibble i present) || childHash × popcount
 *
 * A leaf carries its whole key, so its hash does not depend on its depth and moving it when a
 * sibling arrives leaves it unchanged. The shape is a pure function of the key set: a subtree
 * holding one key is that key's leaf; a subtree holding two or more is a branch on the next
 * nibble. So any insertion order gives one root, and a branch's hash fixes the prefix it sits
 * under: pruning relies on that to find dead nodes without marking whole states
 * (src/chain/prune.ts, `collectDead`).
 */
import { DecodeError, Reader, Writer } from '../codec/binary.ts'
import { sha256 } from '../crypto/hash.ts'
import type { Account } from '../ledger/types.ts'

export const NODE_LEAF = 0x00
export const NODE_BRANCH = 0x01
export const LEAF_BYTES = 49
/** 1 + 2 + 16 × 32 */
export const MAX_NODE_BYTES = 515

export interface LeafNode {
  kind: 'leaf'
  keyHash: Uint8Array
  account: Account
}

export interface BranchNode {
  kind: 'branch'
  /** Index = nibble; undefined where the subtree is empty. */
  children: Array<Uint8Array | undefined>
}

export type TrieNode = LeafNode | BranchNode

export function encodeLeaf(keyHash: Uint8Array, account: Account): Uint8Array {
  return new Writer(LEAF_BYTES).u8(NODE_LEAF).fixed(keyHash, 32).u64(account.balance).u53(account.nonce).finish()
}

export function encodeBranch(children: ReadonlyArray<Uint8Array | undefined>): Uint8Array {
  let mask = 0
  let count = 0
  for (let nibble = 0; nibble < 16; nibble++) {
    if (children[nibble] !== undefined) {
      mask |= 1 << nibble
      count++
    }
  }
  const writer = new Writer(3 + 32 * count).u8(NODE_BRANCH).u16(mask)
  for (let nibble = 0; nibble < 16; nibble++) {
    const child = children[nibble]
    if (child !== undefined) writer.fixed(child, 32)
  }
  return writer.finish()
}

/** Decodes a node; the result holds views into `bytes`. Throws DecodeError on malformed input. */
export function decodeNode(bytes: Uint8Array): TrieNode {
  if (bytes.length > MAX_NODE_BYTES) throw new DecodeError('trie node too large')
  const reader = new Reader(bytes)
  const kind = reader.u8('node kind')
  if (kind === NODE_LEAF) {
    const keyHash = reader.fixed(32, 'keyHash')
    const balance = reader.u64('balance')
    const nonce = reader.u53('nonce')
    reader.end('leaf node')
    return { kind: 'leaf', keyHash, account: { balance, nonce } }
  }
  if (kind === NODE_BRANCH) {
    const mask = reader.u16('childMask')
    if (mask === 0) throw new DecodeError('branch node without children')
    const children: Array<Uint8Array | undefined> = new Array(16).fill(undefined)
    for (let nibble = 0; nibble < 16; nibble++) {
      if (mask & (1 << nibble)) children[nibble] = reader.fixed(32, 'child hash')
    }
    reader.end('branch node')
    return { kind: 'branch', children }
  }
  throw new DecodeError(`unknown trie node kind 0x${kind.toString(16)}`)
}

export function nodeHash(bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

/** Nibble `depth` (0 = high half of byte 0) of a 32-byte key. */
export function nibbleAt(key: Uint8Array, depth: number): number {
  const byte = key[depth >> 1] as number
  return depth & 1 ? byte & 0x0f : byte >> 4
}
