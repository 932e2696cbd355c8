/**
 * Blocks whose parent is not imported yet, held until it is. Bounded: the oldest orphan is
 * dropped when full, so a peer cannot fill memory with disconnected blocks.
 */
import { toHexKey } from '../codec/bytes.ts'
import { headerHash } from '../codec/objects.ts'
import type { Block } from '../ledger/types.ts'

export interface Orphan {
  block: Block
  hash: Uint8Array
  /** The peer it came from (asked for the parent). */
  from: string
}

export class OrphanPool {
  /** Bounded by `capacity`, oldest evicted first. */
  private readonly byHash = new Map<string, Orphan>()

  constructor(private readonly capacity = 256) {}

  get size(): number {
    return this.byHash.size
  }

  add(block: Block, from: string): Orphan {
    const hash = headerHash(block.header)
    const key = toHexKey(hash)
    const existing = this.byHash.get(key)
    if (existing !== undefined) return existing
    if (this.byHash.size >= this.capacity) {
      const oldest = this.byHash.keys().next()
      if (!oldest.done) this.byHash.delete(oldest.value)
    }
    const orphan = { block, hash, from }
    this.byHash.set(key, orphan)
    return orphan
  }

  has(hashHex: string): boolean {
    return this.byHash.has(hashHex)
  }

  /** Removes and returns the orphans whose parent is `parentHash`. */
  takeChildren(parentHash: Uint8Array): Orphan[] {
    const parentHex = toHexKey(parentHash)
    const children: Orphan[] = []
    for (const [key, orphan] of this.byHash) {
      if (toHexKey(orphan.block.header.parentHash) === parentHex) {
        children.push(orphan)
        this.byHash.delete(key)
      }
    }
    return children
  }

  /** The root of the orphan chain that `hashHex` belongs to: the ancestor to fetch next. */
  missingAncestor(orphan: Orphan): Uint8Array {
    let current = orphan
    for (let depth = 0; depth < this.capacity; depth++) {
      const parent = this.byHash.get(toHexKey(current.block.header.parentHash))
      if (parent === undefined) return current.block.header.parentHash
      current = parent
    }
    return current.block.header.parentHash
  }
}
