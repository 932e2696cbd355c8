/**
 * The block tree over the store: genesis initialisation, block import with full validation,
 * longest-chain fork choice, reorgs and block production. Imports are serialised; validation
 * is synchronous and the store write is one atomic batch per block.
 */
import { bytesEqual, compareBytes, toHexKey } from '../codec/bytes.ts'
import { blockEncodedSize, encodeUnsignedHeader, genesisHash, headerHash } from '../codec/objects.ts'
import { ZERO_HASH, sha256 } from '../crypto/hash.ts'
import type { Keypair } from '../crypto/keys.ts'
import { sign, signingMessage } from '../crypto/sign.ts'
import { BlockError, TxError } from '../ledger/errors.ts'
import { merkleRoot } from '../ledger/merkle.ts'
import { StateOverlay, applyTransfer } from '../ledger/transition.ts'
import type { Account, Address, Block, Certificate, Genesis, Header, SignedTx } from '../ledger/types.ts'
import type { ChainBatch, ChainStore, FinalizedPointer } from '../store/chain-store.ts'
import { encodeReverseDiff } from '../state/reverse-diff.ts'
import { EMPTY_ROOT, type NodeSource, applyUpdates, getAccount } from '../state/trie.ts'
import { type ExecutionResult, executeBlock, validateBodyShape, validateHeader, validateHeaderAlone } from './execute.ts'
import { verifyCertificate } from './finality.ts'
import { DEFAULT_PRUNING_OPTIONS, type PruneReport, type PruningOptions, STATE_CUTOFF_META, pruneStore } from './prune.ts'
import { RetainedStates, type RetainedStatesOptions } from './retained-states.ts'
import { LeaderSchedule } from './schedule.ts'

export interface HeadInfo {
  hash: Uint8Array
  header: Header
}

/** What a head move did to the canonical chain. */
export interface HeadChange {
  previous: HeadInfo
  head: HeadInfo
  /** Blocks that left the canonical chain, newest first. */
  removed: Block[]
  /** Blocks that joined it, oldest first (the new head last). */
  added: Block[]
}

export interface ImportResult {
  hash: Uint8Array
  /** Set when the import moved the head. */
  change?: HeadChange
}

export interface ImportOptions {
  /** Local clock reading, ms. */
  now: number
  /** True when a tx's signature was already verified (mempool): it is not checked again. */
  isVerified?: (idHex: string) => boolean
  /**
   * Called once the header and body shape are valid, before execution: may verify the block's
   * signatures elsewhere (worker threads) so that `isVerified` answers true for the valid ones.
   * Execution still checks every tx `isVerified` does not vouch for.
   */
  preverify?: (txs: readonly SignedTx[]) => Promise<void>
}

/** Chooses between two chain tips: longer wins; at equal height the lower hash wins. */
export function isBetterHead(candidateHash: Uint8Array, candidate: Pick<Header, 'height'>, currentHash: Uint8Array, current: Pick<Header, 'height'>): boolean {
  if (candidate.height !== current.height) return candidate.height > current.height
  return compareBytes(candidateHash, currentHash) < 0
}

/** Mempool's side of block building: picks transactions in fee order, asking `tryApply` for each. */
export interface TxPacker {
  pack(tryApply: (signed: SignedTx) => boolean, maxTxs: number, maxBytes: number): SignedTx[]
}

/** A packer over a fixed list, in order: for tools, tests and benchmarks that build blocks by hand. */
export function fixedPacker(txs: readonly SignedTx[]): TxPacker {
  return {
    pack(tryApply, maxTxs) {
      const out: SignedTx[] = []
      for (const tx of txs) {
        if (out.length >= maxTxs) break
        if (tryApply(tx)) out.push(tx)
      }
      return out
    },
  }
}

export interface ChainDeps {
  store: ChainStore
  genesis: Genesis
}

export interface ChainOptions {
  /** What the store keeps (src/chain/prune.ts); default: pruned, 128 states (16 as trie nodes) and 128 bodies. */
  pruning?: Partial<PruningOptions>
  /** Rebuilding the retained states kept as reverse diffs, to serve them (src/chain/retained-states.ts). */
  retainedStates?: Partial<RetainedStatesOptions>
  /** How a prune lets the event loop turn between slices of its walks (PruneInput.yieldNow); default: a setImmediate. */
  yieldNow?: () => Promise<void>
}

/** What `applyCertificate` did. */
export type FinalityResult =
  /** The finalized pointer moved (and the head, if it was on another branch: `change`). */
  | { status: 'finalized'; finalized: FinalizedPointer; change: HeadChange | undefined }
  /** At or below the current finalized height, on the finalized chain: nothing to do. */
  | { status: 'stale' }
  /** The certified block (or its body) is not stored yet: keep the certificate and apply it after the block is imported. */
  | { status: 'unknown-block' }

/**
 * Two conflicting blocks were both certified (more than 1/3 of the stake equivocated) or a
 * certificate names a block off our finalized chain: a safety failure the node cannot resolve.
 */
export class FinalityConflictError extends Error {
  override name = 'FinalityConflictError'
}

/** Bound of the head-state account cache. */
const MAX_CACHED_HEAD_ACCOUNTS = 100_000

export class GenesisMismatchError extends Error {
  override name = 'GenesisMismatchError'
}

export class Chain {
  readonly genesisHash: Uint8Array
  readonly schedule: LeaderSchedule
  private currentHead!: HeadInfo
  private genesisBlockHash!: Uint8Array
  /** Accounts read at the head's state (mempool admission reads the same senders again and again); reset when the head moves. */
  private headAccounts = new Map<string, Account>()
  private headAccountsRoot: Uint8Array | undefined
  /** Serialises imports: each waits for the previous one's store write. */
  private importQueue: Promise<unknown> = Promise.resolve()
  private finalizedPointer!: FinalizedPointer
  readonly pruning: PruningOptions
  private readonly yieldNow: (() => Promise<void>) | undefined
  /** Head height at the last prune (a prune runs every `pruneIntervalBlocks`). */
  private lastPruneHeight = 0
  /** Callers holding pruning off (a state sync relying on the local trie). */
  private pruneHolds = 0
  /** The last automatic prune's failure, if any (surfaced by the node's logs). */
  lastPruneError: Error | undefined
  lastPruneReport: PruneReport | undefined
  /** The retained states kept as reverse diffs, rebuilt on demand (src/chain/retained-states.ts). */
  readonly retainedStates: RetainedStates

  private constructor(
    readonly store: ChainStore,
    readonly genesis: Genesis,
    options: ChainOptions,
  ) {
    this.genesisHash = genesisHash(genesis)
    this.schedule = new LeaderSchedule(genesis, this.genesisHash)
    this.pruning = { ...DEFAULT_PRUNING_OPTIONS, ...options.pruning }
    this.yieldNow = options.yieldNow
    this.retainedStates = new RetainedStates(
      store,
      {
        head: () => this.currentHead,
        // What a prune has not deleted yet, and at most what the window holds between two prunes.
        lowestRetainedHeight: () =>
          Math.max(
            store.getMetaHeight(STATE_CUTOFF_META) ?? 0,
            this.currentHead.header.height - this.pruning.keepStateBlocks - this.pruning.pruneIntervalBlocks + 1,
          ),
      },
      options.retainedStates,
    )
  }

  /**
   * Trie nodes of every retained state, for serving state sync: the stored ones, and those of the
   * states kept as reverse diffs, rebuilt on demand (an archive node stores every state).
   */
  get stateNodes(): NodeSource {
    return this.pruning.archive ? this.store : this.retainedStates
  }

  /** Opens the chain in `store`, writing the genesis block on first use. */
  static async open(deps: ChainDeps, options: ChainOptions = {}): Promise<Chain> {
    const chain = new Chain(deps.store, deps.genesis, options)
    await chain.init()
    return chain
  }

  private async init(): Promise<void> {
    const stored = this.store.getMeta('genesis')
    if (stored !== undefined) {
      if (!bytesEqual(stored, this.genesisHash)) {
        throw new GenesisMismatchError(`data directory belongs to network ${toHexKey(stored)}, not ${toHexKey(this.genesisHash)}`)
      }
      const genesisBlock = this.store.getCanonicalHash(0)
      const headHash = this.store.getMeta('head')
      const header = headHash === undefined ? undefined : this.store.getHeader(headHash)
      if (genesisBlock === undefined || headHash === undefined || header === undefined) {
        throw new Error('store has a genesis but no head: the data directory is damaged')
      }
      this.genesisBlockHash = genesisBlock
      this.currentHead = { hash: headHash, header }
      this.finalizedPointer = this.store.getFinalized() ?? { height: 0, hash: genesisBlock }
      this.lastPruneHeight = header.height
      return
    }
    // First open: build the genesis state once and write block 0 with it.
    const { root, nodes } = applyUpdates(
      this.store,
      EMPTY_ROOT,
      this.genesis.accounts.map((account) => ({ keyHash: sha256(account.address), account: { balance: account.balance, nonce: 0 } })),
    )
    const genesisHeader = this.genesisHeader(root)
    this.genesisBlockHash = headerHash(genesisHeader)
    const batch = this.store.batch()
    batch.putNodes(nodes).putHeader(this.genesisBlockHash, genesisHeader).putBody(this.genesisBlockHash, [])
    batch.setCanonical(0, this.genesisBlockHash).putMeta('head', this.genesisBlockHash).putMeta('genesis', this.genesisHash)
    batch.indexBlockAtHeight(0, this.genesisBlockHash)
    await batch.commit()
    this.currentHead = { hash: this.genesisBlockHash, header: genesisHeader }
    this.finalizedPointer = { height: 0, hash: this.genesisBlockHash }
  }

  /** Block 0: fixed by the genesis file (its state root is that of the funded accounts). */
  private genesisHeader(stateRoot: Uint8Array): Header {
    return {
      chainId: this.genesis.chainId,
      height: 0,
      slot: 0,
      parentHash: this.genesisHash,
      timestamp: this.genesis.genesisTime,
      proposer: ZERO_HASH,
      txRoot: ZERO_HASH,
      stateRoot,
      txCount: 0,
      signature: new Uint8Array(64),
    }
  }

  get head(): HeadInfo {
    return this.currentHead
  }

  get genesisBlock(): Uint8Array {
    return this.genesisBlockHash
  }

  /** The finalized block (the genesis block until the first certificate). Fork choice never leaves it. */
  get finalized(): FinalizedPointer {
    return this.finalizedPointer
  }

  /** The certificate of the latest finalized block (undefined while that is the genesis block). */
  get finalizedCertificate(): Certificate | undefined {
    return this.finalizedPointer.height === 0 ? undefined : this.store.getCertificate(this.finalizedPointer.height)
  }

  /** The certificate that finalized `height` here, if any (every finalized height is kept). */
  getCertificate(height: number): Certificate | undefined {
    return this.store.getCertificate(height)
  }

  /**
   * Whether the chain through block `hash` at `height` contains the finalized block. Walks parents
   * only until it meets our canonical chain (which contains it), so it costs the fork's depth.
   * Unknown ancestry above the finalized height counts as "does not contain".
   */
  descendsFromFinalized(hash: Uint8Array, header: Pick<Header, 'height' | 'parentHash'>): boolean {
    const finalized = this.finalizedPointer
    let currentHash = hash
    let current: Pick<Header, 'height' | 'parentHash'> = header
    for (;;) {
      if (current.height < finalized.height) return false
      if (current.height === finalized.height) return bytesEqual(currentHash, finalized.hash)
      const canonical = current.height <= this.currentHead.header.height ? this.store.getCanonicalHash(current.height) : undefined
      if (canonical !== undefined && bytesEqual(canonical, currentHash)) return true
      const parent = this.store.getHeader(current.parentHash)
      if (parent === undefined) return false
      currentHash = current.parentHash
      current = parent
    }
  }

  /**
   * The hash of block `hash`'s ancestor at `height` (itself at its own height), or undefined when
   * the block or that part of its ancestry is unknown. Walks parents only until it meets our
   * canonical chain, so it costs the fork's depth (the voting policy asks it per binding vote).
   */
  ancestorAt(hash: Uint8Array, height: number): Uint8Array | undefined {
    let currentHash = hash
    let current = this.store.getHeader(hash)
    while (current !== undefined && current.height > height) {
      const canonical = current.height <= this.currentHead.header.height ? this.store.getCanonicalHash(current.height) : undefined
      if (canonical !== undefined && bytesEqual(canonical, currentHash)) return this.store.getCanonicalHash(height)
      currentHash = current.parentHash
      current = this.store.getHeader(currentHash)
    }
    return current?.height === height ? currentHash : undefined
  }

  /**
   * Whether a block, orphan or sync target (height, hash) is refused by finality: at or below the
   * finalized height and not our canonical block there, or above it with known ancestry that does
   * not contain the finalized block. An unknown block above the finalized height is not (yet).
   */
  isBelowFinality(height: number, hash: Uint8Array): boolean {
    const finalized = this.finalizedPointer
    if (height <= finalized.height) {
      const canonical = this.store.getCanonicalHash(height)
      return canonical === undefined || !bytesEqual(canonical, hash)
    }
    const header = this.store.getHeader(hash)
    if (header === undefined) return false
    return !this.descendsFromFinalized(hash, header)
  }

  /**
   * Whether the state after block `header` is retained and can be served: complete in the store
   * (materialized), or kept as reverse diffs that rebuild it (`stateNodes`).
   */
  hasState(header: Pick<Header, 'stateRoot'>): boolean {
    return this.hasMaterializedState(header) || (!this.pruning.archive && this.retainedStates.canRebuild(header.stateRoot))
  }

  /** Whether the state after block `header` is complete in the store (not pruned, not partial): a block can be executed on it. */
  hasMaterializedState(header: Pick<Header, 'stateRoot'>): boolean {
    return bytesEqual(header.stateRoot, EMPTY_ROOT) || this.store.hasNode(header.stateRoot)
  }

  getHeader(hash: Uint8Array): Header | undefined {
    return this.store.getHeader(hash)
  }

  getBlock(hash: Uint8Array): Block | undefined {
    return this.store.getBlock(hash)
  }

  getCanonicalHash(height: number): Uint8Array | undefined {
    if (height > this.currentHead.header.height) return undefined
    return this.store.getCanonicalHash(height)
  }

  /** Whether this block's state is available locally (imported, or the state-sync pivot). */
  hasBlock(hash: Uint8Array): boolean {
    return this.store.hasBody(hash)
  }

  /** The account at `stateRoot` (default: the head's), zero if it never received anything. Do not mutate. */
  getAccount(address: Address, stateRoot: Uint8Array = this.currentHead.header.stateRoot): Account {
    const headRoot = this.currentHead.header.stateRoot
    if (stateRoot !== headRoot && !bytesEqual(stateRoot, headRoot)) {
      return getAccount(this.store, stateRoot, sha256(address)) ?? { balance: 0n, nonce: 0 }
    }
    if (this.headAccountsRoot !== headRoot || this.headAccounts.size >= MAX_CACHED_HEAD_ACCOUNTS) {
      this.headAccounts = new Map()
      this.headAccountsRoot = headRoot
    }
    const key = toHexKey(address)
    let account = this.headAccounts.get(key)
    if (account === undefined) {
      account = getAccount(this.store, stateRoot, sha256(address)) ?? { balance: 0n, nonce: 0 }
      this.headAccounts.set(key, account)
    }
    return account
  }

  /** Validates and imports a block; resolves once it is durable. Throws BlockError. */
  importBlock(block: Block, options: ImportOptions): Promise<ImportResult> {
    const run = this.importQueue.then(() => this.importNow(block, options, undefined))
    this.importQueue = run.catch(() => undefined)
    return run
  }

  private async importNow(block: Block, options: ImportOptions, precomputed: ExecutionResult | undefined): Promise<ImportResult> {
    const header = block.header
    const hash = headerHash(header)
    // IGNORE: already imported; harmless repetition.
    if (this.store.hasBody(hash)) throw new BlockError('BLOCK_ALREADY_KNOWN', 'block already imported', 'ignore')
    const parent = this.store.getHeader(header.parentHash)
    const context = { genesis: this.genesis, schedule: this.schedule, now: options.now }
    if (parent === undefined || !this.store.hasBody(header.parentHash)) {
      // REJECT first what no parent can make valid: the caller holds the block by its header's
      // hash until the parent comes, and a copy whose body is not the one the leader signed (or
      // whose header no leader signed) would shut the genuine block out — counted as had, then
      // failing when the parent came (test/adversarial/forged-blocks.test.ts).
      if (precomputed === undefined) {
        validateHeaderAlone(header, context)
        validateBodyShape(block, this.genesis, blockEncodedSize(block))
      }
      // IGNORE: cannot be judged until its parent arrives (sync fetches it).
      throw new BlockError('BLOCK_UNKNOWN_PARENT', `parent ${toHexKey(header.parentHash).slice(0, 12)} is not imported`, 'ignore')
    }
    // Header rules first (REJECT): a forged header costs its sender even on a stale branch; then the
    // body's shape, before a block on a pruned parent is handed back to be held like one above.
    if (precomputed === undefined) {
      validateHeader(header, parent, context)
      validateBodyShape(block, this.genesis, blockEncodedSize(block))
    }
    // IGNORE: on a branch that does not contain the finalized block, so fork choice can never take
    // it; not provably malicious (a peer that missed the certificate may still relay it).
    if (!this.descendsFromFinalized(header.parentHash, parent)) {
      throw new BlockError('BLOCK_BEFORE_FINALIZED', `block ${header.height} forks below the finalized height ${this.finalizedPointer.height}`, 'ignore')
    }
    // IGNORE: the parent's state was pruned (a fork deeper than the materialized states); treated as unknown.
    if (!this.hasMaterializedState(parent)) {
      throw new BlockError('BLOCK_UNKNOWN_PARENT', `parent ${toHexKey(header.parentHash).slice(0, 12)} state is pruned`, 'ignore')
    }
    let execution = precomputed
    if (execution === undefined) {
      if (options.preverify !== undefined && block.txs.length > 0) await options.preverify(block.txs)
      execution = executeBlock(this.store, parent.stateRoot, block, this.genesis, { isVerified: options.isVerified ?? (() => false) })
      // REJECT: the header commits to the resulting state.
      if (!bytesEqual(execution.stateRoot, header.stateRoot)) {
        throw new BlockError('BLOCK_BAD_STATE_ROOT', 'state root does not match the result of the transactions')
      }
    }

    const batch = this.store.batch()
    batch.putNodes(execution.nodes).putHeader(hash, header).putBody(hash, block.txs).indexBlockAtHeight(header.height, hash)
    // An archive keeps every state's trie: reverse diffs would only add to it.
    if (!this.pruning.archive) batch.putReverseDiff(hash, encodeReverseDiff(execution.reverseDiff))
    const previous = this.currentHead
    let change: HeadChange | undefined
    if (isBetterHead(hash, header, previous.hash, previous.header)) {
      change = this.planHeadMove(batch, previous, { hash, header }, block)
    }
    await batch.commit()
    this.retainedStates.onBlockImported()
    if (change !== undefined) {
      this.currentHead = change.head
      this.maybeSchedulePrune()
    }
    return change === undefined ? { hash } : { hash, change }
  }

  /** Writes canonical-index and tx-index changes for moving the head to `next`. */
  private planHeadMove(batch: ChainBatch, previous: HeadInfo, next: HeadInfo, nextBlock: Block): HeadChange {
    const removed: Block[] = []
    const added: Block[] = [nextBlock]
    const load = (hash: Uint8Array): Block => {
      const loaded = this.store.getBlock(hash)
      if (loaded === undefined) throw new Error(`block ${toHexKey(hash)} missing during reorg`)
      return loaded
    }
    let oldTip: HeadInfo = previous
    let newTip: HeadInfo = { hash: next.header.parentHash, header: this.mustHeader(next.header.parentHash) }
    while (oldTip.header.height > newTip.header.height) {
      removed.push(load(oldTip.hash))
      oldTip = { hash: oldTip.header.parentHash, header: this.mustHeader(oldTip.header.parentHash) }
    }
    while (newTip.header.height > oldTip.header.height) {
      added.push(load(newTip.hash))
      newTip = { hash: newTip.header.parentHash, header: this.mustHeader(newTip.header.parentHash) }
    }
    while (!bytesEqual(oldTip.hash, newTip.hash)) {
      removed.push(load(oldTip.hash))
      added.push(load(newTip.hash))
      oldTip = { hash: oldTip.header.parentHash, header: this.mustHeader(oldTip.header.parentHash) }
      newTip = { hash: newTip.header.parentHash, header: this.mustHeader(newTip.header.parentHash) }
    }
    added.reverse()
    for (const block of removed) for (const signed of block.txs) batch.deleteTxLocation(signed.id)
    for (let height = next.header.height + 1; height <= previous.header.height; height++) batch.deleteCanonical(height)
    for (const block of added) {
      const blockHash = headerHash(block.header)
      batch.setCanonical(block.header.height, blockHash)
      block.txs.forEach((signed, index) => batch.putTxLocation(signed.id, { blockHash, index }))
    }
    batch.putMeta('head', next.hash)
    return { previous, head: next, removed, added }
  }

  private mustHeader(hash: Uint8Array): Header {
    const header = this.store.getHeader(hash)
    if (header === undefined) throw new Error(`header ${toHexKey(hash)} missing`)
    return header
  }

  /**
   * Builds and signs a block for `slot` on the current head from the packer's transactions.
   * The caller imports it with `importOwnBlock`, which skips re-execution.
   */
  buildBlock(slot: number, timestamp: number, keypair: Keypair, packer: TxPacker): { block: Block; execution: ExecutionResult } {
    const parent = this.currentHead
    if (slot <= parent.header.slot) throw new RangeError(`slot ${slot} is not after the head's slot ${parent.header.slot}`)
    const overlay = new StateOverlay((keyHash) => getAccount(this.store, parent.header.stateRoot, keyHash))
    const proposer = keypair.publicKey
    const txs = packer.pack(
      (signed) => {
        try {
          applyTransfer(overlay, signed, proposer)
          return true
        } catch (error) {
          if (error instanceof TxError) return false
          throw error
        }
      },
      this.genesis.limits.maxBlockTxs,
      this.genesis.limits.maxBlockBytes - 512,
    )
    const { root, nodes } = applyUpdates(this.store, parent.header.stateRoot, overlay.updates())
    const unsigned: Header = {
      chainId: this.genesis.chainId,
      height: parent.header.height + 1,
      slot,
      parentHash: parent.hash,
      timestamp,
      proposer,
      txRoot: merkleRoot(txs.map((signed) => signed.id)),
      stateRoot: root,
      txCount: txs.length,
      signature: new Uint8Array(64),
    }
    const header = { ...unsigned, signature: sign(signingMessage(encodeUnsignedHeader(unsigned)), keypair) }
    return { block: { header, txs }, execution: { stateRoot: root, nodes, reverseDiff: overlay.reverseDiff() } }
  }

  /**
   * Makes a state-synced block the head (docs/protocol.md, "State sync"). `headers` is the
   * verified header chain from height 1 to the pivot; the pivot's state trie must already be
   * complete in the store. Blocks before the pivot keep only their headers (no bodies, no tx
   * index); blocks after it are imported normally.
   */
  adoptPivot(headers: Array<{ header: Header; hash: Uint8Array }>, pivotTxs: SignedTx[]): Promise<HeadChange> {
    const run = this.importQueue.then(() => this.adoptPivotNow(headers, pivotTxs))
    this.importQueue = run.catch(() => undefined)
    return run
  }

  private async adoptPivotNow(headers: Array<{ header: Header; hash: Uint8Array }>, pivotTxs: SignedTx[]): Promise<HeadChange> {
    const pivot = headers[headers.length - 1]
    if (pivot === undefined) throw new RangeError('no pivot header')
    if (!this.store.hasNode(pivot.header.stateRoot) && !bytesEqual(pivot.header.stateRoot, EMPTY_ROOT)) {
      throw new Error('pivot state is not complete in the store')
    }
    if (pivotTxs.length !== pivot.header.txCount || !bytesEqual(merkleRoot(pivotTxs.map((signed) => signed.id)), pivot.header.txRoot)) {
      throw new BlockError('BLOCK_BAD_TX_ROOT', 'pivot body does not match its header')
    }
    const previous = this.currentHead
    // Blocks imported meanwhile (gossip) already took the head past the pivot: nothing to adopt.
    if (previous.header.height >= pivot.header.height) return { previous, head: previous, removed: [], added: [] }
    if (headers[0]?.header.height !== 1) throw new RangeError('pivot headers must start at height 1')
    const finalized = this.finalizedPointer
    const atFinalized = finalized.height === 0 ? undefined : headers[finalized.height - 1]
    // IGNORE: a pivot chain that does not contain our finalized block is never adopted.
    if (finalized.height > 0 && (atFinalized === undefined || !bytesEqual(atFinalized.hash, finalized.hash))) {
      throw new BlockError('BLOCK_BEFORE_FINALIZED', `pivot chain does not contain the finalized block at ${finalized.height}`, 'ignore')
    }
    const batch = this.store.batch()
    // Our old canonical blocks above the fork point leave the chain: drop their tx index entries.
    const removed: Block[] = []
    for (let height = previous.header.height; height >= 1; height--) {
      const oldHash = this.store.getCanonicalHash(height)
      const incoming = headers[height - 1]
      if (oldHash === undefined) continue
      if (incoming !== undefined && bytesEqual(incoming.hash, oldHash)) break
      const old = this.store.getBlock(oldHash)
      if (old !== undefined) {
        removed.push(old)
        for (const signed of old.txs) batch.deleteTxLocation(signed.id)
      }
    }
    for (const entry of headers) {
      batch.putHeader(entry.hash, entry.header)
      batch.setCanonical(entry.header.height, entry.hash)
    }
    for (let height = pivot.header.height + 1; height <= previous.header.height; height++) batch.deleteCanonical(height)
    batch.putBody(pivot.hash, pivotTxs).indexBlockAtHeight(pivot.header.height, pivot.hash)
    pivotTxs.forEach((signed, index) => batch.putTxLocation(signed.id, { blockHash: pivot.hash, index }))
    batch.putMeta('head', pivot.hash)
    await batch.commit()
    this.currentHead = { hash: pivot.hash, header: pivot.header }
    return { previous, head: this.currentHead, removed, added: [{ header: pivot.header, txs: pivotTxs }] }
  }

  /**
   * Join from a certificate (docs/protocol.md, "Join from a certificate"): makes a certified block
   * the head and the finalized block WITHOUT its ancestors' headers. The pivot's state trie must
   * already be complete in the store (state sync). One batch writes the pivot's header, body and
   * tx index, the head, the certificate and the finalized pointer; our canonical blocks above our
   * old finalized height leave the canonical and tx indexes. Heights between our old finalized
   * block and the pivot stay without canonical entries: a certificate-joined node does not serve
   * headers or blocks below its pivot. Trust: the certificate (more than 2/3 of the genesis stake),
   * checked here unless `signaturesVerified`. Throws CertificateError, BlockError.
   */
  adoptCertified(
    pivot: { header: Header; hash: Uint8Array },
    pivotTxs: SignedTx[],
    certificate: Certificate,
    options: { signaturesVerified?: boolean } = {},
  ): Promise<HeadChange> {
    const run = this.importQueue.then(() => this.adoptCertifiedNow(pivot, pivotTxs, certificate, options.signaturesVerified === true))
    this.importQueue = run.catch(() => undefined)
    return run
  }

  private async adoptCertifiedNow(pivot: { header: Header; hash: Uint8Array }, pivotTxs: SignedTx[], certificate: Certificate, signaturesVerified: boolean): Promise<HeadChange> {
    if (!signaturesVerified) verifyCertificate(certificate, pivot.header, this.genesis)
    else if (!bytesEqual(headerHash(pivot.header), certificate.blockHash) || pivot.header.height !== certificate.height) {
      throw new RangeError('certificate does not name the pivot')
    }
    if (!bytesEqual(pivot.hash, certificate.blockHash)) throw new RangeError('pivot hash does not match its header')
    const previous = this.currentHead
    const finalized = this.finalizedPointer
    // IGNORE: not newer than what we already hold final.
    if (certificate.height <= finalized.height) {
      throw new BlockError('BLOCK_BEFORE_FINALIZED', `certificate at ${certificate.height} is not above the finalized height ${finalized.height}`, 'ignore')
    }
    if (!this.hasMaterializedState(pivot.header)) throw new Error('pivot state is not complete in the store')
    if (pivotTxs.length !== pivot.header.txCount || !bytesEqual(merkleRoot(pivotTxs.map((signed) => signed.id)), pivot.header.txRoot)) {
      throw new BlockError('BLOCK_BAD_TX_ROOT', 'pivot body does not match its header')
    }
    const batch = this.store.batch()
    const removed: Block[] = []
    const canonicalPivot = this.store.getCanonicalHash(pivot.header.height)
    const alreadyCanonical = canonicalPivot !== undefined && bytesEqual(canonicalPivot, pivot.hash) && pivot.header.height <= previous.header.height
    if (!alreadyCanonical) {
      // Our unfinalized canonical blocks: their ancestry to the pivot is unknown, so they leave the indexes.
      for (let height = previous.header.height; height > finalized.height; height--) {
        const oldHash = this.store.getCanonicalHash(height)
        if (oldHash === undefined) continue
        const old = this.store.getBlock(oldHash)
        if (old !== undefined) {
          removed.push(old)
          for (const signed of old.txs) batch.deleteTxLocation(signed.id)
        }
        batch.deleteCanonical(height)
      }
      batch.putHeader(pivot.hash, pivot.header).setCanonical(pivot.header.height, pivot.hash)
      batch.putBody(pivot.hash, pivotTxs).indexBlockAtHeight(pivot.header.height, pivot.hash)
      pivotTxs.forEach((signed, index) => batch.putTxLocation(signed.id, { blockHash: pivot.hash, index }))
      batch.putMeta('head', pivot.hash)
    }
    const pointer = { height: certificate.height, hash: new Uint8Array(certificate.blockHash) }
    batch.putCertificate(certificate).setFinalized(pointer)
    await batch.commit()
    this.finalizedPointer = pointer
    if (alreadyCanonical) return { previous, head: previous, removed: [], added: [] }
    this.currentHead = { hash: pivot.hash, header: pivot.header }
    this.lastPruneHeight = pivot.header.height
    return { previous, head: this.currentHead, removed, added: [{ header: pivot.header, txs: pivotTxs }] }
  }

  /**
   * Finalizes `certificate`'s block and its ancestors (docs/protocol.md, "Finality"). The pointer
   * and certificate are written in one batch with the head; if the head was on another branch it
   * moves to the certified block. `signaturesVerified`: the votes were already checked one by one
   * (the VoteTracker); otherwise the certificate is verified here. Throws CertificateError for an
   * invalid certificate and FinalityConflictError for one that contradicts our finalized chain.
   */
  applyCertificate(certificate: Certificate, options: { signaturesVerified?: boolean } = {}): Promise<FinalityResult> {
    const run = this.importQueue.then(() => this.applyCertificateNow(certificate, options.signaturesVerified === true))
    this.importQueue = run.catch(() => undefined)
    return run
  }

  private async applyCertificateNow(certificate: Certificate, signaturesVerified: boolean): Promise<FinalityResult> {
    const finalized = this.finalizedPointer
    if (certificate.height <= finalized.height) {
      const canonical = this.store.getCanonicalHash(certificate.height)
      if (canonical !== undefined && bytesEqual(canonical, certificate.blockHash)) return { status: 'stale' }
      if (canonical === undefined && certificate.height < finalized.height) return { status: 'stale' }
      throw new FinalityConflictError(`certificate for a block at ${certificate.height} conflicts with our finalized chain`)
    }
    const header = this.store.getHeader(certificate.blockHash)
    if (header === undefined) return { status: 'unknown-block' }
    const canonical = this.store.getCanonicalHash(certificate.height)
    const isCanonical = certificate.height <= this.currentHead.header.height && canonical !== undefined && bytesEqual(canonical, certificate.blockHash)
    // Off our canonical chain the head must move there, which needs the block's body and state.
    if (!isCanonical && (!this.store.hasBody(certificate.blockHash) || !this.hasMaterializedState(header))) return { status: 'unknown-block' }
    if (!signaturesVerified) verifyCertificate(certificate, header, this.genesis)
    if (!this.descendsFromFinalized(certificate.blockHash, header)) {
      throw new FinalityConflictError(`certified block at ${certificate.height} does not descend from the finalized block at ${finalized.height}`)
    }
    const pointer = { height: certificate.height, hash: new Uint8Array(certificate.blockHash) }
    const batch = this.store.batch()
    batch.putCertificate(certificate).setFinalized(pointer)
    const previous = this.currentHead
    let change: HeadChange | undefined
    if (!isCanonical) {
      // Our head is on a branch without the certified block: move to it (its descendants come by sync).
      const block = this.store.getBlock(certificate.blockHash)
      if (block === undefined) return { status: 'unknown-block' }
      change = this.planHeadMove(batch, previous, { hash: pointer.hash, header }, block)
    }
    await batch.commit()
    this.finalizedPointer = pointer
    if (change !== undefined) this.currentHead = change.head
    return { status: 'finalized', finalized: pointer, change }
  }

  /** Keeps pruning off until the returned release is called (e.g. while a state sync walks the local trie). */
  holdPruning(): () => void {
    this.pruneHolds++
    let released = false
    return () => {
      if (released) return
      released = true
      this.pruneHolds--
    }
  }

  private maybeSchedulePrune(): void {
    if (this.pruning.archive || this.pruneHolds > 0) return
    if (this.currentHead.header.height - this.lastPruneHeight < this.pruning.pruneIntervalBlocks) return
    this.lastPruneHeight = this.currentHead.header.height
    const run = this.importQueue.then(() => this.pruneNow())
    this.importQueue = run.then(
      (report) => {
        this.lastPruneReport = report
      },
      (error: unknown) => {
        this.lastPruneError = error instanceof Error ? error : new Error(String(error))
      },
    )
  }

  /** Prunes now (queued behind imports): deletes states and bodies outside the retention window. */
  prune(): Promise<PruneReport> {
    const run = this.importQueue.then(() => this.pruneNow())
    this.importQueue = run.catch(() => undefined)
    return run
  }

  private async pruneNow(): Promise<PruneReport> {
    try {
      return await pruneStore(this.store, {
        head: this.currentHead,
        finalized: this.finalizedPointer,
        genesisBlock: this.genesisBlockHash,
        options: this.pruning,
        ...(this.yieldNow === undefined ? {} : { yieldNow: this.yieldNow }),
        // A run already under way when a state sync takes its hold stops at its next slice.
        held: () => this.pruneHolds > 0,
      })
    } finally {
      this.retainedStates.onPrune()
    }
  }

  /** Resolves once every import queued so far has finished (used before closing the store). */
  async idle(): Promise<void> {
    await this.importQueue
  }

  /** Imports a block this node built: valid by construction, so it is not executed twice. */
  importOwnBlock(block: Block, execution: ExecutionResult): Promise<ImportResult> {
    const run = this.importQueue.then(() => this.importNow(block, { now: block.header.timestamp }, execution))
    this.importQueue = run.catch(() => undefined)
    return run
  }
}
