/**
 * Anti-entropy cadence (docs/protocol.md, "Anti-entropy"):
 *
 * - On admission a peer's status is known; if its head is better, catch-up starts.
 * - Every `statusIntervalMs` a peer is picked (stake-weighted, score-weighted), its status is
 *   refreshed, and whatever differs is repaired: a better chain is synced; a different mempool
 *   digest triggers mempool reconciliation.
 * - Far behind (more than `stateSyncThresholdBlocks`): headers from genesis are verified, the
 *   state of a recent block (the pivot) is fetched by Merkle descent, then only the blocks after
 *   it are imported. Otherwise headers-first block sync from the fork point.
 */
import { bytesEqual } from '../codec/bytes.ts'
import { headerHash } from '../codec/objects.ts'
import type { StatusMessage } from '../codec/wire.ts'
import { type Chain, isBetterHead } from '../chain/chain.ts'
import type { TxError } from '../ledger/errors.ts'
import type { Block, Header, SignedTx } from '../ledger/types.ts'
import type { Mempool } from '../mempool/mempool.ts'
import type { OffenceCode, RewardCode } from '../peers/offences.ts'
import { pickPeer, samplePeers } from '../peers/selection.ts'
import { type HeadClaim, PromiseTracker, chooseSyncTarget, isSynced as noPeerAhead } from '../peers/sync-target.ts'
import type { ChainStore } from '../store/chain-store.ts'
import { type Runtime, sleep } from '../util/clock.ts'
import type { Logger } from '../util/logger.ts'
import { RepeatingTask } from '../util/task.ts'
import { ChainSync, type ChainSyncOptions, type VerifiedHeader } from './chain-sync.ts'
import { reconcileMempool } from './mempool-reconcile.ts'
import { BadAnswerError, StateSyncEngine, type StateSyncOptions, type SyncPeerPool, type SyncTransport, chainStoreTarget, driveStateSync } from './state-sync.ts'

/** What the manager needs from the node's domain (src/node/node.ts implements it). */
export interface SyncNode {
  readonly chain: Chain
  readonly store: ChainStore
  readonly mempool: Mempool
  mempoolDigest(): Uint8Array
  /** Full validation and import; throws BlockError. */
  importBlock(block: Block, origin: { kind: 'sync'; peerId: string }): Promise<unknown>
  /** Makes a state-synced pivot the head. */
  adoptPivot(headers: Array<{ header: Header; hash: Uint8Array }>, pivotTxs: SignedTx[]): Promise<void>
  /** Admits a batch of transactions (a reconciliation answer). */
  acceptTxs(txs: readonly SignedTx[], origin: { kind: 'peer'; peerId: string }): Promise<Array<TxError | undefined>>
}

/** What the manager needs to know of the admitted peers (src/peers/peer-set.ts implements it). */
export interface SyncPeers {
  /** Admitted peers with their last known status. */
  list(): ReadonlyArray<{ id: string; stake: bigint; status: StatusMessage | undefined }>
  refreshStatus(peerId: string, timeoutMs: number): Promise<StatusMessage | undefined>
  offence(peerId: string, code: OffenceCode, detail?: string): unknown
  /** A good sync answer earns a small reward. */
  reward?(peerId: string, code: RewardCode): void
  /** Hangs up on a peer (one ruled out as a sync source). */
  disconnect?(peerId: string): void
  /** Score-based factor used to weigh peer choice: 0 never chosen (graylisted), else ≈ [0.1, 1.1]. */
  selectionFactor(peerId: string): number
}

/** The transport's request/response half, plus its byte counter for progress. */
export interface SyncRequestTransport extends SyncTransport {
  syncBytesReceived(): number
}

export interface SyncManagerDeps {
  node: SyncNode
  peers: SyncPeers
  transport: SyncRequestTransport
  runtime: Runtime
  log: Logger
}

export interface SyncManagerOptions {
  statusIntervalMs: number
  /** Further behind than this many blocks, a node state-syncs instead of importing every block. */
  stateSyncThresholdBlocks: number
  /** The pivot is this many blocks below the target head (so a short reorg does not strand it). */
  pivotDistance: number
  enableStateSync: boolean
  chain: Partial<ChainSyncOptions>
  state: Partial<StateSyncOptions>
}

/** How long a peer has to answer a status refresh. */
const STATUS_TIMEOUT_MS = 5_000

export const DEFAULT_SYNC_MANAGER_OPTIONS: SyncManagerOptions = {
  statusIntervalMs: 2_000,
  stateSyncThresholdBlocks: 64,
  pivotDistance: 2,
  enableStateSync: true,
  chain: {},
  state: {},
}

export type SyncPhase = 'idle' | 'headers' | 'state' | 'blocks' | 'synced'

export interface SyncStatusView {
  phase: SyncPhase
  mode: 'state' | 'blocks' | 'none'
  peer?: string
  startHeight: number
  currentHeight: number
  targetHeight: number
  pivotHeight?: number
  headersFetched: number
  stateNodesFetched: number
  /** Accounts (trie leaves) received. */
  stateEntriesFetched: number
  stateBytesFetched: number
  /** Share of the state known complete (0..1) and the accounts it implies in total. */
  stateProgress: number
  stateEntriesEstimate: number | null
  stateRequests: number
  stateOutstanding: number
  blocksImported: number
  blocksTotal: number
  /** Sync-protocol bytes received during this catch-up. */
  bytesReceived: number
  elapsedMs: number
  /** Items (headers, state entries or blocks, by phase) per second in the current phase. */
  rate: number
  etaSeconds: number | null
  catchUps: number
  mempoolRepairs: number
  mempoolTxsFetched: number
  lastError?: string
  /** Why catch-up cannot progress (no peer, every peer ahead ruled out); absent when it can. */
  stalledReason?: string
  /** Peers ruled out as sync sources (advertised a head and did not serve it, MAX_BROKEN_PROMISES times). */
  ruledOut?: number
}

export class SyncManager {
  readonly options: SyncManagerOptions
  private readonly task: RepeatingTask
  private readonly log: Logger
  private running: Promise<void> | undefined
  private stopped = false
  private view: SyncStatusView
  private startedAt = 0
  private phaseStartedAt = 0
  private phaseItems = 0
  private bytesAtStart = 0
  private readonly abort = new AbortController()
  /** Broken promises per peer. BOUNDED: MAX_PROMISE_ENTRIES. */
  private readonly promises = new PromiseTracker()

  private readonly node: SyncNode
  private readonly peers: SyncPeers
  private readonly transport: SyncRequestTransport
  private readonly runtime: Runtime

  constructor(deps: SyncManagerDeps, options: Partial<SyncManagerOptions> = {}) {
    this.node = deps.node
    this.peers = deps.peers
    this.transport = deps.transport
    this.runtime = deps.runtime
    this.options = { ...DEFAULT_SYNC_MANAGER_OPTIONS, ...options }
    this.log = deps.log.child({ component: 'sync' })
    this.view = this.freshView('idle')
    this.task = new RepeatingTask(
      () => this.round(),
      this.options.statusIntervalMs,
      (error) => this.log.debug({ err: error }, 'anti-entropy round failed'),
      deps.runtime.timers,
    )
  }

  private now(): number {
    return this.runtime.clock()
  }

  private freshView(phase: SyncPhase): SyncStatusView {
    const height = this.node.chain.head.header.height
    return {
      phase,
      mode: 'none',
      startHeight: height,
      currentHeight: height,
      targetHeight: height,
      headersFetched: 0,
      stateNodesFetched: 0,
      stateEntriesFetched: 0,
      stateBytesFetched: 0,
      stateProgress: 0,
      stateEntriesEstimate: null,
      stateRequests: 0,
      stateOutstanding: 0,
      blocksImported: 0,
      blocksTotal: 0,
      bytesReceived: 0,
      elapsedMs: 0,
      rate: 0,
      etaSeconds: null,
      catchUps: this.view?.catchUps ?? 0,
      mempoolRepairs: this.view?.mempoolRepairs ?? 0,
      mempoolTxsFetched: this.view?.mempoolTxsFetched ?? 0,
    }
  }

  start(): void {
    this.task.start(this.options.statusIntervalMs)
  }

  stop(): void {
    this.stopped = true
    this.task.stop()
    this.abort.abort()
  }

  /** Current progress (the RPC `sync_status` and the `join` progress display). */
  status(): SyncStatusView {
    const view = { ...this.view }
    view.currentHeight = this.node.chain.head.header.height
    const reason = this.stalledReason()
    if (reason === undefined) delete view.stalledReason
    else view.stalledReason = reason
    const ruledOut = this.peers.list().filter((peer) => this.isRuledOut(peer.id)).length
    if (ruledOut > 0) view.ruledOut = ruledOut
    if (view.phase !== 'idle' && view.phase !== 'synced') {
      view.elapsedMs = this.now() - this.startedAt
      view.bytesReceived = this.transport.syncBytesReceived() - this.bytesAtStart
      const phaseSeconds = Math.max(0.001, (this.now() - this.phaseStartedAt) / 1000)
      view.rate = this.phaseItems / phaseSeconds
      const left = this.itemsLeft(view)
      view.etaSeconds = left === undefined || view.rate <= 0 ? null : Math.round(left / view.rate)
    }
    return view
  }

  private itemsLeft(view: SyncStatusView): number | undefined {
    if (view.phase === 'headers') return Math.max(0, view.targetHeight - view.startHeight - view.headersFetched)
    if (view.phase === 'state' && view.stateEntriesEstimate !== null) return Math.max(0, view.stateEntriesEstimate - view.stateEntriesFetched)
    if (view.phase === 'blocks') return Math.max(0, view.blocksTotal - view.blocksImported)
    return undefined
  }

  private enterPhase(phase: SyncPhase): void {
    this.view.phase = phase
    this.phaseStartedAt = this.now()
    this.phaseItems = 0
  }

  /**
   * Connected to at least one useful peer, no catch-up running, and no admitted peer that is not
   * ruled out claims a better head (a liar claiming more keeps this false until it is ruled out).
   */
  isSynced(): boolean {
    if (this.running !== undefined || this.bestTarget() !== undefined) return false
    const eligible = this.peers.list().filter((peer) => !this.isRuledOut(peer.id))
    if (eligible.length === 0) return false
    return noPeerAhead(this.node.chain.head.header.height, this.claims(), (peerId) => this.isRuledOut(peerId))
  }

  /** Ruled out as a sync source: it broke MAX_BROKEN_PROMISES promises lately. */
  isRuledOut(peerId: string): boolean {
    return this.promises.isRuledOut(peerId, this.now())
  }

  /** No admitted peer can help us: the node should look for (dial) the genesis validators. */
  needsPeers(): boolean {
    return this.stalledReason() !== undefined
  }

  private stalledReason(): string | undefined {
    const peers = this.peers.list()
    if (peers.length === 0) return 'no peers: looking for the genesis validators'
    if (peers.every((peer) => this.isRuledOut(peer.id))) return `no useful peer: all ${peers.length} peers broke their promises; looking for the genesis validators`
    return undefined
  }

  private claims(): HeadClaim[] {
    const out: HeadClaim[] = []
    for (const peer of this.peers.list()) {
      if (peer.status === undefined) continue
      out.push({ peerId: peer.id, height: peer.status.headHeight, hash: Buffer.from(peer.status.headHash).toString('hex'), stake: peer.stake })
    }
    return out
  }

  /** A peer was admitted: if it is ahead, catch up now. */
  onPeerAdmitted(peerId: string): void {
    void peerId
    if (this.bestTarget() !== undefined) void this.catchUp()
  }

  // ---------------------------------------------------------------- periodic round

  private async round(): Promise<void> {
    if (this.stopped) return
    const peers = this.peers.list()
    const totalStake = this.node.chain.schedule.totalStake
    // Class-capped: zero-stake peers as a class are polled at most a third of the rounds.
    const peer = pickPeer(peers, totalStake, { stake: (candidate) => candidate.stake, factor: (candidate) => this.peers.selectionFactor(candidate.id) }, this.runtime.random)
    if (peer === undefined) return
    let status: StatusMessage | undefined
    try {
      status = await this.peers.refreshStatus(peer.id, STATUS_TIMEOUT_MS)
    } catch (error) {
      this.peers.offence(peer.id, 'STATUS_FAILED', (error as Error).message)
      return
    }
    if (status === undefined) return
    if (this.isBetter(status)) {
      await this.catchUp()
      return
    }
    if (this.running === undefined && !bytesEqual(status.mempoolDigest, this.node.mempoolDigest())) {
      await this.reconcileMempool(peer.id).catch((error: unknown) => this.log.debug({ err: error, peer: peer.id.slice(-8) }, 'mempool reconciliation failed'))
    }
  }

  private isBetter(status: StatusMessage): boolean {
    const head = this.node.chain.head
    if (bytesEqual(status.headHash, head.hash)) return false
    if (this.node.chain.hasBlock(status.headHash)) return false
    return isBetterHead(status.headHash, { height: status.headHeight }, head.hash, head.header)
  }

  /**
   * The catch-up target among the admitted peers' better heads (chooseSyncTarget): the claim
   * with the most stake behind it, then the most peers, then the highest; peers ruled out for
   * broken promises are skipped. Not simply the highest claim: a liar cannot starve us.
   */
  private bestTarget(): { id: string; status: StatusMessage } | undefined {
    const byId = new Map<string, StatusMessage>()
    const claims: HeadClaim[] = []
    for (const peer of this.peers.list()) {
      const status = peer.status
      if (status === undefined || !this.isBetter(status)) continue
      byId.set(peer.id, status)
      claims.push({ peerId: peer.id, height: status.headHeight, hash: Buffer.from(status.headHash).toString('hex'), stake: peer.stake })
    }
    // Every claim here is better than our head (an equal height with a better hash included).
    const target = chooseSyncTarget(claims, -1, (peerId) => this.isRuledOut(peerId) || this.peers.selectionFactor(peerId) <= 0)
    const id = target?.peers[0]
    const status = id === undefined ? undefined : byId.get(id)
    return id === undefined || status === undefined ? undefined : { id, status }
  }

  // ---------------------------------------------------------------- catch-up

  /** Runs catch-up until no admitted peer has a better head; concurrent calls share one run. */
  catchUp(): Promise<void> {
    this.running ??= this.catchUpLoop().finally(() => {
      this.running = undefined
    })
    return this.running
  }

  private async catchUpLoop(): Promise<void> {
    // One view per catch-up: its attempts (the chain may move while a state sync runs) add up.
    let started = false
    for (let attempt = 0; attempt < 8 && !this.stopped; attempt++) {
      const target = this.bestTarget()
      if (target === undefined) break
      if (!started) {
        started = true
        this.view = this.freshView('headers')
        this.startedAt = this.now()
        this.bytesAtStart = this.transport.syncBytesReceived()
      }
      this.enterPhase('headers')
      this.view.peer = target.id
      this.view.targetHeight = target.status.headHeight
      const gap = target.status.headHeight - this.node.chain.head.header.height
      const useState =
        this.options.enableStateSync && gap > this.options.stateSyncThresholdBlocks && target.status.headHeight > this.options.pivotDistance
      try {
        if (useState) await this.stateSyncTo(target.id, target.status.headHeight)
        else await this.blockSyncTo(target.id, target.status.headHeight)
        this.view.catchUps++
        // It served what it advertised: past broken promises are forgiven, and it earns a little.
        this.promises.kept(target.id, this.now())
        this.peers.reward?.(target.id, 'SYNC_GOOD_ANSWER')
        const logLevel = this.view.blocksImported + this.view.stateEntriesFetched > 0 ? 'info' : 'debug'
        this.log[logLevel](
          {
            mode: this.view.mode,
            height: this.node.chain.head.header.height,
            seconds: ((this.now() - this.startedAt) / 1000).toFixed(1),
            stateEntries: this.view.stateEntriesFetched,
            blocks: this.view.blocksImported,
            bytes: this.transport.syncBytesReceived() - this.bytesAtStart,
          },
          'caught up',
        )
      } catch (error) {
        if (this.stopped) return
        this.view.lastError = (error as Error).message
        this.log.warn({ err: (error as Error).message, peer: target.id.slice(-8) }, 'catch-up attempt failed')
        if (error instanceof BadAnswerError && error.kind === 'forged') this.peers.offence(target.id, error.code, error.message)
        else {
          // It advertised a head and did not serve it: a broken promise; a few and it is ruled out.
          const decision = this.promises.broken(target.id, this.now())
          this.peers.offence(target.id, decision.code, `catch-up failed: ${(error as Error).message}`)
          if (decision.ruledOut) {
            this.log.info({ peer: target.id.slice(-8) }, 'peer ruled out as a sync source')
            this.peers.disconnect?.(target.id)
          }
        }
        await sleep(this.runtime.timers, 250, this.abort.signal).catch(() => undefined)
      }
    }
    if (!started) return
    const summary = this.status()
    this.view = { ...summary, phase: 'synced', elapsedMs: this.now() - this.startedAt, rate: 0, etaSeconds: 0 }
    this.view.bytesReceived = this.transport.syncBytesReceived() - this.bytesAtStart
  }

  private pool(minHeight: number): SyncPeerPool & { excluded: Set<string> } {
    const excluded = new Set<string>()
    return {
      excluded,
      // Asked in a class-capped, score-weighted random order: zero-stake peers get at most a
      // third of each place in line, graylisted and ruled-out peers none.
      candidates: () => {
        const eligible = this.peers
          .list()
          .filter((peer) => !excluded.has(peer.id) && !this.isRuledOut(peer.id) && (peer.status?.headHeight ?? 0) >= minHeight)
        const factor = (peer: { id: string }) => this.peers.selectionFactor(peer.id)
        return samplePeers(eligible, eligible.length, this.node.chain.schedule.totalStake, { stake: (peer) => peer.stake, factor }, this.runtime.random).map((peer) => peer.id)
      },
      reportBad: (peerId, reason, kind, code) => {
        excluded.add(peerId)
        this.log.warn({ peer: peerId.slice(-8), reason, kind }, kind === 'forged' ? 'peer served forged sync data' : 'peer cannot serve sync data')
        if (kind === 'forged') this.peers.offence(peerId, code, reason)
      },
      reportFailure: (peerId, reason) => {
        this.peers.offence(peerId, 'SYNC_REQUEST_FAILED', reason)
      },
    }
  }

  private chainSync(minHeight: number): ChainSync {
    return new ChainSync(
      {
        chain: this.node.chain,
        transport: this.transport,
        peers: this.pool(minHeight),
        now: this.runtime.clock,
        timers: this.runtime.timers,
        importBlock: async (block: Block) => {
          await this.node.importBlock(block, { kind: 'sync', peerId: this.view.peer ?? '' })
        },
        onProgress: (event) => {
          if (event.headers !== undefined) {
            this.view.headersFetched += event.headers
            if (this.view.phase === 'headers') this.phaseItems += event.headers
          }
          if (event.blocks !== undefined) {
            this.view.blocksImported += event.blocks
            if (this.view.phase === 'blocks') this.phaseItems += event.blocks
          }
        },
      },
      this.options.chain,
    )
  }

  private async blockSyncTo(peerId: string, targetHeight: number): Promise<void> {
    if (this.view.mode === 'none') this.view.mode = 'blocks'
    const sync = this.chainSync(0)
    const headers = await sync.fetchHeaders(peerId, targetHeight)
    const fresh = headers.filter((entry) => !this.node.chain.hasBlock(entry.hash))
    this.view.blocksTotal += fresh.length
    this.enterPhase('blocks')
    await sync.fetchAndImport(fresh, this.abort.signal)
  }

  private async stateSyncTo(peerId: string, targetHeight: number): Promise<void> {
    this.view.mode = 'state'
    const chain = this.node.chain
    const sync = this.chainSync(0)
    // The whole header chain is verified before any state is trusted.
    const headers = await sync.fetchHeaders(peerId, targetHeight, [chain.genesisBlock])
    const pivotIndex = headers.length - 1 - this.options.pivotDistance
    const pivot = headers[pivotIndex]
    if (pivot === undefined) throw new Error('peer returned too few headers for a state sync')
    this.view.pivotHeight = pivot.header.height
    this.enterPhase('state')
    // Our current state is walked beside the target: what it already has is not fetched again.
    const engine = new StateSyncEngine(pivot.header.stateRoot, chainStoreTarget(this.node.store), this.options.state, chain.head.header.stateRoot)
    const pool = this.pool(pivot.header.height)
    const update = () => {
      const progress = engine.progress
      this.phaseItems = progress.leavesFetched + progress.nodesFetched
      this.view.stateNodesFetched = progress.nodesFetched
      this.view.stateEntriesFetched = progress.leavesFetched
      this.view.stateBytesFetched = progress.bytesFetched
      this.view.stateProgress = progress.keySpaceDone
      // Accounts are spread uniformly over the key space: entries so far / share covered.
      this.view.stateEntriesEstimate = progress.keySpaceDone > 0.02 ? Math.round(progress.leavesFetched / progress.keySpaceDone) : null
      this.view.stateRequests = progress.requests
      this.view.stateOutstanding = progress.outstanding
    }
    await driveStateSync(engine, this.transport, pool, { clock: this.runtime.clock, timers: this.runtime.timers, signal: this.abort.signal, onProgress: update })
    update()
    const pivotTxs = await this.fetchPivotBody(pivot, pool)
    await this.node.adoptPivot(headers.slice(0, pivotIndex + 1), pivotTxs)
    const rest = headers.slice(pivotIndex + 1)
    this.view.blocksTotal += rest.length
    this.enterPhase('blocks')
    await sync.fetchAndImport(rest, this.abort.signal)
  }

  private async fetchPivotBody(pivot: VerifiedHeader, pool: SyncPeerPool): Promise<Block['txs']> {
    for (const peerId of pool.candidates()) {
      try {
        const response = await this.transport.request(peerId, { type: 'getBlocks', hashes: [pivot.hash] }, 15_000)
        const block = response.type === 'blocks' ? response.blocks[0] : undefined
        if (block !== undefined && bytesEqual(headerHash(block.header), pivot.hash)) return block.txs
        pool.reportBad(peerId, 'no pivot block', 'useless', 'SYNC_USELESS_ANSWER')
      } catch (error) {
        pool.reportFailure(peerId, (error as Error).message)
      }
    }
    throw new Error('no peer served the pivot block')
  }

  // ---------------------------------------------------------------- mempool

  /** Compares mempool buckets with a peer and fetches the transactions we lack. */
  async reconcileMempool(peerId: string): Promise<number> {
    const { fetched, buckets } = await reconcileMempool(peerId, { node: this.node, transport: this.transport, peers: this.peers })
    if (fetched > 0) {
      this.view.mempoolRepairs++
      this.view.mempoolTxsFetched += fetched
      this.log.info({ peer: peerId.slice(-8), fetched, buckets }, 'mempool reconciled')
    }
    return fetched
  }
}
