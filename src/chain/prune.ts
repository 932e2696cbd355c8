/**
 * Pruning (docs/architecture.md, "Pruning"): mark-and-sweep of trie nodes and bodies that no
 * retained block needs.
 *
 * Retained: the states of the last `keepStateBlocks` heights (every stored block there, side
 * branches too) and of the finalized block; the bodies of the last `keepBodyBlocks` heights, of the
 * finalized block and of the genesis block; every header; every certificate.
 *
 * A retained state is kept in one of two forms:
 *   - materialized (its trie nodes in the store): the last `materializedStateBlocks` heights, every
 *     height from the finalized block up (the blocks fork choice may still build on: it never
 *     leaves the finalized block, so any block it can import has a materialized parent), and the
 *     finalized block;
 *   - as reverse diffs (src/state/reverse-diff.ts, written with each block): the older heights of
 *     the window, all below the finalized block. Such a state is rebuilt on demand from the
 *     nearest materialized state above it on the canonical chain (src/chain/retained-states.ts).
 *     Side-branch blocks there are not rebuilt (they can never be canonical again).
 *
 * One run, serialised with block imports (Chain's queue), so no import writes a node meanwhile; its
 * walks yield to the event loop every PRUNE_NODES_PER_SLICE nodes, so gossip and RPC go on:
 *   1. mark: walk every materialized root, collecting the reachable node hashes (a subtree already
 *      seen is skipped, so the roots cost one state plus their differences);
 *   2. collect: walk each demoted root (blocks whose height left the materialized window since the
 *      last run), stopping at marked nodes, and remember each dead node with its depth;
 *   3. sweep: delete bodies (and the tx index of canonical ones) and the reverse diffs of heights
 *      that left the state window, then dead nodes in batches in order of depth, parents before
 *      children, then record the progress.
 *
 * Crash safety. Deleting parents first keeps the store's invariant "a stored node has its whole
 * subtree" (what state sync's local walk, `Chain.hasState` and the rebuilding of old states rely
 * on) after a kill at any moment: a node's depth is a function of its content (no extension nodes:
 * a branch sits at the common prefix length of its keys; leaves have no children and go last), so
 * every parent of a dead node is deleted in an earlier or the same batch. Only dead nodes are
 * deleted, and only the reverse diffs of heights below the new state window, which no retained
 * state needs (rebuilding height h applies the diffs of the blocks above h), so a kill never loses
 * anything retained; the progress meta is written last, so the next run redoes the interrupted one
 * (a subtree whose root was already deleted is then left behind: a bounded leak of garbage, never
 * a loss).
 */
import { toHexKey } from '../codec/bytes.ts'
import type { Header } from '../ledger/types.ts'
import { decodeNode } from '../state/nodes.ts'
import { isEmptyRoot } from '../state/trie.ts'
import type { ChainStore, FinalizedPointer } from '../store/chain-store.ts'

export interface PruningOptions {
  /** Keep everything (no pruning at all): `--archive`. */
  archive: boolean
  /** States kept: the last this-many heights (and the finalized block's). At least 2. */
  keepStateBlocks: number
  /**
   * Of those, kept as trie nodes: the last this-many heights (and every height from the finalized
   * block up); the older ones as reverse diffs. At least 1: `--keep-materialized N`.
   */
  materializedStateBlocks: number
  /** Bodies kept: the last this-many heights (and the finalized and genesis blocks'). At least 1: `--keep-bodies N`. */
  keepBodyBlocks: number
  /** A prune runs after the head has advanced this many blocks since the last one. */
  pruneIntervalBlocks: number
  /** Deletes per store batch (bounds one write's size). */
  deleteBatchOps: number
}

export const DEFAULT_PRUNING_OPTIONS: PruningOptions = {
  archive: false,
  keepStateBlocks: 128,
  // 16 full states: the head, the finalized block (0–3 below it) and the blocks a short reorg
  // builds on, plus a margin for a state sync's target to age in before it must be rebuilt; each
  // costs one block's changed paths (~200 KiB for 100-transfer blocks on 100,000 accounts), a
  // reverse diff about 1/20 of that.
  materializedStateBlocks: 16,
  keepBodyBlocks: 128,
  pruneIntervalBlocks: 32,
  deleteBatchOps: 20_000,
}

export interface PruneReport {
  /** States of heights below this are gone (except the finalized block's). */
  stateCutoff: number
  /** States of heights below this (and at or above `stateCutoff`) are kept as reverse diffs only. */
  materializedCutoff: number
  /** Bodies of heights below this are gone (except the finalized and genesis blocks'). */
  bodyCutoff: number
  /** Materialized roots marked. */
  retainedRoots: number
  /** Roots whose trie nodes were collected (left the materialized window, or a released finalized block). */
  droppedRoots: number
  liveNodes: number
  deletedNodes: number
  deletedBodies: number
  deletedDiffs: number
  /** The run stopped part-way because pruning was held (`PruneInput.held`): the counts include a batch never written; the next run redoes it. */
  stopped?: boolean
}

export interface PruneInput {
  head: { hash: Uint8Array; header: Header }
  finalized: FinalizedPointer
  genesisBlock: Uint8Array
  options: PruningOptions
  /** Lets the event loop turn (gossip, RPC) between slices of the walks; default: a setImmediate. */
  yieldNow?: () => Promise<void>
  /**
   * Pruning is held (a state sync walks the local trie beside its target and keeps what it finds):
   * checked at every slice and before every delete batch, the run stops there, nothing after the
   * hold is deleted, and the next run redoes it (the progress meta is written last).
   */
  held?: () => boolean
}

/** States of heights below this (except the finalized block's) are gone: trie nodes and reverse diffs. */
export const STATE_CUTOFF_META = 'prunedStatesBelow'
const META_STATE_CUTOFF = STATE_CUTOFF_META
const META_BODY_CUTOFF = 'prunedBodiesBelow'
/** Trie nodes of heights below this (except the finalized block's) are gone. Absent: equal to the state cutoff (stores pruned before reverse diffs). */
const META_MATERIALIZED_CUTOFF = 'prunedNodesBelow'
/** The finalized block whose state and body the last run kept below the cutoffs: dropped once it is no longer the finalized one. */
const META_KEPT_FINALIZED = 'prunedKeptFinalized'
/** Leaves have no children: deleted after every branch. */
const LEAF_ORDER = 65

/**
 * Trie nodes visited between yields to the event loop in a prune's walks: ~1–2 ms of decoding.
 * A mark walks a whole state (~130,000 nodes at 100,000 accounts, ~0.7 s), and three devnet nodes
 * in one process pruned at once held the loop ~180 ms at 8,000 accounts: gossip waited behind it.
 */
export const PRUNE_NODES_PER_SLICE = 512

/** Pruning was held mid-run (`PruneInput.held`): the run stops where it is. */
class PruneHeld extends Error {
  override name = 'PruneHeld'
}

/** Counts visited nodes: `due()` once per PRUNE_NODES_PER_SLICE of them (then await `pause()`, which stops a held run). */
class Slicer {
  private visited = 0
  constructor(
    private readonly yieldNow: () => Promise<void>,
    private readonly held: () => boolean,
  ) {}
  due(): boolean {
    return ++this.visited % PRUNE_NODES_PER_SLICE === 0
  }
  async pause(): Promise<void> {
    await this.yieldNow()
    this.stopIfHeld()
  }
  stopIfHeld(): void {
    if (this.held()) throw new PruneHeld('pruning held')
  }
}

/** Node hashes reachable from `root`, skipping subtrees already in `seen`. Missing nodes are skipped. */
async function mark(store: ChainStore, root: Uint8Array, seen: Set<string>, slicer: Slicer): Promise<void> {
  if (isEmptyRoot(root)) return
  const stack: Uint8Array[] = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const hex = toHexKey(hash)
    if (seen.has(hex)) continue
    const bytes = store.getNode(hash, hex)
    if (bytes === undefined) continue
    seen.add(hex)
    const node = decodeNode(bytes)
    if (node.kind === 'branch') for (const child of node.children) if (child !== undefined) stack.push(child)
    if (slicer.due()) await slicer.pause()
  }
}

/** Dead nodes under `root` (not in `live`), each once, with the order key it must be deleted in. */
async function collectDead(store: ChainStore, root: Uint8Array, live: Set<string>, dead: Map<string, number>, slicer: Slicer): Promise<void> {
  if (isEmptyRoot(root)) return
  const stack: Array<{ hash: Uint8Array; depth: number }> = [{ hash: root, depth: 0 }]
  while (stack.length > 0) {
    const { hash, depth } = stack.pop() as { hash: Uint8Array; depth: number }
    const hex = toHexKey(hash)
    if (live.has(hex) || dead.has(hex)) continue
    const bytes = store.getNode(hash, hex)
    if (bytes === undefined) continue
    const node = decodeNode(bytes)
    if (slicer.due()) await slicer.pause()
    if (node.kind === 'leaf') {
      dead.set(hex, LEAF_ORDER)
      continue
    }
    dead.set(hex, depth)
    for (const child of node.children) if (child !== undefined) stack.push({ hash: child, depth: depth + 1 })
  }
}

/** One prune run (see the module comment). The caller serialises it with imports. */
export async function pruneStore(store: ChainStore, input: PruneInput): Promise<PruneReport> {
  const slicer = new Slicer(input.yieldNow ?? (() => new Promise<void>((resolve) => setImmediate(resolve))), input.held ?? (() => false))
  const partial: { report?: PruneReport } = {}
  try {
    return await pruneRun(store, input, slicer, partial)
  } catch (error) {
    if (!(error instanceof PruneHeld) || partial.report === undefined) throw error
    return { ...partial.report, stopped: true }
  }
}

async function pruneRun(store: ChainStore, input: PruneInput, slicer: Slicer, partial: { report?: PruneReport }): Promise<PruneReport> {
  const { head, finalized, options } = input
  const headHeight = head.header.height
  const stateCutoff = Math.max(0, headHeight - Math.max(2, options.keepStateBlocks) + 1)
  const bodyCutoff = Math.max(1, headHeight - Math.max(1, options.keepBodyBlocks) + 1)
  const previousStateCutoff = store.getMetaHeight(META_STATE_CUTOFF) ?? 0
  const previousBodyCutoff = store.getMetaHeight(META_BODY_CUTOFF) ?? 1
  const previousMaterializedCutoff = store.getMetaHeight(META_MATERIALIZED_CUTOFF) ?? previousStateCutoff
  // Never below the finalized block: fork choice may build on anything from there up. Never moved
  // back: a root demoted earlier is not marked again (a half-deleted one would leak).
  const materializedCutoff = Math.max(
    stateCutoff,
    previousMaterializedCutoff,
    Math.min(headHeight - Math.max(1, options.materializedStateBlocks) + 1, finalized.height),
  )
  const report: PruneReport = {
    stateCutoff,
    materializedCutoff,
    bodyCutoff,
    retainedRoots: 0,
    droppedRoots: 0,
    liveNodes: 0,
    deletedNodes: 0,
    deletedBodies: 0,
    deletedDiffs: 0,
  }
  partial.report = report
  if (options.archive) return report
  if (stateCutoff <= previousStateCutoff && bodyCutoff <= previousBodyCutoff && materializedCutoff <= previousMaterializedCutoff) return report

  const finalizedHex = toHexKey(finalized.hash)
  const genesisHex = toHexKey(input.genesisBlock)
  /** Every block at [from, to): the height index plus the canonical one (blocks stored before the index existed). */
  const blocksIn = async (from: number, to: number): Promise<Array<{ height: number; hash: Uint8Array }>> => {
    const found = await store.blocksAtHeights(from, to)
    const known = new Set(found.map((entry) => toHexKey(entry.hash)))
    // One range scan, not a lookup per height: after a join from a certificate there is no canonical
    // entry below the pivot, and the first prune must not walk every height from genesis.
    for (const entry of await store.canonicalInRange(from, Math.min(to, headHeight + 1))) {
      if (!known.has(toHexKey(entry.hash))) found.push(entry)
    }
    return found
  }

  // 1. Mark from every materialized root.
  const live = new Set<string>()
  const retained = await blocksIn(materializedCutoff, headHeight + 1)
  const finalizedHeader = store.getHeader(finalized.hash)
  const retainedHeaders: Header[] = []
  if (finalizedHeader !== undefined) retainedHeaders.push(finalizedHeader)
  retainedHeaders.push(head.header)
  for (const entry of retained) {
    const header = store.getHeader(entry.hash)
    if (header !== undefined) retainedHeaders.push(header)
  }
  for (const header of retainedHeaders) await mark(store, header.stateRoot, live, slicer)
  report.retainedRoots = retainedHeaders.length
  report.liveNodes = live.size

  // 2. Collect the dead nodes under every root that left the materialized window.
  const dead = new Map<string, number>()
  const dropped = materializedCutoff > previousMaterializedCutoff ? await blocksIn(previousMaterializedCutoff, materializedCutoff) : []
  // A previously finalized block kept below the cutoffs is dropped once finality has moved on.
  const keptFinalized = store.getMeta(META_KEPT_FINALIZED)
  const keptHeader = keptFinalized === undefined ? undefined : store.getHeader(keptFinalized)
  const releasedFinalized =
    keptFinalized !== undefined && keptHeader !== undefined && toHexKey(keptFinalized) !== finalizedHex ? { height: keptHeader.height, hash: keptFinalized } : undefined
  if (releasedFinalized !== undefined && releasedFinalized.height < materializedCutoff) dropped.push(releasedFinalized)
  for (const entry of dropped) {
    if (toHexKey(entry.hash) === finalizedHex) continue
    const header = store.getHeader(entry.hash)
    if (header === undefined) continue
    report.droppedRoots++
    await collectDead(store, header.stateRoot, live, dead, slicer)
  }

  // 3a. Bodies below the body cutoff (their canonical txs leave the tx index with them).
  let batch = store.batch()
  const flushIfFull = async (): Promise<void> => {
    if (batch.size < options.deleteBatchOps) return
    slicer.stopIfHeld()
    await batch.commit()
    batch = store.batch()
  }
  const bodyCandidates = bodyCutoff > previousBodyCutoff ? await blocksIn(previousBodyCutoff, bodyCutoff) : []
  if (releasedFinalized !== undefined && releasedFinalized.height < bodyCutoff) bodyCandidates.push(releasedFinalized)
  {
    for (const entry of bodyCandidates) {
      const hex = toHexKey(entry.hash)
      if (hex === finalizedHex || hex === genesisHex) continue
      const txs = store.getBody(entry.hash)
      if (txs === undefined) continue
      const canonical = store.getCanonicalHash(entry.height)
      if (canonical !== undefined && toHexKey(canonical) === hex) for (const signed of txs) batch.deleteTxLocation(signed.id)
      batch.deleteBody(entry.hash)
      report.deletedBodies++
      await flushIfFull()
    }
  }

  // 3b. Reverse diffs of the heights that left the state window (side branches too).
  for (const entry of stateCutoff > previousStateCutoff ? await blocksIn(previousStateCutoff, stateCutoff) : []) {
    if (store.getReverseDiff(entry.hash) === undefined) continue
    batch.deleteReverseDiff(entry.hash)
    report.deletedDiffs++
    await flushIfFull()
  }

  // 3c. Dead nodes, parents before children.
  const ordered = [...dead.entries()].sort((a, b) => a[1] - b[1])
  for (const [hex] of ordered) {
    batch.deleteNode(Buffer.from(hex, 'hex'))
    report.deletedNodes++
    await flushIfFull()
    if (slicer.due()) await slicer.pause()
  }

  // 3d. Progress last: a run killed before this line is redone by the next one. The height index
  // is no longer needed below both cutoffs.
  const indexCutoff = Math.min(stateCutoff, bodyCutoff)
  for (const entry of await store.blocksAtHeights(Math.min(previousStateCutoff, previousBodyCutoff), indexCutoff)) {
    if (toHexKey(entry.hash) !== finalizedHex && toHexKey(entry.hash) !== genesisHex) batch.deleteBlockAtHeight(entry.height, entry.hash)
  }
  if (finalized.height < Math.max(materializedCutoff, bodyCutoff)) batch.putMeta(META_KEPT_FINALIZED, finalized.hash)
  else batch.deleteMeta(META_KEPT_FINALIZED)
  batch.putMetaHeight(META_STATE_CUTOFF, Math.max(stateCutoff, previousStateCutoff))
  batch.putMetaHeight(META_MATERIALIZED_CUTOFF, materializedCutoff)
  batch.putMetaHeight(META_BODY_CUTOFF, Math.max(bodyCutoff, previousBodyCutoff))
  slicer.stopIfHeld()
  await batch.commit()
  return report
}
