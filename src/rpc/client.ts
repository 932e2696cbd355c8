/** A small JSON-RPC client over fetch: the CLI, the load generator and the tests use it. */
import { RpcError } from './errors.ts'

export interface RpcCall {
  method: string
  params?: unknown[] | Record<string, unknown>
}

export class RpcClient {
  private nextId = 1

  constructor(
    readonly url: string,
    private readonly timeoutMs = 30_000,
  ) {}

  async call<T = unknown>(method: string, params: unknown[] | Record<string, unknown> = []): Promise<T> {
    const body = { jsonrpc: '2.0', id: this.nextId++, method, params }
    const answer = (await this.post(body)) as { result?: T; error?: { code: number; message: string; data?: unknown } }
    if (answer.error !== undefined) throw new RpcError(answer.error.code, answer.error.message, answer.error.data)
    return answer.result as T
  }

  /** Sends a batch; returns per-call results or RpcErrors, in call order. */
  async batch<T = unknown>(calls: RpcCall[]): Promise<Array<T | RpcError>> {
    if (calls.length === 0) return []
    const firstId = this.nextId
    this.nextId += calls.length
    const body = calls.map((call, index) => ({ jsonrpc: '2.0', id: firstId + index, method: call.method, params: call.params ?? [] }))
    const answers = (await this.post(body)) as Array<{ id: number; result?: T; error?: { code: number; message: string; data?: unknown } }>
    if (!Array.isArray(answers)) {
      const single = answers as { error?: { code: number; message: string } }
      throw new RpcError(single.error?.code ?? -32603, single.error?.message ?? 'unexpected batch answer')
    }
    const out: Array<T | RpcError> = new Array(calls.length)
    for (const answer of answers) {
      const index = answer.id - firstId
      out[index] = answer.error !== undefined ? new RpcError(answer.error.code, answer.error.message, answer.error.data) : (answer.result as T)
    }
    return out
  }

  private async post(body: unknown): Promise<unknown> {
    const payload = JSON.stringify(body)
    let response: globalThis.Response | undefined
    for (let attempt = 0; response === undefined; attempt++) {
      try {
        response = await fetch(this.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: payload,
          signal: AbortSignal.timeout(this.timeoutMs),
        })
      } catch (error) {
        const causeError = (error as { cause?: { code?: string; message?: string } }).cause
        const cause = causeError?.code ?? causeError?.message
        // A kept-alive connection the server just closed: one fresh attempt (resending a tx is harmless: TX_ALREADY_KNOWN).
        if (attempt === 0 && (cause === 'UND_ERR_SOCKET' || cause === 'ECONNRESET')) continue
        throw new Error(`cannot reach ${this.url}${cause === undefined ? '' : ` (${cause})`}: ${(error as Error).message}`)
      }
    }
    const text = await response.text()
    try {
      return JSON.parse(text)
    } catch {
      throw new Error(`${this.url} answered HTTP ${response.status} with a non-JSON body`)
    }
  }
}
