/**
 * Reverse diffs ("state history", docs/architecture.md, "Pruning"): for one block, the value every
 * account it changed had before the block, or "absent". `applyWrites(source, block.stateRoot,
 * diff)` gives the parent's state root, so a pruned node keeps one diff per retained block instead
 * of that block's changed trie paths, and rebuilds an older state on demand.
 *
 * Encoding (canonical: one byte string per diff, checked on decode):
 *
 *   diff  = count (u32) || entry × count          entries in strictly increasing keyHash order
 *   entry = keyHash (32) || 0x00                                  absent before the block (33 bytes)
 *         | keyHash (32) || 0x01 || balance (u64) || nonce (u64)   its value before the block (49 bytes)
 */
import { DecodeError, Reader, Writer } from '../codec/binary.ts'
import { compareBytes } from '../codec/bytes.ts'
import { MAX_BLOCK_TXS } from '../codec/limits.ts'
import type { AccountWrite } from './trie.ts'

/** A transfer changes at most its sender, its recipient and the block's proposer: 2 per tx + 1. */
export const MAX_REVERSE_DIFF_ENTRIES = 2 * MAX_BLOCK_TXS + 1
const ABSENT = 0x00
const PRESENT = 0x01
export const ABSENT_ENTRY_BYTES = 33
export const PRESENT_ENTRY_BYTES = 49
export const MAX_REVERSE_DIFF_BYTES = 4 + MAX_REVERSE_DIFF_ENTRIES * PRESENT_ENTRY_BYTES

/** Entries sorted by keyHash, unique; throws RangeError otherwise (or above the entry bound). */
export function encodeReverseDiff(entries: readonly AccountWrite[]): Uint8Array {
  if (entries.length > MAX_REVERSE_DIFF_ENTRIES) throw new RangeError(`reverse diff of ${entries.length} entries exceeds ${MAX_REVERSE_DIFF_ENTRIES}`)
  let size = 4
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as AccountWrite
    if (entry.keyHash.length !== 32) throw new RangeError('reverse diff key must be 32 bytes')
    if (i > 0 && compareBytes((entries[i - 1] as AccountWrite).keyHash, entry.keyHash) >= 0) throw new RangeError('reverse diff keys must be sorted and unique')
    size += entry.account === undefined ? ABSENT_ENTRY_BYTES : PRESENT_ENTRY_BYTES
  }
  const writer = new Writer(size).u32(entries.length)
  for (const entry of entries) {
    writer.fixed(entry.keyHash, 32)
    if (entry.account === undefined) writer.u8(ABSENT)
    else writer.u8(PRESENT).u64(entry.account.balance).u53(entry.account.nonce)
  }
  return writer.finish()
}

/** Decodes a stored diff; throws DecodeError unless the bytes are exactly one canonical encoding. */
export function decodeReverseDiff(bytes: Uint8Array): AccountWrite[] {
  if (bytes.length > MAX_REVERSE_DIFF_BYTES) throw new DecodeError('reverse diff too large')
  const reader = new Reader(bytes)
  const count = reader.count(MAX_REVERSE_DIFF_ENTRIES, 'reverse diff entry count')
  // Every entry takes at least 33 bytes: refuse a count the input cannot hold before allocating.
  if (count * ABSENT_ENTRY_BYTES > reader.remaining) throw new DecodeError(`truncated: ${count} reverse diff entries in ${reader.remaining} bytes`)
  const out: AccountWrite[] = []
  for (let i = 0; i < count; i++) {
    const keyHash = reader.fixed(32, 'reverse diff key')
    const previous = out[out.length - 1]
    if (previous !== undefined && compareBytes(previous.keyHash, keyHash) >= 0) throw new DecodeError('reverse diff keys out of order')
    const flag = reader.u8('reverse diff flag')
    if (flag === ABSENT) out.push({ keyHash, account: undefined })
    else if (flag === PRESENT) out.push({ keyHash, account: { balance: reader.u64('balance'), nonce: reader.u53('nonce') } })
    else throw new DecodeError(`unknown reverse diff flag 0x${flag.toString(16)}`)
  }
  reader.end('reverse diff')
  return out
}
