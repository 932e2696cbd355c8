/**
 * What the RPC layer hears from a node, as typed events: new heads, finalized heads, each
 * transaction's status changes, peers joining and leaving, sync progress. The node's composition
 * root (src/node/run.ts, one marked block) feeds an RpcEventHub by plain calls; the WebSocket
 * subscriptions and the dashboard statistics listen to it. Nothing here imports the node, the
 * network or the sync engines, so their refactors only touch that one wiring block.
 */
import { toHex } from '../codec/bytes.ts'
import type { Block, Header } from '../ledger/types.ts'
import { TypedEmitter } from '../util/events.ts'
import { RepeatingTask } from '../util/task.ts'
import { type HeaderView, headerView } from './views.ts'

/** Why a pending transaction left the mempool without being included. */
export type TxDropReason = 'replaced' | 'evicted' | 'expired' | 'nonce-spent'

export interface HeadEvent extends HeaderView {
  /** Blocks that left the canonical chain with this move (0 unless a reorg). */
  reorgDepth: number
  /** When this node adopted the head (ms since the epoch). */
  receivedAt: number
}

export interface FinalizedEvent {
  height: number
  hash: string | null
}

export type TxStatusEvent =
  | { txid: string; status: 'pending'; reorged?: boolean }
  | { txid: string; status: 'included'; height: number; blockHash: string }
  | { txid: string; status: 'finalized'; height: number; blockHash: string }
  | { txid: string; status: 'dropped'; reason: TxDropReason }
  /** Only as the first answer of a subscription: the node has never seen the txid. */
  | { txid: string; status: 'unknown' }

export interface PeerEvent {
  event: 'connected' | 'disconnected'
  peerId: string
  direction?: 'inbound' | 'outbound'
  stake?: string
  validator?: string
  /** On disconnect: the node banned the peer. */
  banned?: boolean
}

/** A sync status as `sync_status` reports it (its shape belongs to src/sync; read as JSON). */
export type SyncEvent = Record<string, unknown> & { phase?: string }

export interface RpcEventMap {
  head: [HeadEvent]
  finalized: [FinalizedEvent]
  tx: [TxStatusEvent]
  peer: [PeerEvent]
  sync: [SyncEvent]
}

/** The read side: what subscriptions and statistics listen to. */
export interface RpcEvents {
  on<K extends keyof RpcEventMap>(event: K, listener: (...args: RpcEventMap[K]) => void): () => void
  finalizedHeight(): number
}

/** Views the hub polls (there is no push event for them in the node). */
export interface RpcPolledViews {
  /** Height of the latest finalized block (0 until finality exists). */
  finalizedHeight(): number
  finalizedHash?(): string | null
  /** The sync manager's status, or undefined without networking. */
  syncStatus?(): unknown
}

export interface RpcEventHubOptions {
  /** How often finalized height and sync status are polled for changes (default 1000 ms). */
  pollIntervalMs?: number
  onListenerError?: (error: unknown) => void
}

/** The fields of a sync status that change often but say nothing new (left out of change detection). */
const SYNC_VOLATILE_FIELDS = new Set(['elapsedMs', 'rate', 'etaSeconds'])

export class RpcEventHub implements RpcEvents {
  private readonly emitter: TypedEmitter<RpcEventMap>
  private readonly poller: RepeatingTask
  private lastFinalized = 0
  private lastSyncKey = ''

  constructor(
    private readonly views: RpcPolledViews,
    options: RpcEventHubOptions = {},
  ) {
    this.emitter = new TypedEmitter(options.onListenerError)
    this.lastFinalized = views.finalizedHeight()
    this.poller = new RepeatingTask(() => this.poll(), options.pollIntervalMs ?? 1_000, options.onListenerError ?? (() => undefined))
  }

  on<K extends keyof RpcEventMap>(event: K, listener: (...args: RpcEventMap[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }

  finalizedHeight(): number {
    return this.lastFinalized
  }

  start(): void {
    this.poller.start()
  }

  stop(): void {
    this.poller.stop()
  }

  // ---------------------------------------------------------------- inputs (called by the wiring)

  /** A transaction entered the mempool. */
  txPending(txidHex: string): void {
    this.emitter.emit('tx', { txid: `0x${txidHex}`, status: 'pending' })
  }

  /** A pending transaction left the mempool without being included. */
  txDropped(txidHex: string, reason: TxDropReason): void {
    this.emitter.emit('tx', { txid: `0x${txidHex}`, status: 'dropped', reason })
  }

  /** The head moved: `added` oldest first (the head last), `removed` newest first. */
  headChanged(head: { header: Header; hash: Uint8Array }, added: readonly Block[], removed: readonly Block[]): void {
    const now = Date.now()
    const addedIds = new Set<string>()
    for (let index = 0; index < added.length; index++) {
      const block = added[index] as Block
      // A block before the head carries its hash in the next block's parentHash: no re-hashing.
      const blockHash = toHex(added[index + 1]?.header.parentHash ?? head.hash)
      for (const signed of block.txs) {
        addedIds.add(signed.idHex)
        this.emitter.emit('tx', { txid: `0x${signed.idHex}`, status: 'included', height: block.header.height, blockHash })
      }
    }
    // A reorg returns the losing branch's transactions to the mempool.
    for (const block of removed) {
      for (const signed of block.txs) if (!addedIds.has(signed.idHex)) this.emitter.emit('tx', { txid: `0x${signed.idHex}`, status: 'pending', reorged: true })
    }
    this.emitter.emit('head', { ...headerView(head.header, head.hash), reorgDepth: removed.length, receivedAt: now })
  }

  peerConnected(peer: { peerId: string; direction: 'inbound' | 'outbound'; stake: bigint | string; validator?: string }): void {
    this.emitter.emit('peer', {
      event: 'connected',
      peerId: peer.peerId,
      direction: peer.direction,
      stake: peer.stake.toString(),
      ...(peer.validator === undefined ? {} : { validator: peer.validator }),
    })
  }

  peerDisconnected(peerId: string, banned: boolean): void {
    this.emitter.emit('peer', { event: 'disconnected', peerId, banned })
  }

  /** Polls the views without push events; also called by tests to skip the timer. */
  poll(): void {
    const finalized = this.views.finalizedHeight()
    if (finalized !== this.lastFinalized) {
      this.lastFinalized = finalized
      this.emitter.emit('finalized', { height: finalized, hash: this.views.finalizedHash?.() ?? null })
    }
    const sync = this.views.syncStatus?.()
    if (sync !== undefined && sync !== null && typeof sync === 'object') {
      const view = sync as SyncEvent
      const key = JSON.stringify(view, (name, value: unknown) => (SYNC_VOLATILE_FIELDS.has(name) ? undefined : value))
      if (key !== this.lastSyncKey) {
        this.lastSyncKey = key
        this.emitter.emit('sync', view)
      }
    }
  }
}
