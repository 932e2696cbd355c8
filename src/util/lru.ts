/** A bounded map that forgets its least recently used entry once `capacity` is reached. */
export class LruMap<K, V> {
  /** Bounded by `capacity`: the oldest entry is evicted on insert. */
  private readonly map = new Map<K, V>()

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError('LRU capacity must be positive')
  }

  get size(): number {
    return this.map.size
  }

  get(key: K): V | undefined {
    const value = this.map.get(key)
    if (value !== undefined) {
      this.map.delete(key)
      this.map.set(key, value)
    }
    return value
  }

  /** Reads without refreshing recency. */
  peek(key: K): V | undefined {
    return this.map.get(key)
  }

  has(key: K): boolean {
    return this.map.has(key)
  }

  set(key: K, value: V): void {
    if (this.map.has(key)) this.map.delete(key)
    else if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next()
      if (!oldest.done) this.map.delete(oldest.value)
    }
    this.map.set(key, value)
  }

  delete(key: K): boolean {
    return this.map.delete(key)
  }

  clear(): void {
    this.map.clear()
  }

  keys(): IterableIterator<K> {
    return this.map.keys()
  }
}

/** A bounded set with the same eviction rule. */
export class LruSet<K> {
  private readonly map: LruMap<K, true>

  constructor(capacity: number) {
    this.map = new LruMap(capacity)
  }

  get size(): number {
    return this.map.size
  }

  has(key: K): boolean {
    return this.map.has(key)
  }

  add(key: K): void {
    this.map.set(key, true)
  }

  delete(key: K): boolean {
    return this.map.delete(key)
  }
}
