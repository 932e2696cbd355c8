/**
 * Validation outcomes carry an action and a stable code (docs/protocol.md lists every code).
 * The same code is the RPC error's `data.code`, the log field and the metric label.
 *
 *   reject — the object is invalid; whoever sent it is penalised.
 *   ignore — not provably invalid (duplicate, stale, from the future, parent unknown): dropped
 *            without penalty.
 */
export type ValidationAction = 'reject' | 'ignore'

export type TxCode =
  | 'TX_MALFORMED'
  | 'TX_TOO_LARGE'
  | 'TX_WRONG_CHAIN'
  | 'TX_MEMO_TOO_LARGE'
  | 'TX_FEE_TOO_LOW'
  | 'TX_BAD_SIGNATURE'
  | 'TX_NONCE_TOO_LOW'
  | 'TX_NONCE_TOO_HIGH'
  | 'TX_INSUFFICIENT_FUNDS'
  | 'TX_ALREADY_KNOWN'
  | 'TX_REPLACEMENT_UNDERPRICED'
  | 'MEMPOOL_FULL'

export type BlockCode =
  | 'BLOCK_TOO_LARGE'
  | 'BLOCK_WRONG_CHAIN'
  | 'BLOCK_ALREADY_KNOWN'
  | 'BLOCK_UNKNOWN_PARENT'
  | 'BLOCK_BAD_HEIGHT'
  | 'BLOCK_SLOT_NOT_AFTER_PARENT'
  | 'BLOCK_WRONG_LEADER'
  | 'BLOCK_BAD_TIMESTAMP'
  | 'BLOCK_FROM_FUTURE'
  | 'BLOCK_BAD_SIGNATURE'
  | 'BLOCK_TOO_MANY_TXS'
  | 'BLOCK_TX_COUNT_MISMATCH'
  | 'BLOCK_BAD_TX_ROOT'
  | 'BLOCK_DUPLICATE_TX'
  | 'BLOCK_INVALID_TX'
  | 'BLOCK_BAD_STATE_ROOT'
  | 'BLOCK_BEFORE_FINALIZED'

/**
 * Validation outcomes are expected results, not bugs: they carry no stack trace. Capturing one
 * cost more than the checks themselves when a peer flooded unfunded txs (a third of the time).
 */
abstract class ValidationOutcome extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = limit
  }
}

export class TxError extends ValidationOutcome {
  override name = 'TxError'
  readonly code: TxCode
  readonly action: ValidationAction
  constructor(code: TxCode, message: string, action: ValidationAction = 'reject') {
    super(message)
    this.code = code
    this.action = action
  }
}

export class BlockError extends ValidationOutcome {
  override name = 'BlockError'
  readonly code: BlockCode
  readonly action: ValidationAction
  /** For BLOCK_INVALID_TX: the transaction's own code. */
  readonly txCode?: TxCode
  constructor(code: BlockCode, message: string, action: ValidationAction = 'reject', txCode?: TxCode) {
    super(message)
    this.code = code
    this.action = action
    if (txCode !== undefined) this.txCode = txCode
  }
}
