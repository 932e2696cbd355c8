import { compareBytes, fromHex, toHexKey } from '../codec/bytes.ts'
import type { BatchOp, KeyValueStore, RangeOptions } from './kv.ts'

/** In-memory store for unit tests and the simulator. Unbounded by design. */
export class MemoryStore implements KeyValueStore {
  private readonly map = new Map<string, Uint8Array>()

  get(key: Uint8Array): Uint8Array | undefined {
    return this.map.get(toHexKey(key))
  }

  async write(ops: BatchOp[]): Promise<void> {
    for (const op of ops) {
      if (op.type === 'put') this.map.set(toHexKey(op.key), new Uint8Array(op.value))
      else this.map.delete(toHexKey(op.key))
    }
  }

  async *range(options: RangeOptions): AsyncIterable<[Uint8Array, Uint8Array]> {
    const keys = [...this.map.keys()]
      .map((hex) => fromHex(hex))
      .filter((key) => compareBytes(key, options.gte) >= 0 && compareBytes(key, options.lt) < 0)
      .sort(compareBytes)
    let emitted = 0
    for (const key of keys) {
      if (options.limit !== undefined && options.limit >= 0 && emitted >= options.limit) return
      const value = this.map.get(toHexKey(key))
      if (value !== undefined) {
        emitted++
        yield [key, value]
      }
    }
  }

  async close(): Promise<void> {}
}
