/**
 * Parallel signature verification on worker threads: the node's cores verify while the main
 * thread decodes, checks rules and keeps the mempool. Same rule as `verify` (libsodium in every
 * worker). Small batches are verified inline: a worker round trip costs more than a few checks.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { verify } from './sign.ts'

export interface VerifyItem {
  signature: Uint8Array
  message: Uint8Array
  publicKey: Uint8Array
}

export interface VerifyPoolOptions {
  /** Worker threads (default: one per core). */
  workers?: number
  /** Batches smaller than this are verified inline on the calling thread. */
  inlineBelow?: number
}

const WORKER_URL = new URL('./verify-worker.mjs', import.meta.url)

interface Pending {
  resolve: (results: Uint8Array) => void
  reject: (error: Error) => void
}

export class VerifyPool {
  private readonly workers: Worker[] = []
  /** Bounded by the jobs in flight (each caller awaits its own). */
  private readonly pending = new Map<number, Pending>()
  private readonly inlineBelow: number
  private nextId = 1
  private nextWorker = 0
  private closed = false

  constructor(options: VerifyPoolOptions = {}) {
    const count = Math.max(1, options.workers ?? availableParallelism())
    this.inlineBelow = options.inlineBelow ?? 16
    for (let i = 0; i < count; i++) {
      // Plain JavaScript: no loader flags (tsx, test setup) are inherited.
      const worker = new Worker(WORKER_URL, { execArgv: [] })
      worker.on('message', ({ id, results }: { id: number; results: Uint8Array }) => {
        const job = this.pending.get(id)
        this.pending.delete(id)
        job?.resolve(results)
        if (this.pending.size === 0) for (const idle of this.workers) idle.unref()
      })
      worker.on('error', (error) => {
        for (const job of this.pending.values()) job.reject(error)
        this.pending.clear()
      })
      // Idle workers never keep the process alive.
      worker.unref()
      this.workers.push(worker)
    }
  }

  get size(): number {
    return this.workers.length
  }

  /** Verifies every item; the answer is in the same order. */
  async verifyMany(items: readonly VerifyItem[]): Promise<boolean[]> {
    if (this.closed || items.length < this.inlineBelow) return items.map((item) => verify(item.signature, item.message, item.publicKey))
    // One chunk per worker, so every core gets an equal share of the batch.
    const chunkSize = Math.ceil(items.length / this.workers.length)
    const chunks: Array<Promise<Uint8Array>> = []
    for (let start = 0; start < items.length; start += chunkSize) chunks.push(this.submit(items.slice(start, start + chunkSize)))
    const out: boolean[] = []
    for (const results of await Promise.all(chunks)) for (const result of results) out.push(result === 1)
    return out
  }

  private submit(items: readonly VerifyItem[]): Promise<Uint8Array> {
    let size = 0
    for (const item of items) {
      if (item.signature.length !== 64 || item.publicKey.length !== 32 || item.message.length > 0xffff) {
        // Malformed lengths are simply invalid; keep the worker's layout uniform.
        return Promise.resolve(new Uint8Array(items.map((entry) => (verify(entry.signature, entry.message, entry.publicKey) ? 1 : 0))))
      }
      size += 98 + item.message.length
    }
    const buffer = new ArrayBuffer(size)
    const bytes = new Uint8Array(buffer)
    const view = new DataView(buffer)
    let offset = 0
    for (const item of items) {
      view.setUint16(offset, item.message.length)
      bytes.set(item.signature, offset + 2)
      bytes.set(item.publicKey, offset + 66)
      bytes.set(item.message, offset + 98)
      offset += 98 + item.message.length
    }
    const id = this.nextId++
    const worker = this.workers[this.nextWorker++ % this.workers.length] as Worker
    worker.ref()
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, buffer, count: items.length }, [buffer])
    })
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.all(this.workers.map((worker) => worker.terminate()))
    for (const job of this.pending.values()) job.reject(new Error('verify pool closed'))
    this.pending.clear()
  }
}
