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
 *   1. the retained roots: every materialized one;
 *   2. collect: walk each demoted root (blocks whose height left the materialized window since the
 *      last run) beside the retained tries, stopping where a retained trie holds the same node, and
 *      remember each dead node with its depth (`collectDead`: it reads what the demoted states
 *      changed, not the whole state, as the mark of every retained root it replaced did);
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
import { type TrieNode, decodeNode, nibbleAt } from '../state/nodes.ts'
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
  /** Trie nodes the collection read: the demoted roots' nodes it walked and the retained ones it compared them with. */
  visitedNodes: number
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
 * The mark of every retained root that the collection once started with walked a whole state
 * (~130,000 nodes at 100,000 accounts, ~0.7 s), and three devnet nodes in one process pruned at
 * once held the loop ~180 ms at 8,000 accounts: gossip waited behind it.
 */
export const PRUNE_NODES_PER_SLICE = 512

/** Pruning was held mid-run (`PruneInput.held`): the run stops where it is. */
class PruneHeld extends Error {
  override name = 'PruneHeld'
}

/** Counts visited nodes: `due()` once PRUNE_NODES_PER_SLICE of them were counted since the last `pause()` (await it: it also stops a held run). */
class Slicer {
  private visited = 0
  private sinceYield = 0
  constructor(
    private readonly yieldNow: () => Promise<void>,
    private readonly held: () => boolean,
  ) {}
  /** Nodes counted so far. */
  get visitedNodes(): number {
    return this.visited
  }
  /** One more node visited (a read between the walk's checks of `due`). */
  count(): void {
    this.visited++
    this.sinceYield++
  }
  /** Counts one node; true when the slice is used up. */
  due(): boolean {
    this.count()
    return this.sinceYield >= PRUNE_NODES_PER_SLICE
  }
  async pause(): Promise<void> {
    this.sinceYield = 0
    await this.yieldNow()
    this.stopIfHeld()
  }
  stopIfHeld(): void {
    if (this.held()) throw new PruneHeld('pruning held')
  }
}

/** A retained node as read once per run, its children's hex keys with it (the walks of every demoted root meet the upper ones). */
interface ReadNode {
  node: TrieNode
  childHexes: Array<string | undefined>
}

/** The retained tries' distinct nodes under one prefix, by hex. */
type Cursors = Map<string, Uint8Array>

/**
 * Dead nodes under the demoted `root` (each once, with the order key it must be deleted in): its
 * nodes that no retained root holds. The walk keeps, for every position of the demoted trie it
 * visits, the retained tries' nodes under the same prefix ("cursors", distinct hashes only), and
 * stops where one of them equals the demoted node: that subtree is retained. It works because the
 * trie's shape is a function of its key set (src/state/nodes.ts): a branch's depth follows from
 * its content (the one splitting its keys sits at their common prefix, and each single-child
 * branch one nibble above its child), so a branch with a given hash sits under one prefix only
 * and a retained trie holds it only as its node there; a leaf carries its whole key, so one is
 * held if the retained trie's subtree under its prefix holds it, maybe lower down
 * (`RetainedTries.holdLeaf`). Every ancestor of a dead node is dead (a retained ancestor would
 * hold it), so the walk from the top reaches each one. Its cost is the demoted state's difference
 * from the retained ones (the blocks that changed it), not the state's size: a mark of every
 * retained state, which this replaces, read the whole state every run (~130,000 nodes at 100,000
 * accounts). Missing nodes (a retained or demoted subtree not in the store) are skipped, as a mark
 * did.
 */
async function collectDead(
  store: ChainStore,
  root: Uint8Array,
  retained: RetainedTries,
  dead: Map<string, number>,
  slicer: Slicer,
): Promise<void> {
  if (isEmptyRoot(root)) return
  const stack: Array<{ hash: Uint8Array; hex: string; prefix: string; cursors: Cursors }> = [{ hash: root, hex: toHexKey(root), prefix: '', cursors: retained.roots }]
  while (stack.length > 0) {
    const { hash, hex, prefix, cursors } = stack.pop() as (typeof stack)[number]
    if (cursors.has(hex) || dead.has(hex)) continue
    const bytes = store.getNode(hash, hex)
    if (bytes === undefined) continue
    const node = decodeNode(bytes)
    if (slicer.due()) await slicer.pause()
    const depth = prefix.length
    if (node.kind === 'leaf') {
      if (!retained.holdLeaf(prefix, cursors, node.keyHash, hex)) dead.set(hex, LEAF_ORDER)
      continue
    }
    dead.set(hex, depth)
    const under = retained.under(prefix, cursors)
    node.children.forEach((child, nibble) => {
      if (child !== undefined) stack.push({ hash: child, hex: toHexKey(child), prefix: prefix + nibble.toString(16), cursors: under[nibble] as Cursors })
    })
  }
}

/**
 * The retained tries as the collection sees them in one run: their roots, their nodes read once
 * (`read`), and for each prefix a walk reached, their distinct nodes under each of its 16
 * children (`under`). Both depend only on the retained roots, so every demoted root's walk shares
 * them: with 130 retained roots (no finality: the whole window is materialized) each root's upper
 * nodes are its own, and expanding them again for every dead branch of every demoted root cost
 * more than the mark this replaces. BOUNDED: by one run's walks, and dropped with the run.
 */
class RetainedTries {
  private readonly nodes = new Map<string, ReadNode | null>()
  private readonly expanded = new Map<string, Cursors[]>()

  constructor(
    readonly roots: Cursors,
    private readonly store: ChainStore,
    private readonly slicer: Slicer,
  ) {}

  /** A retained node, read once per run; `null`: not in the store. */
  private read(hash: Uint8Array, hex: string): ReadNode | null {
    let held = this.nodes.get(hex)
    if (held === undefined) {
      this.slicer.count()
      const bytes = this.store.getNode(hash, hex)
      const node = bytes === undefined ? undefined : decodeNode(bytes)
      held = node === undefined ? null : { node, childHexes: node.kind === 'branch' ? node.children.map((child) => (child === undefined ? undefined : toHexKey(child))) : [] }
      this.nodes.set(hex, held)
    }
    return held
  }

  /** The retained tries' distinct nodes under each child of `prefix`, given theirs under `prefix` (`cursors`): a branch's child there, or a leaf whose key goes there. */
  under(prefix: string, cursors: Cursors): Cursors[] {
    let under = this.expanded.get(prefix)
    if (under !== undefined) return under
    under = Array.from({ length: 16 }, () => new Map())
    for (const [cursorHex, cursor] of cursors) {
      const held = this.read(cursor, cursorHex)
      if (held === null) continue
      if (held.node.kind === 'leaf') (under[nibbleAt(held.node.keyHash, prefix.length)] as Cursors).set(cursorHex, cursor)
      else
        held.node.children.forEach((child, nibble) => {
          if (child !== undefined) (under[nibble] as Cursors).set(held.childHexes[nibble] as string, child)
        })
    }
    this.expanded.set(prefix, under)
    return under
  }

  /**
   * Whether a retained trie holds the leaf `leafHex` (key `keyHash`) that a demoted trie has under
   * `prefix`, given the retained nodes under `prefix` (`cursors`). A leaf's hash does not depend on
   * its depth, so a retained trie that got a sibling under the same prefix holds it lower down:
   * the search follows the key while a retained branch lies on its path.
   */
  holdLeaf(prefix: string, cursors: Cursors, keyHash: Uint8Array, leafHex: string): boolean {
    let at = prefix
    let set = cursors
    while (!set.has(leafHex)) {
      // Below leaves only, nothing new is found.
      if (at.length >= 64 || !this.hasBranch(set)) return false
      const nibble = nibbleAt(keyHash, at.length)
      set = this.under(at, set)[nibble] as Cursors
      at += nibble.toString(16)
    }
    return true
  }

  private hasBranch(cursors: Cursors): boolean {
    for (const [hex, hash] of cursors) if (this.read(hash, hex)?.node.kind === 'branch') return true
    return false
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
    visitedNodes: 0,
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

  // 1. The materialized roots: what stays.
  const retained = await blocksIn(materializedCutoff, headHeight + 1)
  const finalizedHeader = store.getHeader(finalized.hash)
  const retainedHeaders: Header[] = []
  if (finalizedHeader !== undefined) retainedHeaders.push(finalizedHeader)
  retainedHeaders.push(head.header)
  for (const entry of retained) {
    const header = store.getHeader(entry.hash)
    if (header !== undefined) retainedHeaders.push(header)
  }
  const retainedRoots: Cursors = new Map()
  for (const header of retainedHeaders) if (!isEmptyRoot(header.stateRoot)) retainedRoots.set(toHexKey(header.stateRoot), header.stateRoot)
  report.retainedRoots = retainedHeaders.length

  // 2. Collect the dead nodes under every root that left the materialized window.
  const dead = new Map<string, number>()
  const tries = new RetainedTries(retainedRoots, store, slicer)
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
    await collectDead(store, header.stateRoot, tries, dead, slicer)
  }
  report.visitedNodes = slicer.visitedNodes

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
