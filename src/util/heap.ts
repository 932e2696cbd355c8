/** A binary min-heap ordered by `less`. */
export class Heap<T> {
  private readonly items: T[] = []

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length
  }

  push(item: T): void {
    const items = this.items
    items.push(item)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(items[i] as T, items[parent] as T)) break
      ;[items[i], items[parent]] = [items[parent] as T, items[i] as T]
      i = parent
    }
  }

  peek(): T | undefined {
    return this.items[0]
  }

  pop(): T | undefined {
    const items = this.items
    if (items.length === 0) return undefined
    const top = items[0] as T
    const last = items.pop() as T
    if (items.length > 0) {
      items[0] = last
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let smallest = i
        if (left < items.length && this.less(items[left] as T, items[smallest] as T)) smallest = left
        if (right < items.length && this.less(items[right] as T, items[smallest] as T)) smallest = right
        if (smallest === i) break
        ;[items[i], items[smallest]] = [items[smallest] as T, items[i] as T]
        i = smallest
      }
    }
    return top
  }

  /** Rebuilds from the items that pass `keep` (lazy-deletion compaction). */
  retain(keep: (item: T) => boolean): void {
    const kept = this.items.filter(keep)
    this.items.length = 0
    for (const item of kept) this.push(item)
  }

  clear(): void {
    this.items.length = 0
  }
}
