/**
 * Wire messages (docs/protocol.md, "Wire protocol"). Every frame on a Grapevine stream is
 * u32be(length) || message, and every message starts with a type byte. Lists carry u32 counts
 * bounded before allocation; a frame above its protocol's maximum aborts the stream.
 */
import type { Block, Header, SignedTx } from '../ledger/types.ts'
import { DecodeError, Reader, Writer, decodeExact } from './binary.ts'
import { MAX_BLOCK_BYTES, MAX_BLOCK_TXS } from './limits.ts'
import { MAX_HEADER_BYTES, decodeBlock, decodeHeader, encodeBlock, encodeHeader, readSignedTx } from './objects.ts'

/** Inventory kinds. */
export const INV_TX = 1
export const INV_BLOCK = 2
/** Only in getdata: "send this block in compact form". */
export const INV_COMPACT_BLOCK = 3

export interface InvItem {
  kind: number
  hash: Uint8Array
}

export const MAX_INV_ITEMS = 4_096
export const MAX_GETDATA_ITEMS = 1_024
export const MAX_TXS_PER_MESSAGE = 4_096
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

const GOSSIP_TYPES = {
  inv: 0x01,
  getdata: 0x02,
  notfound: 0x03,
  txs: 0x04,
  block: 0x05,
  cmpctblock: 0x06,
  getblocktxn: 0x07,
  blocktxn: 0x08,
} as const

function writeItems(writer: Writer, items: InvItem[]): void {
  writer.u32(items.length)
  for (const item of items) writer.u8(item.kind).fixed(item.hash, 32)
}

function readItems(reader: Reader, max: number): InvItem[] {
  const count = reader.count(max, 'inventory count')
  const items: InvItem[] = []
  for (let i = 0; i < count; i++) {
    const kind = reader.u8('inventory kind')
    if (kind !== INV_TX && kind !== INV_BLOCK && kind !== INV_COMPACT_BLOCK) throw new DecodeError(`unknown inventory kind ${kind}`)
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
          for (let i = 0; i < count; i++) txids.push(reader.fixed(32, 'txid').slice())
          return { type: 'cmpctblock', solicited, header, txids }
        }
        case GOSSIP_TYPES.getblocktxn: {
          const blockHash = reader.fixed(32, 'block hash').slice()
          const count = reader.count(MAX_BLOCK_TXS, 'index count')
          const indexes: number[] = []
          for (let i = 0; i < count; i++) indexes.push(reader.u32('index'))
          return { type: 'getblocktxn', blockHash, indexes }
        }
        case GOSSIP_TYPES.blocktxn: {
          const blockHash = reader.fixed(32, 'block hash').slice()
          return { type: 'blocktxn', blockHash, txs: readTxs(reader, MAX_BLOCK_TXS) }
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
  /** Root over the mempool's txid buckets (src/sync/mempool-digest.ts); zero if not computed. */
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
    bytes.slice(),
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
