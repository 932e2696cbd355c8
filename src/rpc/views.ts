/** JSON views of chain objects for RPC: hex bytes with `0x`, amounts as decimal strings. */
import { toHex } from '../codec/bytes.ts'
import { headerHash } from '../codec/objects.ts'
import type { Block, Certificate, Evidence, Genesis, Header, SignedTx, Vote } from '../ledger/types.ts'

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

/** A finality certificate: the block, and each signer (genesis index, address, stake) with its vote signature. */
export interface CertificateView {
  height: number
  blockHash: string
  /** Stake of the signers and of the whole genesis set, decimal strings. */
  signedStake: string
  totalStake: string
  signatures: Array<{ validatorIndex: number; validator: string | null; signature: string }>
}

export function certificateView(certificate: Certificate, genesis: Genesis): CertificateView {
  let signed = 0n
  let total = 0n
  for (const validator of genesis.validators) total += validator.stake
  const signatures = certificate.signatures.map((entry) => {
    const validator = genesis.validators[entry.validatorIndex]
    if (validator !== undefined) signed += validator.stake
    return { validatorIndex: entry.validatorIndex, validator: validator === undefined ? null : toHex(validator.address), signature: toHex(entry.signature) }
  })
  return { height: certificate.height, blockHash: toHex(certificate.blockHash), signedStake: signed.toString(), totalStake: total.toString(), signatures }
}

export interface VoteView {
  chainId: string
  height: number
  blockHash: string
  validatorIndex: number
  validator: string | null
  signature: string
}

export function voteView(vote: Vote, genesis: Genesis): VoteView {
  const validator = genesis.validators[vote.validatorIndex]
  return {
    chainId: vote.chainId,
    height: vote.height,
    blockHash: toHex(vote.blockHash),
    validatorIndex: vote.validatorIndex,
    validator: validator === undefined ? null : toHex(validator.address),
    signature: toHex(vote.signature),
  }
}

/** Equivocation: two votes of one validator at one height for different blocks. */
export interface EvidenceView {
  validatorIndex: number
  validator: string | null
  height: number
  first: VoteView
  second: VoteView
}

export function evidenceView(evidence: Evidence, genesis: Genesis): EvidenceView {
  const first = voteView(evidence.first, genesis)
  return { validatorIndex: first.validatorIndex, validator: first.validator, height: first.height, first, second: voteView(evidence.second, genesis) }
}
