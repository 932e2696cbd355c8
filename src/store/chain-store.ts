/**
 * The node's persistent layout over a KeyValueStore (docs/architecture.md, "Storage"):
 *
 *   'H' + blockHash       → header bytes                (every header whose chain was verified)
 *   'B' + blockHash       → body: the txs' encodings     (blocks whose state is available)
 *   'N' + nodeHash        → trie node bytes              (content-addressed, shared by roots)
 *   'C' + u64be(height)   → canonical block hash
 *   'T' + txid            → blockHash || u32be(index)   (canonical transactions)
 *   'M' + name            → metadata (head, genesis hash, finalized, pruning progress)
 *   'F' + u64be(height)   → certificate encoding         (every finalized height, latest always)
 *   'K' + u64be(height) + blockHash → empty              (every imported block, side branches too: what pruning walks)
 *   'D' + blockHash       → reverse diff                 (src/state/reverse-diff.ts: the block's changed accounts as they were before it)
 *
 * Every block import is ONE batch (header, body, nodes, reverse diff, indexes, head pointer), so after a
 * crash the head always names a block whose state is complete.
 */
import { DecodeError, Reader } from '../codec/binary.ts'
import { concatBytes, toHexKey, utf8 } from '../codec/bytes.ts'
import { decodeCertificate, encodeCertificate } from '../codec/finality.ts'
import { decodeHeader, encodeHeader, readSignedTx } from '../codec/objects.ts'
import type { Block, Certificate, Header, SignedTx } from '../ledger/types.ts'
import type { NodeSource } from '../state/trie.ts'
import { LruMap } from '../util/lru.ts'
import type { BatchOp, KeyValueStore } from './kv.ts'

const PREFIX_HEADER = 0x48 // 'H'
const PREFIX_BODY = 0x42 // 'B'
const PREFIX_NODE = 0x4e // 'N'
const PREFIX_CANONICAL = 0x43 // 'C'
const PREFIX_TX = 0x54 // 'T'
const PREFIX_META = 0x4d // 'M'
const PREFIX_CERTIFICATE = 0x46 // 'F'
const PREFIX_BLOCK_AT_HEIGHT = 0x4b // 'K'
const PREFIX_REVERSE_DIFF = 0x44 // 'D'

/** The finalized block: height and hash (meta `finalized` = u64be(height) || hash). */
export interface FinalizedPointer {
  height: number
  hash: Uint8Array
}

function key(prefix: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length)
  out[0] = prefix
  out.set(body, 1)
  return out
}

function heightKey(height: number): Uint8Array {
  const body = new Uint8Array(8)
  new DataView(body.buffer).setBigUint64(0, BigInt(height))
  return key(PREFIX_CANONICAL, body)
}

function heightBytes(height: number): Uint8Array {
  const body = new Uint8Array(8)
  new DataView(body.buffer).setBigUint64(0, BigInt(height))
  return body
}

function certificateKey(height: number): Uint8Array {
  return key(PREFIX_CERTIFICATE, heightBytes(height))
}

function blockAtHeightKey(height: number, hash: Uint8Array): Uint8Array {
  return key(PREFIX_BLOCK_AT_HEIGHT, concatBytes(heightBytes(height), hash))
}

function metaKey(name: string): Uint8Array {
  return key(PREFIX_META, utf8(name))
}

export interface TxLocation {
  blockHash: Uint8Array
  index: number
}

export interface ChainStoreOptions {
  /** Trie nodes kept in memory (≈ 300 bytes each on average). */
  nodeCacheEntries?: number
  /** Decoded headers kept in memory. */
  headerCacheEntries?: number
}

export class ChainStore implements NodeSource {
  /** Bounded by nodeCacheEntries. */
  private readonly nodeCache: LruMap<string, Uint8Array>
  /** Bounded by headerCacheEntries. */
  private readonly headerCache: LruMap<string, Header>

  constructor(
    readonly kv: KeyValueStore,
    options: ChainStoreOptions = {},
  ) {
    this.nodeCache = new LruMap(options.nodeCacheEntries ?? 500_000)
    this.headerCache = new LruMap(options.headerCacheEntries ?? 4_096)
  }

  /** `hex`: the hash's toHexKey when the caller has it already (a served trie walk asks per node). */
  getNode(hash: Uint8Array, hex = toHexKey(hash)): Uint8Array | undefined {
    const cached = this.nodeCache.get(hex)
    if (cached !== undefined) return cached
    const stored = this.kv.get(key(PREFIX_NODE, hash))
    if (stored !== undefined) this.nodeCache.set(hex, stored)
    return stored
  }

  hasNode(hash: Uint8Array): boolean {
    return this.getNode(hash) !== undefined
  }

  getHeader(hash: Uint8Array): Header | undefined {
    const hex = toHexKey(hash)
    const cached = this.headerCache.get(hex)
    if (cached !== undefined) return cached
    const bytes = this.kv.get(key(PREFIX_HEADER, hash))
    if (bytes === undefined) return undefined
    const header = decodeHeader(bytes)
    this.headerCache.set(hex, header)
    return header
  }

  hasBody(hash: Uint8Array): boolean {
    return this.kv.get(key(PREFIX_BODY, hash)) !== undefined
  }

  getBody(hash: Uint8Array): SignedTx[] | undefined {
    const bytes = this.kv.get(key(PREFIX_BODY, hash))
    if (bytes === undefined) return undefined
    return decodeBody(bytes)
  }

  getBlock(hash: Uint8Array): Block | undefined {
    const header = this.getHeader(hash)
    if (header === undefined) return undefined
    const txs = this.getBody(hash)
    if (txs === undefined) return undefined
    return { header, txs }
  }

  getCanonicalHash(height: number): Uint8Array | undefined {
    return this.kv.get(heightKey(height))
  }

  /** The block's stored reverse diff (encoded), if it is kept: imported blocks in the state window. */
  getReverseDiff(hash: Uint8Array): Uint8Array | undefined {
    return this.kv.get(key(PREFIX_REVERSE_DIFF, hash))
  }

  /**
   * The canonical entries at heights [from, to), by one range scan: its cost follows the entries
   * stored, not the heights spanned (a certificate-joined node has none below its pivot).
   */
  async canonicalInRange(from: number, to: number): Promise<Array<{ height: number; hash: Uint8Array }>> {
    const out: Array<{ height: number; hash: Uint8Array }> = []
    if (to <= from) return out
    for await (const [entryKey, value] of this.kv.range({ gte: heightKey(from), lt: heightKey(to) })) {
      if (entryKey.length !== 1 + 8) continue
      out.push({ height: Number(new DataView(entryKey.buffer, entryKey.byteOffset + 1, 8).getBigUint64(0)), hash: value })
    }
    return out
  }

  getTxLocation(txid: Uint8Array): TxLocation | undefined {
    const value = this.kv.get(key(PREFIX_TX, txid))
    if (value === undefined || value.length !== 36) return undefined
    return { blockHash: value.subarray(0, 32), index: new DataView(value.buffer, value.byteOffset + 32, 4).getUint32(0) }
  }

  getMeta(name: string): Uint8Array | undefined {
    return this.kv.get(metaKey(name))
  }

  /** A u64 kept in metadata (pruning progress), or undefined. */
  getMetaHeight(name: string): number | undefined {
    const value = this.getMeta(name)
    if (value === undefined || value.length !== 8) return undefined
    return Number(new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0))
  }

  /** The finalized pointer, or undefined before the first certificate. */
  getFinalized(): FinalizedPointer | undefined {
    const value = this.getMeta('finalized')
    if (value === undefined || value.length !== 40) return undefined
    return { height: Number(new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0)), hash: value.slice(8) }
  }

  /** The stored certificate that finalized `height`, if that height was ever finalized here. */
  getCertificate(height: number): Certificate | undefined {
    const bytes = this.kv.get(certificateKey(height))
    return bytes === undefined ? undefined : decodeCertificate(bytes)
  }

  /** Hashes of every block indexed at heights [from, to) (canonical and side branches), in height order. */
  async blocksAtHeights(from: number, to: number): Promise<Array<{ height: number; hash: Uint8Array }>> {
    const out: Array<{ height: number; hash: Uint8Array }> = []
    if (to <= from) return out
    const gte = key(PREFIX_BLOCK_AT_HEIGHT, heightBytes(from))
    const lt = key(PREFIX_BLOCK_AT_HEIGHT, heightBytes(to))
    for await (const [entryKey] of this.kv.range({ gte, lt })) {
      if (entryKey.length !== 1 + 8 + 32) continue
      const height = Number(new DataView(entryKey.buffer, entryKey.byteOffset + 1, 8).getBigUint64(0))
      out.push({ height, hash: entryKey.slice(9) })
    }
    return out
  }

  /** Forgets cached copies of deleted nodes (pruning): a cache hit must mean "stored". */
  forgetNodes(hexes: Iterable<string>): void {
    for (const hex of hexes) this.nodeCache.delete(hex)
  }

  batch(): ChainBatch {
    return new ChainBatch(this)
  }

  /** Called by ChainBatch after a successful write: the written nodes and headers are warm. */
  remember(nodes: Map<string, Uint8Array>, headers: Map<string, Header>): void {
    for (const [hex, bytes] of nodes) this.nodeCache.set(hex, bytes)
    for (const [hex, header] of headers) this.headerCache.set(hex, header)
  }

  async close(): Promise<void> {
    await this.kv.close()
  }
}

/** Body = u32 count || tx encodings. */
export function encodeBody(txs: readonly SignedTx[]): Uint8Array {
  const count = new Uint8Array(4)
  new DataView(count.buffer).setUint32(0, txs.length)
  return concatBytes(count, ...txs.map((signed) => signed.bytes))
}

export function decodeBody(bytes: Uint8Array): SignedTx[] {
  const reader = new Reader(bytes)
  const count = reader.count(1_000_000, 'body tx count')
  const txs: SignedTx[] = []
  for (let i = 0; i < count; i++) txs.push(readSignedTx(reader))
  if (reader.remaining !== 0) throw new DecodeError('trailing bytes in stored body')
  return txs
}

/** Collects one atomic write. */
export class ChainBatch {
  private readonly ops: BatchOp[] = []
  private readonly nodes = new Map<string, Uint8Array>()
  private readonly headers = new Map<string, Header>()
  private readonly deletedNodes: string[] = []

  constructor(private readonly store: ChainStore) {}

  putHeader(hash: Uint8Array, header: Header): this {
    this.ops.push({ type: 'put', key: key(PREFIX_HEADER, hash), value: encodeHeader(header) })
    this.headers.set(toHexKey(hash), header)
    return this
  }

  putBody(hash: Uint8Array, txs: readonly SignedTx[]): this {
    this.ops.push({ type: 'put', key: key(PREFIX_BODY, hash), value: encodeBody(txs) })
    return this
  }

  putReverseDiff(hash: Uint8Array, encoded: Uint8Array): this {
    this.ops.push({ type: 'put', key: key(PREFIX_REVERSE_DIFF, hash), value: encoded })
    return this
  }

  deleteReverseDiff(hash: Uint8Array): this {
    this.ops.push({ type: 'del', key: key(PREFIX_REVERSE_DIFF, hash) })
    return this
  }

  putNodes(nodes: Map<string, Uint8Array>): this {
    for (const [hex, bytes] of nodes) {
      this.ops.push({ type: 'put', key: key(PREFIX_NODE, Buffer.from(hex, 'hex')), value: bytes })
      this.nodes.set(hex, bytes)
    }
    return this
  }

  putNode(hash: Uint8Array, bytes: Uint8Array): this {
    this.ops.push({ type: 'put', key: key(PREFIX_NODE, hash), value: bytes })
    this.nodes.set(toHexKey(hash), bytes)
    return this
  }

  setCanonical(height: number, hash: Uint8Array): this {
    this.ops.push({ type: 'put', key: heightKey(height), value: hash })
    return this
  }

  deleteCanonical(height: number): this {
    this.ops.push({ type: 'del', key: heightKey(height) })
    return this
  }

  putTxLocation(txid: Uint8Array, location: TxLocation): this {
    const value = new Uint8Array(36)
    value.set(location.blockHash, 0)
    new DataView(value.buffer).setUint32(32, location.index)
    this.ops.push({ type: 'put', key: key(PREFIX_TX, txid), value })
    return this
  }

  deleteTxLocation(txid: Uint8Array): this {
    this.ops.push({ type: 'del', key: key(PREFIX_TX, txid) })
    return this
  }

  putMeta(name: string, value: Uint8Array): this {
    this.ops.push({ type: 'put', key: metaKey(name), value })
    return this
  }

  /** Records a block under its height, so pruning can find side branches. */
  indexBlockAtHeight(height: number, hash: Uint8Array): this {
    this.ops.push({ type: 'put', key: blockAtHeightKey(height, hash), value: new Uint8Array(0) })
    return this
  }

  deleteBlockAtHeight(height: number, hash: Uint8Array): this {
    this.ops.push({ type: 'del', key: blockAtHeightKey(height, hash) })
    return this
  }

  putCertificate(certificate: Certificate): this {
    this.ops.push({ type: 'put', key: certificateKey(certificate.height), value: encodeCertificate(certificate) })
    return this
  }

  setFinalized(pointer: FinalizedPointer): this {
    return this.putMeta('finalized', concatBytes(heightBytes(pointer.height), pointer.hash))
  }

  putMetaHeight(name: string, height: number): this {
    return this.putMeta(name, heightBytes(height))
  }

  deleteBody(hash: Uint8Array): this {
    this.ops.push({ type: 'del', key: key(PREFIX_BODY, hash) })
    return this
  }

  /** Deletes a trie node; its cached copy is dropped when the batch commits. */
  deleteNode(hash: Uint8Array): this {
    this.ops.push({ type: 'del', key: key(PREFIX_NODE, hash) })
    this.deletedNodes.push(toHexKey(hash))
    return this
  }

  deleteMeta(name: string): this {
    this.ops.push({ type: 'del', key: metaKey(name) })
    return this
  }

  get size(): number {
    return this.ops.length
  }

  async commit(): Promise<void> {
    // Drop cached copies first: between the write and this line a reader must not see a deleted node.
    this.store.forgetNodes(this.deletedNodes)
    await this.store.kv.write(this.ops)
    this.store.forgetNodes(this.deletedNodes)
    this.store.remember(this.nodes, this.headers)
  }
}
