/**
 * State sync by Merkle descent (docs/protocol.md, "State sync").
 *
 * Reconciles the local trie (empty, stale or half-synced) against a target state root:
 *
 * - A node is fetched by hash and checked against the hash that asked for it. A child already
 *   in the store is skipped: nodes are committed only when their whole subtree is present
 *   (post-order), so "in the store" means "complete". That makes the descent resumable after a
 *   restart and makes a stale trie cost only its differences: O(d · log n).
 * - The local trie (`localRoot`) is walked beside the target: a differing subtree is compared
 *   node by node where we hold much of it. Where we hold nothing (or, near the root, only a few
 *   accounts), it is fetched as a leaf range (`getLeaves`, paged) instead, rebuilt locally and
 *   checked against the subtree hash: ~48 bytes per account on the wire.
 * - Work is spread over several peers; a timeout or error requeues it elsewhere; a peer whose
 *   data does not hash to what was asked is reported as bad (penalised, not used again).
 *
 * The engine is sans-IO: `takeWork` → request, `onResponse`/`onFailure` ← answer. The driver at
 * the bottom runs it over any `SyncTransport`.
 */
import { DecodeError } from '../codec/binary.ts'
import { bytesEqual, toHexKey } from '../codec/bytes.ts'
import { LEAF_RECORD_BYTES, type LeafRecord, type SyncRequest, type SyncResponse } from '../codec/wire.ts'
import { NODE_BRANCH, decodeNode, nibbleAt, nodeHash } from '../state/nodes.ts'
import { type AccountUpdate, buildSubtree, isEmptyRoot } from '../state/trie.ts'
import type { OffenceCode } from '../peers/offences.ts'
import { RATE_LIMITED_ANSWER } from '../peers/rate-limit.ts'
import type { ChainStore } from '../store/chain-store.ts'
import type { Clock, Timers } from '../util/clock.ts'
import type { SyncPeerPool, SyncTransport } from './interfaces.ts'
import { RequestScheduler } from './scheduler.ts'

export type { SyncPeerPool, SyncTransport } from './interfaces.ts'

export interface StateSyncStore {
  /** True when the node and its whole subtree are stored. */
  hasNode(hash: Uint8Array): boolean
  /** A stored node's bytes (to walk the local trie beside the target). */
  getNode(hash: Uint8Array): Uint8Array | undefined
  /** Writes nodes atomically, in the given order. */
  commit(nodes: Array<[Uint8Array, Uint8Array]>): Promise<void>
}

export interface StateSyncOptions {
  /** Node hashes per getNodes request. */
  nodesPerRequest: number
  /** Leaves per getLeaves page. */
  leavesPerRequest: number
  /**
   * First page of a leaf range, small on purpose: a subtree that does not end within it is big,
   * and is split one level down (its children fetched as ranges), so no single page or rebuild
   * stalls either side for seconds.
   */
  probeLeaves: number
  /** Subtrees at this nibble depth or deeper may be fetched as leaf ranges. */
  leavesModeMinDepth: number
  /**
   * Near the root (depth ≤ `smallLocalMaxDepth`), a differing subtree where the local trie holds
   * at most this many accounts is fetched again as a leaf range instead of being compared node
   * by node: a fresh node's small genesis state must not turn a big download into a walk.
   * Deeper, and where the local trie holds more, the descent compares node by node.
   */
  smallLocalAccounts: number
  smallLocalMaxDepth: number
  /** Concurrent requests per peer. */
  maxInFlightPerPeer: number
  /** Buffered nodes before a store write. */
  commitBatchNodes: number
  requestTimeoutMs: number
}

export const DEFAULT_STATE_SYNC_OPTIONS: StateSyncOptions = {
  nodesPerRequest: 384,
  leavesPerRequest: 8_192,
  probeLeaves: 1_024,
  leavesModeMinDepth: 1,
  smallLocalAccounts: 64,
  smallLocalMaxDepth: 2,
  maxInFlightPerPeer: 3,
  commitBatchNodes: 20_000,
  requestTimeoutMs: 15_000,
}

export interface StateSyncProgress {
  nodesFetched: number
  leavesFetched: number
  /** Payload bytes of state answers (nodes and leaf records). */
  bytesFetched: number
  nodesCommitted: number
  requests: number
  failures: number
  badAnswers: number
  /** Subtrees and nodes still to fetch or in flight. */
  outstanding: number
  /** Share of the key space known complete (0..1): finished subtrees, plus pages of open ones. */
  keySpaceDone: number
}

interface NodeTask {
  kind: 'node'
  hash: Uint8Array
  hex: string
  depth: number
  parent: string | undefined
  /** The local (stale) trie's node at the same path, if any: where it has nothing, ranges are fetched. */
  local: Uint8Array | undefined
  /** A subtree found too big for one range: fetch its children as full ranges. */
  split: boolean
}

interface LeavesTask {
  kind: 'leaves'
  hash: Uint8Array
  hex: string
  depth: number
  parent: string | undefined
  /** Bounded by the subtree's size; dropped when the subtree is verified or restarted. */
  leaves: LeafRecord[]
  servedBy: Set<string>
  /** First page is a small probe (see StateSyncOptions.probeLeaves). */
  probe: boolean
  /** Our nodes at this path (a small local subtree, often none): the rebuilt subtree may share them. */
  localNodes: Set<string>
}

type Task = NodeTask | LeavesTask

export type StateWork =
  | { kind: 'nodes'; tasks: NodeTask[]; request: SyncRequest }
  | { kind: 'leaves'; task: LeavesTask; request: SyncRequest }

/** A peer refused a request for now (its rate limit): the work is requeued and asked again later. */
export class PeerBusyError extends Error {
  override name = 'PeerBusyError'
}

export class BadAnswerError extends Error {
  override name = 'BadAnswerError'
  readonly code: OffenceCode
  constructor(
    message: string,
    /** forged: data that does not hash to what was asked (malicious); useless: the peer lacks it. */
    readonly kind: 'forged' | 'useless' = 'forged',
    /** The offence: forged state by default (this file), forged chain for chain sync. */
    code?: OffenceCode,
  ) {
    super(message)
    this.code = code ?? (kind === 'useless' ? 'SYNC_USELESS_ANSWER' : 'SYNC_FORGED_STATE')
  }
}

interface PendingNode {
  bytes: Uint8Array
  hash: Uint8Array
  missing: number
  parent: string | undefined
}

export class StateSyncEngine {
  readonly options: StateSyncOptions
  readonly progress: StateSyncProgress = {
    nodesFetched: 0,
    leavesFetched: 0,
    bytesFetched: 0,
    nodesCommitted: 0,
    requests: 0,
    failures: 0,
    badAnswers: 0,
    outstanding: 0,
    keySpaceDone: 0,
  }
  /** Key-space share of finished regions; open leaf tasks add their partial share on read. */
  private coveredShare = 0
  /** Leaf tasks being paged (for the partial share); bounded by the work in flight. */
  private readonly openLeaves = new Set<LeavesTask>()
  /** Depth-first work stack: finishing subtrees early keeps `pending` small. */
  private readonly stack: Task[] = []
  /** Fetched branch nodes waiting for children; bounded by the descent's frontier. */
  private readonly pending = new Map<string, PendingNode>()
  /** Complete nodes not yet written, in post-order. */
  private buffer: Array<[Uint8Array, Uint8Array]> = []
  private readonly buffered = new Set<string>()
  private inFlight = 0
  private finished = false

  /**
   * `localRoot` is the node's current state root (empty for a fresh node): the descent walks it
   * beside the target, so unchanged subtrees are skipped and changed ones fetched node by node.
   */
  constructor(
    readonly root: Uint8Array,
    private readonly store: StateSyncStore,
    options: Partial<StateSyncOptions> = {},
    localRoot: Uint8Array | undefined = undefined,
  ) {
    this.options = { ...DEFAULT_STATE_SYNC_OPTIONS, ...options }
    const local = localRoot === undefined || isEmptyRoot(localRoot) || store.getNode(localRoot) === undefined ? undefined : localRoot
    if (isEmptyRoot(root) || store.hasNode(root)) this.finished = true
    else this.stack.push({ kind: 'node', hash: root, hex: toHexKey(root), depth: 0, parent: undefined, local, split: false })
    this.updateOutstanding()
  }

  /** The root and everything below it are complete (some nodes may still be buffered). */
  get complete(): boolean {
    return this.finished
  }

  get hasWork(): boolean {
    return this.stack.length > 0
  }

  get requestsInFlight(): number {
    return this.inFlight
  }

  private isComplete(hash: Uint8Array): boolean {
    return this.buffered.has(toHexKey(hash)) || this.store.hasNode(hash)
  }

  private updateOutstanding(): void {
    this.progress.outstanding = this.stack.length + this.inFlight
    let partial = 0
    for (const task of this.openLeaves) {
      const last = task.leaves[task.leaves.length - 1]
      if (last !== undefined) partial += positionWithin(last.keyHash, task.depth) * regionShare(task.depth)
    }
    this.progress.keySpaceDone = this.finished ? 1 : Math.min(1, this.coveredShare + partial)
  }

  /** The next request to send, or undefined when nothing is ready. */
  takeWork(): StateWork | undefined {
    const top = this.stack[this.stack.length - 1]
    if (top === undefined) return undefined
    if (top.kind === 'leaves') {
      this.stack.pop()
      this.inFlight++
      this.progress.requests++
      this.updateOutstanding()
      const last = top.leaves[top.leaves.length - 1]
      const max = top.probe && last === undefined ? this.options.probeLeaves : this.options.leavesPerRequest
      return {
        kind: 'leaves',
        task: top,
        request: { type: 'getLeaves', subtree: top.hash, depth: top.depth, startAfter: last?.keyHash, max },
      }
    }
    const tasks: NodeTask[] = []
    while (tasks.length < this.options.nodesPerRequest) {
      const next = this.stack[this.stack.length - 1]
      if (next === undefined || next.kind !== 'node') break
      this.stack.pop()
      if (this.isComplete(next.hash)) {
        // Completed meanwhile (a shared subtree): tell its parent.
        this.childCompleted(next.parent)
        continue
      }
      tasks.push(next)
    }
    if (tasks.length === 0) return this.takeWork()
    this.inFlight++
    this.progress.requests++
    this.updateOutstanding()
    return { kind: 'nodes', tasks, request: { type: 'getNodes', hashes: tasks.map((task) => task.hash) } }
  }

  /** The request failed (timeout, error, bad peer): its work goes back on the stack. */
  onFailure(work: StateWork): void {
    this.inFlight--
    this.progress.failures++
    if (work.kind === 'nodes') this.stack.push(...work.tasks)
    else this.stack.push(work.task)
    this.updateOutstanding()
  }

  /**
   * Applies an answer. Throws BadAnswerError when the peer's data does not match the hashes
   * asked for (the work is requeued; the caller penalises the peer).
   */
  onResponse(work: StateWork, response: SyncResponse, peerId: string): void {
    this.inFlight--
    try {
      if (work.kind === 'nodes') this.applyNodes(work.tasks, response)
      else this.applyLeaves(work.task, response, peerId)
    } catch (error) {
      if (error instanceof BadAnswerError) this.progress.badAnswers++
      this.updateOutstanding()
      throw error
    }
    this.updateOutstanding()
  }

  private applyNodes(tasks: NodeTask[], response: SyncResponse): void {
    if (response.type === 'error') {
      this.stack.push(...tasks)
      // Refused by the peer's rate limit: try again later, the peer did nothing wrong.
      if (response.message === RATE_LIMITED_ANSWER) throw new PeerBusyError('peer is rate limiting our requests')
      // 'error' is otherwise the protocol's "cannot serve this" (as for getLeaves): useless, not forged.
      throw new BadAnswerError(`peer cannot serve nodes: ${response.message}`, 'useless')
    }
    if (response.type !== 'nodes' || response.nodes.length !== tasks.length) {
      this.stack.push(...tasks)
      throw new BadAnswerError(`expected ${tasks.length} nodes, got ${response.type === 'nodes' ? response.nodes.length : response.type}`)
    }
    const unanswered: NodeTask[] = []
    let bad: string | undefined
    tasks.forEach((task, index) => {
      const bytes = response.nodes[index] as Uint8Array
      if (bytes.length === 0) {
        unanswered.push(task)
        return
      }
      if (!bytesEqual(nodeHash(bytes), task.hash)) {
        unanswered.push(task)
        bad ??= `node ${task.hex.slice(0, 12)} does not hash to the requested hash`
        return
      }
      this.progress.nodesFetched++
      this.progress.bytesFetched += bytes.length
      this.acceptNode(task, bytes)
    })
    this.stack.push(...unanswered)
    if (bad !== undefined) throw new BadAnswerError(bad)
    if (unanswered.length === tasks.length) throw new BadAnswerError('peer has none of the requested nodes', 'useless')
  }

  private acceptNode(task: NodeTask, bytes: Uint8Array): void {
    let node
    try {
      node = decodeNode(bytes)
    } catch (error) {
      if (error instanceof DecodeError) throw new BadAnswerError(`undecodable node: ${error.message}`)
      throw error
    }
    if (node.kind === 'leaf') {
      this.coveredShare += regionShare(task.depth)
      this.completeNode(task.hash, task.hex, bytes, task.parent)
      return
    }
    const localChildren = this.localChildren(task)
    const missing: Array<{ child: Uint8Array; local: Uint8Array | undefined }> = []
    node.children.forEach((child, nibble) => {
      // Empty and already-complete child regions are done.
      if (child === undefined || this.isComplete(child)) this.coveredShare += regionShare(task.depth + 1)
      else missing.push({ child, local: localChildren[nibble] })
    })
    if (missing.length === 0) {
      this.completeNode(task.hash, task.hex, bytes, task.parent)
      return
    }
    this.pending.set(task.hex, { bytes, hash: task.hash, missing: missing.length, parent: task.parent })
    const depth = task.depth + 1
    for (const { child, local } of missing) {
      const hex = toHexKey(child)
      // Where the local trie has nothing at this path, the whole subtree is new: fetch it as a
      // leaf range. Where it has something, descend node by node so only the differences travel —
      // except near the root where ours is tiny (a fresh node's genesis state under a big target).
      const localNodes = task.split || depth >= this.options.leavesModeMinDepth ? this.fetchAsRange(local, depth) : undefined
      if (localNodes !== undefined) {
        this.stack.push({ kind: 'leaves', hash: child, hex, depth, parent: task.hex, leaves: [], servedBy: new Set(), probe: !task.split, localNodes })
      } else {
        this.stack.push({ kind: 'node', hash: child, hex, depth, parent: task.hex, local, split: false })
      }
    }
  }

  /** When a differing subtree should come as a leaf range: our nodes at its path (maybe none); else undefined. */
  private fetchAsRange(local: Uint8Array | undefined, depth: number): Set<string> | undefined {
    if (local === undefined) return new Set()
    return depth <= this.options.smallLocalMaxDepth ? this.smallLocalSubtree(local) : undefined
  }

  /**
   * The local trie's nodes at a path when it holds at most `smallLocalAccounts` accounts there
   * (else undefined): the nodes a leaf range rebuilt over this path may share with ours.
   */
  private smallLocalSubtree(local: Uint8Array | undefined): Set<string> | undefined {
    const nodes = new Set<string>()
    if (local === undefined) return nodes
    const limit = this.options.smallLocalAccounts
    let accounts = 0
    const stack: Uint8Array[] = [local]
    while (stack.length > 0) {
      const hash = stack.pop() as Uint8Array
      const bytes = this.store.getNode(hash)
      if (bytes === undefined) continue
      nodes.add(toHexKey(hash))
      if (bytes[0] !== NODE_BRANCH) {
        if (++accounts > limit) return undefined
        continue
      }
      const node = decodeNode(bytes)
      if (node.kind === 'branch') for (const child of node.children) if (child !== undefined) stack.push(child)
    }
    return nodes
  }

  /** The local trie's child hashes at the task's path (a local leaf sits under its own key's nibble). */
  private localChildren(task: NodeTask): Array<Uint8Array | undefined> {
    const children: Array<Uint8Array | undefined> = new Array(16).fill(undefined)
    if (task.local === undefined) return children
    const bytes = this.store.getNode(task.local)
    if (bytes === undefined) return children
    const local = decodeNode(bytes)
    if (local.kind === 'branch') return local.children
    children[nibbleAt(local.keyHash, task.depth)] = task.local
    return children
  }

  private applyLeaves(task: LeavesTask, response: SyncResponse, peerId: string): void {
    if (response.type !== 'leaves') {
      this.stack.push(task)
      if (response.type === 'error' && response.message === RATE_LIMITED_ANSWER) throw new PeerBusyError('peer is rate limiting our requests')
      if (response.type === 'error') throw new BadAnswerError(`peer cannot serve subtree: ${response.message}`, 'useless')
      throw new BadAnswerError(`expected leaves, got ${response.type}`)
    }
    for (const leaf of response.leaves) {
      // Pages must continue in strictly increasing key order.
      const previous = task.leaves[task.leaves.length - 1]
      if (previous !== undefined && Buffer.compare(previous.keyHash, leaf.keyHash) >= 0) {
        this.restartLeaves(task)
        throw new BadAnswerError('leaves out of order')
      }
      task.leaves.push(leaf)
    }
    task.servedBy.add(peerId)
    this.progress.leavesFetched += response.leaves.length
    this.progress.bytesFetched += response.leaves.length * LEAF_RECORD_BYTES
    if (task.probe && response.more && task.leaves.length === response.leaves.length) {
      // Too big for one range: fetch this subtree's root and its children as ranges instead.
      this.openLeaves.delete(task)
      this.stack.push({ kind: 'node', hash: task.hash, hex: task.hex, depth: task.depth, parent: task.parent, local: undefined, split: true })
      return
    }
    this.openLeaves.add(task)
    if (response.more) {
      if (response.leaves.length === 0) {
        this.restartLeaves(task)
        throw new BadAnswerError('empty page that claims more leaves')
      }
      this.stack.push(task)
      return
    }
    const items: AccountUpdate[] = task.leaves.map((leaf) => ({ keyHash: leaf.keyHash, account: { balance: leaf.balance, nonce: leaf.nonce } }))
    const built = items.length === 0 ? undefined : buildSubtree(items, task.depth)
    if (built === undefined || !bytesEqual(built.root, task.hash)) {
      const single = task.servedBy.size === 1
      this.restartLeaves(task)
      // Only a subtree served by one peer can be blamed on it.
      if (single) throw new BadAnswerError(`leaves do not rebuild subtree ${task.hex.slice(0, 12)}`)
      return
    }
    this.openLeaves.delete(task)
    this.coveredShare += regionShare(task.depth)
    for (const [hex, bytes] of built.nodes) {
      if (this.buffered.has(hex)) continue
      // Nodes shared with our small local subtree at this path are stored already.
      if (task.localNodes.has(hex)) continue
      this.buffered.add(hex)
      this.buffer.push([Buffer.from(hex, 'hex'), bytes])
    }
    task.leaves = []
    this.childCompleted(task.parent)
  }

  private restartLeaves(task: LeavesTask): void {
    this.openLeaves.delete(task)
    this.stack.push({ ...task, leaves: [], servedBy: new Set(), probe: false })
  }

  private completeNode(hash: Uint8Array, hex: string, bytes: Uint8Array, parent: string | undefined): void {
    if (!this.buffered.has(hex)) {
      this.buffered.add(hex)
      this.buffer.push([hash, bytes])
    }
    this.childCompleted(parent)
  }

  private childCompleted(parentHex: string | undefined): void {
    if (parentHex === undefined) {
      this.finished = true
      return
    }
    const parent = this.pending.get(parentHex)
    if (parent === undefined) return
    parent.missing--
    if (parent.missing === 0) {
      this.pending.delete(parentHex)
      this.completeNode(parent.hash, parentHex, parent.bytes, parent.parent)
    }
  }

  /** Nodes ready to write (children before parents). */
  get bufferedNodes(): number {
    return this.buffer.length
  }

  async flush(): Promise<void> {
    if (this.buffer.length === 0) return
    const batch = this.buffer
    this.buffer = []
    await this.store.commit(batch)
    for (const [hash] of batch) this.buffered.delete(toHexKey(hash))
    this.progress.nodesCommitted += batch.length
  }
}

/** Share of the key space under one node at nibble `depth`. */
function regionShare(depth: number): number {
  return Math.pow(16, -depth)
}

/** Where `key` lies inside its depth-`depth` region, as a fraction (keys are uniform hashes). */
function positionWithin(key: Uint8Array, depth: number): number {
  let fraction = 0
  let scale = 1
  for (let nibble = depth; nibble < depth + 12 && nibble < 64; nibble++) {
    scale /= 16
    const byte = key[nibble >> 1] as number
    fraction += (nibble & 1 ? byte & 0x0f : byte >> 4) * scale
  }
  return fraction
}

/** The node's ChainStore as a state-sync target (its trie nodes live under the 'N' prefix). */
export function chainStoreTarget(store: ChainStore): StateSyncStore {
  return {
    hasNode: (hash) => store.getNode(hash) !== undefined,
    getNode: (hash) => store.getNode(hash),
    commit: async (nodes) => {
      const batch = store.batch()
      for (const [hash, bytes] of nodes) batch.putNode(hash, bytes)
      await batch.commit()
    },
  }
}

// ---------------------------------------------------------------- driver

/** Runs a state sync to completion (or until `signal` aborts). Resolves when the root is stored. */
export async function driveStateSync(
  engine: StateSyncEngine,
  transport: SyncTransport,
  peers: SyncPeerPool,
  options: {
    clock: Clock
    timers: Timers
    signal?: AbortSignal
    onProgress?: () => void
    idleWaitMs?: number
    /** Give up when no answer arrived for this long with nothing in flight (no usable peer). */
    stallTimeoutMs?: number
  },
): Promise<void> {
  const scheduler = new RequestScheduler(options.timers, engine.options.maxInFlightPerPeer)
  let lastAnswerAt = options.clock()
  /**
   * Peers asked for the target root (BOUNDED: by the peers this sync uses). A node requests by hash
   * without naming the root; a pruned server that keeps this root as reverse diffs rebuilds it when
   * asked for the root itself (src/chain/retained-states.ts), so each peer is asked for it once
   * before it gets inner nodes or ranges. The answer is not used: the descent checks what it needs.
   */
  const introduced = new Map<string, Promise<void>>()
  const introduce = (peerId: string, work: StateWork): Promise<void> => {
    let done = introduced.get(peerId)
    if (done === undefined) {
      const asksRoot = work.kind === 'nodes' && work.tasks.some((task) => bytesEqual(task.hash, engine.root))
      done = asksRoot
        ? Promise.resolve()
        : transport.request(peerId, { type: 'getNodes', hashes: [engine.root] }, engine.options.requestTimeoutMs).then(
            () => undefined,
            () => undefined,
          )
      introduced.set(peerId, done)
    }
    return done
  }
  const send = (peerId: string, work: StateWork): Promise<unknown> =>
    introduce(peerId, work)
      .then(() => transport.request(peerId, work.request, engine.options.requestTimeoutMs))
      .then(
        (response) => {
          try {
            engine.onResponse(work, response, peerId)
          } catch (error) {
            // Busy (rate limited): the work is requeued; the peer stays a candidate, uncharged.
            if (error instanceof PeerBusyError) return
            if (!(error instanceof BadAnswerError)) throw error
            scheduler.exclude(peerId)
            peers.reportBad(peerId, error.message, error.kind, error.code)
          }
        },
        (error: unknown) => {
          engine.onFailure(work)
          peers.reportFailure(peerId, (error as Error).message)
        },
      )
      .finally(() => {
        lastAnswerAt = options.clock()
        options.onProgress?.()
      })
  for (;;) {
    if (options.signal?.aborted === true) throw new Error('state sync aborted')
    if (engine.bufferedNodes >= engine.options.commitBatchNodes || (engine.complete && engine.bufferedNodes > 0)) {
      await engine.flush()
      options.onProgress?.()
      continue
    }
    if (engine.complete) return
    scheduler.fill(peers.candidates(), () => (engine.hasWork ? engine.takeWork() : undefined), send)
    if (engine.complete) continue
    if (engine.requestsInFlight === 0 && options.clock() - lastAnswerAt > (options.stallTimeoutMs ?? 60_000)) {
      throw new Error('state sync stalled: no connected peer can serve the target state')
    }
    // Wait for an answer; with nothing in flight (no usable peer yet), look again shortly.
    await scheduler.waitForWake(engine.requestsInFlight === 0 ? (options.idleWaitMs ?? 500) : 5_000)
  }
}
