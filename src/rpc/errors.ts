/** JSON-RPC 2.0 error codes: the standard ones, and Grapevine's application range. */
export const PARSE_ERROR = -32700
export const INVALID_REQUEST = -32600
export const METHOD_NOT_FOUND = -32601
export const INVALID_PARAMS = -32602
export const INTERNAL_ERROR = -32603
/** A transaction was refused; `data.code` is the reject code (TX_NONCE_TOO_LOW, MEMPOOL_FULL, …). */
export const TX_REJECTED = -32001
/** An admin method called without the admin token (or with a wrong one). */
export const UNAUTHORIZED = -32002
/** The handler did not finish within the request timeout. */
export const REQUEST_TIMEOUT = -32006

export class RpcError extends Error {
  override name = 'RpcError'
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message)
  }
}

export function invalidParams(message: string): RpcError {
  return new RpcError(INVALID_PARAMS, `Invalid params: ${message}`)
}
/** A per-client or per-connection limit was hit (rate, subscriptions, requests in flight); `data.code` says which. */
export const LIMIT_EXCEEDED = -32005

export function limitExceeded(code: 'RATE_LIMITED' | 'TOO_MANY_SUBSCRIPTIONS' | 'TOO_MANY_IN_FLIGHT', message: string): RpcError {
  return new RpcError(LIMIT_EXCEEDED, `Limit exceeded: ${message}`, { code })
}
