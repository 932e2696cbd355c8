/**
 * A mempool summary that two nodes can compare cheaply (docs/protocol.md, "Mempool
 * reconciliation"): txids fall into 256 buckets by their first byte; each bucket keeps a count
 * and the XOR of its txids, updated in O(1) per insert or removal. The digest is SHA-256 over
 * the 256 (count, xor) summaries: equal digests mean (almost certainly) equal sets, and
 * differing buckets say where to look.
 */
import { sha256 } from '../crypto/hash.ts'

export const DIGEST_BUCKETS = 256
/** u32 count + 32-byte xor */
export const BUCKET_SUMMARY_BYTES = 36

export class MempoolDigest {
  private readonly counts = new Uint32Array(DIGEST_BUCKETS)
  private readonly xors = new Uint8Array(DIGEST_BUCKETS * 32)
  private cached: Uint8Array | undefined

  private toggle(id: Uint8Array): void {
    const bucket = id[0] as number
    const base = bucket * 32
    for (let i = 0; i < 32; i++) this.xors[base + i] = (this.xors[base + i] as number) ^ (id[i] as number)
    this.cached = undefined
  }

  add(id: Uint8Array): void {
    const bucket = id[0] as number
    this.counts[bucket] = (this.counts[bucket] as number) + 1
    this.toggle(id)
  }

  remove(id: Uint8Array): void {
    const bucket = id[0] as number
    this.counts[bucket] = (this.counts[bucket] as number) - 1
    this.toggle(id)
  }

  /** All bucket summaries, 36 bytes each, in bucket order. */
  summaries(): Uint8Array {
    const out = new Uint8Array(DIGEST_BUCKETS * BUCKET_SUMMARY_BYTES)
    const view = new DataView(out.buffer)
    for (let bucket = 0; bucket < DIGEST_BUCKETS; bucket++) {
      view.setUint32(bucket * BUCKET_SUMMARY_BYTES, this.counts[bucket] as number)
      out.set(this.xors.subarray(bucket * 32, bucket * 32 + 32), bucket * BUCKET_SUMMARY_BYTES + 4)
    }
    return out
  }

  root(): Uint8Array {
    this.cached ??= sha256(this.summaries())
    return this.cached
  }
}

/** Buckets whose summaries differ between two `summaries()` encodings. */
export function differingBuckets(ours: Uint8Array, theirs: Uint8Array): number[] {
  const out: number[] = []
  for (let bucket = 0; bucket < DIGEST_BUCKETS; bucket++) {
    const start = bucket * BUCKET_SUMMARY_BYTES
    for (let i = 0; i < BUCKET_SUMMARY_BYTES; i++) {
      if (ours[start + i] !== theirs[start + i]) {
        out.push(bucket)
        break
      }
    }
  }
  return out
}
