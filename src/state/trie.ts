/**
 * The account state: a hexary Merkle trie keyed by keyHash = SHA-256(address), over a
 * content-addressed node source. Reads are synchronous (the LevelDB source uses getSync behind
 * an LRU cache), so validation and block building stay synchronous and deterministic.
 */
import { bytesEqual, compareBytes, toHexKey } from '../codec/bytes.ts'
import { ZERO_HASH } from '../crypto/hash.ts'
import type { Account } from '../ledger/types.ts'
import { NODE_BRANCH, type TrieNode, decodeNode, encodeBranch, encodeLeaf, nibbleAt, nodeHash } from './nodes.ts'

/** Root of the empty trie. */
export const EMPTY_ROOT: Uint8Array = ZERO_HASH

/** Where trie nodes are read from: node hash → node bytes. */
export interface NodeSource {
  getNode(hash: Uint8Array): Uint8Array | undefined
}

export class MissingNodeError extends Error {
  override name = 'MissingNodeError'
  constructor(readonly hash: Uint8Array) {
    super(`trie node ${toHexKey(hash)} is not in the store`)
  }
}

export class TrieCorruptError extends Error {
  override name = 'TrieCorruptError'
}

export interface AccountUpdate {
  keyHash: Uint8Array
  account: Account
}

export interface TrieUpdateResult {
  root: Uint8Array
  /** Every node on a changed path, to be persisted with the block: hex hash → bytes. */
  nodes: Map<string, Uint8Array>
}

export function isEmptyRoot(root: Uint8Array): boolean {
  return bytesEqual(root, EMPTY_ROOT)
}

function loadNode(source: NodeSource, hash: Uint8Array): TrieNode {
  const bytes = source.getNode(hash)
  if (bytes === undefined) throw new MissingNodeError(hash)
  return decodeNode(bytes)
}

/** The account stored under `keyHash` at `root`, or undefined. Throws MissingNodeError if incomplete. */
export function getAccount(source: NodeSource, root: Uint8Array, keyHash: Uint8Array): Account | undefined {
  if (isEmptyRoot(root)) return undefined
  let hash = root
  for (let depth = 0; depth <= 64; depth++) {
    const node = loadNode(source, hash)
    if (node.kind === 'leaf') return bytesEqual(node.keyHash, keyHash) ? node.account : undefined
    const child = node.children[nibbleAt(keyHash, depth)]
    if (child === undefined) return undefined
    hash = child
  }
  throw new TrieCorruptError('trie deeper than 64 nibbles')
}

/**
 * Applies account writes to the trie at `root` and returns the new root with every node created.
 * Nothing is mutated or written: the caller persists `nodes` (with its block, atomically).
 */
export function applyUpdates(source: NodeSource, root: Uint8Array, updates: AccountUpdate[]): TrieUpdateResult {
  return applyWrites(source, root, updates)
}

/** An account write that may also remove the key (`account` undefined): reverting a block (src/state/reverse-diff.ts). */
export interface AccountWrite {
  keyHash: Uint8Array
  account: Account | undefined
}

/**
 * `applyUpdates` with removals: a write without an account deletes its key (absent keys are left
 * absent). The result has the canonical shape of the resulting key set (a subtree left with one key
 * collapses to that key's leaf), so the root is the one a build from scratch would give.
 */
export function applyWrites(source: NodeSource, root: Uint8Array, writes: readonly AccountWrite[]): TrieUpdateResult {
  const sorted = [...writes].sort((a, b) => compareBytes(a.keyHash, b.keyHash))
  for (let i = 1; i < sorted.length; i++) {
    if (bytesEqual((sorted[i - 1] as AccountWrite).keyHash, (sorted[i] as AccountWrite).keyHash)) {
      throw new RangeError('duplicate key in trie update')
    }
  }
  const nodes = new Map<string, Uint8Array>()
  const put = (bytes: Uint8Array): Uint8Array => {
    const hash = nodeHash(bytes)
    nodes.set(toHexKey(hash), bytes)
    return hash
  }
  const present = (items: AccountWrite[]): AccountUpdate[] => {
    const out: AccountUpdate[] = []
    for (const item of items) if (item.account !== undefined) out.push({ keyHash: item.keyHash, account: item.account })
    return out
  }
  const build = (items: AccountUpdate[], depth: number): Uint8Array | undefined => (items.length === 0 ? undefined : buildNodes(items, depth, put))
  /** A node just built or stored: is it a leaf? (decides whether a lone child collapses upwards) */
  const isLeaf = (hash: Uint8Array): boolean => {
    const bytes = nodes.get(toHexKey(hash)) ?? source.getNode(hash)
    if (bytes === undefined) throw new MissingNodeError(hash)
    return bytes[0] !== NODE_BRANCH
  }

  const update = (hash: Uint8Array | undefined, items: AccountWrite[], depth: number): Uint8Array | undefined => {
    if (hash === undefined) return build(present(items), depth)
    const node = loadNode(source, hash)
    if (node.kind === 'leaf') {
      // The existing leaf joins the update unless one of the items overwrites or removes it.
      const written = items.some((item) => bytesEqual(item.keyHash, node.keyHash))
      if (written) return build(present(items), depth)
      const merged = [...present(items), { keyHash: node.keyHash, account: node.account }]
      merged.sort((a, b) => compareBytes(a.keyHash, b.keyHash))
      return build(merged, depth)
    }
    const children = node.children.slice()
    let start = 0
    while (start < items.length) {
      const nibble = nibbleAt((items[start] as AccountWrite).keyHash, depth)
      let end = start + 1
      while (end < items.length && nibbleAt((items[end] as AccountWrite).keyHash, depth) === nibble) end++
      children[nibble] = update(children[nibble], items.slice(start, end), depth + 1)
      start = end
    }
    let count = 0
    let only: Uint8Array | undefined
    for (const child of children) {
      if (child === undefined) continue
      count++
      only = child
    }
    if (count === 0) return undefined
    // A subtree holding one key is that key's leaf (a lone branch child holds two or more keys).
    if (count === 1 && isLeaf(only as Uint8Array)) return only
    return put(encodeBranch(children))
  }

  if (sorted.length === 0) return { root, nodes }
  const newRoot = update(isEmptyRoot(root) ? undefined : root, sorted, 0)
  return { root: newRoot ?? EMPTY_ROOT, nodes }
}

/** Builds the subtree holding exactly `items` (sorted, unique) rooted at nibble `depth`. */
function buildNodes(items: AccountUpdate[], depth: number, put: (bytes: Uint8Array) => Uint8Array): Uint8Array {
  if (items.length === 1) {
    const only = items[0] as AccountUpdate
    return put(encodeLeaf(only.keyHash, only.account))
  }
  if (depth >= 64) throw new TrieCorruptError('two entries share a 32-byte key')
  const children: Array<Uint8Array | undefined> = new Array(16).fill(undefined)
  let start = 0
  while (start < items.length) {
    const nibble = nibbleAt((items[start] as AccountUpdate).keyHash, depth)
    let end = start + 1
    while (end < items.length && nibbleAt((items[end] as AccountUpdate).keyHash, depth) === nibble) end++
    children[nibble] = buildNodes(items.slice(start, end), depth + 1, put)
    start = end
  }
  return put(encodeBranch(children))
}

/**
 * Rebuilds a subtree from its complete leaf set: state sync checks the returned root against the
 * hash that asked for it. `items` must be sorted by keyHash and unique.
 */
export function buildSubtree(items: AccountUpdate[], depth: number): TrieUpdateResult {
  const nodes = new Map<string, Uint8Array>()
  if (items.length === 0) return { root: EMPTY_ROOT, nodes }
  for (let i = 1; i < items.length; i++) {
    if (compareBytes((items[i - 1] as AccountUpdate).keyHash, (items[i] as AccountUpdate).keyHash) >= 0) {
      throw new RangeError('subtree leaves must be sorted and unique')
    }
  }
  const root = buildNodes(items, depth, (bytes) => {
    const hash = nodeHash(bytes)
    nodes.set(toHexKey(hash), bytes)
    return hash
  })
  return { root, nodes }
}

/**
 * Leaves under the node `subtree` (at nibble `depth`), in key order, after `startAfter`, at most
 * `max`. `more` says whether leaves remain. Serves state sync; reads at most max + 1 leaves.
 */
export function collectLeaves(
  source: NodeSource,
  subtree: Uint8Array,
  depth: number,
  startAfter: Uint8Array | undefined,
  max: number,
): { leaves: AccountUpdate[]; more: boolean } | undefined {
  const out: AccountUpdate[] = []
  const walk = (hash: Uint8Array, at: number, bound: Uint8Array | undefined): boolean => {
    const bytes = source.getNode(hash)
    if (bytes === undefined) throw new MissingNodeError(hash)
    const node = decodeNode(bytes)
    if (node.kind === 'leaf') {
      if (bound !== undefined && compareBytes(node.keyHash, bound) <= 0) return true
      out.push({ keyHash: node.keyHash, account: node.account })
      return out.length <= max
    }
    if (at > 63) throw new TrieCorruptError('trie deeper than 64 nibbles')
    const first = bound === undefined ? 0 : nibbleAt(bound, at)
    for (let nibble = first; nibble < 16; nibble++) {
      const child = node.children[nibble]
      if (child === undefined) continue
      if (!walk(child, at + 1, nibble === first ? bound : undefined)) return false
    }
    return true
  }
  if (source.getNode(subtree) === undefined) return undefined
  walk(subtree, depth, startAfter)
  const more = out.length > max
  if (more) out.length = max
  return { leaves: out, more }
}

/**
 * An inclusion (or exclusion) proof: the encoded nodes from the root down the key's path, ending
 * at its leaf, at a different leaf, or at a branch with no child for the next nibble.
 */
export function proveAccount(source: NodeSource, root: Uint8Array, keyHash: Uint8Array): Uint8Array[] {
  const proof: Uint8Array[] = []
  if (isEmptyRoot(root)) return proof
  let hash = root
  for (let depth = 0; depth <= 64; depth++) {
    const bytes = source.getNode(hash)
    if (bytes === undefined) throw new MissingNodeError(hash)
    proof.push(bytes)
    const node = decodeNode(bytes)
    if (node.kind === 'leaf') return proof
    const child = node.children[nibbleAt(keyHash, depth)]
    if (child === undefined) return proof
    hash = child
  }
  throw new TrieCorruptError('trie deeper than 64 nibbles')
}

export class ProofError extends Error {
  override name = 'ProofError'
}

/**
 * Checks a proof against a state root: returns the account, or undefined when the proof shows
 * the key is absent. Throws ProofError when the proof does not bind to the root.
 */
export function verifyAccountProof(root: Uint8Array, keyHash: Uint8Array, proof: Uint8Array[]): Account | undefined {
  if (isEmptyRoot(root)) {
    if (proof.length !== 0) throw new ProofError('proof for an empty trie must be empty')
    return undefined
  }
  let expected = root
  for (let depth = 0; depth < proof.length; depth++) {
    const bytes = proof[depth] as Uint8Array
    if (!bytesEqual(nodeHash(bytes), expected)) throw new ProofError(`proof node ${depth} does not match its parent's hash`)
    let node: TrieNode
    try {
      node = decodeNode(bytes)
    } catch (error) {
      throw new ProofError(`proof node ${depth} is malformed: ${(error as Error).message}`)
    }
    const last = depth === proof.length - 1
    if (node.kind === 'leaf') {
      if (!last) throw new ProofError('proof continues past a leaf')
      return bytesEqual(node.keyHash, keyHash) ? node.account : undefined
    }
    const child = node.children[nibbleAt(keyHash, depth)]
    if (child === undefined) {
      if (!last) throw new ProofError('proof continues past an empty child')
      return undefined
    }
    if (last) throw new ProofError('proof ends before reaching a leaf or an empty child')
    expected = child
  }
  throw new ProofError('empty proof for a non-empty root')
}

/** In-memory node source: unit tests, benchmarks and the simulator. */
export class MemoryNodeStore implements NodeSource {
  /** Unbounded by design: for tests and benchmarks only. */
  readonly nodes = new Map<string, Uint8Array>()

  getNode(hash: Uint8Array): Uint8Array | undefined {
    return this.nodes.get(toHexKey(hash))
  }

  putAll(nodes: Map<string, Uint8Array>): void {
    for (const [key, value] of nodes) this.nodes.set(key, value)
  }
}
