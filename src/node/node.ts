/**
 * The domain facade: opens the store, the chain and the mempool, and offers ingest, block
 * import, production and the domain queries the RPC reads. It knows nothing of peers or
 * transports: src/node/compose.ts wires it to the engines, src/node/run.ts to libp2p and RPC.
 */
import { mkdirSync } from 'node:fs'
import { bytesEqual, toHex, toHexKey } from '../codec/bytes.ts'
import { Chain, type HeadChange, type ImportResult } from '../chain/chain.ts'
import type { PruningOptions } from '../chain/prune.ts'
import type { ExecutionResult } from '../chain/execute.ts'
import { sha256 } from '../crypto/hash.ts'
import type { Keypair } from '../crypto/keys.ts'
import { type VerifyItem, VerifyPool } from '../crypto/verify-pool.ts'
import { TxError } from '../ledger/errors.ts'
import type { Address, Block, Certificate, Evidence, Genesis, Header, SignedTx, Vote } from '../ledger/types.ts'
import { type IngestResult, TxIngest } from '../mempool/ingest.ts'
import { Mempool } from '../mempool/mempool.ts'
import type { AccountView, NodeStatusView, TxLookupView } from '../rpc/backend.ts'
import { type CertificateView, type EvidenceView, certificateView, evidenceView } from '../rpc/views.ts'
import { verify } from '../crypto/sign.ts'
import type { FinalizedPointer } from '../store/chain-store.ts'
import { type BlockView, type HeaderView, blockView, headerView, txView } from '../rpc/views.ts'
import { proveAccount } from '../state/trie.ts'
import { ChainStore } from '../store/chain-store.ts'
import type { KeyValueStore } from '../store/kv.ts'
import { LevelStore } from '../store/level.ts'
import { MemoryStore } from '../store/memory.ts'
import { type Clock, type Timers, systemClock, systemTimers } from '../util/clock.ts'
import { TypedEmitter } from '../util/events.ts'
import { RepeatingTask } from '../util/task.ts'
import { type Logger, silentLogger } from '../util/logger.ts'
import { NodeFinality, type VoteOrigin } from './finality.ts'
import { BlockProducer } from './producer.ts'

export interface NodeOptions {
  genesis: Genesis
  /** LevelDB directory; in-memory store when omitted (tests). */
  dataDir?: string
  /** Validator key: the node produces blocks in the slots it leads. */
  key?: Keypair
  /** Produce blocks when `key` is a validator (default true). */
  produce?: boolean
  log?: Logger
  clock?: Clock
  /** Timers for production and housekeeping (virtual ones in the simulator). */
  timers?: Timers
  /** Trie nodes cached in memory. */
  nodeCacheEntries?: number
  /** Worker threads verifying signatures in parallel (0: verify on the main thread). Default 0. */
  verifyWorkers?: number
  /** What the store keeps (`--archive`, `--keep-bodies N`, `--keep-materialized N`); default pruned (src/chain/prune.ts). */
  pruning?: Partial<PruningOptions>
}

/** Where an object came from: the RPC, a peer's gossip, or catch-up sync (not relayed). */
export type Origin = { kind: 'local' } | { kind: 'peer'; peerId: string } | { kind: 'sync'; peerId: string }

export interface NodeEvents {
  /** A transaction entered the mempool. */
  tx: [signed: SignedTx, origin: Origin]
  /** A block was imported (canonical or not). */
  block: [block: Block, hash: Uint8Array, origin: Origin]
  /** The head moved. */
  head: [change: HeadChange]
  /** A pending transaction left the mempool without being included (RPC tx status streams). */
  txDropped: [signed: SignedTx, reason: TxDropReason]
  /** Votes accepted into the pool (this validator's own: origin `local`), to relay. */
  votes: [votes: Vote[], origin: VoteOrigin]
  /** New equivocation evidence, to gossip once. */
  evidence: [evidence: Evidence, origin: VoteOrigin]
  /** The finalized pointer moved. */
  finalized: [pointer: FinalizedPointer, certificate: Certificate]
}

export type TxDropReason = 'replaced' | 'evicted' | 'expired' | 'nonce-spent'

export class GrapevineNode {
  readonly events: TypedEmitter<NodeEvents>
  readonly mempool: Mempool
  readonly ingest: TxIngest
  readonly finality: NodeFinality
  private producer: BlockProducer | undefined
  private readonly housekeeping: RepeatingTask
  private stopped = false

  private constructor(
    readonly chain: Chain,
    readonly store: ChainStore,
    readonly genesis: Genesis,
    readonly log: Logger,
    readonly clock: Clock,
    readonly timers: Timers,
    readonly key: Keypair | undefined,
    private readonly pool: VerifyPool | undefined,
  ) {
    this.events = new TypedEmitter((error) => log.error({ err: error }, 'event listener failed'))
    this.mempool = new Mempool(
      { getAccount: (address: Address) => chain.getAccount(address) },
      { maxTxs: genesis.limits.mempoolMaxTxs, maxBytes: genesis.limits.mempoolMaxBytes, ttlMs: genesis.limits.mempoolTxTtlMs },
    )
    this.ingest = new TxIngest({
      rules: { chainId: genesis.chainId, limits: genesis.limits },
      mempool: this.mempool,
      getAccount: (address) => chain.getAccount(address),
      isIncluded: (signed) => store.getTxLocation(signed.id) !== undefined,
      ...(pool === undefined ? {} : { pool }),
    })
    this.housekeeping = new RepeatingTask(
      () => {
        const expired = this.mempool.expire(this.clock())
        if (expired.length > 0) this.log.info({ count: expired.length }, 'expired pending transactions')
        for (const signed of expired) this.events.emit('txDropped', signed, 'expired')
      },
      5_000,
      (error) => this.log.error({ err: error }, 'housekeeping failed'),
      timers,
    )
    this.finality = new NodeFinality({
      chain,
      store,
      genesis,
      key,
      verifyMany: pool === undefined ? async (items) => items.map((item) => verify(item.signature, item.message, item.publicKey)) : (items) => pool.verifyMany(items),
      hooks: {
        votes: (votes, origin) => this.events.emit('votes', votes, origin),
        evidence: (evidence, origin) => this.events.emit('evidence', evidence, origin),
        finalized: (pointer, certificate) => this.events.emit('finalized', pointer, certificate),
        headChanged: (change) => {
          this.applyHeadChange(change)
          this.events.emit('head', change)
        },
      },
      log: log.child({ component: 'finality' }),
    })
    // Votes follow the canonical chain (subscribed first: the pool's window moves before relays).
    this.events.on('head', (change) => this.finality.onHead(change))
  }

  static async open(options: NodeOptions): Promise<GrapevineNode> {
    const log = options.log ?? silentLogger()
    let kv: KeyValueStore
    if (options.dataDir === undefined) kv = new MemoryStore()
    else {
      mkdirSync(options.dataDir, { recursive: true })
      kv = await LevelStore.open(`${options.dataDir}/chain`)
    }
    const store = new ChainStore(kv, options.nodeCacheEntries === undefined ? {} : { nodeCacheEntries: options.nodeCacheEntries })
    let chain: Chain
    try {
      chain = await Chain.open({ store, genesis: options.genesis }, options.pruning === undefined ? {} : { pruning: options.pruning })
    } catch (error) {
      await store.close()
      throw error
    }
    const pool = (options.verifyWorkers ?? 0) > 0 ? new VerifyPool({ workers: options.verifyWorkers as number }) : undefined
    const node = new GrapevineNode(chain, store, options.genesis, log, options.clock ?? systemClock, options.timers ?? systemTimers, options.key, pool)
    const isValidator = options.key !== undefined && options.genesis.validators.some((v) => bytesEqual(v.address, options.key?.publicKey as Uint8Array))
    if (isValidator && options.produce !== false && options.key !== undefined) {
      node.producer = new BlockProducer({
        chain,
        keypair: options.key,
        packer: node.mempool,
        clock: node.clock,
        timers: node.timers,
        log: log.child({ component: 'producer' }),
        publish: (block, execution) => node.importOwn(block, execution),
      })
    }
    log.info({ height: chain.head.header.height, head: toHex(chain.head.hash).slice(0, 14), validator: isValidator }, 'chain opened')
    return node
  }

  /** Starts timers (production, housekeeping). */
  start(): void {
    this.producer?.start()
    this.housekeeping.start()
  }

  get isValidator(): boolean {
    return this.producer !== undefined
  }

  /** Produces now if this node leads the current slot (tests and the simulator call this). */
  produceNow(): Promise<Block | undefined> {
    return this.producer?.produce() ?? Promise.resolve(undefined)
  }

  // ---------------------------------------------------------------- ingest

  /** Admits a transaction from anywhere; emits `tx` on acceptance. Throws TxError. */
  acceptTx(signed: SignedTx, origin: Origin): SignedTx {
    const result = this.ingest.ingest(signed, this.clock())
    this.emitAdmitted(result, origin)
    return result.signed
  }

  /**
   * Admits a batch (a peer's txs message, a reconciliation answer): signatures are checked in
   * parallel on the verify pool; `tx` is emitted for each accepted one, in order.
   */
  async acceptTxs(txs: readonly SignedTx[], origin: Origin): Promise<Array<TxError | undefined>> {
    // A peer's batch: its ignore outcomes are counted by code, so they carry no figures.
    const outcomes = await this.ingest.ingestMany(txs, this.clock, { terse: origin.kind === 'peer' })
    return outcomes.map((outcome) => {
      if (!outcome.ok) return outcome.error
      this.emitAdmitted(outcome.result, origin)
      return undefined
    })
  }

  /** `tx` for an admitted transaction, after `txDropped` for what its admission pushed out. */
  private emitAdmitted(result: IngestResult, origin: Origin): void {
    if (result.add.replaced !== undefined) this.events.emit('txDropped', result.add.replaced, 'replaced')
    for (const evicted of result.add.evicted) this.events.emit('txDropped', evicted, 'evicted')
    this.events.emit('tx', result.signed, origin)
  }

  /** Imports a block from a peer (or anywhere); applies head changes to the mempool. Throws BlockError. */
  async importBlock(block: Block, origin: Origin): Promise<ImportResult> {
    const result = await this.chain.importBlock(block, { now: this.clock(), isVerified: this.ingest.isVerified, preverify: (txs) => this.ingest.preverify(txs) })
    this.afterImport(block, result, origin)
    return result
  }

  private async importOwn(block: Block, execution: ExecutionResult): Promise<void> {
    const result = await this.chain.importOwnBlock(block, execution)
    this.afterImport(block, result, { kind: 'local' })
  }

  private afterImport(block: Block, result: ImportResult, origin: Origin): void {
    for (const signed of block.txs) this.ingest.verified.add(signed.idHex)
    const spent = result.change === undefined ? [] : this.applyHeadChange(result.change)
    this.events.emit('block', block, result.hash, origin)
    if (result.change !== undefined) this.events.emit('head', result.change)
    for (const signed of spent) this.events.emit('txDropped', signed, 'nonce-spent')
  }

  /** Makes a state-synced pivot the head (see Chain.adoptPivot) and tidies the mempool. */
  async adoptPivot(headers: Array<{ header: Header; hash: Uint8Array }>, pivotTxs: SignedTx[]): Promise<void> {
    const change = await this.chain.adoptPivot(headers, pivotTxs)
    const spent = this.mempool.revalidateAll()
    this.events.emit('head', change)
    for (const signed of spent) this.events.emit('txDropped', signed, 'nonce-spent')
  }

  /**
   * Join from a certificate (see Chain.adoptCertified): the certified block becomes head and
   * finalized without its ancestors; the mempool is re-checked.
   */
  async adoptCertified(pivot: { header: Header; hash: Uint8Array }, pivotTxs: SignedTx[], certificate: Certificate): Promise<void> {
    const change = await this.chain.adoptCertified(pivot, pivotTxs, certificate, { signaturesVerified: true })
    this.finality.onFinalized(this.chain.finalized.height)
    this.mempool.revalidateAll()
    if (change.added.length > 0) this.events.emit('head', change)
    this.events.emit('finalized', this.chain.finalized, certificate)
  }

  /** A peer's certificate, signatures checked by the sync manager (finality repair): applied like one formed from votes. */
  applyCertificate(certificate: Certificate): Promise<void> {
    return this.finality.applyVerified(certificate)
  }

  /** Batch signature checks for sync (certificates): the verify pool when present. */
  verifyMany = (items: readonly VerifyItem[]): Promise<boolean[]> =>
    this.pool === undefined ? Promise.resolve(items.map((item) => verify(item.signature, item.message, item.publicKey))) : this.pool.verifyMany(items)

  /** Returns the pending txs dropped because a conflicting tx spent their nonce. */
  private applyHeadChange(change: HeadChange): SignedTx[] {
    const included: string[] = []
    const senders = new Map<string, Address>()
    for (const block of change.added) {
      for (const signed of block.txs) {
        included.push(signed.idHex)
        senders.set(signed.idHex, signed.tx.from)
      }
    }
    const spent = this.mempool.onHeadChange(included, senders.values())
    // Transactions of the losing branch go back to the mempool (unless the new branch has them).
    const now = this.clock()
    const includedSet = new Set(included)
    for (const block of [...change.removed].reverse()) {
      for (const signed of block.txs) {
        if (includedSet.has(signed.idHex)) continue
        try {
          this.mempool.add(signed, now)
        } catch (error) {
          if (!(error instanceof TxError)) throw error
        }
      }
    }
    if (change.removed.length > 0) {
      this.log.warn({ depth: change.removed.length, height: change.head.header.height }, 'reorg')
    }
    return spent
  }

  /** The mempool digest carried in `status` (src/mempool/digest.ts). */
  mempoolDigest(): Uint8Array {
    return this.mempool.digest.root()
  }

  // ---------------------------------------------------------------- RPC backend

  status(): NodeStatusView {
    const head = this.chain.head
    return {
      chainId: this.genesis.chainId,
      genesisHash: toHex(this.chain.genesisHash),
      minFee: this.genesis.limits.minFee.toString(),
      height: head.header.height,
      headHash: toHex(head.hash),
      stateRoot: toHex(head.header.stateRoot),
      mempoolSize: this.mempool.size,
      mempoolBytes: this.mempool.sizeBytes,
      finalizedHeight: this.chain.finalized.height,
      finalizedHash: toHex(this.chain.finalized.hash),
      ...(this.key === undefined || !this.isValidator ? {} : { validator: toHex(this.key.publicKey) }),
    }
  }

  /** RPC tx_send: batched with the other submissions of this turn (a JSON-RPC batch). Rejects with TxError. */
  async submitTx(raw: Uint8Array): Promise<string> {
    const result = await this.ingest.submit(raw, this.clock)
    this.emitAdmitted(result, { kind: 'local' })
    return toHex(result.signed.id)
  }

  getTx(txid: Uint8Array): TxLookupView | null {
    const pending = this.mempool.get(toHexKey(txid))
    if (pending !== undefined) return { status: 'pending', tx: txView(pending) }
    const location = this.store.getTxLocation(txid)
    if (location === undefined) return null
    const block = this.store.getBlock(location.blockHash)
    const signed = block?.txs[location.index]
    if (block === undefined || signed === undefined) return null
    // At or below the finalized height, a canonical block's transactions can never be reverted.
    const status = block.header.height <= this.chain.finalized.height ? 'finalized' : 'included'
    return { status, height: block.header.height, blockHash: toHex(location.blockHash), tx: txView(signed) }
  }

  getAccount(address: Uint8Array, withProof: boolean): AccountView {
    const head = this.chain.head
    const account = this.chain.getAccount(address, head.header.stateRoot)
    const view: AccountView = {
      address: toHex(address),
      balance: account.balance.toString(),
      nonce: account.nonce,
      pendingNonce: this.mempool.nextNonce(address, account.nonce),
    }
    if (withProof) {
      const keyHash = sha256(address)
      view.proof = {
        blockHash: toHex(head.hash),
        height: head.header.height,
        stateRoot: toHex(head.header.stateRoot),
        keyHash: toHex(keyHash),
        nodes: proveAccount(this.store, head.header.stateRoot, keyHash).map(toHex),
      }
    }
    return view
  }

  getHead(): HeaderView & { finalizedHeight: number; finalizedHash: string } {
    const finalized = this.chain.finalized
    return { ...headerView(this.chain.head.header, this.chain.head.hash), finalizedHeight: finalized.height, finalizedHash: toHex(finalized.hash) }
  }

  /** RPC chain_getFinality: the latest certificate, or the one that finalized `height` here. */
  getFinality(ref: 'latest' | number): CertificateView | null {
    const height = ref === 'latest' ? this.chain.finalized.height : ref
    const certificate = height === 0 ? undefined : this.chain.getCertificate(height)
    if (certificate === undefined) return null
    return certificateView(certificate, this.genesis)
  }

  /** RPC chain_getEvidence: equivocation evidence on record, oldest first. */
  getEvidence(): EvidenceView[] {
    return this.finality.evidence().map((evidence) => evidenceView(evidence, this.genesis))
  }

  getBlock(ref: { height: number } | { hash: Uint8Array }, fullTransactions: boolean): BlockView | null {
    const hash = 'height' in ref ? this.chain.getCanonicalHash(ref.height) : ref.hash
    if (hash === undefined) return null
    const block = this.chain.getBlock(hash)
    if (block === undefined) return null
    return blockView(block, fullTransactions, hash)
  }

  // ---------------------------------------------------------------- lifecycle

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.producer?.stop()
    this.housekeeping.stop()
    await this.finality.stop()
    // Let an import already in flight finish its batch before the store closes.
    await this.chain.idle()
    await this.store.close()
    await this.pool?.close()
    this.log.info('node stopped')
  }
}
