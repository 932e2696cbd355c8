/**
 * The seams of src/sync: what the anti-entropy engines need from the node's domain, from the
 * peer set and from the transport. Narrow on purpose; src/node implements them.
 */
import type { StatusMessage, SyncRequest, SyncResponse } from '../codec/wire.ts'
import type { Chain } from '../chain/chain.ts'
import type { TxError } from '../ledger/errors.ts'
import type { VerifyItem } from '../crypto/verify-pool.ts'
import type { Block, Certificate, Header, SignedTx } from '../ledger/types.ts'
import type { Mempool } from '../mempool/mempool.ts'
import type { OffenceCode, RewardCode } from '../peers/offences.ts'
import type { ChainStore } from '../store/chain-store.ts'

export interface SyncTransport {
  /** Sends one request to a peer; rejects on timeout, transport error or an undecodable answer. */
  request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse>
}

export interface SyncPeerPool {
  /** Peers that can serve the target state now (admitted, not excluded). */
  candidates(): string[]
  /** A peer sent forged data (penalise it) or cannot serve this state; either way it is not asked again. */
  reportBad(peerId: string, reason: string, kind: 'forged' | 'useless', code: OffenceCode): void
  /** A request to the peer failed (timeout, error). */
  reportFailure(peerId: string, reason: string): void
}

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
  /** Makes a state-synced certified block the head and the finalized block (its signatures already checked). */
  adoptCertified(pivot: { header: Header; hash: Uint8Array }, pivotTxs: SignedTx[], certificate: Certificate): Promise<void>
  /** Applies a certificate whose signatures were checked (finality repair): the head moves onto its block if that is elsewhere. */
  applyCertificate(certificate: Certificate): Promise<void>
  /** Batch signature checks (the verify pool when the node has one). */
  verifyMany(items: readonly VerifyItem[]): Promise<boolean[]>
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

