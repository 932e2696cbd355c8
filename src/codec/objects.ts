/**
 * Canonical encodings of Transaction, Header, Block and Genesis (docs/protocol.md, "Encoding").
 * Every decoder bounds lengths before allocating and refuses trailing bytes, so a decode either
 * yields a value whose re-encoding is byte-identical or throws DecodeError.
 */
import { sha256 } from '../crypto/hash.ts'
import { SIGNATURE_BYTES, SIGNING_DOMAIN } from '../crypto/sign.ts'
import type { Block, Genesis, GenesisAccount, GenesisValidator, Header, SignedTx, Transaction } from '../ledger/types.ts'
import { bytesEqual, compareBytes, toHexKey } from './bytes.ts'
import { DecodeError, Reader, Writer, decodeExact } from './binary.ts'
import {
  MAX_BLOCK_BYTES,
  MAX_BLOCK_TXS,
  MAX_CHAIN_ID_BYTES,
  MAX_GENESIS_ACCOUNTS,
  MAX_GENESIS_VALIDATORS,
  MAX_MEMO_BYTES,
  MAX_TX_BYTES,
} from './limits.ts'

/** First byte of each object's encoding: its type and version. */
export const TYPE_TX_V1 = 0x01
export const TYPE_HEADER_V1 = 0x02
export const TYPE_GENESIS_V1 = 0x03

export const KEY_BYTES = 32

const CHAIN_ID_RE = /^[a-z0-9][a-z0-9._-]{0,31}$/

export function isValidChainId(chainId: string): boolean {
  return CHAIN_ID_RE.test(chainId)
}

/** chainId as u8 length + ASCII (shared with src/codec/finality.ts). */
export function writeChainId(writer: Writer, chainId: string): void {
  if (!isValidChainId(chainId)) throw new RangeError(`invalid chainId ${JSON.stringify(chainId)}`)
  writer.bytes8(Buffer.from(chainId, 'latin1'))
}

/** The last chain id decoded: nearly every object on a node carries the same one. */
let lastChainId: { bytes: Uint8Array; text: string } | undefined

/** Reads and checks a chainId (shared with src/codec/finality.ts). */
export function readChainId(reader: Reader): string {
  const raw = reader.bytes8(MAX_CHAIN_ID_BYTES, 'chainId')
  if (lastChainId !== undefined && bytesEqual(raw, lastChainId.bytes)) return lastChainId.text
  const chainId = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1')
  if (!isValidChainId(chainId)) throw new DecodeError('chainId must be 1-32 chars of [a-z0-9._-], starting alphanumeric')
  lastChainId = { bytes: new Uint8Array(raw), text: chainId }
  return chainId
}

// ---------------------------------------------------------------- transactions

function writeUnsignedTx(writer: Writer, tx: Transaction): void {
  writer.u8(TYPE_TX_V1)
  writeChainId(writer, tx.chainId)
  writer.fixed(tx.from, KEY_BYTES).fixed(tx.to, KEY_BYTES).u64(tx.amount).u64(tx.fee).u53(tx.nonce)
  if (tx.memo.length > MAX_MEMO_BYTES) throw new RangeError(`memo longer than ${MAX_MEMO_BYTES} bytes`)
  writer.bytes16(tx.memo)
}

export function encodeTx(tx: Transaction): Uint8Array {
  const writer = new Writer(200)
  writeUnsignedTx(writer, tx)
  writer.fixed(tx.signature, SIGNATURE_BYTES)
  return writer.finish()
}

/** The bytes a transaction's signature covers, before the domain tag (src/crypto/sign.ts). */
export function encodeUnsignedTx(tx: Transaction): Uint8Array {
  const writer = new Writer(200)
  writeUnsignedTx(writer, tx)
  return writer.finish()
}

function readTx(reader: Reader): Transaction {
  const type = reader.u8('tx type')
  if (type !== TYPE_TX_V1) throw new DecodeError(`unknown transaction type 0x${type.toString(16)}`)
  const chainId = readChainId(reader)
  const from = reader.fixed(KEY_BYTES, 'from')
  const to = reader.fixed(KEY_BYTES, 'to')
  const amount = reader.u64('amount')
  const fee = reader.u64('fee')
  const nonce = reader.u53('nonce')
  const memo = reader.bytes16(MAX_MEMO_BYTES, 'memo')
  const signature = reader.fixed(SIGNATURE_BYTES, 'signature')
  return { chainId, from, to, amount, fee, nonce, memo, signature }
}

export function decodeTx(bytes: Uint8Array): Transaction {
  if (bytes.length > MAX_TX_BYTES) throw new DecodeError(`transaction of ${bytes.length} bytes exceeds ${MAX_TX_BYTES}`)
  return decodeExact(bytes, readTx, 'transaction')
}

/**
 * Copies a tx encoding into one owned buffer laid out as SIGNING_DOMAIN || encoding: the bytes
 * are a view after the domain, and the signed message (domain || unsigned part) is a view too,
 * so verifying costs no further copy. No larger frame is retained.
 */
function ownTxBuffer(bytes: Uint8Array): { bytes: Uint8Array; signingMessage: Uint8Array } {
  const domain = SIGNING_DOMAIN.length
  const buffer = new Uint8Array(domain + bytes.length)
  buffer.set(SIGNING_DOMAIN, 0)
  buffer.set(bytes, domain)
  return { bytes: buffer.subarray(domain), signingMessage: buffer.subarray(0, domain + bytes.length - SIGNATURE_BYTES) }
}

/** Wraps already-canonical bytes and their decoded value with the txid. */
function signedTxFrom(tx: Transaction, owned: { bytes: Uint8Array; signingMessage: Uint8Array }): SignedTx {
  const id = sha256(owned.bytes)
  return { tx, bytes: owned.bytes, signingMessage: owned.signingMessage, id, idHex: toHexKey(id) }
}

/** Decodes a transaction received as bytes (copied: a caller's frame is never retained). */
export function decodeSignedTx(bytes: Uint8Array): SignedTx {
  const owned = ownTxBuffer(bytes)
  return signedTxFrom(decodeTx(owned.bytes), owned)
}

export function toSignedTx(tx: Transaction): SignedTx {
  return signedTxFrom(tx, ownTxBuffer(encodeTx(tx)))
}

/** The unsigned part of a signed tx's bytes: everything but the trailing signature. */
export function unsignedTxBytes(signed: SignedTx): Uint8Array {
  return signed.bytes.subarray(0, signed.bytes.length - SIGNATURE_BYTES)
}

// ---------------------------------------------------------------- headers and blocks

function writeUnsignedHeader(writer: Writer, header: Header): void {
  writer.u8(TYPE_HEADER_V1)
  writeChainId(writer, header.chainId)
  writer
    .u53(header.height)
    .u53(header.slot)
    .fixed(header.parentHash, 32)
    .u53(header.timestamp)
    .fixed(header.proposer, KEY_BYTES)
    .fixed(header.txRoot, 32)
    .fixed(header.stateRoot, 32)
    .u32(header.txCount)
}

export function encodeHeader(header: Header): Uint8Array {
  const writer = new Writer(300)
  writeUnsignedHeader(writer, header)
  writer.fixed(header.signature, SIGNATURE_BYTES)
  return writer.finish()
}

export function encodeUnsignedHeader(header: Header): Uint8Array {
  const writer = new Writer(300)
  writeUnsignedHeader(writer, header)
  return writer.finish()
}

/** Largest header encoding: fixed fields plus the longest chainId. */
export const MAX_HEADER_BYTES = 1 + 1 + MAX_CHAIN_ID_BYTES + 8 + 8 + 32 + 8 + 32 + 32 + 32 + 4 + SIGNATURE_BYTES

function readHeader(reader: Reader): Header {
  const type = reader.u8('header type')
  if (type !== TYPE_HEADER_V1) throw new DecodeError(`unknown header type 0x${type.toString(16)}`)
  const chainId = readChainId(reader)
  const height = reader.u53('height')
  const slot = reader.u53('slot')
  const parentHash = reader.fixed(32, 'parentHash')
  const timestamp = reader.u53('timestamp')
  const proposer = reader.fixed(KEY_BYTES, 'proposer')
  const txRoot = reader.fixed(32, 'txRoot')
  const stateRoot = reader.fixed(32, 'stateRoot')
  const txCount = reader.count(MAX_BLOCK_TXS, 'txCount')
  const signature = reader.fixed(SIGNATURE_BYTES, 'signature')
  return { chainId, height, slot, parentHash, timestamp, proposer, txRoot, stateRoot, txCount, signature }
}

export function decodeHeader(bytes: Uint8Array): Header {
  if (bytes.length > MAX_HEADER_BYTES) throw new DecodeError('header too large')
  return decodeExact(new Uint8Array(bytes), readHeader, 'header')
}

/** blockHash = SHA-256 of the full header encoding (signature included). */
export function headerHash(header: Header): Uint8Array {
  return sha256(encodeHeader(header))
}

/** Block = header, then each transaction's encoding (self-delimiting), `txCount` of them. */
export function encodeBlock(block: Block): Uint8Array {
  const headerBytes = encodeHeader(block.header)
  let size = headerBytes.length
  for (const signed of block.txs) size += signed.bytes.length
  const writer = new Writer(size)
  writer.raw(headerBytes)
  if (block.txs.length !== block.header.txCount) throw new RangeError('header txCount does not match the transactions')
  for (const signed of block.txs) writer.raw(signed.bytes)
  return writer.finish()
}

/** Encoded size of a block, computed without encoding it. */
export function blockEncodedSize(block: Block): number {
  let size = MAX_HEADER_BYTES - MAX_CHAIN_ID_BYTES + block.header.chainId.length
  for (const signed of block.txs) size += signed.bytes.length
  return size
}

/**
 * Moves past one transaction's fields without decoding them: only the lengths that find its end
 * are read (no strings, bigints or objects). `decodeSignedTx` then decodes and checks it once.
 * Mirrors `readTx`'s layout; the codec tests truncate blocks at every byte, so the two cannot drift.
 */
function skipTx(reader: Reader): void {
  const type = reader.u8('tx type')
  if (type !== TYPE_TX_V1) throw new DecodeError(`unknown transaction type 0x${type.toString(16)}`)
  reader.bytes8(MAX_CHAIN_ID_BYTES, 'chainId')
  reader.fixed(2 * KEY_BYTES + 3 * 8, 'from, to, amount, fee and nonce')
  reader.bytes16(MAX_MEMO_BYTES, 'memo')
  reader.fixed(SIGNATURE_BYTES, 'signature')
}

/**
 * Reads one transaction and returns it with its own copy of its bytes and its id. Its fields are
 * decoded once, from the copy (a frame of 256 txs was decoded twice: in place, then the copy).
 */
export function readSignedTx(reader: Reader): SignedTx {
  const start = reader.position
  skipTx(reader)
  return decodeSignedTx(reader.since(start))
}

export function decodeBlock(bytes: Uint8Array): Block {
  if (bytes.length > MAX_BLOCK_BYTES) throw new DecodeError(`block of ${bytes.length} bytes exceeds ${MAX_BLOCK_BYTES}`)
  return decodeExact(
    bytes,
    (reader) => {
      const headerStart = reader.position
      readHeader(reader)
      const header = decodeHeader(reader.since(headerStart))
      const txs: SignedTx[] = []
      for (let i = 0; i < header.txCount; i++) txs.push(readSignedTx(reader))
      return { header, txs }
    },
    'block',
  )
}

// ---------------------------------------------------------------- genesis

export function encodeGenesis(genesis: Genesis): Uint8Array {
  const writer = new Writer(1024)
  writer.u8(TYPE_GENESIS_V1)
  writeChainId(writer, genesis.chainId)
  writer.u53(genesis.genesisTime).u32(genesis.slotMs)
  assertSortedUnique(genesis.validators, 'validators')
  writer.u32(genesis.validators.length)
  for (const validator of genesis.validators) writer.fixed(validator.address, KEY_BYTES).u64(validator.stake)
  assertSortedUnique(genesis.accounts, 'accounts')
  writer.u32(genesis.accounts.length)
  for (const account of genesis.accounts) writer.fixed(account.address, KEY_BYTES).u64(account.balance)
  const limits = genesis.limits
  writer
    .u32(limits.maxTxBytes)
    .u32(limits.maxMemoBytes)
    .u32(limits.maxBlockTxs)
    .u32(limits.maxBlockBytes)
    .u64(limits.minFee)
    .u32(limits.mempoolMaxTxs)
    .u32(limits.mempoolMaxBytes)
    .u32(limits.mempoolTxTtlMs)
    .u32(limits.maxClockDriftMs)
  return writer.finish()
}

function assertSortedUnique(entries: ReadonlyArray<{ address: Uint8Array }>, what: string): void {
  for (let i = 1; i < entries.length; i++) {
    if (compareBytes((entries[i - 1] as { address: Uint8Array }).address, (entries[i] as { address: Uint8Array }).address) >= 0) {
      throw new RangeError(`genesis ${what} must be sorted by address without duplicates`)
    }
  }
}

export function decodeGenesis(bytes: Uint8Array): Genesis {
  return decodeExact(
    new Uint8Array(bytes),
    (reader) => {
      const type = reader.u8('genesis type')
      if (type !== TYPE_GENESIS_V1) throw new DecodeError(`unknown genesis type 0x${type.toString(16)}`)
      const chainId = readChainId(reader)
      const genesisTime = reader.u53('genesisTime')
      const slotMs = reader.u32('slotMs')
      const validators: GenesisValidator[] = []
      const validatorCount = reader.count(MAX_GENESIS_VALIDATORS, 'validator count')
      for (let i = 0; i < validatorCount; i++) {
        validators.push({ address: reader.fixed(KEY_BYTES, 'validator'), stake: reader.u64('stake') })
      }
      const accounts: GenesisAccount[] = []
      const accountCount = reader.count(MAX_GENESIS_ACCOUNTS, 'account count')
      for (let i = 0; i < accountCount; i++) {
        accounts.push({ address: reader.fixed(KEY_BYTES, 'account'), balance: reader.u64('balance') })
      }
      const limits = {
        maxTxBytes: reader.u32(),
        maxMemoBytes: reader.u32(),
        maxBlockTxs: reader.u32(),
        maxBlockBytes: reader.u32(),
        minFee: reader.u64(),
        mempoolMaxTxs: reader.u32(),
        mempoolMaxBytes: reader.u32(),
        mempoolTxTtlMs: reader.u32(),
        maxClockDriftMs: reader.u32(),
      }
      try {
        assertSortedUnique(validators, 'validators')
        assertSortedUnique(accounts, 'accounts')
      } catch (error) {
        throw new DecodeError((error as Error).message)
      }
      return { chainId, genesisTime, slotMs, validators, accounts, limits }
    },
    'genesis',
  )
}

/** The network's name: SHA-256 of the canonical genesis encoding. */
export function genesisHash(genesis: Genesis): Uint8Array {
  return sha256(encodeGenesis(genesis))
}
