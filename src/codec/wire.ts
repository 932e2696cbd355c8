/**
 * Wire messages (docs/protocol.md, "Wire protocol"). Every frame on a Grapevine stream is
 * u32be(length) || message, and every message starts with a type byte. Lists carry u32 counts
 * bounded before allocation; a frame above its protocol's maximum aborts the stream.
 */
import type { Block, Certificate, Evidence, Header, SignedTx, Vote } from '../ledger/types.ts'
import { DecodeError, Reader, Writer, decodeExact } from './binary.ts'
import { MAX_BLOCK_BYTES, MAX_BLOCK_TXS } from './limits.ts'
import { MAX_CERTIFICATE_BYTES, encodeCertificate, encodeEvidence, encodeVote, readCertificate, readEvidence, readVote } from './finality.ts'
import { MAX_HEADER_BYTES, decodeBlock, decodeHeader, encodeBlock, encodeHeader, readSignedTx } from './objects.ts'

/** Inventory kinds. */
export const INV_TX = 1
export const INV_BLOCK = 2
/** Only in getdata: "send this block in compact form". */
export const INV_COMPACT_BLOCK = 3
/** A finality vote, by `voteId` (SHA-256 of its encoding). */
export const INV_VOTE = 4
/** Equivocation evidence, by `evidenceId`. */
export const INV_EVIDENCE = 5

export interface InvItem {
  kind: number
  hash: Uint8Array
}

/** Hashes per `inv`: as many as one `getdata` may ask back, and the announcement tracker's work per frame bounded (~9 ms). */
export const MAX_INV_ITEMS = 1_024
export const MAX_GETDATA_ITEMS = 1_024
export const MAX_TXS_PER_MESSAGE = 4_096
/** Votes per `votes` message: four heights of a full 1,024-validator set. */
export const MAX_VOTES_PER_MESSAGE = 4_096
/** Evidence items per `evidence` message (each ≤ 239 bytes). */
export const MAX_EVIDENCE_PER_MESSAGE = 256
/** Largest gossip frame: a maximal block plus framing slack. */
export const MAX_GOSSIP_FRAME_BYTES = MAX_BLOCK_BYTES + 64 * 1024

export type GossipMessage =
  | { type: 'inv'; items: InvItem[] }
  | { type: 'getdata'; items: InvItem[] }
  | { type: 'notfound'; items: InvItem[] }
  /** `solicited`: an answer to getdata (false: a push). */
  | { type: 'txs'; solicited: boolean; txs: SignedTx[] }
  | { type: 'block'; solicited: boolean; block: Block }
  | { type: 'cmpctblock'; solicited: boolean; header: Header; txids: Uint8Array[] }
  | { type: 'getblocktxn'; blockHash: Uint8Array; indexes: number[] }
  | { type: 'blocktxn'; blockHash: Uint8Array; txs: SignedTx[] }
  | { type: 'votes'; solicited: boolean; votes: Vote[] }
  | { type: 'evidence'; solicited: boolean; evidence: Evidence[] }

/** An owned copy (Buffer.prototype.slice would return a view of a larger frame). */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes)
}

const GOSSIP_TYPES = {
  inv: 0x01,
  getdata: 0x02,
  notfound: 0x03,
  txs: 0x04,
  block: 0x05,
  cmpctblock: 0x06,
  getblocktxn: 0x07,
  blocktxn: 0x08,
  votes: 0x09,
  evidence: 0x0a,
} as const

/** Bytes of one inventory item on the wire: kind (1) and hash (32). */
export const INV_ITEM_BYTES = 33

/**
 * Hashes an `inv` frame carries, read from its type byte and length alone — before decoding (an
 * item has a fixed size, so the length says how many; a count field that disagrees fails
 * decoding later). 0 for every other message.
 */
export function invItemsInFrame(bytes: Uint8Array): number {
  if (bytes.length < 5 || bytes[0] !== GOSSIP_TYPES.inv) return 0
  return Math.floor((bytes.length - 5) / INV_ITEM_BYTES)
}

/**
 * The txs a `txs` frame carries, from its header (type, solicited flag, u32 count) before decoding.
 * A count that lies makes the frame undecodable (decoding is exact), so charging it is safe.
 */
export function txItemsInFrame(bytes: Uint8Array): number {
  if (bytes.length < 6 || bytes[0] !== GOSSIP_TYPES.txs) return 0
  return Math.min(MAX_TXS_PER_MESSAGE, new DataView(bytes.buffer, bytes.byteOffset + 2, 4).getUint32(0))
}

/** The items a gossip frame's header implies, charged before decoding (rate limits). */
export interface FrameItems {
  inv: number
  txs: number
}

export function gossipFrameItems(bytes: Uint8Array): FrameItems {
  return { inv: invItemsInFrame(bytes), txs: txItemsInFrame(bytes) }
}

function writeItems(writer: Writer, items: InvItem[]): void {
  writer.u32(items.length)
  for (const item of items) writer.u8(item.kind).fixed(item.hash, 32)
}

function readItems(reader: Reader, max: number): InvItem[] {
  const count = reader.count(max, 'inventory count')
  const items: InvItem[] = []
  for (let i = 0; i < count; i++) {
    const kind = reader.u8('inventory kind')
    if (kind !== INV_TX && kind !== INV_BLOCK && kind !== INV_COMPACT_BLOCK && kind !== INV_VOTE && kind !== INV_EVIDENCE) throw new DecodeError(`unknown inventory kind ${kind}`)
    items.push({ kind, hash: reader.fixed(32, 'inventory hash') })
  }
  return items
}

function writeTxs(writer: Writer, txs: SignedTx[]): void {
  writer.u32(txs.length)
  for (const signed of txs) writer.raw(signed.bytes)
}

function readTxs(reader: Reader, max: number): SignedTx[] {
  const count = reader.count(max, 'tx count')
  const txs: SignedTx[] = []
  for (let i = 0; i < count; i++) txs.push(readSignedTx(reader))
  return txs
}

export function encodeGossip(message: GossipMessage): Uint8Array {
  const writer = new Writer(256)
  writer.u8(GOSSIP_TYPES[message.type])
  switch (message.type) {
    case 'inv':
    case 'getdata':
    case 'notfound':
      writeItems(writer, message.items)
      break
    case 'txs':
      writer.u8(message.solicited ? 1 : 0)
      writeTxs(writer, message.txs)
      break
    case 'block':
      writer.u8(message.solicited ? 1 : 0).raw(encodeBlock(message.block))
      break
    case 'cmpctblock':
      writer.u8(message.solicited ? 1 : 0).bytes16(encodeHeader(message.header)).u32(message.txids.length)
      for (const id of message.txids) writer.fixed(id, 32)
      break
    case 'getblocktxn':
      writer.fixed(message.blockHash, 32).u32(message.indexes.length)
      for (const index of message.indexes) writer.u32(index)
      break
    case 'blocktxn':
      writer.fixed(message.blockHash, 32)
      writeTxs(writer, message.txs)
      break
    case 'votes':
      if (message.votes.length > MAX_VOTES_PER_MESSAGE) throw new RangeError('too many votes for one message')
      writer.u8(message.solicited ? 1 : 0).u32(message.votes.length)
      for (const vote of message.votes) writer.raw(encodeVote(vote))
      break
    case 'evidence':
      if (message.evidence.length > MAX_EVIDENCE_PER_MESSAGE) throw new RangeError('too much evidence for one message')
      writer.u8(message.solicited ? 1 : 0).u32(message.evidence.length)
      for (const evidence of message.evidence) writer.raw(encodeEvidence(evidence))
      break
  }
  return writer.finish()
}

function readFlag(reader: Reader): boolean {
  const flag = reader.u8('flag')
  if (flag > 1) throw new DecodeError('flag must be 0 or 1')
  return flag === 1
}

export function decodeGossip(bytes: Uint8Array): GossipMessage {
  if (bytes.length > MAX_GOSSIP_FRAME_BYTES) throw new DecodeError('gossip message too large')
  return decodeExact(
    bytes,
    (reader): GossipMessage => {
      const type = reader.u8('message type')
      switch (type) {
        case GOSSIP_TYPES.inv:
          return { type: 'inv', items: readItems(reader, MAX_INV_ITEMS) }
        case GOSSIP_TYPES.getdata:
          return { type: 'getdata', items: readItems(reader, MAX_GETDATA_ITEMS) }
        case GOSSIP_TYPES.notfound:
          return { type: 'notfound', items: readItems(reader, MAX_GETDATA_ITEMS) }
        case GOSSIP_TYPES.txs: {
          const solicited = readFlag(reader)
          return { type: 'txs', solicited, txs: readTxs(reader, MAX_TXS_PER_MESSAGE) }
        }
        case GOSSIP_TYPES.block: {
          const solicited = readFlag(reader)
          const rest = reader.fixed(reader.remaining, 'block')
          return { type: 'block', solicited, block: decodeBlock(rest) }
        }
        case GOSSIP_TYPES.cmpctblock: {
          const solicited = readFlag(reader)
          const header = decodeHeader(reader.bytes16(MAX_HEADER_BYTES, 'header'))
          const count = reader.count(MAX_BLOCK_TXS, 'txid count')
          const txids: Uint8Array[] = []
          for (let i = 0; i < count; i++) txids.push(copy(reader.fixed(32, 'txid')))
          return { type: 'cmpctblock', solicited, header, txids }
        }
        case GOSSIP_TYPES.getblocktxn: {
          const blockHash = copy(reader.fixed(32, 'block hash'))
          const count = reader.count(MAX_BLOCK_TXS, 'index count')
          const indexes: number[] = []
          for (let i = 0; i < count; i++) indexes.push(reader.u32('index'))
          return { type: 'getblocktxn', blockHash, indexes }
        }
        case GOSSIP_TYPES.blocktxn: {
          const blockHash = copy(reader.fixed(32, 'block hash'))
          return { type: 'blocktxn', blockHash, txs: readTxs(reader, MAX_BLOCK_TXS) }
        }
        case GOSSIP_TYPES.votes: {
          const solicited = readFlag(reader)
          const count = reader.count(MAX_VOTES_PER_MESSAGE, 'vote count')
          const votes: Vote[] = []
          for (let i = 0; i < count; i++) votes.push(readVote(reader))
          return { type: 'votes', solicited, votes }
        }
        case GOSSIP_TYPES.evidence: {
          const solicited = readFlag(reader)
          const count = reader.count(MAX_EVIDENCE_PER_MESSAGE, 'evidence count')
          const evidence: Evidence[] = []
          for (let i = 0; i < count; i++) evidence.push(readEvidence(reader))
          return { type: 'evidence', solicited, evidence }
        }
        default:
          throw new DecodeError(`unknown gossip message type 0x${type.toString(16)}`)
      }
    },
    'gossip message',
  )
}

// ---------------------------------------------------------------- status

export interface StatusMessage {
  genesisHash: Uint8Array
  headHeight: number
  headHash: Uint8Array
  /** Highest block fork choice may never revert (genesis until finality exists). */
  finalizedHeight: number
  finalizedHash: Uint8Array
  stateRoot: Uint8Array
  /** SHA-256 over the mempool's 256 bucket summaries (src/mempool/digest.ts). */
  mempoolDigest: Uint8Array
  mempoolSize: number
}

export const STATUS_BYTES = 1 + 32 + 8 + 32 + 8 + 32 + 32 + 32 + 4
const STATUS_TYPE = 0x10

export function encodeStatus(status: StatusMessage): Uint8Array {
  return new Writer(STATUS_BYTES)
    .u8(STATUS_TYPE)
    .fixed(status.genesisHash, 32)
    .u53(status.headHeight)
    .fixed(status.headHash, 32)
    .u53(status.finalizedHeight)
    .fixed(status.finalizedHash, 32)
    .fixed(status.stateRoot, 32)
    .fixed(status.mempoolDigest, 32)
    .u32(status.mempoolSize)
    .finish()
}

export function decodeStatus(bytes: Uint8Array): StatusMessage {
  if (bytes.length !== STATUS_BYTES) throw new DecodeError(`status message must be ${STATUS_BYTES} bytes`)
  return decodeExact(
    copy(bytes),
    (reader) => {
      if (reader.u8('type') !== STATUS_TYPE) throw new DecodeError('not a status message')
      return {
        genesisHash: reader.fixed(32),
        headHeight: reader.u53('headHeight'),
        headHash: reader.fixed(32),
        finalizedHeight: reader.u53('finalizedHeight'),
        finalizedHash: reader.fixed(32),
        stateRoot: reader.fixed(32),
        mempoolDigest: reader.fixed(32),
        mempoolSize: reader.u32(),
      }
    },
    'status',
  )
}

// ---------------------------------------------------------------- sync (request/response)

export const MAX_LOCATOR_HASHES = 64
export const MAX_HEADERS_PER_RESPONSE = 512
export const MAX_BLOCKS_PER_REQUEST = 128
/** A blocks response stops adding blocks past this many bytes (always at least one block). */
export const SOFT_MAX_BLOCKS_RESPONSE_BYTES = 4 * 1024 * 1024
export const MAX_NODES_PER_REQUEST = 1_024
export const MAX_LEAVES_PER_RESPONSE = 65_536
export const MAX_MEMPOOL_IDS_PER_RESPONSE = 65_536
export const MAX_TXS_PER_REQUEST = 1_024
/** Largest sync frame: a maximal block plus slack. */
export const MAX_SYNC_FRAME_BYTES = MAX_BLOCK_BYTES + 1024 * 1024
export const MAX_SYNC_REQUEST_BYTES = 64 * 1024
export const LEAF_RECORD_BYTES = 48

export interface LeafRecord {
  keyHash: Uint8Array
  balance: bigint
  nonce: number
}

export type SyncRequest =
  /** Headers after the first locator hash on the responder's canonical chain. */
  | { type: 'getHeaders'; locator: Uint8Array[]; max: number }
  | { type: 'getBlocks'; hashes: Uint8Array[] }
  /** Trie nodes by hash. */
  | { type: 'getNodes'; hashes: Uint8Array[] }
  /** Leaves of the subtree rooted at `subtree` (a node at nibble depth `depth`), in key order. */
  | { type: 'getLeaves'; subtree: Uint8Array; depth: number; startAfter: Uint8Array | undefined; max: number }
  | { type: 'getMempoolDigest' }
  | { type: 'getMempoolIds'; buckets: number[] }
  | { type: 'getTxs'; ids: Uint8Array[] }
  /** The responder's latest certificate (`height` undefined) or the one for `height`, with its header. */
  | { type: 'getFinality'; height: number | undefined }

/** A certificate and the header it certifies (what a joining node verifies against the genesis). */
export interface FinalityProof {
  certificate: Certificate
  header: Header
}

export type SyncResponse =
  | { type: 'headers'; headers: Header[] }
  | { type: 'blocks'; blocks: Block[] }
  /** In request order; an empty entry means "not found". */
  | { type: 'nodes'; nodes: Uint8Array[] }
  | { type: 'leaves'; leaves: LeafRecord[]; more: boolean }
  | { type: 'mempoolDigest'; summaries: Uint8Array }
  | { type: 'mempoolIds'; ids: Uint8Array[]; truncated: boolean }
  | { type: 'txs'; txs: SignedTx[] }
  /** `proof` undefined: the responder has no certificate for what was asked (none yet, or pruned). */
  | { type: 'finality'; proof: FinalityProof | undefined }
  | { type: 'error'; message: string }

const SYNC_TYPES = {
  getHeaders: 0x20,
  getBlocks: 0x21,
  getNodes: 0x22,
  getLeaves: 0x23,
  getMempoolDigest: 0x24,
  getMempoolIds: 0x25,
  getTxs: 0x26,
  getFinality: 0x27,
  headers: 0x30,
  blocks: 0x31,
  nodes: 0x32,
  leaves: 0x33,
  mempoolDigest: 0x34,
  mempoolIds: 0x35,
  txs: 0x36,
  finality: 0x37,
  error: 0x3f,
} as const

const MEMPOOL_SUMMARIES_BYTES = 256 * 36

function writeHashes(writer: Writer, hashes: Uint8Array[]): void {
  writer.u32(hashes.length)
  for (const hash of hashes) writer.fixed(hash, 32)
}

function readHashes(reader: Reader, max: number, what: string): Uint8Array[] {
  const count = reader.count(max, what)
  const out: Uint8Array[] = []
  for (let i = 0; i < count; i++) out.push(copy(reader.fixed(32, what)))
  return out
}

export function encodeSyncRequest(request: SyncRequest): Uint8Array {
  const writer = new Writer(64)
  writer.u8(SYNC_TYPES[request.type])
  switch (request.type) {
    case 'getHeaders':
      writeHashes(writer, request.locator)
      writer.u32(request.max)
      break
    case 'getBlocks':
      writeHashes(writer, request.hashes)
      break
    case 'getNodes':
      writeHashes(writer, request.hashes)
      break
    case 'getLeaves':
      writer.fixed(request.subtree, 32).u8(request.depth)
      if (request.startAfter === undefined) writer.u8(0)
      else writer.u8(1).fixed(request.startAfter, 32)
      writer.u32(request.max)
      break
    case 'getMempoolDigest':
      break
    case 'getMempoolIds':
      writer.u32(request.buckets.length)
      for (const bucket of request.buckets) writer.u8(bucket)
      break
    case 'getTxs':
      writeHashes(writer, request.ids)
      break
    case 'getFinality':
      if (request.height === undefined) writer.u8(0)
      else writer.u8(1).u53(request.height)
      break
  }
  return writer.finish()
}

export function decodeSyncRequest(bytes: Uint8Array): SyncRequest {
  if (bytes.length > MAX_SYNC_REQUEST_BYTES) throw new DecodeError('sync request too large')
  return decodeExact(
    bytes,
    (reader): SyncRequest => {
      const type = reader.u8('request type')
      switch (type) {
        case SYNC_TYPES.getHeaders: {
          const locator = readHashes(reader, MAX_LOCATOR_HASHES, 'locator')
          const max = reader.count(MAX_HEADERS_PER_RESPONSE, 'max headers')
          return { type: 'getHeaders', locator, max }
        }
        case SYNC_TYPES.getBlocks:
          return { type: 'getBlocks', hashes: readHashes(reader, MAX_BLOCKS_PER_REQUEST, 'block hashes') }
        case SYNC_TYPES.getNodes:
          return { type: 'getNodes', hashes: readHashes(reader, MAX_NODES_PER_REQUEST, 'node hashes') }
        case SYNC_TYPES.getLeaves: {
          const subtree = copy(reader.fixed(32, 'subtree'))
          const depth = reader.u8('depth')
          if (depth > 63) throw new DecodeError('depth above 63')
          const hasStart = readFlag(reader)
          const startAfter = hasStart ? copy(reader.fixed(32, 'startAfter')) : undefined
          const max = reader.count(MAX_LEAVES_PER_RESPONSE, 'max leaves')
          return { type: 'getLeaves', subtree, depth, startAfter, max }
        }
        case SYNC_TYPES.getMempoolDigest:
          return { type: 'getMempoolDigest' }
        case SYNC_TYPES.getMempoolIds: {
          const count = reader.count(256, 'bucket count')
          const buckets: number[] = []
          for (let i = 0; i < count; i++) buckets.push(reader.u8('bucket'))
          return { type: 'getMempoolIds', buckets }
        }
        case SYNC_TYPES.getTxs:
          return { type: 'getTxs', ids: readHashes(reader, MAX_TXS_PER_REQUEST, 'txids') }
        case SYNC_TYPES.getFinality: {
          const hasHeight = readFlag(reader)
          return { type: 'getFinality', height: hasHeight ? reader.u53('height') : undefined }
        }
        default:
          throw new DecodeError(`unknown sync request type 0x${type.toString(16)}`)
      }
    },
    'sync request',
  )
}

/** Bytes of a `leaves` answer before its records: type, `more`, u32 count. */
const LEAVES_HEADER_BYTES = 6

/**
 * A `leaves` answer written record by record into one buffer (a `Writer`): the server writes each
 * slice's leaves as it collects them, so a page built over many turns of the event loop holds
 * bytes, not thousands of leaf objects (that survived each scavenge until the page was sent:
 * docs/benchmarks.md, "A served leaf page is bytes"). Its header is written last, in place, once
 * the count is known. `encodeSyncResponse` writes its `leaves` through this too (sized exactly: a
 * page of 65,536 is 3 MiB, and a buffer doubled from a small start would copy it ~12 times), so
 * both give the same bytes.
 */
export class LeafPageWriter {
  private readonly writer: Writer

  /** Room for `initial` leaves at first (all `max` by default), doubled as needed: a page asked at 65,536 of a small subtree does not hold 3 MiB. */
  constructor(
    readonly max: number,
    initial = max,
  ) {
    if (!(Number.isInteger(max) && max >= 0 && max <= MAX_LEAVES_PER_RESPONSE)) throw new RangeError(`leaf page of ${max} leaves`)
    this.writer = new Writer(LEAVES_HEADER_BYTES + Math.max(0, Math.min(max, Math.floor(initial))) * LEAF_RECORD_BYTES)
    // The header's place: type, `more`, count, set by `finish`.
    this.writer.u8(SYNC_TYPES.leaves).u8(0).u32(0)
  }

  /** Leaves written so far. */
  get count(): number {
    return (this.writer.length - LEAVES_HEADER_BYTES) / LEAF_RECORD_BYTES
  }

  add(keyHash: Uint8Array, balance: bigint, nonce: number): void {
    if (this.count >= this.max) throw new RangeError(`leaf page full (${this.max})`)
    const before = this.writer.length
    try {
      this.writer.fixed(keyHash, 32).u64(balance).u53(nonce)
    } catch (error) {
      this.writer.truncate(before)
      throw error
    }
  }

  /** The encoded answer (a view of the page's buffer: nothing more may be added). */
  finish(more: boolean): Uint8Array {
    return this.writer.setU8At(1, more ? 1 : 0).setU32At(2, this.count).finishView()
  }
}

/** A served answer already in its wire encoding: a leaf page written as it was collected (`LeafPageWriter`); `leaves` is its leaf count. */
export interface EncodedLeaves {
  type: 'encodedLeaves'
  leaves: number
  bytes: Uint8Array
}

/** What the node side answers a sync request with: a response, or a leaf page already encoded. */
export type ServedSyncResponse = SyncResponse | EncodedLeaves

/** A served answer's wire bytes. */
export function encodeServedResponse(answer: ServedSyncResponse): Uint8Array {
  return answer.type === 'encodedLeaves' ? answer.bytes : encodeSyncResponse(answer)
}

/** The response type a served answer goes out as (the metric label). */
export function servedResponseType(answer: ServedSyncResponse): SyncResponse['type'] {
  return answer.type === 'encodedLeaves' ? 'leaves' : answer.type
}

/** Leaves a served answer holds (0 for any other answer). */
export function servedLeafCount(answer: ServedSyncResponse): number {
  return answer.type === 'encodedLeaves' ? answer.leaves : answer.type === 'leaves' ? answer.leaves.length : 0
}

export function encodeSyncResponse(response: SyncResponse): Uint8Array {
  if (response.type === 'leaves') {
    const page = new LeafPageWriter(response.leaves.length)
    for (const leaf of response.leaves) page.add(leaf.keyHash, leaf.balance, leaf.nonce)
    return page.finish(response.more)
  }
  const writer = new Writer(1024)
  writer.u8(SYNC_TYPES[response.type])
  switch (response.type) {
    case 'headers':
      writer.u32(response.headers.length)
      for (const header of response.headers) writer.bytes16(encodeHeader(header))
      break
    case 'blocks':
      writer.u32(response.blocks.length)
      for (const block of response.blocks) writer.bytes32(encodeBlock(block))
      break
    case 'nodes':
      writer.u32(response.nodes.length)
      for (const node of response.nodes) writer.bytes16(node)
      break
    case 'mempoolDigest':
      writer.fixed(response.summaries, MEMPOOL_SUMMARIES_BYTES)
      break
    case 'mempoolIds':
      writer.u8(response.truncated ? 1 : 0)
      writeHashes(writer, response.ids)
      break
    case 'txs':
      writeTxs(writer, response.txs)
      break
    case 'finality':
      if (response.proof === undefined) writer.u8(0)
      else writer.u8(1).bytes16(encodeHeader(response.proof.header)).bytes32(encodeCertificate(response.proof.certificate))
      break
    case 'error':
      writer.bytes16(new TextEncoder().encode(response.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 200)))
      break
  }
  return writer.finish()
}

export function decodeSyncResponse(bytes: Uint8Array): SyncResponse {
  if (bytes.length > MAX_SYNC_FRAME_BYTES) throw new DecodeError('sync response too large')
  return decodeExact(
    bytes,
    (reader): SyncResponse => {
      const type = reader.u8('response type')
      switch (type) {
        case SYNC_TYPES.headers: {
          const count = reader.count(MAX_HEADERS_PER_RESPONSE, 'header count')
          const headers: Header[] = []
          for (let i = 0; i < count; i++) headers.push(decodeHeader(reader.bytes16(MAX_HEADER_BYTES, 'header')))
          return { type: 'headers', headers }
        }
        case SYNC_TYPES.blocks: {
          const count = reader.count(MAX_BLOCKS_PER_REQUEST, 'block count')
          const blocks: Block[] = []
          for (let i = 0; i < count; i++) blocks.push(decodeBlock(reader.bytes32(MAX_BLOCK_BYTES, 'block')))
          return { type: 'blocks', blocks }
        }
        case SYNC_TYPES.nodes: {
          const count = reader.count(MAX_NODES_PER_REQUEST, 'node count')
          const nodes: Uint8Array[] = []
          for (let i = 0; i < count; i++) nodes.push(copy(reader.bytes16(515, 'node')))
          return { type: 'nodes', nodes }
        }
        case SYNC_TYPES.leaves: {
          const more = readFlag(reader)
          const count = reader.count(MAX_LEAVES_PER_RESPONSE, 'leaf count')
          const leaves: LeafRecord[] = []
          for (let i = 0; i < count; i++) {
            leaves.push({ keyHash: copy(reader.fixed(32, 'keyHash')), balance: reader.u64('balance'), nonce: reader.u53('nonce') })
          }
          return { type: 'leaves', leaves, more }
        }
        case SYNC_TYPES.mempoolDigest:
          return { type: 'mempoolDigest', summaries: copy(reader.fixed(MEMPOOL_SUMMARIES_BYTES, 'summaries')) }
        case SYNC_TYPES.mempoolIds: {
          const truncated = readFlag(reader)
          return { type: 'mempoolIds', truncated, ids: readHashes(reader, MAX_MEMPOOL_IDS_PER_RESPONSE, 'txids') }
        }
        case SYNC_TYPES.txs:
          return { type: 'txs', txs: readTxs(reader, MAX_TXS_PER_REQUEST) }
        case SYNC_TYPES.finality: {
          if (!readFlag(reader)) return { type: 'finality', proof: undefined }
          const header = decodeHeader(reader.bytes16(MAX_HEADER_BYTES, 'header'))
          const certificateBytes = reader.bytes32(MAX_CERTIFICATE_BYTES, 'certificate')
          const certificate = decodeExact(certificateBytes, readCertificate, 'certificate')
          return { type: 'finality', proof: { certificate, header } }
        }
        case SYNC_TYPES.error: {
          const message = new TextDecoder().decode(reader.bytes16(200, 'message'))
          if (!/^[\x20-\x7e]*$/.test(message)) throw new DecodeError('error message must be printable ASCII')
          return { type: 'error', message }
        }
        default:
          throw new DecodeError(`unknown sync response type 0x${type.toString(16)}`)
      }
    },
    'sync response',
  )
}
