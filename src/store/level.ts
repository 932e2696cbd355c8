import { ClassicLevel } from 'classic-level'
import type { BatchOp, KeyValueStore, RangeOptions } from './kv.ts'

export interface LevelStoreOptions {
  /** LevelDB block cache in bytes. */
  cacheBytes?: number
  /** LevelDB write buffer in bytes (larger = fewer compactions during bulk imports). */
  writeBufferBytes?: number
}

/** LevelDB through classic-level: one directory per node. */
export class LevelStore implements KeyValueStore {
  private constructor(private readonly db: ClassicLevel<Uint8Array, Uint8Array>) {}

  static async open(path: string, options: LevelStoreOptions = {}): Promise<LevelStore> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      cacheSize: options.cacheBytes ?? 64 * 1024 * 1024,
      writeBufferSize: options.writeBufferBytes ?? 16 * 1024 * 1024,
    })
    await db.open()
    return new LevelStore(db)
  }

  get(key: Uint8Array): Uint8Array | undefined {
    return this.db.getSync(key)
  }

  async write(ops: BatchOp[]): Promise<void> {
    if (ops.length === 0) return
    await this.db.batch(ops)
  }

  async *range(options: RangeOptions): AsyncIterable<[Uint8Array, Uint8Array]> {
    const iterator = this.db.iterator({ gte: options.gte, lt: options.lt, limit: options.limit ?? -1 })
    try {
      for await (const entry of iterator) yield entry as [Uint8Array, Uint8Array]
    } finally {
      await iterator.close()
    }
  }

  /** Compacts the whole key range (reclaims the space of deleted keys now rather than at LevelDB's pace). */
  async compact(): Promise<void> {
    await this.db.compactRange(new Uint8Array([0x00]), new Uint8Array([0xff]))
  }

  async close(): Promise<void> {
    await this.db.close()
  }
}
