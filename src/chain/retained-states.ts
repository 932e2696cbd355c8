/**
 * Serving the retained states a pruned node keeps as reverse diffs (docs/architecture.md,
 * "Pruning"; src/chain/prune.ts says which states those are).
 *
 * A state-sync request names trie nodes by hash, without the root they belong to. So this node
 * source answers from the store first; then from the tries it rebuilt; and on a miss it rebuilds:
 *   - a hash that is the state root of a canonical block of the state window whose trie is not
 *     stored is rebuilt: from the nearest state above it on the canonical chain that is at hand (a
 *     materialized state, or one rebuilt earlier), the reverse diffs of the blocks in between merged
 *     (each account's value before the lowest of them that changed it) and applied in one
 *     `applyWrites` into an in-memory overlay (never the store); the result must be the block's
 *     header's state root;
 *   - roots asked for are remembered (materialized ones too), so an inner node of a remembered
 *     root whose rebuilt trie was dropped (its base pruned, or evicted for room) is found by
 *     rebuilding that root again, at most once per prune per root. A syncing node asks for its
 *     target root first at every peer it uses (src/sync/state-sync.ts), so every server knows it.
 *
 * A rebuilt trie holds only the nodes that differ from its base state (the paths of the accounts
 * changed in between); the rest is read from the store. It is valid while its base root is stored:
 * pruning deletes a dropped root before any node under it, so "base root stored" means "whole base
 * stored"; an overlay whose base has gone is rebuilt from a newer base.
 *
 * Costs are bounded: the overlays' bytes (LRU), the roots remembered, and the rebuild work — a
 * budget counted in reverse diffs applied, refilled per imported block (no clock in src/chain): a
 * diff's work grows with its block's size as the import's does, so whatever the block size, peers
 * asking for old roots cannot make the node spend more than a fixed multiple of its import work.
 *
 * Not served: side-branch blocks below the materialized window (no materialized descendant keeps
 * their branch; they are below the finalized block and can never be canonical again), and blocks
 * whose reverse diffs are missing (imported before reverse diffs existed or while the node ran as
 * an archive, or at or below a state-sync pivot).
 */
import { bytesEqual, toHexKey } from '../codec/bytes.ts'
import type { Header } from '../ledger/types.ts'
import { decodeNode } from '../state/nodes.ts'
import { decodeReverseDiff } from '../state/reverse-diff.ts'
import { type AccountWrite, type NodeSource, applyWrites, isEmptyRoot } from '../state/trie.ts'
import type { ChainStore } from '../store/chain-store.ts'

export interface RetainedStatesOptions {
  /**
   * Rebuilt nodes kept in memory, bytes (node bytes plus ~160 per entry for its hex key and map
   * slot). A hard cap: a single rebuilt trie larger than this is not served.
   */
  maxCacheBytes: number
  /** Roots remembered (asked for by a peer). */
  maxRoots: number
  /** Rebuild budget, in reverse diffs applied (one per block between the state and its base): at most this many saved up. */
  maxRebuildDiffs: number
  /** Budget added per imported block. */
  rebuildDiffsPerBlock: number
}

export const DEFAULT_RETAINED_STATES_OPTIONS: RetainedStatesOptions = {
  // 64 MiB: the oldest retained state (112 diffs of 100-transfer blocks on 100,000 accounts) rebuilds
  // to 6.4 MiB of nodes (docs/benchmarks.md, "Disk"), so about ten joiners' targets fit at once beside
  // the store's node cache (~150 MiB); a fixed cap, whatever peers ask.
  maxCacheBytes: 64 * 1024 * 1024,
  // A joiner asks for one root; 32 is many joiners (and the cost of one miss scan: 32 map lookups).
  maxRoots: 32,
  // A rebuild costs ~5 ms per block of 100 transfers on 100,000 accounts (112 merged diffs in 553 ms)
  // against ~45 ms to import such a block (docs/benchmarks.md, "Disk"): 8 per imported block keeps
  // serving old states within about the import's own work; 1,024 saved up is several full-depth
  // rebuilds (a state at the bottom of the window is at most 112 + 32 diffs from a materialized one).
  maxRebuildDiffs: 1_024,
  rebuildDiffsPerBlock: 8,
}

/** Map overhead charged per cached node: its 64-character hex key and the map slot. */
const ENTRY_OVERHEAD_BYTES = 160

interface Overlay {
  /** Nodes of the rebuilt trie that are not under `baseRoot`: hex hash → bytes. */
  nodes: Map<string, Uint8Array>
  bytes: number
  /** The stored state it was rebuilt from; the overlay is valid while this root is stored. */
  baseRoot: Uint8Array
}

interface RememberedRoot {
  root: Uint8Array
  overlay: Overlay | undefined
  /** The prune epoch of the last rebuild attempt started by a miss (one per epoch per root). */
  attemptedEpoch: number
}

interface RetainedBlock {
  height: number
  hash: Uint8Array
}

export interface RetainedStatesStats {
  rebuilds: number
  /** Reverse diffs applied by all rebuilds, and their bytes. */
  rebuiltDiffs: number
  rebuiltDiffBytes: number
  /** Rebuilds refused: over the budget. */
  refusedBudget: number
  /** Rebuilds that could not complete (missing diffs, no state above, a diff not matching its header, too big). */
  failures: number
  lastFailure: string | undefined
  cachedRoots: number
  cachedBytes: number
}

/** What the retained states need from the chain: its head and the lowest height whose state may be retained. */
export interface RetainedStatesChain {
  /** The head; a new object whenever the head moves. */
  head(): { hash: Uint8Array; header: Header }
  /** States of canonical blocks below this height are not served (pruned, or about to be). */
  lowestRetainedHeight(): number
}

export class RetainedStates implements NodeSource {
  readonly options: RetainedStatesOptions
  readonly stats: RetainedStatesStats = {
    rebuilds: 0,
    rebuiltDiffs: 0,
    rebuiltDiffBytes: 0,
    refusedBudget: 0,
    failures: 0,
    lastFailure: undefined,
    cachedRoots: 0,
    cachedBytes: 0,
  }
  /** BOUNDED: at most maxRoots entries; Map order is recency (least recent first); overlays' bytes ≤ maxCacheBytes. */
  private readonly remembered = new Map<string, RememberedRoot>()
  /**
   * Canonical state roots of the retained heights → the highest block with that root (empty blocks
   * share their parent's). BOUNDED: by the retained heights; recomputed when the head or the cutoff moves.
   */
  private rootIndex = new Map<string, RetainedBlock>()
  private indexHead: unknown = undefined
  private indexEpoch = -1
  private epoch = 0
  private budget: number

  constructor(
    private readonly store: ChainStore,
    private readonly chain: RetainedStatesChain,
    options: Partial<RetainedStatesOptions> = {},
  ) {
    this.options = { ...DEFAULT_RETAINED_STATES_OPTIONS, ...options }
    this.budget = this.options.maxRebuildDiffs
  }

  /** A trie node of any retained state: stored, rebuilt before, or rebuilt now (see the module comment). */
  getNode(hash: Uint8Array): Uint8Array | undefined {
    const hex = toHexKey(hash)
    // Overlays first while there are any: a node only they hold would otherwise cost a store miss (a disk read).
    const cached = this.stats.cachedBytes > 0 ? this.fromOverlays(hex) : undefined
    if (cached !== undefined) return cached
    const stored = this.store.getNode(hash, hex)
    if (stored !== undefined) {
      if (this.retainedBlockOf(hex) !== undefined) this.remember(hash, hex)
      return stored
    }
    if (this.retainedBlockOf(hex) !== undefined) {
      const entry = this.remember(hash, hex)
      return (entry.overlay ?? this.build(entry))?.nodes.get(hex)
    }
    // An inner node of a remembered root whose overlay is gone: rebuild each such root once per prune.
    for (const entry of [...this.remembered.values()]) {
      if (entry.overlay !== undefined || entry.attemptedEpoch === this.epoch) continue
      if (isEmptyRoot(entry.root) || this.store.hasNode(entry.root)) continue
      entry.attemptedEpoch = this.epoch
      const found = this.build(entry)?.nodes.get(hex)
      if (found !== undefined) return found
    }
    return undefined
  }

  /**
   * Whether `root` is a retained state this node can serve without its trie stored: a canonical
   * block's root in the state window with every reverse diff from it up to a state at hand.
   */
  canRebuild(root: Uint8Array): boolean {
    const block = this.retainedBlockOf(toHexKey(root))
    return block !== undefined && this.planRebuild(block) !== undefined
  }

  /** Called after each imported block: refills the rebuild budget. */
  onBlockImported(): void {
    this.budget = Math.min(this.options.maxRebuildDiffs, this.budget + this.options.rebuildDiffsPerBlock)
  }

  /** Called after each prune: overlays whose base was deleted are dropped, and roots may be rebuilt again. */
  onPrune(): void {
    this.epoch++
    for (const entry of this.remembered.values()) {
      if (entry.overlay !== undefined && !this.isValid(entry.overlay)) this.dropOverlay(entry)
    }
  }

  private isValid(overlay: Overlay): boolean {
    return isEmptyRoot(overlay.baseRoot) || this.store.hasNode(overlay.baseRoot)
  }

  private fromOverlays(hex: string): Uint8Array | undefined {
    for (const [key, entry] of this.remembered) {
      const overlay = entry.overlay
      if (overlay === undefined) continue
      const bytes = overlay.nodes.get(hex)
      if (bytes === undefined) continue
      if (!this.isValid(overlay)) {
        this.dropOverlay(entry)
        continue
      }
      this.remembered.delete(key)
      this.remembered.set(key, entry)
      return bytes
    }
    return undefined
  }

  private remember(root: Uint8Array, hex: string): RememberedRoot {
    let entry = this.remembered.get(hex)
    if (entry !== undefined) {
      this.remembered.delete(hex)
      this.remembered.set(hex, entry)
      return entry
    }
    entry = { root: new Uint8Array(root), overlay: undefined, attemptedEpoch: -1 }
    this.remembered.set(hex, entry)
    while (this.remembered.size > this.options.maxRoots) {
      const [oldestKey, oldest] = this.remembered.entries().next().value as [string, RememberedRoot]
      this.dropOverlay(oldest)
      this.remembered.delete(oldestKey)
    }
    this.stats.cachedRoots = this.remembered.size
    return entry
  }

  private dropOverlay(entry: RememberedRoot): void {
    if (entry.overlay === undefined) return
    this.stats.cachedBytes -= entry.overlay.bytes
    entry.overlay = undefined
  }

  /** The canonical block of the retained heights whose state root is `hex` (the highest such), if any. */
  private retainedBlockOf(hex: string): RetainedBlock | undefined {
    // Asked for every node served: the index is rebuilt only when the head moves (a new head
    // object) or a prune ran (the lowest retained height moves then).
    const head = this.chain.head()
    if (head !== this.indexHead || this.epoch !== this.indexEpoch) {
      const index = new Map<string, RetainedBlock>()
      for (let height = this.chain.lowestRetainedHeight(); height <= head.header.height; height++) {
        const hash = this.store.getCanonicalHash(height)
        const header = hash === undefined ? undefined : this.store.getHeader(hash)
        if (hash !== undefined && header !== undefined) index.set(toHexKey(header.stateRoot), { height, hash })
      }
      this.rootIndex = index
      this.indexHead = head
      this.indexEpoch = this.epoch
    }
    return this.rootIndex.get(hex)
  }

  /**
   * The canonical blocks from `block` (exclusive) up to the nearest state at hand (inclusive), with
   * their reverse diffs; undefined when a diff is missing or no state above is at hand.
   */
  private planRebuild(block: RetainedBlock): { steps: Array<{ hash: Uint8Array; header: Header; diff: Uint8Array }>; start: Overlay; bytes: number } | undefined {
    const steps: Array<{ hash: Uint8Array; header: Header; diff: Uint8Array }> = []
    let bytes = 0
    let below = block.hash
    const headHeight = this.chain.head().header.height
    for (let height = block.height + 1; height <= headHeight; height++) {
      const hash = this.store.getCanonicalHash(height)
      const header = hash === undefined ? undefined : this.store.getHeader(hash)
      if (hash === undefined || header === undefined || !bytesEqual(header.parentHash, below)) return undefined
      const diff = this.store.getReverseDiff(hash)
      if (diff === undefined) return undefined
      steps.push({ hash, header, diff })
      bytes += diff.length
      below = hash
      if (isEmptyRoot(header.stateRoot) || this.store.hasNode(header.stateRoot)) {
        return { steps, start: { nodes: new Map(), bytes: 0, baseRoot: header.stateRoot }, bytes }
      }
      const cached = this.remembered.get(toHexKey(header.stateRoot))?.overlay
      if (cached !== undefined && this.isValid(cached)) return { steps, start: cached, bytes }
    }
    return undefined
  }

  private fail(reason: string): undefined {
    this.stats.failures++
    this.stats.lastFailure = reason
    return undefined
  }

  /** Rebuilds `entry.root` into an overlay (budget permitting) and caches it. */
  private build(entry: RememberedRoot): Overlay | undefined {
    const block = this.retainedBlockOf(toHexKey(entry.root))
    if (block === undefined) return undefined
    const plan = this.planRebuild(block)
    if (plan === undefined) return this.fail(`no reverse diffs from height ${block.height} up to a stored state`)
    if (plan.steps.length > this.budget) {
      this.stats.refusedBudget++
      return undefined
    }
    this.budget -= plan.steps.length
    this.stats.rebuilds++
    this.stats.rebuiltDiffs += plan.steps.length
    this.stats.rebuiltDiffBytes += plan.bytes
    // The diffs merged into one write set: for each account, its value before the lowest block that
    // changed it. One trie update then rebuilds the target directly (shared upper paths once, no
    // intermediate states), and its root is checked against the target block's header.
    const writes = new Map<string, AccountWrite>()
    for (const step of plan.steps) {
      for (const write of decodeReverseDiff(step.diff)) {
        const hex = toHexKey(write.keyHash)
        if (!writes.has(hex)) writes.set(hex, write)
      }
    }
    const startNodes = plan.start.nodes
    const source: NodeSource = { getNode: (hash) => startNodes.get(toHexKey(hash)) ?? this.store.getNode(hash) }
    const top = (plan.steps[plan.steps.length - 1] as { header: Header }).header
    const result = applyWrites(source, top.stateRoot, [...writes.values()])
    if (!bytesEqual(result.root, entry.root)) {
      return this.fail(`the reverse diffs of heights ${block.height + 1}–${top.height} do not give the state root of height ${block.height}`)
    }
    const nodes = result.nodes
    if (startNodes.size > 0) {
      // Rebuilt over an earlier overlay: keep what the new trie still uses of it.
      for (const [hex, bytes] of startNodes) if (!nodes.has(hex)) nodes.set(hex, bytes)
      compact(nodes, result.root)
    }
    let bytes = 0
    for (const node of nodes.values()) bytes += node.length + ENTRY_OVERHEAD_BYTES
    if (bytes > this.options.maxCacheBytes) return this.fail(`a rebuilt state of ${bytes} bytes exceeds the cache (${this.options.maxCacheBytes})`)
    this.dropOverlay(entry)
    const overlay: Overlay = { nodes, bytes, baseRoot: plan.start.baseRoot }
    entry.overlay = overlay
    this.stats.cachedBytes += bytes
    // Room for it: drop the least recently used overlays.
    for (const other of this.remembered.values()) {
      if (this.stats.cachedBytes <= this.options.maxCacheBytes) break
      if (other !== entry) this.dropOverlay(other)
    }
    return overlay
  }
}

/** Keeps only the overlay nodes reachable from `root`; stops at nodes not in it (stored). */
function compact(nodes: Map<string, Uint8Array>, root: Uint8Array): void {
  const kept = new Map<string, Uint8Array>()
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const hex = toHexKey(hash)
    if (kept.has(hex)) continue
    const bytes = nodes.get(hex)
    if (bytes === undefined) continue
    kept.set(hex, bytes)
    const node = decodeNode(bytes)
    if (node.kind === 'branch') for (const child of node.children) if (child !== undefined) stack.push(child)
  }
  nodes.clear()
  for (const [hex, bytes] of kept) nodes.set(hex, bytes)
}
