/** Building and signing a transfer: used by the CLI, the load generator, tests and benchmarks. */
import { encodeUnsignedTx, toSignedTx } from '../codec/objects.ts'
import type { Keypair } from '../crypto/keys.ts'
import { sign, signingMessage } from '../crypto/sign.ts'
import type { Address, SignedTx, Transaction } from './types.ts'

export interface TransferParams {
  chainId: string
  from: Keypair
  to: Address
  amount: bigint
  fee: bigint
  nonce: number
  memo?: Uint8Array
}

export function signTransfer(params: TransferParams): SignedTx {
  const unsigned: Transaction = {
    chainId: params.chainId,
    from: params.from.publicKey,
    to: params.to,
    amount: params.amount,
    fee: params.fee,
    nonce: params.nonce,
    memo: params.memo ?? new Uint8Array(0),
    signature: new Uint8Array(64),
  }
  const signature = sign(signingMessage(encodeUnsignedTx(unsigned)), params.from)
  return toSignedTx({ ...unsigned, signature })
}
