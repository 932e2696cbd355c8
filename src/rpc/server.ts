/**
 * JSON-RPC 2.0 over HTTP POST and WebSocket on one port, plus the dashboard's static files at
 * GET /. The HTTP body is size-checked (Content-Length first, then while it streams) before it is
 * parsed; batches are bounded; every request is shape-checked, then its params are validated by
 * the method table (src/rpc/dispatch.ts). A handler error never escapes the request. WebSocket
 * upgrades go to src/rpc/websocket.ts, with the same size and batch limits.
 */
import { timingSafeEqual } from 'node:crypto'
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../util/logger.ts'
import type { RpcBackend } from './backend.ts'
import { type StaticFiles, dashboardFiles } from './dashboard.ts'
import { type ConnectionMethod, RpcDispatcher, type RpcResponse, errorResponse, stringify } from './dispatch.ts'
import { RateLimiterGCRA } from '../peers/rate-limit.ts'
import { INVALID_REQUEST, RpcError, invalidParams, limitExceeded } from './errors.ts'
import type { RpcEvents } from './events.ts'
import type { DashboardStats } from './stats.ts'
import { RpcWebSocketServer, type WebSocketOptions } from './websocket.ts'

export interface RpcServerOptions {
  host?: string
  port?: number
  /** Largest accepted request body (default 4 MiB: a batch of ~9,000 signed txs in hex). */
  maxBodyBytes?: number
  /** Most requests in one batch. */
  maxBatch?: number
  /** Extra GET routes (e.g. /metrics): path → handler returning [contentType, body]. */
  getRoutes?: Map<string, () => Promise<[string, string]> | [string, string]>
  /** Node events for WebSocket subscriptions; without them the WebSocket serves plain calls only. */
  events?: RpcEvents
  /** Dashboard figures (the `stats` subscription); without them GET / serves no dashboard. */
  stats?: DashboardStats
  /** WebSocket limits (connections, subscriptions, send queue, rate). */
  websocket?: WebSocketOptions
  /** Serve the dashboard at GET / (default true). */
  dashboard?: boolean
  /** Enables the admin methods (net_ban, net_unban, net_addPeer) for requests carrying `Authorization: Bearer <token>`. */
  adminToken?: string
  /** HTTP requests per second per client address (a batch counts its items); default 10,000. */
  requestsPerSecondPerClient?: number
  /** A handler not done within this answers REQUEST_TIMEOUT (default 10 s). */
  requestTimeoutMs?: number
  log: Logger
}

/** Client addresses tracked by the per-client limiter. */
const MAX_RPC_CLIENTS = 1_024

const JSON_HEADERS = { 'content-type': 'application/json' }

export class RpcServer {
  private readonly server: Server
  private readonly dispatcher: RpcDispatcher
  private readonly maxBodyBytes: number
  readonly websocket: RpcWebSocketServer
  private readonly files: StaticFiles | undefined
  /** BOUNDED: MAX_RPC_CLIENTS keys. */
  private readonly clientLimiter: RateLimiterGCRA

  constructor(
    backend: RpcBackend,
    private readonly options: RpcServerOptions,
  ) {
    this.maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024
    const stats = options.stats
    const extra = new Map<string, ConnectionMethod>()
    if (stats !== undefined) {
      extra.set('node_dashboard', (params) => {
        if (params !== undefined && (!Array.isArray(params) || params.length > 0)) throw invalidParams('node_dashboard takes no params')
        return stats.snapshot()
      })
    }
    this.dispatcher = new RpcDispatcher(backend, options.log, options.maxBatch ?? 10_000, extra, {
      admin: options.adminToken !== undefined && options.adminToken.length > 0,
      ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    })
    this.clientLimiter = new RateLimiterGCRA({ tokens: options.requestsPerSecondPerClient ?? 10_000, periodMs: 1_000 }, MAX_RPC_CLIENTS)
    this.files = options.dashboard === false ? undefined : dashboardFiles()
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
    this.websocket = new RpcWebSocketServer(
      { dispatcher: this.dispatcher, backend, log: options.log, ...(options.events === undefined ? {} : { events: options.events }), ...(options.stats === undefined ? {} : { stats: options.stats }) },
      { maxMessageBytes: this.maxBodyBytes, ...options.websocket },
    )
    this.server.on('upgrade', (request, socket, head) => this.websocket.handleUpgrade(request, socket, head))
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
    this.websocket.close()
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
      const file = this.files?.get(path)
      if (file !== undefined) {
        response.writeHead(200, { 'content-type': file.contentType, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' })
        response.end(file.body)
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
    // Per client: a batch costs its item count, charged before any of it runs.
    const client = request.socket.remoteAddress ?? 'unknown'
    const answer = await this.dispatcher.handleText(
      body.toString('utf8'),
      undefined,
      (size) => (this.clientLimiter.allows(client, size, Date.now()) ? undefined : limitExceeded('RATE_LIMITED', 'too many requests from this client')),
      this.authorized(request),
    )
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

  private send(response: ServerResponse, payload: RpcResponse | RpcResponse[]): void {
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
}
