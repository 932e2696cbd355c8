/**
 * JSON-RPC 2.0 over WebSocket (the `ws` package) on the RPC port: every HTTP method, plus
 * `subscribe` / `unsubscribe` for node events (src/rpc/events.ts) and dashboard figures.
 *
 * Untrusted input is bounded before it is parsed: a frame larger than `maxMessageBytes` is refused
 * by `ws` from its header (close 1009, nothing buffered); every message is charged against a
 * token bucket before JSON.parse (a batch is charged its length); requests in flight, connections
 * and subscriptions are capped. Output is bounded too: before each send the connection's unsent
 * bytes (`bufferedAmount`) are checked, and a client that would pass `maxBufferedBytes` — one that
 * does not read — is dropped instead of buffered.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { type RawData, type WebSocket, WebSocketServer } from 'ws'
import { fromHex } from '../codec/bytes.ts'
import type { Logger } from '../util/logger.ts'
import { RepeatingTask } from '../util/task.ts'
import type { RpcBackend } from './backend.ts'
import { type ConnectionMethod, type RpcDispatcher, errorResponse, stringify } from './dispatch.ts'
import { INVALID_PARAMS, INVALID_REQUEST, RpcError, invalidParams, limitExceeded } from './errors.ts'
import type { FinalizedEvent, RpcEvents, TxStatusEvent } from './events.ts'
import type { DashboardStats } from './stats.ts'

export interface WebSocketOptions {
  /** Open WebSocket connections (default 128); one more is refused with HTTP 503. */
  maxConnections?: number
  /** Subscriptions per connection (default 64). */
  maxSubscriptionsPerConnection?: number
  /** Unsent bytes a connection may queue (default 4 MiB); a client past it is dropped. */
  maxBufferedBytes?: number
  /** Largest incoming message (default: the HTTP body limit, 4 MiB). */
  maxMessageBytes?: number
  /** Sustained requests per second per connection (default 2,000; a batch counts its length). */
  requestsPerSecond?: number
  /** Requests a connection may send at once before the rate applies (default 10,000: one full batch). */
  requestBurst?: number
  /** Messages of one connection being handled at once (default 64). */
  maxInFlightPerConnection?: number
  /** How often `stats` subscribers get a snapshot (default 1,000 ms). */
  statsIntervalMs?: number
  /** Ping period; a connection that missed the previous pong is closed (default 30 s). */
  pingIntervalMs?: number
  /**
   * Browser origins allowed besides same-host ones ("*" allows any). A page served from the same
   * IP or localhost (any port) is always allowed; a request without Origin is not a browser's.
   */
  allowedOrigins?: string[]
}

export interface WebSocketDeps {
  dispatcher: RpcDispatcher
  backend: RpcBackend
  log: Logger
  events?: RpcEvents
  stats?: DashboardStats
}

export const TOPICS = ['newHeads', 'finalizedHeads', 'txStatus', 'peers', 'syncProgress', 'stats'] as const
export type Topic = (typeof TOPICS)[number]

export interface WebSocketCounters {
  connections: number
  subscriptions: number
  /** Connections dropped because their client did not read. */
  droppedSlow: number
  /** Connections refused at the connection cap or for their origin. */
  refused: number
  /** Largest bufferedAmount seen after a send, over all connections. */
  maxBufferedSeen: number
}

interface Subscription {
  id: string
  topic: Topic
  connection: Connection
  /** txStatus: the txid (0x hex, lower case) and, once included, where. */
  txid?: string
  included?: { height: number; blockHash: string }
}

interface Connection {
  socket: WebSocket
  /** BOUNDED by maxSubscriptionsPerConnection. */
  subscriptions: Map<string, Subscription>
  tokens: number
  tokensAt: number
  inFlight: number
  alive: boolean
  closed: boolean
}

const TX_HASH = /^0x[0-9a-fA-F]{64}$/

export class RpcWebSocketServer {
  private readonly wss: WebSocketServer
  private readonly maxConnections: number
  private readonly maxSubscriptions: number
  private readonly maxBufferedBytes: number
  private readonly requestsPerSecond: number
  private readonly requestBurst: number
  private readonly maxInFlight: number
  private readonly allowedOrigins: readonly string[]
  /** BOUNDED by maxConnections. */
  private readonly connections = new Set<Connection>()
  /** topic → subscriptions; BOUNDED by maxConnections × maxSubscriptionsPerConnection. */
  private readonly byTopic = new Map<Topic, Set<Subscription>>()
  /** txid → txStatus subscriptions; BOUNDED like byTopic. */
  private readonly byTxid = new Map<string, Set<Subscription>>()
  private readonly unlisten: Array<() => void> = []
  private readonly pinger: RepeatingTask
  private readonly statsTask: RepeatingTask
  readonly counters: WebSocketCounters = { connections: 0, subscriptions: 0, droppedSlow: 0, refused: 0, maxBufferedSeen: 0 }

  constructor(
    private readonly deps: WebSocketDeps,
    options: WebSocketOptions = {},
  ) {
    this.maxConnections = options.maxConnections ?? 128
    this.maxSubscriptions = options.maxSubscriptionsPerConnection ?? 64
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024
    this.requestsPerSecond = options.requestsPerSecond ?? 2_000
    this.requestBurst = options.requestBurst ?? 10_000
    this.maxInFlight = options.maxInFlightPerConnection ?? 64
    this.allowedOrigins = options.allowedOrigins ?? []
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes ?? 4 * 1024 * 1024, perMessageDeflate: false, clientTracking: false })
    for (const topic of TOPICS) this.byTopic.set(topic, new Set())
    const events = deps.events
    if (events !== undefined) {
      this.unlisten.push(
        events.on('head', (head) => this.publish('newHeads', head)),
        events.on('finalized', (finalized) => this.onFinalized(finalized)),
        events.on('tx', (event) => this.onTxStatus(event)),
        events.on('peer', (peer) => this.publish('peers', peer)),
        events.on('sync', (sync) => this.publish('syncProgress', sync)),
      )
    }
    const onError = (error: unknown) => deps.log.error({ err: error }, 'websocket task failed')
    this.pinger = new RepeatingTask(() => this.pingAll(), options.pingIntervalMs ?? 30_000, onError)
    this.statsTask = new RepeatingTask(() => this.publishStats(), options.statsIntervalMs ?? 1_000, onError)
    this.pinger.start()
    this.statsTask.start()
  }

  /** Takes over an HTTP upgrade request on the RPC port. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? '/').split('?')[0]
    const refuse = (status: number, reason: string) => {
      this.counters.refused++
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(reason)}\r\n\r\n${reason}`)
      socket.destroy()
    }
    if (path !== '/' && path !== '/ws') return refuse(404, 'Not Found')
    if (!originAllowed(request.headers.origin, request.headers.host, this.allowedOrigins)) return refuse(403, 'Forbidden')
    if (this.connections.size >= this.maxConnections) return refuse(503, 'Service Unavailable')
    this.wss.handleUpgrade(request, socket, head, (ws) => this.onConnection(ws))
  }

  close(): void {
    this.pinger.stop()
    this.statsTask.stop()
    for (const off of this.unlisten.splice(0)) off()
    for (const connection of [...this.connections]) {
      connection.socket.terminate()
      this.forget(connection)
    }
    this.wss.close()
  }

  private onConnection(socket: WebSocket): void {
    const connection: Connection = {
      socket,
      subscriptions: new Map(),
      tokens: this.requestBurst,
      tokensAt: Date.now(),
      inFlight: 0,
      alive: true,
      closed: false,
    }
    this.connections.add(connection)
    this.counters.connections = this.connections.size
    socket.on('message', (data, isBinary) => {
      this.onMessage(connection, data, isBinary).catch((error: unknown) => this.deps.log.error({ err: error }, 'websocket message failed'))
    })
    socket.on('pong', () => {
      connection.alive = true
    })
    // An oversized frame ends here (ws closes with 1009); so do resets. Nothing to answer.
    socket.on('error', (error) => this.deps.log.debug({ err: error }, 'websocket error'))
    socket.on('close', () => this.forget(connection))
  }

  private forget(connection: Connection): void {
    connection.closed = true
    for (const subscription of connection.subscriptions.values()) this.removeSubscription(subscription)
    connection.subscriptions.clear()
    this.connections.delete(connection)
    this.counters.connections = this.connections.size
  }

  /** Token bucket: refills at requestsPerSecond up to requestBurst. */
  private charge(connection: Connection, cost: number): boolean {
    const now = Date.now()
    connection.tokens = Math.min(this.requestBurst, connection.tokens + ((now - connection.tokensAt) / 1000) * this.requestsPerSecond)
    connection.tokensAt = now
    if (connection.tokens < cost) return false
    connection.tokens -= cost
    return true
  }

  private async onMessage(connection: Connection, data: RawData, isBinary: boolean): Promise<void> {
    if (connection.closed) return
    if (isBinary) {
      this.reply(connection, errorResponse(null, new RpcError(INVALID_REQUEST, 'Invalid Request: send JSON-RPC as text frames')))
      return
    }
    // Charged before parsing; a batch pays for its other items once its length is known.
    if (!this.charge(connection, 1)) {
      this.reply(connection, errorResponse(null, limitExceeded('RATE_LIMITED', `more than ${this.requestsPerSecond} requests per second`)))
      return
    }
    if (connection.inFlight >= this.maxInFlight) {
      this.reply(connection, errorResponse(null, limitExceeded('TOO_MANY_IN_FLIGHT', `more than ${this.maxInFlight} messages being handled on this connection`)))
      return
    }
    const text = (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8')
    // Per message: a subscription's first notification goes out right after the reply that names
    // it, never before (messages of one connection are handled concurrently).
    const afterReply: Array<() => void> = []
    const methods = new Map<string, ConnectionMethod>([
      ['subscribe', (params) => this.subscribe(connection, params, afterReply)],
      ['unsubscribe', (params) => this.unsubscribe(connection, params)],
    ])
    connection.inFlight++
    let answer
    try {
      answer = await this.deps.dispatcher.handleText(text, methods, (size) =>
        size > 1 && !this.charge(connection, size - 1) ? limitExceeded('RATE_LIMITED', `a batch of ${size} exceeds this connection's request budget`) : undefined,
      )
    } finally {
      connection.inFlight--
    }
    if (answer !== undefined) this.reply(connection, answer)
    for (const task of afterReply) task()
  }

  private reply(connection: Connection, payload: unknown): void {
    this.send(connection, stringify(payload))
  }

  /** Sends unless the client is too far behind; then drops it. */
  private send(connection: Connection, text: string): void {
    if (connection.closed) return
    const socket = connection.socket
    if (socket.readyState !== socket.OPEN) return
    if (socket.bufferedAmount + Buffer.byteLength(text) > this.maxBufferedBytes) {
      this.deps.log.warn({ buffered: socket.bufferedAmount, limit: this.maxBufferedBytes }, 'dropping a websocket client that does not read')
      this.counters.droppedSlow++
      socket.terminate()
      this.forget(connection)
      return
    }
    socket.send(text)
    if (socket.bufferedAmount > this.counters.maxBufferedSeen) this.counters.maxBufferedSeen = socket.bufferedAmount
  }

  private notify(subscription: Subscription, resultJson: string): void {
    this.send(subscription.connection, `{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"${subscription.id}","result":${resultJson}}}`)
  }

  // ---------------------------------------------------------------- subscriptions

  private subscribe(connection: Connection, params: unknown, afterReply: Array<() => void>): string {
    let topic: unknown
    let txid: unknown
    if (Array.isArray(params)) {
      if (params.length > 2) throw invalidParams('subscribe takes [topic] or ["txStatus", txid]')
      ;[topic, txid] = params
    } else if (typeof params === 'object' && params !== null) {
      for (const name of Object.keys(params)) if (name !== 'topic' && name !== 'txid') throw invalidParams(`unknown param ${JSON.stringify(name.slice(0, 32))}`)
      topic = (params as { topic?: unknown }).topic
      txid = (params as { txid?: unknown }).txid
    }
    if (typeof topic !== 'string' || !(TOPICS as readonly string[]).includes(topic)) throw invalidParams(`topic must be one of ${TOPICS.join(', ')}`)
    const name = topic as Topic
    if (name === 'txStatus') {
      if (typeof txid !== 'string' || !TX_HASH.test(txid)) throw invalidParams('txStatus needs a txid: 0x followed by 64 hex digits')
    } else if (txid !== undefined) throw invalidParams(`${name} takes no other param`)
    if (name === 'stats' ? this.deps.stats === undefined : this.deps.events === undefined) throw new RpcError(INVALID_PARAMS, `Invalid params: this node does not publish ${name}`)
    if (connection.subscriptions.size >= this.maxSubscriptions) throw limitExceeded('TOO_MANY_SUBSCRIPTIONS', `at most ${this.maxSubscriptions} subscriptions per connection`)
    const subscription: Subscription = { id: `0x${randomBytes(8).toString('hex')}`, topic: name, connection }
    if (name === 'txStatus') subscription.txid = (txid as string).toLowerCase()
    connection.subscriptions.set(subscription.id, subscription)
    this.byTopic.get(name)?.add(subscription)
    if (subscription.txid !== undefined) {
      let set = this.byTxid.get(subscription.txid)
      if (set === undefined) this.byTxid.set(subscription.txid, (set = new Set()))
      set.add(subscription)
    }
    this.counters.subscriptions++
    afterReply.push(() => this.sendInitial(subscription))
    return subscription.id
  }

  private unsubscribe(connection: Connection, params: unknown): boolean {
    const id = Array.isArray(params) ? params[0] : typeof params === 'object' && params !== null ? (params as { subscription?: unknown }).subscription : undefined
    if (typeof id !== 'string') throw invalidParams('unsubscribe takes [subscriptionId]')
    const subscription = connection.subscriptions.get(id)
    if (subscription === undefined) return false
    connection.subscriptions.delete(id)
    this.removeSubscription(subscription)
    return true
  }

  private removeSubscription(subscription: Subscription): void {
    this.byTopic.get(subscription.topic)?.delete(subscription)
    if (subscription.txid !== undefined) {
      const set = this.byTxid.get(subscription.txid)
      set?.delete(subscription)
      if (set?.size === 0) this.byTxid.delete(subscription.txid)
    }
    this.counters.subscriptions--
  }

  /** A subscription's first notification, right after the reply that names it: where things stand now. */
  private sendInitial(subscription: Subscription): void {
    if (subscription.connection.closed || !subscription.connection.subscriptions.has(subscription.id)) return
    if (subscription.topic === 'txStatus' && subscription.txid !== undefined) {
      const found = this.deps.backend.getTx(fromHex(subscription.txid, { expectedBytes: 32 }))
      let event: TxStatusEvent
      if (found === null) event = { txid: subscription.txid, status: 'unknown' }
      else if (found.status === 'pending' || found.height === undefined || found.blockHash === undefined) event = { txid: subscription.txid, status: 'pending' }
      else {
        subscription.included = { height: found.height, blockHash: found.blockHash }
        const final = found.height <= (this.deps.events?.finalizedHeight() ?? 0)
        event = { txid: subscription.txid, status: final ? 'finalized' : 'included', height: found.height, blockHash: found.blockHash }
      }
      this.notify(subscription, JSON.stringify(event))
    } else if (subscription.topic === 'stats' && this.deps.stats !== undefined) {
      void this.deps.stats.snapshot().then((snapshot) => this.notify(subscription, stringify(snapshot)), (error: unknown) => this.deps.log.error({ err: error }, 'dashboard snapshot failed'))
    } else if (subscription.topic === 'syncProgress') {
      const sync = this.deps.backend.syncStatus?.()
      if (sync !== undefined && sync !== null) this.notify(subscription, stringify(sync))
    }
  }

  private publish(topic: Topic, value: unknown): void {
    const subscriptions = this.byTopic.get(topic)
    if (subscriptions === undefined || subscriptions.size === 0) return
    const json = stringify(value)
    for (const subscription of [...subscriptions]) this.notify(subscription, json)
  }

  private onTxStatus(event: TxStatusEvent): void {
    const subscriptions = this.byTxid.get(event.txid)
    if (subscriptions === undefined) return
    const json = JSON.stringify(event)
    for (const subscription of [...subscriptions]) {
      if (event.status === 'included') subscription.included = { height: event.height, blockHash: event.blockHash }
      else delete subscription.included
      this.notify(subscription, json)
    }
  }

  private onFinalized(finalized: FinalizedEvent): void {
    this.publish('finalizedHeads', finalized)
    for (const subscriptions of this.byTxid.values()) {
      for (const subscription of [...subscriptions]) {
        const included = subscription.included
        if (included === undefined || included.height > finalized.height || subscription.txid === undefined) continue
        delete subscription.included
        this.notify(subscription, JSON.stringify({ txid: subscription.txid, status: 'finalized', height: included.height, blockHash: included.blockHash }))
      }
    }
  }

  private async publishStats(): Promise<void> {
    const subscriptions = this.byTopic.get('stats')
    if (this.deps.stats === undefined || subscriptions === undefined || subscriptions.size === 0) return
    const json = stringify(await this.deps.stats.snapshot())
    for (const subscription of [...subscriptions]) this.notify(subscription, json)
  }

  private pingAll(): void {
    for (const connection of [...this.connections]) {
      if (!connection.alive) {
        connection.socket.terminate()
        this.forget(connection)
        continue
      }
      connection.alive = false
      connection.socket.ping()
    }
  }
}

/** Same-host pages (an IP literal or localhost, any port), listed origins, and non-browsers. */
export function originAllowed(origin: string | undefined, host: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true
  if (allowed.includes('*') || allowed.includes(origin)) return true
  let originHost: string
  try {
    originHost = new URL(origin).hostname
  } catch {
    return false
  }
  const hostName = (host ?? '').replace(/:\d+$/, '')
  // A DNS name could be rebound to this address by another site: only IP literals and localhost.
  const literal = hostName === 'localhost' || /^\d{1,3}(\.\d{1,3}){3}$/.test(hostName) || hostName.startsWith('[')
  return literal && originHost === hostName
}
