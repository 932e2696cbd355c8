/**
 * The key-value seam: one LevelDB implementation (src/store/level.ts) and one in-memory
 * implementation for unit tests. Reads are synchronous (LevelDB's getSync behind caches);
 * writes are atomic batches.
 */
export type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }

export interface RangeOptions {
  gte: Uint8Array
  lt: Uint8Array
  limit?: number
}

export interface KeyValueStore {
  get(key: Uint8Array): Uint8Array | undefined
  /** Applies every op or none (crash-atomic). */
  write(ops: BatchOp[]): Promise<void>
  /** Entries in key order within [gte, lt). */
  range(options: RangeOptions): AsyncIterable<[Uint8Array, Uint8Array]>
  close(): Promise<void>
}
