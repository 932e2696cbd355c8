/**
 * JSON-RPC 2.0 dispatch shared by HTTP and WebSocket: shape-checks each request object, binds
 * and validates params through the method table, runs the handler and turns every failure into
 * a JSON-RPC error. A handler error never escapes. Connection-scoped methods (`subscribe`,
 * `unsubscribe`) are passed in by the WebSocket server; over HTTP they answer with a hint.
 */
import type { Logger } from '../util/logger.ts'
import type { RpcBackend } from './backend.ts'
import { INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, REQUEST_TIMEOUT, RpcError, UNAUTHORIZED } from './errors.ts'
import { type MethodSpec, bindParams, methodsFor } from './methods.ts'

export type Id = string | number | null

export interface RpcResponse {
  jsonrpc: '2.0'
  id: Id
  result?: unknown
  error?: { code: number; message: string; data?: unknown }
}

/** A method that exists only on one connection (its params are raw: it validates them itself). */
export type ConnectionMethod = (params: unknown) => unknown

/** Methods that need a WebSocket connection; over HTTP they answer with a hint instead of "not found". */
export const WEBSOCKET_ONLY_METHODS = new Set(['subscribe', 'unsubscribe'])

export function errorResponse(id: Id, error: RpcError): RpcResponse {
  return { jsonrpc: '2.0', id, error: error.data === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, data: error.data } }
}

/** JSON with bigint as decimal strings (views already use strings; this is a safety net). */
export function stringify(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item))
}

export interface DispatchOptions {
  /** Admin methods (net_ban, …) are listed and callable, by authorized requests only. */
  admin?: boolean
  /** A handler not done within this is answered with REQUEST_TIMEOUT (default 10 s). */
  requestTimeoutMs?: number
}

export class RpcDispatcher {
  readonly methods: Map<string, MethodSpec>
  private readonly requestTimeoutMs: number

  constructor(
    private readonly backend: RpcBackend,
    private readonly log: Logger,
    readonly maxBatch: number,
    /** Methods beyond the backend's table (e.g. node_dashboard), on every transport. */
    private readonly extra: ReadonlyMap<string, ConnectionMethod> = new Map(),
    options: DispatchOptions = {},
  ) {
    this.methods = methodsFor(backend, { admin: options.admin === true })
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000
  }

  /** Runs a handler with the request timeout. */
  private async withTimeout(work: () => unknown): Promise<unknown> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new RpcError(REQUEST_TIMEOUT, `Request timed out after ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs)
    })
    try {
      return await Promise.race([Promise.resolve().then(work), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * A parsed body (one request or a batch) → the answer to send, or undefined when it held only
   * notifications. `onBatchSize` may refuse a batch before any of it runs (rate limits).
   */
  async handleParsed(
    parsed: unknown,
    connection?: ReadonlyMap<string, ConnectionMethod>,
    onBatchSize?: (size: number) => RpcError | undefined,
    authorized = false,
  ): Promise<RpcResponse | RpcResponse[] | undefined> {
    if (!Array.isArray(parsed)) {
      const refusal = onBatchSize?.(1)
      if (refusal !== undefined) return errorResponse(requestId(parsed), refusal)
      return this.dispatch(parsed, connection, authorized)
    }
    if (parsed.length === 0) return errorResponse(null, new RpcError(INVALID_REQUEST, 'Invalid Request: empty batch'))
    if (parsed.length > this.maxBatch) return errorResponse(null, new RpcError(INVALID_REQUEST, `Invalid Request: batch of ${parsed.length} exceeds ${this.maxBatch}`))
    const refusal = onBatchSize?.(parsed.length)
    if (refusal !== undefined) return errorResponse(null, refusal)
    // Dispatched together, so e.g. the tx_send calls of one batch share one parallel signature check.
    const answers = await Promise.all(parsed.map((item) => this.dispatch(item, connection, authorized)))
    const responses = answers.filter((answer): answer is RpcResponse => answer !== undefined)
    return responses.length === 0 ? undefined : responses
  }

  /** Parses a UTF-8 text body (already size-checked) and handles it. */
  async handleText(
    text: string,
    connection?: ReadonlyMap<string, ConnectionMethod>,
    onBatchSize?: (size: number) => RpcError | undefined,
    authorized = false,
  ): Promise<RpcResponse | RpcResponse[] | undefined> {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return errorResponse(null, new RpcError(PARSE_ERROR, 'Parse error: body is not valid JSON'))
    }
    return this.handleParsed(parsed, connection, onBatchSize, authorized)
  }

  /** One request object → its response, or undefined for a notification. */
  async dispatch(request: unknown, connection?: ReadonlyMap<string, ConnectionMethod>, authorized = false): Promise<RpcResponse | undefined> {
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      return errorResponse(null, new RpcError(INVALID_REQUEST, 'Invalid Request: expected an object'))
    }
    const fields = request as Record<string, unknown>
    const rawId = fields['id']
    const hasId = 'id' in fields
    const idValid = isValidId(rawId)
    const id: Id = hasId && idValid ? (rawId as Id) : null
    if (fields['jsonrpc'] !== '2.0') return errorResponse(id, new RpcError(INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"'))
    if (hasId && !idValid) return errorResponse(null, new RpcError(INVALID_REQUEST, 'Invalid Request: id must be a string, a number or null'))
    const methodName = fields['method']
    if (typeof methodName !== 'string') return errorResponse(id, new RpcError(INVALID_REQUEST, 'Invalid Request: method must be a string'))
    const params = fields['params']
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      return errorResponse(id, new RpcError(INVALID_REQUEST, 'Invalid Request: params must be an array or an object'))
    }
    const method = this.methods.get(methodName)
    const connectionMethod = connection?.get(methodName) ?? this.extra.get(methodName)
    let outcome: RpcResponse
    try {
      let result: unknown
      if (connectionMethod !== undefined) result = await connectionMethod(params)
      else if (method?.admin === true && !authorized) throw new RpcError(UNAUTHORIZED, 'Unauthorized: admin methods need Authorization: Bearer <admin token>')
      else if (method !== undefined) result = await this.withTimeout(() => method.handler(bindParams(method, params), this.backend))
      else if (WEBSOCKET_ONLY_METHODS.has(methodName)) throw new RpcError(METHOD_NOT_FOUND, `Method not found: ${methodName} needs a WebSocket connection (ws:// on this port)`)
      else throw new RpcError(METHOD_NOT_FOUND, `Method not found: ${methodName.slice(0, 64)}`)
      outcome = { jsonrpc: '2.0', id, result: result === undefined ? null : result }
    } catch (error) {
      if (error instanceof RpcError) outcome = errorResponse(id, error)
      else {
        this.log.error({ err: error, method: methodName.slice(0, 64) }, 'rpc handler failed')
        outcome = errorResponse(id, new RpcError(INTERNAL_ERROR, 'Internal error'))
      }
    }
    return hasId ? outcome : undefined
  }
}

function isValidId(value: unknown): boolean {
  return value === null || typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
}

/** The id of a single request, for an error answered before dispatch. */
function requestId(request: unknown): Id {
  if (typeof request !== 'object' || request === null) return null
  const id = (request as Record<string, unknown>)['id']
  return isValidId(id) ? (id as Id) : null
}
