/**
 * Transaction rules that need no state (docs/protocol.md, "Transaction rules").
 * Cheap checks run first; the signature, the expensive one, runs last.
 */
import { DecodeError } from '../codec/binary.ts'
import { decodeSignedTx } from '../codec/objects.ts'
import { verify } from '../crypto/sign.ts'
import { TxError } from './errors.ts'
import type { GenesisLimits, SignedTx } from './types.ts'

export interface TxRules {
  chainId: string
  limits: GenesisLimits
}

/** Size-checks then decodes untrusted transaction bytes. */
export function decodeTxInput(bytes: Uint8Array, rules: TxRules): SignedTx {
  // REJECT: refused before decoding so an oversized input costs nothing.
  if (bytes.length > rules.limits.maxTxBytes) {
    throw new TxError('TX_TOO_LARGE', `transaction is ${bytes.length} bytes, limit ${rules.limits.maxTxBytes}`)
  }
  try {
    return decodeSignedTx(bytes)
  } catch (error) {
    // REJECT: bytes that are not a canonical transaction.
    if (error instanceof DecodeError) throw new TxError('TX_MALFORMED', `malformed transaction: ${error.message}`)
    throw error
  }
}

/** Every check that needs neither state nor the signature. */
export function checkTxStateless(signed: SignedTx, rules: TxRules): void {
  const tx = signed.tx
  // REJECT: a decoded tx may still exceed this network's (tighter) genesis limit.
  if (signed.bytes.length > rules.limits.maxTxBytes) {
    throw new TxError('TX_TOO_LARGE', `transaction is ${signed.bytes.length} bytes, limit ${rules.limits.maxTxBytes}`)
  }
  // REJECT: signed for another network; it can never be valid here.
  if (tx.chainId !== rules.chainId) throw new TxError('TX_WRONG_CHAIN', `transaction is for chain ${tx.chainId}, this is ${rules.chainId}`)
  // REJECT: memo above the genesis bound.
  if (tx.memo.length > rules.limits.maxMemoBytes) {
    throw new TxError('TX_MEMO_TOO_LARGE', `memo is ${tx.memo.length} bytes, limit ${rules.limits.maxMemoBytes}`)
  }
  // REJECT: below the network's minimum fee.
  if (tx.fee < rules.limits.minFee) throw new TxError('TX_FEE_TOO_LOW', `fee ${tx.fee} is below the minimum ${rules.limits.minFee}`)
}

export function txSignatureValid(signed: SignedTx): boolean {
  return verify(signed.tx.signature, signed.signingMessage, signed.tx.from)
}

/** REJECT: the signature fails the pinned rule (docs/protocol.md, "Signature rule"). */
export function badSignatureError(): TxError {
  return new TxError('TX_BAD_SIGNATURE', 'signature does not verify under the sender key')
}

/** Stateless checks plus the signature (REJECT: TX_BAD_SIGNATURE). */
export function checkTx(signed: SignedTx, rules: TxRules): void {
  checkTxStateless(signed, rules)
  if (!txSignatureValid(signed)) throw badSignatureError()
}
