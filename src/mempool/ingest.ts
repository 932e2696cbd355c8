/**
 * The transaction ingest pipeline shared by RPC and gossip: size → decode → stateless rules →
 * already known → spent nonce → can pay → signature → mempool. Each tx's signature is verified once; the
 * verified set lets block import skip it later.
 *
 * Two entry points: `ingest` (synchronous, one tx) and `ingestMany`/`submit` (a batch, or calls
 * made in the same event-loop turn): cheap checks on the main thread, signatures in parallel on
 * the verify pool's workers, then mempool admission in the original order (nonce order holds).
 */
import type { VerifyPool } from '../crypto/verify-pool.ts'
import { TxError } from '../ledger/errors.ts'
import type { Account, Address, SignedTx } from '../ledger/types.ts'
import { type TxRules, badSignatureError, checkTxStateless, decodeTxInput, txSignatureValid } from '../ledger/validation.ts'
import { LruSet } from '../util/lru.ts'
import type { AddResult, Mempool } from './mempool.ts'

export interface IngestDeps {
  rules: TxRules
  mempool: Mempool
  /** The sender's account at the head (cached by the chain). */
  getAccount: (address: Address) => Account
  /** True when the tx is already in the canonical chain (consulted only for a spent nonce). */
  isIncluded: (signed: SignedTx) => boolean
  /** Worker threads for signatures; without it batches are verified inline. */
  pool?: VerifyPool
}

export interface IngestResult {
  signed: SignedTx
  add: AddResult
}

export type IngestOutcome = { ok: true; result: IngestResult } | { ok: false; error: TxError }

interface Queued {
  input: Uint8Array | SignedTx
  resolve: (result: IngestResult) => void
  reject: (error: unknown) => void
}

/**
 * Ignore outcomes shared by every refusal (validation outcomes carry no stack): the known ones
 * always (their message has no figures), the other two for a peer's batch (`precheck`'s `terse`).
 */
const IGNORED = {
  pending: new TxError('TX_ALREADY_KNOWN', 'transaction is already pending', 'ignore'),
  included: new TxError('TX_ALREADY_KNOWN', 'transaction is already in the chain', 'ignore'),
  nonceTooLow: new TxError('TX_NONCE_TOO_LOW', 'nonce is below the account nonce', 'ignore'),
  cannotPay: new TxError('TX_INSUFFICIENT_FUNDS', 'balance does not cover amount and fee', 'ignore'),
} as const

export class TxIngest {
  /** Ids whose signatures verified: bounded LRU (capacity set by the caller). */
  readonly verified: LruSet<string>
  /** Calls waiting for this turn's batch; bounded by what one event-loop turn submits. */
  private queue: Queued[] = []
  private flushScheduled = false
  /** Admission of batches happens in call order. */
  private admission: Promise<unknown> = Promise.resolve()

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

  /**
   * Every check before the signature; returns the decoded tx or throws TxError. `terse`: the
   * ignore outcomes are shared errors without the figures (a peer's batch: only the code is used,
   * and building a message and an error per refused tx was a sixth of refusing a flood).
   */
  private precheck(input: Uint8Array | SignedTx, terse = false): SignedTx {
    const signed = input instanceof Uint8Array ? decodeTxInput(input, this.deps.rules) : input
    checkTxStateless(signed, this.deps.rules)
    // IGNORE: known already; no need to pay for the signature again.
    if (this.deps.mempool.has(signed.idHex)) throw IGNORED.pending
    // A spent nonce is refused before the signature is paid for (and tells an included tx apart).
    const account = this.deps.getAccount(signed.tx.from)
    if (signed.tx.nonce < account.nonce) {
      if (this.deps.isIncluded(signed)) throw IGNORED.included
      throw terse ? IGNORED.nonceTooLow : new TxError('TX_NONCE_TOO_LOW', `nonce ${signed.tx.nonce} is below the account nonce ${account.nonce}`, 'ignore')
    }
    // IGNORE, before the signature: a sender who cannot pay for this tx alone can never get it
    // into the mempool (which also counts its queued txs), so a flood from unfunded keys costs a
    // balance lookup, not a signature check each.
    const cost = signed.tx.amount + signed.tx.fee
    if (account.balance < cost) {
      throw terse ? IGNORED.cannotPay : new TxError('TX_INSUFFICIENT_FUNDS', `balance ${account.balance} does not cover ${cost}`, 'ignore')
    }
    return signed
  }

  ingest(signed: SignedTx, now: number): IngestResult {
    this.precheck(signed)
    if (!this.verified.has(signed.idHex)) {
      // REJECT: last, because it is the expensive check.
      if (!txSignatureValid(signed)) throw badSignatureError()
      this.verified.add(signed.idHex)
    }
    return { signed, add: this.deps.mempool.add(signed, now) }
  }

  /**
   * A batch: prechecks, then the signatures in parallel, then admission in order. `terse`: a
   * peer's batch, whose ignore outcomes carry only their code (see `precheck`).
   */
  async ingestMany(inputs: ReadonlyArray<Uint8Array | SignedTx>, now: () => number, options: { terse?: boolean } = {}): Promise<IngestOutcome[]> {
    const outcomes: Array<IngestOutcome | undefined> = new Array(inputs.length)
    const candidates: Array<{ index: number; signed: SignedTx }> = []
    const terse = options.terse === true
    inputs.forEach((input, index) => {
      try {
        candidates.push({ index, signed: this.precheck(input, terse) })
      } catch (error) {
        if (!(error instanceof TxError)) throw error
        outcomes[index] = { ok: false, error }
      }
    })
    const toVerify = candidates.filter((candidate) => !this.verified.has(candidate.signed.idHex))
    const verdicts = await this.verifySignatures(toVerify.map((candidate) => candidate.signed))
    const invalid = new Set<number>()
    toVerify.forEach((candidate, position) => {
      if (verdicts[position] === true) this.verified.add(candidate.signed.idHex)
      else invalid.add(candidate.index)
    })
    // Admission waits for earlier batches, so a sender's nonces enter in the order they came.
    const admit = this.admission.then(() => {
      for (const { index, signed } of candidates) {
        if (invalid.has(index)) {
          outcomes[index] = { ok: false, error: badSignatureError() }
          continue
        }
        try {
          outcomes[index] = { ok: true, result: { signed, add: this.deps.mempool.add(signed, now()) } }
        } catch (error) {
          if (!(error instanceof TxError)) throw error
          outcomes[index] = { ok: false, error }
        }
      }
    })
    this.admission = admit.catch(() => undefined)
    await admit
    return outcomes as IngestOutcome[]
  }

  /**
   * Verifies on the pool's workers the signatures of `txs` not yet known valid, and remembers the
   * valid ones, so block import does not check them again on the main thread. An invalid one is
   * only left out: the importer refuses it with its own code. Without a pool, nothing to gain.
   */
  async preverify(txs: readonly SignedTx[]): Promise<void> {
    if (this.deps.pool === undefined) return
    const unknown = txs.filter((signed) => !this.isVerified(signed.idHex))
    const verdicts = await this.verifySignatures(unknown)
    unknown.forEach((signed, position) => {
      if (verdicts[position] === true) this.verified.add(signed.idHex)
    })
  }

  private async verifySignatures(txs: SignedTx[]): Promise<boolean[]> {
    if (txs.length === 0) return []
    const items = txs.map((signed) => ({ signature: signed.tx.signature, message: signed.signingMessage, publicKey: signed.tx.from }))
    if (this.deps.pool !== undefined) return this.deps.pool.verifyMany(items)
    return txs.map(txSignatureValid)
  }

  /**
   * One transaction, batched with every other `submit` of this event-loop turn (a JSON-RPC batch
   * of tx_send, say), so their signatures are checked in parallel. Rejects with TxError.
   */
  submit(input: Uint8Array | SignedTx, now: () => number): Promise<IngestResult> {
    return new Promise<IngestResult>((resolve, reject) => {
      this.queue.push({ input, resolve, reject })
      if (this.flushScheduled) return
      this.flushScheduled = true
      setImmediate(() => {
        this.flushScheduled = false
        const batch = this.queue
        this.queue = []
        this.ingestMany(
          batch.map((queued) => queued.input),
          now,
        ).then(
          (outcomes) =>
            outcomes.forEach((outcome, index) => {
              const queued = batch[index] as Queued
              if (outcome.ok) queued.resolve(outcome.result)
              else queued.reject(outcome.error)
            }),
          (error: unknown) => {
            for (const queued of batch) queued.reject(error)
          },
        )
      })
    })
  }
}
