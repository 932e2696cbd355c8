/** What the RPC layer needs from a node: a narrow interface, so RPC tests can drive a real node or a fake. */
import type { BlockView, CertificateView, EvidenceView, HeaderView, TxView } from './views.ts'

export interface NodeStatusView {
  chainId: string
  genesisHash: string
  /** The network's minimum fee (genesis limits), a decimal string. */
  minFee: string
  height: number
  headHash: string
  stateRoot: string
  mempoolSize: number
  mempoolBytes: number
  /** The finalized block (0 and the genesis block until the first certificate). */
  finalizedHeight: number
  finalizedHash: string
  /** libp2p peer id, when networking is on. */
  peerId?: string
  peers?: number
  listenAddresses?: string[]
  validator?: string
}

export interface TxLookupView {
  /** `finalized`: included at or below the finalized height (can never be reverted). */
  status: 'pending' | 'included' | 'finalized'
  height?: number
  blockHash?: string
  tx: TxView
}

export interface AccountView {
  address: string
  balance: string
  nonce: number
  /** The nonce a new transaction should use: the account nonce plus this sender's consecutive pending txs. */
  pendingNonce: number
  /** Present when asked for: check with verifyAccountProof against the header's stateRoot. */
  proof?: {
    blockHash: string
    height: number
    stateRoot: string
    keyHash: string
    nodes: string[]
  }
}

export interface RpcBackend {
  status(): NodeStatusView
  /** Runs the ingest pipeline; resolves to the txid hex, rejects (or throws) TxError. */
  submitTx(raw: Uint8Array): string | Promise<string>
  getTx(txid: Uint8Array): TxLookupView | null
  getAccount(address: Uint8Array, withProof: boolean): AccountView
  getHead(): HeaderView
  getBlock(ref: { height: number } | { hash: Uint8Array }, fullTransactions: boolean): BlockView | null
  /** Optional surfaces, present once networking / sync exist. */
  peers?(): unknown[]
  syncStatus?(): unknown
  /** Finality surfaces (chain_getFinality, chain_getEvidence). */
  getFinality?(ref: 'latest' | number): CertificateView | null
  getEvidence?(): EvidenceView[]
  /** Live and remembered bans (net_bans). */
  bans?(): unknown[]
  /** Admin (token-gated): ban a peer id now; lift a ban; dial an address. */
  ban?(peerId: string): boolean
  unban?(peerId: string): boolean
  addPeer?(address: string): Promise<boolean>
}
