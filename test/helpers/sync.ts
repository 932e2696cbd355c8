/**
 * Fakes for the sans-IO sync engines: an in-memory SyncTransport whose peers are plain functions,
 * a SyncPeerPool that records what the engines report, a trie server mirroring src/sync/server.ts
 * over any NodeSource, and a StateSyncStore that checks the post-order invariant on every commit.
 */
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import type { SyncRequest, SyncResponse } from '../../src/codec/wire.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { decodeNode, nodeHash } from '../../src/state/nodes.ts'
import type { StateSyncStore, SyncPeerPool, SyncTransport } from '../../src/sync/state-sync.ts'
import { type AccountUpdate, MemoryNodeStore, type NodeSource, applyUpdates, collectLeaves, isEmptyRoot } from '../../src/state/trie.ts'

/** A peer: answers one request (throwing means a transport failure). */
export type FakePeer = (request: SyncRequest) => SyncResponse | Promise<SyncResponse>

/** Orders requests and reports across fakes: "was this peer asked after it was reported?" */
let eventSequence = 0

export interface FakeRequestRecord {
  peerId: string
  request: SyncRequest
  sequence: number
}

export class FakeTransport implements SyncTransport {
  /** Every request sent, in order (tests only: unbounded). */
  readonly sent: FakeRequestRecord[] = []

  constructor(
    readonly peers: Map<string, FakePeer>,
    /** Extra delay before an answer, per request (default: answered on a later turn). */
    private readonly delayMs: (peerId: string, request: SyncRequest) => number = () => 0,
  ) {}

  async request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse> {
    void timeoutMs
    this.sent.push({ peerId, request, sequence: ++eventSequence })
    const peer = this.peers.get(peerId)
    if (peer === undefined) throw new Error(`unknown peer ${peerId}`)
    const delay = this.delayMs(peerId, request)
    await new Promise((resolve) => (delay > 0 ? setTimeout(resolve, delay) : setImmediate(resolve)))
    return peer(request)
  }

  requestsTo(peerId: string): number {
    return this.sent.filter((record) => record.peerId === peerId).length
  }
}

export interface BadReport {
  peerId: string
  reason: string
  kind: 'forged' | 'useless'
  sequence: number
}

export class FakePool implements SyncPeerPool {
  readonly excluded = new Set<string>()
  readonly bad: BadReport[] = []
  readonly failures: Array<{ peerId: string; reason: string }> = []

  constructor(private readonly peerIds: string[]) {}

  candidates(): string[] {
    return this.peerIds.filter((peerId) => !this.excluded.has(peerId))
  }

  reportBad(peerId: string, reason: string, kind: 'forged' | 'useless'): void {
    this.excluded.add(peerId)
    this.bad.push({ peerId, reason, kind, sequence: ++eventSequence })
  }

  reportFailure(peerId: string, reason: string): void {
    this.failures.push({ peerId, reason })
  }
}

/** Answers getNodes / getLeaves from `source` exactly as src/sync/server.ts does from a chain store. */
export function trieServer(source: NodeSource): FakePeer {
  return (request) => {
    if (request.type === 'getNodes') return { type: 'nodes', nodes: request.hashes.map((hash) => source.getNode(hash) ?? new Uint8Array(0)) }
    if (request.type === 'getLeaves') {
      const result = collectLeaves(source, request.subtree, request.depth, request.startAfter, request.max)
      if (result === undefined) return { type: 'error', message: 'unknown subtree' }
      return {
        type: 'leaves',
        more: result.more,
        leaves: result.leaves.map((leaf) => ({ keyHash: leaf.keyHash, balance: leaf.account.balance, nonce: leaf.account.nonce })),
      }
    }
    return { type: 'error', message: `not served: ${request.type}` }
  }
}

/**
 * A state-sync target store over a MemoryNodeStore. Every commit is checked: each node must hash
 * to its key, and (post-order) every child of a committed branch must be stored already or come
 * earlier in the same batch. Violations are collected, not thrown, so the engine under test runs on.
 */
export class CheckedStore implements StateSyncStore {
  readonly nodes: MemoryNodeStore
  readonly violations: string[] = []
  commits = 0
  nodesWritten = 0

  constructor(initial?: MemoryNodeStore) {
    this.nodes = new MemoryNodeStore()
    if (initial !== undefined) this.nodes.putAll(initial.nodes)
  }

  hasNode(hash: Uint8Array): boolean {
    return this.nodes.getNode(hash) !== undefined
  }

  getNode(hash: Uint8Array): Uint8Array | undefined {
    return this.nodes.getNode(hash)
  }

  async commit(batch: Array<[Uint8Array, Uint8Array]>): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve))
    this.commits++
    for (const [hash, bytes] of batch) {
      const hex = toHexKey(hash)
      if (!bytesEqual(nodeHash(bytes), hash)) this.violations.push(`node ${hex.slice(0, 12)} does not hash to its key`)
      const node = decodeNode(bytes)
      if (node.kind === 'branch') {
        for (const child of node.children) {
          if (child !== undefined && this.nodes.getNode(child) === undefined) {
            this.violations.push(`branch ${hex.slice(0, 12)} written before its child ${toHexKey(child).slice(0, 12)}`)
          }
        }
      }
      this.nodes.nodes.set(hex, new Uint8Array(bytes))
      this.nodesWritten++
    }
  }

  /** Whole-store check: every stored branch's children are stored. */
  danglingChildren(): number {
    let dangling = 0
    for (const bytes of this.nodes.nodes.values()) {
      const node = decodeNode(bytes)
      if (node.kind !== 'branch') continue
      for (const child of node.children) if (child !== undefined && this.nodes.getNode(child) === undefined) dangling++
    }
    return dangling
  }
}

/** Deterministic accounts: keyHash = SHA-256(tag || i), balances vary with i. */
export function makeAccounts(count: number, tag = 'acct', offset = 0): AccountUpdate[] {
  const out: AccountUpdate[] = []
  for (let i = offset; i < offset + count; i++) {
    out.push({ keyHash: sha256(new TextEncoder().encode(`${tag}/${i}`)), account: { balance: BigInt(1_000 + i * 7), nonce: i % 5 } })
  }
  return out
}

/** Applies `updates` on top of `root` in `store` (nodes added to the store); returns the new root. */
export function applyToStore(store: MemoryNodeStore, root: Uint8Array, updates: AccountUpdate[]): Uint8Array {
  const result = applyUpdates(store, root, updates)
  store.putAll(result.nodes)
  return result.root
}

/** Hex hashes of every node reachable from `root`. */
export function reachableNodes(source: NodeSource, root: Uint8Array): Set<string> {
  const out = new Set<string>()
  if (isEmptyRoot(root)) return out
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const hex = toHexKey(hash)
    if (out.has(hex)) continue
    const bytes = source.getNode(hash)
    if (bytes === undefined) throw new Error(`node ${hex} missing from the source`)
    out.add(hex)
    const node = decodeNode(bytes)
    if (node.kind === 'branch') for (const child of node.children) if (child !== undefined) stack.push(child)
  }
  return out
}

/** A store holding exactly the nodes reachable from `root` in `source`. */
export function copyTrie(source: NodeSource, root: Uint8Array): MemoryNodeStore {
  const copy = new MemoryNodeStore()
  for (const hex of reachableNodes(source, root)) copy.nodes.set(hex, source.getNode(Buffer.from(hex, 'hex')) as Uint8Array)
  return copy
}
