/**
 * A small JSON-RPC client over WebSocket (the `ws` package): calls and subscriptions. The CLI's
 * `tx transfer --wait` and the tests use it. Accepts http:// or ws:// URLs (same port).
 */
import WebSocket from 'ws'
import { RpcError } from './errors.ts'

interface Pending {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
}

interface Answer {
  id?: unknown
  method?: unknown
  result?: unknown
  error?: { code: number; message: string; data?: unknown }
  params?: { subscription?: unknown; result?: unknown }
}

export function webSocketUrl(url: string): string {
  return url.replace(/^http(s?):\/\//, 'ws$1://')
}

export class RpcWebSocketClient {
  private nextId = 1
  /** Calls awaiting their answer; bounded by the caller (each has a timeout). */
  private readonly pending = new Map<number, Pending>()
  /** subscription id → listener; bounded by the node's per-connection subscription limit. */
  private readonly listeners = new Map<string, (result: unknown) => void>()
  /** Notifications that arrived before their subscribe call resolved (bounded: 1,024). */
  private readonly early: Array<{ id: string; result: unknown }> = []
  private closedError: Error | undefined
  /** Called once when the connection closes (code, reason). */
  onClose: ((code: number, reason: string) => void) | undefined

  private constructor(
    private readonly socket: WebSocket,
    private readonly timeoutMs: number,
  ) {
    socket.on('message', (data) => this.onMessage(data.toString()))
    socket.on('close', (code, reason) => {
      this.closedError = new Error(`websocket closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`)
      for (const [, call] of this.pending) {
        clearTimeout(call.timer)
        call.reject(this.closedError)
      }
      this.pending.clear()
      this.onClose?.(code, reason.toString())
    })
    socket.on('error', () => undefined)
  }

  static connect(url: string, options: { timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<RpcWebSocketClient> {
    const timeoutMs = options.timeoutMs ?? 30_000
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(webSocketUrl(url), { handshakeTimeout: timeoutMs, ...(options.headers === undefined ? {} : { headers: options.headers }) })
      socket.once('open', () => resolve(new RpcWebSocketClient(socket, timeoutMs)))
      socket.once('error', (error) => reject(new Error(`cannot open ${webSocketUrl(url)}: ${error.message}`)))
    })
  }

  get raw(): WebSocket {
    return this.socket
  }

  call<T = unknown>(method: string, params: unknown[] | Record<string, unknown> = []): Promise<T> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError)
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${method}: no answer within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer })
      this.socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
    })
  }

  /** Subscribes; `listener` gets each notification's result, in order, starting with the first. */
  async subscribe(topic: string, args: unknown[], listener: (result: unknown) => void): Promise<string> {
    const id = await this.call<string>('subscribe', [topic, ...args])
    this.listeners.set(id, listener)
    for (const item of this.early.splice(0)) {
      if (item.id === id) listener(item.result)
      else this.early.push(item)
    }
    return id
  }

  async unsubscribe(id: string): Promise<boolean> {
    this.listeners.delete(id)
    return this.call<boolean>('unsubscribe', [id])
  }

  close(): void {
    this.socket.close()
  }

  private onMessage(text: string): void {
    let answer: Answer
    try {
      answer = JSON.parse(text) as Answer
    } catch {
      return
    }
    if (answer.method === 'subscription' && answer.params !== undefined) {
      const id = answer.params.subscription
      if (typeof id !== 'string') return
      const listener = this.listeners.get(id)
      if (listener !== undefined) listener(answer.params.result)
      else if (this.early.length < 1_024) this.early.push({ id, result: answer.params.result })
      return
    }
    if (typeof answer.id !== 'number') return
    const call = this.pending.get(answer.id)
    if (call === undefined) return
    this.pending.delete(answer.id)
    clearTimeout(call.timer)
    if (answer.error !== undefined) call.reject(new RpcError(answer.error.code, answer.error.message, answer.error.data))
    else call.resolve(answer.result)
  }
}
