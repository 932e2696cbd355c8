/** JSON views of chain objects for RPC: hex bytes with `0x`, amounts as decimal strings. */
import { toHex } from '../codec/bytes.ts'
import { headerHash } from '../codec/objects.ts'
import type { Block, Header, SignedTx } from '../ledger/types.ts'

export interface TxView {
  txid: string
  chainId: string
  from: string
  to: string
  amount: string
  fee: string
  nonce: number
  memo: string
  signature: string
  /** The canonical encoding, ready for tx_send. */
  raw: string
}

export interface HeaderView {
  hash: string
  chainId: string
  height: number
  slot: number
  parentHash: string
  timestamp: number
  proposer: string
  txRoot: string
  stateRoot: string
  txCount: number
  signature: string
}

export interface BlockView extends HeaderView {
  /** Full transactions, or txids when full transactions were not asked for. */
  transactions: TxView[] | string[]
}

export function txView(signed: SignedTx): TxView {
  const tx = signed.tx
  return {
    txid: toHex(signed.id),
    chainId: tx.chainId,
    from: toHex(tx.from),
    to: toHex(tx.to),
    amount: tx.amount.toString(),
    fee: tx.fee.toString(),
    nonce: tx.nonce,
    memo: toHex(tx.memo),
    signature: toHex(tx.signature),
    raw: toHex(signed.bytes),
  }
}

export function headerView(header: Header, hash: Uint8Array = headerHash(header)): HeaderView {
  return {
    hash: toHex(hash),
    chainId: header.chainId,
    height: header.height,
    slot: header.slot,
    parentHash: toHex(header.parentHash),
    timestamp: header.timestamp,
    proposer: toHex(header.proposer),
    txRoot: toHex(header.txRoot),
    stateRoot: toHex(header.stateRoot),
    txCount: header.txCount,
    signature: toHex(header.signature),
  }
}

export function blockView(block: Block, fullTransactions: boolean, hash?: Uint8Array): BlockView {
  return {
    ...headerView(block.header, hash),
    transactions: fullTransactions ? block.txs.map(txView) : block.txs.map((signed) => toHex(signed.id)),
  }
}
