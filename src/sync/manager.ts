/**
 * Anti-entropy cadence (docs/protocol.md, "Anti-entropy"):
 *
 * - On admission a peer's status is known; if its head is better, catch-up starts.
 * - Every `statusIntervalMs` a peer is picked (stake-weighted, score-weighted), its status is
 *   refreshed, and whatever differs is repaired: a better chain is synced; a different mempool
 *   digest triggers mempool reconciliation.
 * - Far behind (more than `stateSyncThresholdBlocks`): join from a certificate — the admitted
 *   peers are asked for their latest finality certificates, the highest valid one (checked against
 *   the genesis validators) names the pivot, its state is fetched by Merkle descent from the peers
 *   that offered it, and only the blocks after it are imported; no header below it is fetched.
 *   A head without a certificate is never a state-sync target. On a network that has no
 *   certificate at all yet, the pre-finality path stays: headers from genesis, then the state of
 *   a recent block. Otherwise headers-first block sync from the fork point.
 */
import { bytesEqual, toHexKey } from '../codec/bytes.ts'
import { encodeCertificate } from '../codec/finality.ts'
import { headerHash } from '../codec/objects.ts'
import type { FinalityProof, StatusMessage } from '../codec/wire.ts'
import { isBetterHead } from '../chain/chain.ts'
import { headerSignatureValid } from '../chain/execute.ts'
import { CertificateError, verifyCertificateWith } from '../chain/finality.ts'
import type { Block } from '../ledger/types.ts'
import { pickPeer, samplePeers } from '../peers/selection.ts'
import { type HeadClaim, PromiseTracker, chooseSyncTarget, isSynced as noPeerAhead } from '../peers/sync-target.ts'
import { type Runtime, sleep } from '../util/clock.ts'
import type { Logger } from '../util/logger.ts'
import { RepeatingTask } from '../util/task.ts'
import { ChainSync, type ChainSyncOptions, type VerifiedHeader } from './chain-sync.ts'
import { reconcileMempool } from './mempool-reconcile.ts'
import { PacedTransport, StatusPacing } from './pacing.ts'
import type { SyncNode, SyncPeerPool, SyncPeers, SyncRequestTransport } from './interfaces.ts'
import { BadAnswerError, StateSyncEngine, type StateSyncOptions, chainStoreTarget, driveStateSync } from './state-sync.ts'

export type { SyncNode, SyncPeers, SyncRequestTransport } from './interfaces.ts'

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
/** Far behind with neither a certificate nor a staked target: wait (no one is at fault). */
export class NoCertifiedTargetError extends Error {
  override name = 'NoCertifiedTargetError'
}

/** How long a peer has to answer getFinality during a join. */
const FINALITY_TIMEOUT_MS = 5_000
/** Peers asked for certificates per join (bounds the work a Sybil crowd can cause). */
const MAX_CERTIFICATE_PEERS = 64

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
  /** Set when the pivot came from a finality certificate (join from a certificate). */
  certified?: boolean
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
  /** A finality repair is running (repairFinality). */
  private repairingFinality = false
  readonly options: SyncManagerOptions
  private readonly task: RepeatingTask
  private readonly log: Logger
  private running: Promise<void> | undefined
  /** Why the last far-behind catch-up waited (said at info once, then at debug while it lasts). */
  private waitingFor: string | undefined
  private stopped = false
  private view: SyncStatusView
  private startedAt = 0
  private phaseStartedAt = 0
  private phaseItems = 0
  private bytesAtStart = 0
  private readonly abort = new AbortController()
  /** Broken promises per peer. BOUNDED: MAX_PROMISE_ENTRIES. */
  private readonly promises = new PromiseTracker()
  /** Our status polls per peer, within each peer's status quota. BOUNDED: MAX_LIMITER_KEYS peers. */
  private readonly statusPacing = new StatusPacing()

  private readonly node: SyncNode
  private readonly peers: SyncPeers
  private readonly transport: SyncRequestTransport
  private readonly runtime: Runtime

  constructor(deps: SyncManagerDeps, options: Partial<SyncManagerOptions> = {}) {
    this.node = deps.node
    this.peers = deps.peers
    // Paced: never more than a peer's published per-peer quotas (src/sync/pacing.ts).
    this.transport = new PacedTransport(deps.transport, deps.runtime)
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
    const status = this.peers.list().find((peer) => peer.id === peerId)?.status
    if (status !== undefined && this.finalityConflict(status)) void this.repairFinality(peerId, status)
    if (this.bestTarget() !== undefined) void this.catchUp()
  }

  // ---------------------------------------------------------------- periodic round

  private async round(): Promise<void> {
    if (this.stopped) return
    const peers = this.peers.list()
    // A finalized block we do not hold, known from any peer's last status: repaired first.
    const conflicting = peers.find((candidate) => candidate.status !== undefined && this.finalityConflict(candidate.status))
    if (conflicting?.status !== undefined) await this.repairFinality(conflicting.id, conflicting.status)
    const totalStake = this.node.chain.schedule.totalStake
    const now = this.now()
    // Only peers whose status quota has room (StatusPacing): a refused poll costs both sides.
    const pollable = peers.filter((candidate) => this.statusPacing.allows(candidate.id, now))
    // Class-capped: zero-stake peers as a class are polled at most a third of the rounds.
    const peer = pickPeer(pollable, totalStake, { stake: (candidate) => candidate.stake, factor: (candidate) => this.peers.selectionFactor(candidate.id) }, this.runtime.random)
    if (peer === undefined) return
    this.statusPacing.spend(peer.id, now)
    let status: StatusMessage | undefined
    try {
      status = await this.peers.refreshStatus(peer.id, STATUS_TIMEOUT_MS)
    } catch (error) {
      this.statusPacing.failed(peer.id, this.now())
      this.peers.offence(peer.id, 'STATUS_FAILED', (error as Error).message)
      return
    }
    this.statusPacing.answered(peer.id)
    if (status === undefined) return
    if (this.isBetter(status)) {
      await this.catchUp()
      return
    }
    // A better claim an earlier run left untried: a catch-up run stops after 8 attempts, and a
    // zero-stake peer's status is polled in few rounds, so a claim the last run did not reach
    // waited for the next better status (a liar stayed neither tried nor ruled out for 45 s and
    // more beside an honest validator that gossip kept us level with). The round goes on to the
    // mempool after it: a claim that is never tried (far ahead, no certificate) must not switch
    // reconciliation off.
    if (this.running === undefined && this.bestTarget() !== undefined) await this.catchUp()
    if (this.running === undefined && !bytesEqual(status.mempoolDigest, this.node.mempoolDigest())) {
      await this.reconcileMempool(peer.id).catch((error: unknown) => this.log.debug({ err: error, peer: peer.id.slice(-8) }, 'mempool reconciliation failed'))
    }
  }

  /**
   * A peer finalized a block our canonical chain does not hold at that height, though our head is
   * at or past it: our branch can never be final there. Rumor is how certificates spread (votes),
   * and a vote made before its validator had peers reaches nobody — two validators that each
   * built a first block before they connected split that way for good. Anti-entropy repairs it.
   */
  private finalityConflict(status: StatusMessage): boolean {
    const chain = this.node.chain
    if (status.finalizedHeight <= chain.finalized.height || status.finalizedHeight > chain.head.header.height) return false
    const canonical = chain.getCanonicalHash(status.finalizedHeight)
    return canonical === undefined || !bytesEqual(canonical, status.finalizedHash)
  }

  /**
   * Fetches the peer's certificate for its finalized height, verifies it (header and signatures;
   * a bad one is charged as at a join), fetches the certified block when we lack it, and applies
   * the certificate: the head moves onto the certified branch (Chain.applyCertificate); the
   * blocks after it come by the usual catch-up. A peer that claims a finality it cannot show
   * broke a promise.
   */
  private async repairFinality(peerId: string, status: StatusMessage): Promise<void> {
    // One at a time: an admission and a round that see the same conflict fetch and verify it once.
    if (this.repairingFinality) return
    this.repairingFinality = true
    const height = status.finalizedHeight
    try {
      const response = await this.transport.request(peerId, { type: 'getFinality', height }, FINALITY_TIMEOUT_MS)
      const proof = response.type === 'finality' ? response.proof : undefined
      if (proof === undefined || proof.certificate.height !== height) {
        this.peers.offence(peerId, 'SYNC_PROMISE_BROKEN', `claimed finality at ${height} and did not show it`)
        return
      }
      if (!(await this.verifyProof(peerId, proof))) return
      const hash = headerHash(proof.header)
      if (!this.node.chain.hasBlock(hash)) {
        const blocks = await this.transport.request(peerId, { type: 'getBlocks', hashes: [hash] }, FINALITY_TIMEOUT_MS)
        const block = blocks.type === 'blocks' ? blocks.blocks[0] : undefined
        if (block === undefined || !bytesEqual(headerHash(block.header), hash)) {
          this.peers.offence(peerId, 'SYNC_USELESS_ANSWER', `no body for its certified block at ${height}`)
          return
        }
        // A block whose parent we lack is kept as an orphan; the certificate then waits for it.
        await this.node.importBlock(block, { kind: 'sync', peerId })
      }
      await this.node.applyCertificate(proof.certificate)
      this.log.info({ peer: peerId.slice(-8), height, head: this.node.chain.head.header.height }, 'finality repaired from a peer\'s certificate')
    } catch (error) {
      this.log.debug({ err: error, peer: peerId.slice(-8), height }, 'finality repair failed')
    } finally {
      this.repairingFinality = false
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
  private bestTarget(): { id: string; stake: bigint; status: StatusMessage } | undefined {
    const byId = new Map<string, { stake: bigint; status: StatusMessage }>()
    const claims: HeadClaim[] = []
    for (const peer of this.peers.list()) {
      const status = peer.status
      if (status === undefined || !this.isBetter(status)) continue
      byId.set(peer.id, { stake: peer.stake, status })
      claims.push({ peerId: peer.id, height: status.headHeight, hash: Buffer.from(status.headHash).toString('hex'), stake: peer.stake })
    }
    // Every claim here is better than our head (an equal height with a better hash included).
    const target = chooseSyncTarget(claims, -1, (peerId) => this.isRuledOut(peerId) || this.peers.selectionFactor(peerId) <= 0)
    const id = target?.peers[0]
    const claim = id === undefined ? undefined : byId.get(id)
    return id === undefined || claim === undefined ? undefined : { id, ...claim }
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
    /** The last attempt that ended short of its target's claim (see below). */
    let short: { peerId: string; height: number } | undefined
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
        if (useState) await this.farBehindSyncTo(target.id, target.status.headHeight, target.stake)
        else await this.blockSyncTo(target.id, target.status.headHeight)
        // A far-behind sync goes to a certified block with other peers' help, so the target's own
        // claim is kept only if we reached it. Short of it with progress made, the next attempt
        // goes on from here (an honest target serves the rest); short of it again with none, the
        // claim is broken (a liar synced around is not forgiven).
        const head = this.node.chain.head.header
        if (head.height < target.status.headHeight && !this.node.chain.hasBlock(target.status.headHash)) {
          const again = short?.peerId === target.id && head.height <= short.height
          short = { peerId: target.id, height: head.height }
          if (again) throw new Error(`synced to height ${head.height} again, short of the ${target.status.headHeight} it claimed`)
          continue
        }
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
        if (error instanceof NoCertifiedTargetError) {
          // Said once per reason: the rounds come back here every statusIntervalMs while it lasts.
          this.log[this.waitingFor === error.message ? 'debug' : 'info']({ reason: error.message }, 'far behind: waiting for a certified sync target')
          this.waitingFor = error.message
          break
        }
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

  // ---------------------------------------------------------------- join from a certificate

  /**
   * Far behind: the highest valid certificate our admitted peers offer decides the state-sync
   * target. No certificate above our head but some certificate seen: the target's blocks are
   * synced headers-first (its head is not trusted enough to take state from). No certificate at
   * all (a network before its first finality): the pre-finality header-chain state sync.
   */
  private async farBehindSyncTo(peerId: string, targetHeight: number, targetStake: bigint): Promise<void> {
    const offers = await this.collectCertificates()
    const head = this.node.chain.head.header.height
    if (offers.best !== undefined && offers.best.proof.certificate.height > head) return this.joinFromCertificate(offers.best.proof, offers.best.peers)
    if (offers.anyCertificate) return this.blockSyncTo(peerId, targetHeight)
    // Without any certificate only a validator's head may name the pre-finality state-sync target:
    // peers without stake cannot choose it, however many advertise a head.
    if (targetStake === 0n) throw new NoCertifiedTargetError(`no certificate offered and target ${peerId.slice(-8)} holds no stake`)
    return this.stateSyncTo(peerId, targetHeight)
  }

  /**
   * Asks the admitted peers for their latest certificate and verifies the offers, highest first,
   * until one holds; a forged one is a fatal offence, any other invalid one a high one. Returns the
   * best valid proof with every peer that offered it (they serve its state), and whether any
   * certificate (valid or not) was offered.
   */
  private async collectCertificates(): Promise<{ best: { proof: FinalityProof; peers: string[] } | undefined; anyCertificate: boolean }> {
    const asked = this.peers.list().slice(0, MAX_CERTIFICATE_PEERS)
    const answers = await Promise.all(
      asked.map(async (peer) => {
        try {
          const response = await this.transport.request(peer.id, { type: 'getFinality', height: undefined }, FINALITY_TIMEOUT_MS)
          return response.type === 'finality' && response.proof !== undefined ? { peerId: peer.id, proof: response.proof } : undefined
        } catch {
          return undefined
        }
      }),
    )
    const offers = answers.filter((answer): answer is { peerId: string; proof: FinalityProof } => answer !== undefined)
    offers.sort((a, b) => b.proof.certificate.height - a.proof.certificate.height)
    /** encoded certificate + header hash → verdict. BOUNDED: by the offers of this join. */
    const verdicts = new Map<string, boolean>()
    let best: { proof: FinalityProof; peers: string[]; key: string } | undefined
    for (const offer of offers) {
      if (best !== undefined && offer.proof.certificate.height < best.proof.certificate.height) break
      const key = toHexKey(encodeCertificate(offer.proof.certificate)) + toHexKey(headerHash(offer.proof.header))
      let valid = verdicts.get(key)
      if (valid === undefined) {
        valid = await this.verifyProof(offer.peerId, offer.proof)
        verdicts.set(key, valid)
      } else if (!valid) {
        this.peers.offence(offer.peerId, 'CERT_INVALID', 'repeats a certificate already refused')
      }
      if (!valid) continue
      if (best === undefined) best = { proof: offer.proof, peers: [offer.peerId], key }
      else if (best.key === key) best.peers.push(offer.peerId)
    }
    return { best, anyCertificate: offers.length > 0 }
  }

  /** A certificate and its header against the genesis validators; charges the peer if invalid. */
  private async verifyProof(peerId: string, proof: FinalityProof): Promise<boolean> {
    const chain = this.node.chain
    const header = proof.header
    try {
      // The header itself: this network, signed by its slot's leader, timestamp in its slot.
      const slotStart = chain.schedule.slotStart(header.slot)
      if (
        header.chainId !== chain.genesis.chainId ||
        header.timestamp < slotStart ||
        header.timestamp >= slotStart + chain.genesis.slotMs ||
        !bytesEqual(chain.schedule.leaderFor(header.slot).address, header.proposer) ||
        !headerSignatureValid(header)
      ) {
        throw new CertificateError('CERT_WRONG_BLOCK', 'certified header is not validly signed by its slot leader')
      }
      // Hash and height of the header = the certificate's; > 2/3 of the genesis stake; every signature.
      await verifyCertificateWith(proof.certificate, header, chain.genesis, (items) => this.node.verifyMany(items))
      return true
    } catch (error) {
      if (!(error instanceof CertificateError)) throw error
      this.log.warn({ peer: peerId.slice(-8), code: error.code, height: proof.certificate.height }, 'certificate refused')
      this.peers.offence(peerId, error.code === 'CERT_FORGED' ? 'CERT_FORGED' : 'CERT_INVALID', `${error.code}: ${error.message}`)
      return false
    }
  }

  /**
   * State sync to a certified block: its state from the peers that offered the certificate, its
   * body, adoption as head and finalized block (no header below it), then the blocks after it
   * from the best of those peers, verified headers first.
   */
  private async joinFromCertificate(proof: FinalityProof, certifyingPeers: string[]): Promise<void> {
    this.view.mode = 'state'
    this.view.certified = true
    const chain = this.node.chain
    const pivot = { header: proof.header, hash: headerHash(proof.header) }
    this.view.pivotHeight = pivot.header.height
    this.enterPhase('state')
    const certifying = new Set(certifyingPeers)
    const pool = this.fixedPool(certifying, pivot.header.height)
    const releasePruning = chain.holdPruning()
    try {
      const engine = new StateSyncEngine(pivot.header.stateRoot, chainStoreTarget(this.node.store), this.options.state, chain.head.header.stateRoot)
      await driveStateSync(engine, this.transport, pool, {
        clock: this.runtime.clock,
        timers: this.runtime.timers,
        signal: this.abort.signal,
        onProgress: () => this.updateStateView(engine),
      })
      this.updateStateView(engine)
      const pivotTxs = await this.fetchPivotBody(pivot, pool)
      await this.node.adoptCertified(pivot, pivotTxs, proof.certificate)
    } finally {
      releasePruning()
    }
    // The blocks after the certificate, from the certifying peer with the best head.
    let source: { id: string; height: number } | undefined
    for (const peer of this.peers.list()) {
      if (!certifying.has(peer.id) || peer.status === undefined) continue
      if (source === undefined || peer.status.headHeight > source.height) source = { id: peer.id, height: peer.status.headHeight }
    }
    if (source === undefined || source.height <= pivot.header.height) return
    this.view.targetHeight = Math.max(this.view.targetHeight, source.height)
    this.enterPhase('headers')
    const sync = this.chainSync(0)
    const rest = await sync.fetchHeaders(source.id, source.height, [pivot.hash])
    this.view.blocksTotal += rest.length
    this.enterPhase('blocks')
    await sync.fetchAndImport(rest, this.abort.signal)
  }

  /**
   * The peers that serve a certified target's state: first those that offered its certificate,
   * then any admitted peer whose status claims finality at or above it (joined later, say).
   * Everything served is checked against the certified root, so a liar only wastes a request.
   */
  private fixedPool(ids: ReadonlySet<string>, height: number): SyncPeerPool {
    const excluded = new Set<string>()
    return {
      candidates: () => {
        const eligible = this.peers.list().filter((peer) => !excluded.has(peer.id) && (ids.has(peer.id) || (peer.status?.finalizedHeight ?? 0) >= height))
        return [...eligible.filter((peer) => ids.has(peer.id)), ...eligible.filter((peer) => !ids.has(peer.id))].map((peer) => peer.id)
      },
      reportBad: (peerId, reason, kind, code) => {
        excluded.add(peerId)
        this.log.warn({ peer: peerId.slice(-8), reason, kind }, kind === 'forged' ? 'peer served forged sync data' : 'peer cannot serve sync data')
        if (kind === 'forged') this.peers.offence(peerId, code, reason)
      },
      reportFailure: (peerId, reason) => this.peers.offence(peerId, 'SYNC_REQUEST_FAILED', reason),
    }
  }

  private updateStateView(engine: StateSyncEngine): void {
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

  // ---------------------------------------------------------------- end of join from a certificate

  /** Pre-finality state sync: the whole header chain from genesis, then the state of a recent block. */
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
    const update = () => this.updateStateView(engine)
    // The walk reads our local trie beside the target: nothing may be pruned under it meanwhile.
    const releasePruning = chain.holdPruning()
    try {
      await driveStateSync(engine, this.transport, pool, { clock: this.runtime.clock, timers: this.runtime.timers, signal: this.abort.signal, onProgress: update })
      update()
      const pivotTxs = await this.fetchPivotBody(pivot, pool)
      await this.node.adoptPivot(headers.slice(0, pivotIndex + 1), pivotTxs)
    } finally {
      releasePruning()
    }
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
