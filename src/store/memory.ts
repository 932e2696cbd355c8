import { fromHex, toHexKey } from '../codec/bytes.ts'
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
    // Lower-case hex strings order like the bytes they encode: filter and sort on the strings and
    // decode only the keys in range (a range over a few keys must not decode the whole store).
    const gte = toHexKey(options.gte)
    const lt = toHexKey(options.lt)
    const keys: string[] = []
    for (const hex of this.map.keys()) if (hex >= gte && hex < lt) keys.push(hex)
    keys.sort()
    let emitted = 0
    for (const hex of keys) {
      if (options.limit !== undefined && options.limit >= 0 && emitted >= options.limit) return
      const value = this.map.get(hex)
      if (value !== undefined) {
        emitted++
        yield [fromHex(hex), value]
      }
    }
  }

  async close(): Promise<void> {}
}
