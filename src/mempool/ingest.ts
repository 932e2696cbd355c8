/**
 * The transaction ingest pipeline shared by RPC and gossip: size → decode → stateless rules →
 * already known → signature → mempool. Each tx's signature is verified once; the verified set
 * lets block import skip it later.
 */
import { TxError } from '../ledger/errors.ts'
import type { Account, Address, SignedTx } from '../ledger/types.ts'
import { type TxRules, checkTxStateless, decodeTxInput, txSignatureValid } from '../ledger/validation.ts'
import { LruSet } from '../util/lru.ts'
import type { AddResult, Mempool } from './mempool.ts'

export interface IngestDeps {
  rules: TxRules
  mempool: Mempool
  /** The sender's account at the head (cached by the chain). */
  getAccount: (address: Address) => Account
  /** True when the tx is already in the canonical chain (consulted only for a spent nonce). */
  isIncluded: (signed: SignedTx) => boolean
}

export interface IngestResult {
  signed: SignedTx
  add: AddResult
}

export class TxIngest {
  /** Ids whose signatures verified: bounded LRU (capacity set by the caller). */
  readonly verified: LruSet<string>

  constructor(
    private readonly deps: IngestDeps,
    verifiedCapacity = 200_000,
  ) {
    this.verified = new LruSet(verifiedCapacity)
  }

  isVerified = (idHex: string): boolean => this.verified.has(idHex) || this.deps.mempool.has(idHex)

  /** Runs the whole pipeline on untrusted bytes; throws TxError with the reject code. */
  ingestBytes(bytes: Uint8Array, now: number): IngestResult {
    return this.ingest(decodeTxInput(bytes, this.deps.rules), now)
  }

  ingest(signed: SignedTx, now: number): IngestResult {
    checkTxStateless(signed, this.deps.rules)
    // IGNORE: known already; no need to pay for the signature again.
    if (this.deps.mempool.has(signed.idHex)) throw new TxError('TX_ALREADY_KNOWN', 'transaction is already pending', 'ignore')
    // A spent nonce is refused before the signature is paid for (and tells an included tx apart).
    const account = this.deps.getAccount(signed.tx.from)
    if (signed.tx.nonce < account.nonce) {
      if (this.deps.isIncluded(signed)) throw new TxError('TX_ALREADY_KNOWN', 'transaction is already in the chain', 'ignore')
      throw new TxError('TX_NONCE_TOO_LOW', `nonce ${signed.tx.nonce} is below the account nonce ${account.nonce}`, 'ignore')
    }
    if (!this.verified.has(signed.idHex)) {
      // REJECT: last, because it is the expensive check.
      if (!txSignatureValid(signed)) throw new TxError('TX_BAD_SIGNATURE', 'signature does not verify under the sender key')
      this.verified.add(signed.idHex)
    }
    return { signed, add: this.deps.mempool.add(signed, now, account) }
  }
}
