/**
 * JSON-RPC 2.0 over HTTP POST. The body is size-checked (Content-Length first, then while it
 * streams) before it is parsed; batches are bounded; every request is shape-checked, then its
 * params are validated by the method table. A handler error never escapes the request.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { timingSafeEqual } from 'node:crypto'
import { RateLimiterGCRA } from '../peers/rate-limit.ts'
import type { Logger } from '../util/logger.ts'
import type { RpcBackend } from './backend.ts'
import { INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RATE_LIMITED, REQUEST_TIMEOUT, RpcError, UNAUTHORIZED } from './errors.ts'
import { type MethodSpec, bindParams, methodsFor } from './methods.ts'

export interface RpcServerOptions {
  host?: string
  port?: number
  /** Largest accepted request body (default 4 MiB: a batch of ~9,000 signed txs in hex). */
  maxBodyBytes?: number
  /** Most requests in one batch. */
  maxBatch?: number
  /** Extra GET routes (e.g. /metrics): path → handler returning [contentType, body]. */
  getRoutes?: Map<string, () => Promise<[string, string]> | [string, string]>
  log: Logger
  /**
   * Enables the admin methods (net_ban, net_unban, net_addPeer); a call must carry
   * `Authorization: Bearer <token>`. Without a token they do not exist.
   */
  adminToken?: string
  /** Requests (batch items) per second per client address, with a burst of as many (default 10,000: one maximal batch). */
  requestsPerSecondPerClient?: number
  /** A handler that has not answered by then gets a REQUEST_TIMEOUT error (default 10 s). */
  requestTimeoutMs?: number
}

/** Client addresses tracked by the per-client limiter. */
const MAX_RPC_CLIENTS = 1_024

type Id = string | number | null

interface Response {
  jsonrpc: '2.0'
  id: Id
  result?: unknown
  error?: { code: number; message: string; data?: unknown }
}

const JSON_HEADERS = { 'content-type': 'application/json' }

function errorResponse(id: Id, error: RpcError): Response {
  return { jsonrpc: '2.0', id, error: error.data === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, data: error.data } }
}

/** JSON with bigint as decimal strings (views already use strings; this is a safety net). */
function stringify(value: unknown): string {
  return JSON.stringify(value, (_key, item) => (typeof item === 'bigint' ? item.toString() : item))
}

export class RpcServer {
  private readonly server: Server
  private readonly methods: Map<string, MethodSpec>
  private readonly maxBodyBytes: number
  private readonly maxBatch: number
  /** BOUNDED: MAX_RPC_CLIENTS keys. */
  private readonly clientLimiter: RateLimiterGCRA
  private readonly requestTimeoutMs: number

  constructor(
    private readonly backend: RpcBackend,
    private readonly options: RpcServerOptions,
  ) {
    this.methods = methodsFor(backend, { admin: options.adminToken !== undefined && options.adminToken.length > 0 })
    const perSecond = options.requestsPerSecondPerClient ?? 10_000
    this.clientLimiter = new RateLimiterGCRA({ tokens: perSecond, periodMs: 1_000 }, MAX_RPC_CLIENTS)
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000
    this.maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024
    this.maxBatch = options.maxBatch ?? 10_000
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        options.log.error({ err: error }, 'rpc request failed')
        if (!response.headersSent) response.writeHead(500, JSON_HEADERS)
        response.end()
      })
    })
    this.server.keepAliveTimeout = 65_000
    this.server.headersTimeout = 70_000
    this.server.requestTimeout = 30_000
  }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    const host = this.options.host ?? '127.0.0.1'
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.options.port ?? 0, host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const address = this.server.address() as AddressInfo
    return { host, port: address.port, url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}` }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0] ?? '/'
    if (request.method === 'GET') {
      const route = this.options.getRoutes?.get(path)
      if (route !== undefined) {
        const [contentType, body] = await route()
        response.writeHead(200, { 'content-type': contentType })
        response.end(body)
        return
      }
      response.writeHead(405, { ...JSON_HEADERS, allow: 'POST' })
      response.end(stringify(errorResponse(null, new RpcError(INVALID_REQUEST, 'Invalid Request: use HTTP POST with a JSON-RPC body'))))
      return
    }
    if (request.method !== 'POST') {
      response.writeHead(405, { allow: 'POST, GET' })
      response.end()
      return
    }
    const body = await this.readBody(request)
    if (body === undefined) {
      response.writeHead(413, { ...JSON_HEADERS, connection: 'close' })
      // Close only once the answer is flushed, so a client still sending can read the 413.
      response.end(stringify(errorResponse(null, new RpcError(INVALID_REQUEST, `Invalid Request: body exceeds ${this.maxBodyBytes} bytes`))), () => request.destroy())
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      this.send(response, errorResponse(null, new RpcError(PARSE_ERROR, 'Parse error: body is not valid JSON')))
      return
    }
    // Per client: a batch costs its item count, charged before any of it runs.
    const client = request.socket.remoteAddress ?? 'unknown'
    const cost = Array.isArray(parsed) ? Math.max(1, Math.min(parsed.length, this.maxBatch)) : 1
    if (!this.clientLimiter.allows(client, cost, Date.now())) {
      response.writeHead(429, JSON_HEADERS)
      response.end(stringify(errorResponse(null, new RpcError(RATE_LIMITED, 'Too many requests from this client'))))
      return
    }
    const authorized = this.authorized(request)
    if (Array.isArray(parsed)) {
      if (parsed.length === 0) return this.send(response, errorResponse(null, new RpcError(INVALID_REQUEST, 'Invalid Request: empty batch')))
      if (parsed.length > this.maxBatch) {
        return this.send(response, errorResponse(null, new RpcError(INVALID_REQUEST, `Invalid Request: batch of ${parsed.length} exceeds ${this.maxBatch}`)))
      }
      // Dispatched together, so e.g. the tx_send calls of one batch share one parallel signature check.
      const answers = await Promise.all(parsed.map((item) => this.dispatch(item, authorized)))
      const responses = answers.filter((answer): answer is Response => answer !== undefined)
      if (responses.length === 0) {
        response.writeHead(204)
        response.end()
        return
      }
      return this.send(response, responses)
    }
    const answer = await this.dispatch(parsed, authorized)
    if (answer === undefined) {
      response.writeHead(204)
      response.end()
      return
    }
    this.send(response, answer)
  }

  /** Reads the body, or returns undefined as soon as it passes the limit. */
  private async readBody(request: IncomingMessage): Promise<Buffer | undefined> {
    const declared = Number(request.headers['content-length'])
    if (Number.isFinite(declared) && declared > this.maxBodyBytes) return undefined
    const chunks: Buffer[] = []
    let received = 0
    for await (const chunk of request) {
      received += (chunk as Buffer).length
      if (received > this.maxBodyBytes) return undefined
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks)
  }

  private send(response: ServerResponse, payload: Response | Response[]): void {
    response.writeHead(200, JSON_HEADERS)
    response.end(stringify(payload))
  }

  /** Whether the request carries the admin token (compared in constant time). */
  private authorized(request: IncomingMessage): boolean {
    const token = this.options.adminToken
    if (token === undefined || token.length === 0) return false
    const header = request.headers.authorization
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) return false
    const given = Buffer.from(header.slice(7))
    const expected = Buffer.from(token)
    return given.length === expected.length && timingSafeEqual(given, expected)
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

  /** One request object → its response, or undefined for a notification. */
  private async dispatch(request: unknown, authorized = false): Promise<Response | undefined> {
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      return errorResponse(null, new RpcError(INVALID_REQUEST, 'Invalid Request: expected an object'))
    }
    const fields = request as Record<string, unknown>
    const rawId = fields['id']
    const hasId = 'id' in fields
    const idValid = rawId === null || typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId))
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
    let outcome: Response
    if (method === undefined) {
      outcome = errorResponse(id, new RpcError(METHOD_NOT_FOUND, `Method not found: ${methodName.slice(0, 64)}`))
    } else if (method.admin === true && !authorized) {
      outcome = errorResponse(id, new RpcError(UNAUTHORIZED, 'Unauthorized: admin methods need Authorization: Bearer <admin token>'))
    } else {
      try {
        const result = await this.withTimeout(() => method.handler(bindParams(method, params), this.backend))
        outcome = { jsonrpc: '2.0', id, result: result === undefined ? null : result }
      } catch (error) {
        if (error instanceof RpcError) outcome = errorResponse(id, error)
        else {
          this.options.log.error({ err: error, method: methodName }, 'rpc handler failed')
          outcome = errorResponse(id, new RpcError(INTERNAL_ERROR, 'Internal error'))
        }
      }
    }
    return hasId ? outcome : undefined
  }
}
