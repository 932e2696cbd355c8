// Canonical codec (src/codec/objects.ts over src/codec/binary.ts): table-driven hex vectors
// written field by field from the layout in the source comments, a list of inputs that must fail
// with DecodeError, and properties over arbitrary bytes, arbitrary values and mutations.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { DecodeError, Reader, Writer } from '../../src/codec/binary.ts'
import { MAX_BLOCK_BYTES, MAX_TX_BYTES } from '../../src/codec/limits.ts'
import {
  MAX_HEADER_BYTES,
  blockEncodedSize,
  decodeBlock,
  decodeGenesis,
  decodeHeader,
  decodeSignedTx,
  decodeTx,
  encodeBlock,
  encodeGenesis,
  encodeHeader,
  encodeTx,
  encodeUnsignedTx,
  headerHash,
  toSignedTx,
  unsignedTxBytes,
} from '../../src/codec/objects.ts'
import { SIGNING_DOMAIN } from '../../src/crypto/sign.ts'
import type { Block, Certificate, Genesis, Header, Transaction, Vote } from '../../src/ledger/types.ts'
import {
  MAX_CERTIFICATE_BYTES,
  MAX_VOTE_BYTES,
  TYPE_VOTE_V1,
  decodeCertificate,
  decodeEvidence,
  decodeVote,
  encodeCertificate,
  encodeEvidence,
  encodeVote,
  makeEvidence,
  voteSigningMessage,
} from '../../src/codec/finality.ts'
import {
  type GossipMessage,
  INV_EVIDENCE,
  INV_VOTE,
  LeafPageWriter,
  MAX_VOTES_PER_MESSAGE,
  type SyncRequest,
  type SyncResponse,
  decodeGossip,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeGossip,
  encodeSyncRequest,
  encodeSyncResponse,
} from '../../src/codec/wire.ts'

// ---------------------------------------------------------------- helpers

/** A plain Uint8Array (not a Buffer), so deep-equal compares like with like. */
const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'))
const toHexString = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** An encoding written as named fields, so truncation can be tested at every field boundary. */
type Segments = Array<[field: string, hex: string]>

const join = (segments: Segments): string => segments.map(([, h]) => h).join('')

function withField(segments: Segments, field: string, replacement: string): Segments {
  let found = false
  const out = segments.map(([name, h]): [string, string] => {
    if (name !== field) return [name, h]
    found = true
    return [name, replacement]
  })
  assert.ok(found, `no field ${field}`)
  return out
}

/** Byte offsets where one field ends and the next begins (0 included, the full length excluded). */
function boundaries(segments: Segments): Array<{ offset: number; before: string }> {
  const out: Array<{ offset: number; before: string }> = []
  let offset = 0
  for (const [name, h] of segments) {
    out.push({ offset, before: name })
    offset += h.length / 2
  }
  return out
}

function assertDecodeError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DecodeError, `expected DecodeError, got ${String(error)}`)
    if (message !== undefined) assert.match(error.message, message)
    return true
  })
}

const ascii = (text: string): string => Buffer.from(text, 'latin1').toString('hex')
const u8hex = (n: number): string => n.toString(16).padStart(2, '0')
const u16hex = (n: number): string => n.toString(16).padStart(4, '0')
const u32hex = (n: number): string => n.toString(16).padStart(8, '0')
const u64hex = (n: bigint): string => n.toString(16).padStart(16, '0')

const SEQ_00_1F = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'
const SEQ_A0_BF = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf'
const SEQ_40_7F =
  '404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f' + '606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f'
const MAX_SAFE = Number.MAX_SAFE_INTEGER
const MAX_U64 = (1n << 64n) - 1n

// ---------------------------------------------------------------- vectors

/** A typical transfer: sequential byte patterns catch swapped or misplaced fields. */
const TX_A: Transaction = {
  chainId: 'test-1',
  from: hex(SEQ_00_1F),
  to: hex(SEQ_A0_BF),
  amount: 1_000_000n,
  fee: 7n,
  nonce: 3,
  memo: hex('6869'),
  signature: hex(SEQ_40_7F),
}
const TX_A_SEGMENTS: Segments = [
  ['type', '01'],
  ['chainId length', '06'],
  ['chainId', '746573742d31'], // "test-1"
  ['from', SEQ_00_1F],
  ['to', SEQ_A0_BF],
  ['amount', '00000000000f4240'], // 1_000_000
  ['fee', '0000000000000007'],
  ['nonce', '0000000000000003'],
  ['memo length', '0002'],
  ['memo', '6869'], // "hi"
  ['signature', SEQ_40_7F],
]

/** Extremes: longest chainId, max amount, zero fee, largest nonce, empty memo. */
const TX_B: Transaction = {
  chainId: 'abcdefghijklmnopqrstuvwxyz012345',
  from: hex('ff'.repeat(32)),
  to: hex('00'.repeat(32)),
  amount: MAX_U64,
  fee: 0n,
  nonce: MAX_SAFE,
  memo: new Uint8Array(0),
  signature: hex('ee'.repeat(64)),
}
const TX_B_SEGMENTS: Segments = [
  ['type', '01'],
  ['chainId length', '20'],
  ['chainId', '6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435'],
  ['from', 'ff'.repeat(32)],
  ['to', '00'.repeat(32)],
  ['amount', 'ffffffffffffffff'],
  ['fee', '0000000000000000'],
  ['nonce', '001fffffffffffff'], // 2^53 - 1
  ['memo length', '0000'],
  ['memo', ''],
  ['signature', 'ee'.repeat(64)],
]

/** The largest memo the codec accepts (256 bytes). */
const TX_C: Transaction = {
  chainId: 'a',
  from: hex('01'.repeat(32)),
  to: hex('02'.repeat(32)),
  amount: 0n,
  fee: 1n,
  nonce: 0,
  memo: hex('5a'.repeat(256)),
  signature: hex('03'.repeat(64)),
}
const TX_C_SEGMENTS: Segments = [
  ['type', '01'],
  ['chainId length', '01'],
  ['chainId', '61'],
  ['from', '01'.repeat(32)],
  ['to', '02'.repeat(32)],
  ['amount', '0000000000000000'],
  ['fee', '0000000000000001'],
  ['nonce', '0000000000000000'],
  ['memo length', '0100'],
  ['memo', '5a'.repeat(256)],
  ['signature', '03'.repeat(64)],
]

const HEADER_A: Header = {
  chainId: 'gv',
  height: 5,
  slot: 9,
  parentHash: hex('aa'.repeat(32)),
  timestamp: 1_700_000_000_123,
  proposer: hex('bb'.repeat(32)),
  txRoot: hex('cc'.repeat(32)),
  stateRoot: hex('dd'.repeat(32)),
  txCount: 2,
  signature: hex(SEQ_40_7F),
}
const HEADER_A_SEGMENTS: Segments = [
  ['type', '02'],
  ['chainId length', '02'],
  ['chainId', '6776'], // "gv"
  ['height', '0000000000000005'],
  ['slot', '0000000000000009'],
  ['parentHash', 'aa'.repeat(32)],
  ['timestamp', '0000018bcfe5687b'], // 1_700_000_000_123
  ['proposer', 'bb'.repeat(32)],
  ['txRoot', 'cc'.repeat(32)],
  ['stateRoot', 'dd'.repeat(32)],
  ['txCount', '00000002'],
  ['signature', SEQ_40_7F],
]

/** Largest heights the number fields can carry; no transactions. */
const HEADER_B: Header = {
  chainId: 'grapevine-devnet',
  height: MAX_SAFE,
  slot: MAX_SAFE,
  parentHash: hex('00'.repeat(32)),
  timestamp: MAX_SAFE,
  proposer: hex(SEQ_00_1F),
  txRoot: hex('00'.repeat(32)),
  stateRoot: hex(SEQ_A0_BF),
  txCount: 0,
  signature: hex('11'.repeat(64)),
}
const HEADER_B_SEGMENTS: Segments = [
  ['type', '02'],
  ['chainId length', '10'],
  ['chainId', '677261706576696e652d6465766e6574'], // "grapevine-devnet"
  ['height', '001fffffffffffff'],
  ['slot', '001fffffffffffff'],
  ['parentHash', '00'.repeat(32)],
  ['timestamp', '001fffffffffffff'],
  ['proposer', SEQ_00_1F],
  ['txRoot', '00'.repeat(32)],
  ['stateRoot', SEQ_A0_BF],
  ['txCount', '00000000'],
  ['signature', '11'.repeat(64)],
]

/** Block = header, then each tx's own (self-delimiting) encoding. */
const BLOCK_A: Block = { header: HEADER_A, txs: [toSignedTx(TX_A), toSignedTx(TX_B)] }
const BLOCK_A_SEGMENTS: Segments = [
  ...HEADER_A_SEGMENTS.map(([name, h]): [string, string] => [`header ${name}`, h]),
  ...TX_A_SEGMENTS.map(([name, h]): [string, string] => [`tx0 ${name}`, h]),
  ...TX_B_SEGMENTS.map(([name, h]): [string, string] => [`tx1 ${name}`, h]),
]
const BLOCK_B: Block = { header: HEADER_B, txs: [] }
const BLOCK_B_SEGMENTS: Segments = HEADER_B_SEGMENTS.map(([name, h]): [string, string] => [`header ${name}`, h])

const GENESIS_A: Genesis = {
  chainId: 'g',
  genesisTime: 1_700_000_000_000,
  slotMs: 1000,
  validators: [
    { address: hex('11'.repeat(32)), stake: 100n },
    { address: hex('22'.repeat(32)), stake: 300n },
  ],
  accounts: [{ address: hex('33'.repeat(32)), balance: 1_000_000_000_000n }],
  limits: {
    maxTxBytes: 444,
    maxMemoBytes: 256,
    maxBlockTxs: 5000,
    maxBlockBytes: 2 * 1024 * 1024,
    minFee: 1n,
    mempoolMaxTxs: 50_000,
    mempoolMaxBytes: 32 * 1024 * 1024,
    mempoolTxTtlMs: 600_000,
    maxClockDriftMs: 500,
  },
}
const GENESIS_A_SEGMENTS: Segments = [
  ['type', '03'],
  ['chainId length', '01'],
  ['chainId', '67'], // "g"
  ['genesisTime', '0000018bcfe56800'], // 1_700_000_000_000
  ['slotMs', '000003e8'], // 1000
  ['validator count', '00000002'],
  ['validator 0 address', '11'.repeat(32)],
  ['validator 0 stake', '0000000000000064'], // 100
  ['validator 1 address', '22'.repeat(32)],
  ['validator 1 stake', '000000000000012c'], // 300
  ['account count', '00000001'],
  ['account 0 address', '33'.repeat(32)],
  ['account 0 balance', '000000e8d4a51000'], // 10^12
  ['maxTxBytes', '000001bc'], // 444
  ['maxMemoBytes', '00000100'], // 256
  ['maxBlockTxs', '00001388'], // 5000
  ['maxBlockBytes', '00200000'], // 2 MiB
  ['minFee', '0000000000000001'],
  ['mempoolMaxTxs', '0000c350'], // 50_000
  ['mempoolMaxBytes', '02000000'], // 32 MiB
  ['mempoolTxTtlMs', '000927c0'], // 600_000
  ['maxClockDriftMs', '000001f4'], // 500
]

/** Empty lists and zero limits still encode (the codec bounds shape, validation bounds values). */
const GENESIS_B: Genesis = {
  chainId: '0',
  genesisTime: 0,
  slotMs: 0xffffffff,
  validators: [],
  accounts: [],
  limits: {
    maxTxBytes: 0,
    maxMemoBytes: 0,
    maxBlockTxs: 0,
    maxBlockBytes: 0,
    minFee: MAX_U64,
    mempoolMaxTxs: 0,
    mempoolMaxBytes: 0,
    mempoolTxTtlMs: 0,
    maxClockDriftMs: 0xffffffff,
  },
}
const GENESIS_B_SEGMENTS: Segments = [
  ['type', '03'],
  ['chainId length', '01'],
  ['chainId', '30'], // "0"
  ['genesisTime', '0000000000000000'],
  ['slotMs', 'ffffffff'],
  ['validator count', '00000000'],
  ['account count', '00000000'],
  ['maxTxBytes', '00000000'],
  ['maxMemoBytes', '00000000'],
  ['maxBlockTxs', '00000000'],
  ['maxBlockBytes', '00000000'],
  ['minFee', 'ffffffffffffffff'],
  ['mempoolMaxTxs', '00000000'],
  ['mempoolMaxBytes', '00000000'],
  ['mempoolTxTtlMs', '00000000'],
  ['maxClockDriftMs', 'ffffffff'],
]

interface Kind<T> {
  name: string
  encode: (value: T) => Uint8Array
  decode: (bytes: Uint8Array) => T
  /** What deep-equal compares (a block's txs carry their id as a Buffer; compare the essentials). */
  view?: (value: T) => unknown
}

const TX_KIND: Kind<Transaction> = { name: 'transaction', encode: encodeTx, decode: decodeTx }
const HEADER_KIND: Kind<Header> = { name: 'header', encode: encodeHeader, decode: decodeHeader }
const blockView = (block: Block) => ({
  header: block.header,
  txs: block.txs.map((s) => ({ tx: s.tx, bytes: toHexString(s.bytes), id: toHexString(s.id), idHex: s.idHex })),
})
const BLOCK_KIND: Kind<Block> = { name: 'block', encode: encodeBlock, decode: decodeBlock, view: blockView }
const GENESIS_KIND: Kind<Genesis> = { name: 'genesis', encode: encodeGenesis, decode: decodeGenesis }

interface Vector {
  name: string
  segments: Segments
  /** Encodes the value, compares with the pinned bytes, decodes them and compares with the value. */
  check: () => void
}

function vector<T>(name: string, kind: Kind<T>, value: T, segments: Segments): Vector {
  const check = () => {
    const expected = join(segments)
    const encoded = kind.encode(value)
    assert.equal(toHexString(encoded), expected)
    const decoded = kind.decode(hex(expected))
    const view = kind.view ?? ((v: T) => v)
    assert.deepEqual(view(decoded), view(value))
    assert.equal(toHexString(kind.encode(decoded)), expected)
  }
  return { name, segments, check }
}

const VECTORS: Vector[] = [
  vector('tx: typical transfer', TX_KIND, TX_A, TX_A_SEGMENTS),
  vector('tx: extremes, empty memo', TX_KIND, TX_B, TX_B_SEGMENTS),
  vector('tx: 256-byte memo', TX_KIND, TX_C, TX_C_SEGMENTS),
  vector('header: typical', HEADER_KIND, HEADER_A, HEADER_A_SEGMENTS),
  vector('header: max numbers', HEADER_KIND, HEADER_B, HEADER_B_SEGMENTS),
  vector('block: two txs', BLOCK_KIND, BLOCK_A, BLOCK_A_SEGMENTS),
  vector('block: empty', BLOCK_KIND, BLOCK_B, BLOCK_B_SEGMENTS),
  vector('genesis: typical', GENESIS_KIND, GENESIS_A, GENESIS_A_SEGMENTS),
  vector('genesis: empty lists', GENESIS_KIND, GENESIS_B, GENESIS_B_SEGMENTS),
]

// ---------------------------------------------------------------- tests

describe('codec vectors', () => {
  for (const vector of VECTORS) {
    it(`${vector.name}: encode gives the pinned bytes, decode gives the value back`, vector.check)
  }

  it('sizes of the vectors follow the layout', () => {
    assert.equal(join(TX_A_SEGMENTS).length / 2, 1 + 1 + 6 + 32 + 32 + 8 + 8 + 8 + 2 + 2 + 64)
    assert.equal(join(TX_B_SEGMENTS).length / 2, MAX_TX_BYTES - 256, 'longest chainId, empty memo')
    assert.equal(join(HEADER_A_SEGMENTS).length / 2, MAX_HEADER_BYTES - 30, 'a 2-char chainId is 30 short of the longest')
    assert.equal(blockEncodedSize(BLOCK_A), join(BLOCK_A_SEGMENTS).length / 2)
    assert.equal(blockEncodedSize(BLOCK_B), join(BLOCK_B_SEGMENTS).length / 2)
  })

  it('the unsigned encoding is the signed one without the trailing signature, and txid is SHA-256 of the bytes', () => {
    const full = join(TX_A_SEGMENTS)
    assert.equal(toHexString(encodeUnsignedTx(TX_A)), full.slice(0, full.length - 128))
    const signed = toSignedTx(TX_A)
    assert.equal(toHexString(unsignedTxBytes(signed)), full.slice(0, full.length - 128))
    assert.equal(signed.idHex, sha256Hex(hex(full)))
    assert.equal(toHexString(signed.id), signed.idHex)
    const decoded = decodeSignedTx(hex(full))
    assert.equal(decoded.idHex, signed.idHex)
    assert.equal(toHexString(headerHash(HEADER_A)), sha256Hex(hex(join(HEADER_A_SEGMENTS))))
  })

  it('decoded signed txs, headers and genesis own copies of their bytes, also when given a Buffer', () => {
    // A frame from the network or a file may be a Buffer, whose .slice() is a view, not a copy.
    const frames = (payload: string) => [hex(payload + 'ffff'), Buffer.from(payload + 'ffff', 'hex')]
    for (const frame of frames(join(TX_A_SEGMENTS))) {
      const signed = decodeSignedTx(frame.subarray(0, frame.length - 2))
      frame.fill(0)
      assert.equal(toHexString(signed.bytes), join(TX_A_SEGMENTS))
      assert.deepEqual(signed.tx, TX_A)
      // Its own buffer: the signing domain then the encoding (the signed message is a view of it).
      assert.notEqual(signed.bytes.buffer, frame.buffer, 'the frame is not retained')
      assert.equal(signed.bytes.buffer.byteLength, SIGNING_DOMAIN.length + signed.bytes.length, 'no larger buffer retained')
    }
    for (const frame of frames(join(HEADER_A_SEGMENTS))) {
      const header = decodeHeader(frame.subarray(0, frame.length - 2))
      frame.fill(0)
      assert.deepEqual(header, HEADER_A)
    }
    for (const frame of frames(join(GENESIS_A_SEGMENTS))) {
      const genesis = decodeGenesis(frame.subarray(0, frame.length - 2))
      frame.fill(0)
      assert.deepEqual(genesis, GENESIS_A)
    }
  })

  it('the encoders refuse values that have no canonical encoding', () => {
    assert.throws(() => encodeTx({ ...TX_A, chainId: 'Bad' }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, chainId: 'a'.repeat(33) }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, memo: new Uint8Array(257) }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, nonce: MAX_SAFE + 1 }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, nonce: -1 }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, amount: MAX_U64 + 1n }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, fee: -1n }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, from: new Uint8Array(31) }), RangeError)
    assert.throws(() => encodeTx({ ...TX_A, signature: new Uint8Array(63) }), RangeError)
    assert.throws(() => encodeHeader({ ...HEADER_A, height: 1.5 }), RangeError)
    assert.throws(() => encodeBlock({ header: HEADER_A, txs: [toSignedTx(TX_A)] }), RangeError)
    const [v0, v1] = GENESIS_A.validators as [Genesis['validators'][number], Genesis['validators'][number]]
    assert.throws(() => encodeGenesis({ ...GENESIS_A, validators: [v1, v0] }), RangeError)
    assert.throws(() => encodeGenesis({ ...GENESIS_A, validators: [v0, v0] }), RangeError)
  })
})

describe('codec: invalid inputs fail with DecodeError', () => {
  const cases: Array<{ name: string; decode: (bytes: Uint8Array) => unknown; segments: Segments }> = [
    { name: 'tx', decode: decodeTx, segments: TX_A_SEGMENTS },
    { name: 'tx (extremes)', decode: decodeTx, segments: TX_B_SEGMENTS },
    { name: 'tx (max memo)', decode: decodeTx, segments: TX_C_SEGMENTS },
    { name: 'header', decode: decodeHeader, segments: HEADER_A_SEGMENTS },
    { name: 'block', decode: decodeBlock, segments: BLOCK_A_SEGMENTS },
    { name: 'empty block', decode: decodeBlock, segments: BLOCK_B_SEGMENTS },
    { name: 'genesis', decode: decodeGenesis, segments: GENESIS_A_SEGMENTS },
    { name: 'genesis (empty lists)', decode: decodeGenesis, segments: GENESIS_B_SEGMENTS },
  ]

  for (const { name, decode, segments } of cases) {
    it(`${name}: truncated at every field boundary`, () => {
      const full = hex(join(segments))
      const cuts = boundaries(segments)
      assert.ok(cuts.length >= 10)
      for (const { offset, before } of cuts) {
        assert.throws(
          () => decode(full.slice(0, offset)),
          (error: unknown) => error instanceof DecodeError && /truncated/.test(error.message),
          `cut before ${before} (byte ${offset})`,
        )
      }
    })

    it(`${name}: truncated at every byte`, () => {
      const full = hex(join(segments))
      for (let length = 0; length < full.length; length++) assertDecodeError(() => decode(full.slice(0, length)))
    })

    it(`${name}: trailing bytes`, () => {
      assertDecodeError(() => decode(hex(join(segments) + '00')), /trailing|exceeds|too large/)
      assertDecodeError(() => decode(hex(join(segments) + join(segments))), /trailing|exceeds|too large/)
    })
  }

  it('wrong type byte', () => {
    for (const type of [0x00, 0x02, 0x03, 0x04, 0x81, 0xff]) {
      assertDecodeError(() => decodeTx(hex(join(withField(TX_A_SEGMENTS, 'type', u8hex(type))))), /unknown transaction type/)
    }
    for (const type of [0x00, 0x01, 0x03, 0xff]) {
      assertDecodeError(() => decodeHeader(hex(join(withField(HEADER_A_SEGMENTS, 'type', u8hex(type))))), /unknown header type/)
      assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, 'header type', u8hex(type))))), /unknown header type/)
    }
    for (const type of [0x00, 0x02, 0x03, 0xff]) {
      assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, 'tx1 type', u8hex(type))))), /unknown transaction type/)
    }
    for (const type of [0x00, 0x01, 0x02, 0xff]) {
      assertDecodeError(() => decodeGenesis(hex(join(withField(GENESIS_A_SEGMENTS, 'type', u8hex(type))))), /unknown genesis type/)
    }
    // Each object's bytes fed to another decoder.
    assertDecodeError(() => decodeTx(hex(join(HEADER_A_SEGMENTS))))
    assertDecodeError(() => decodeHeader(hex(join(TX_A_SEGMENTS))))
    assertDecodeError(() => decodeGenesis(hex(join(TX_A_SEGMENTS))))
    assertDecodeError(() => decodeBlock(hex(join(GENESIS_A_SEGMENTS))))
  })

  const badChainIds = ['Test-1', 'TEST', '-est-1', '.est-1', '_est', 'te t-1', 'te/t-1', 'tést', 'te\x80t', 'test\x00', 'tes+', ' test']
  const chainIdCases: Array<{ name: string; decode: (bytes: Uint8Array) => unknown; segments: Segments; length: string; id: string }> = [
    { name: 'tx', decode: decodeTx, segments: TX_A_SEGMENTS, length: 'chainId length', id: 'chainId' },
    { name: 'header', decode: decodeHeader, segments: HEADER_A_SEGMENTS, length: 'chainId length', id: 'chainId' },
    { name: 'block', decode: decodeBlock, segments: BLOCK_A_SEGMENTS, length: 'header chainId length', id: 'header chainId' },
    { name: 'block tx', decode: decodeBlock, segments: BLOCK_A_SEGMENTS, length: 'tx0 chainId length', id: 'tx0 chainId' },
    { name: 'genesis', decode: decodeGenesis, segments: GENESIS_A_SEGMENTS, length: 'chainId length', id: 'chainId' },
  ]
  for (const { name, decode, segments, length, id } of chainIdCases) {
    it(`${name}: chainId with bad characters, empty, or too long`, () => {
      for (const bad of badChainIds) {
        const raw = ascii(bad)
        const bytes = hex(join(withField(withField(segments, length, u8hex(raw.length / 2)), id, raw)))
        assertDecodeError(() => decode(bytes), /chainId must be/)
      }
      assertDecodeError(() => decode(hex(join(withField(withField(segments, length, '00'), id, '')))), /chainId must be/)
      const tooLong = ascii('a'.repeat(33))
      // (decodeHeader refuses a header that long on its total size first.)
      assertDecodeError(() => decode(hex(join(withField(withField(segments, length, '21'), id, tooLong)))), /chainId length 33 exceeds limit 32|header too large/)
      assertDecodeError(() => decode(hex(join(withField(withField(segments, length, 'ff'), id, ascii('a'.repeat(255)))))), /exceeds|too large/)
      // The longest valid chainId still decodes.
      const longest = ascii('z'.repeat(32))
      decode(hex(join(withField(withField(segments, length, '20'), id, longest))))
    })
  }

  it('tx: memo length over 256', () => {
    const over = withField(withField(TX_C_SEGMENTS, 'memo length', u16hex(257)), 'memo', '5a'.repeat(257))
    assertDecodeError(() => decodeTx(hex(join(over))), /memo length 257 exceeds limit 256/)
    // Refused on the length alone, before reading (or allocating for) the memo.
    const huge = withField(withField(TX_A_SEGMENTS, 'memo length', 'ffff'), 'memo', '')
    assertDecodeError(() => decodeTx(hex(join(huge))), /memo length 65535 exceeds limit 256/)
  })

  it('tx: larger than MAX_TX_BYTES is refused before decoding', () => {
    assertDecodeError(() => decodeTx(new Uint8Array(MAX_TX_BYTES + 1)), /exceeds/)
    const maximal = hex(join(withField(withField(withField(withField(TX_C_SEGMENTS, 'chainId length', '20'), 'chainId', ascii('a'.repeat(32))), 'memo length', '0100'), 'memo', '00'.repeat(256))))
    assert.equal(maximal.length, MAX_TX_BYTES)
    decodeTx(maximal)
  })

  it('header: larger than MAX_HEADER_BYTES is refused; block larger than MAX_BLOCK_BYTES is refused', () => {
    assertDecodeError(() => decodeHeader(new Uint8Array(MAX_HEADER_BYTES + 1)), /too large/)
    const block = new Uint8Array(MAX_BLOCK_BYTES + 1)
    block.set(hex(join(BLOCK_A_SEGMENTS)))
    assertDecodeError(() => decodeBlock(block), /exceeds/)
  })

  it('u64 numbers above 2^53 - 1 (nonce, height, slot, timestamp, genesisTime)', () => {
    const tooBig = ['0020000000000000', '8000000000000000', 'ffffffffffffffff']
    for (const value of tooBig) {
      assertDecodeError(() => decodeTx(hex(join(withField(TX_A_SEGMENTS, 'nonce', value)))), /nonce above 2\^53 - 1/)
      for (const field of ['height', 'slot', 'timestamp']) {
        assertDecodeError(() => decodeHeader(hex(join(withField(HEADER_A_SEGMENTS, field, value)))), new RegExp(`${field} above 2\\^53 - 1`))
        assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, `header ${field}`, value)))), /above 2\^53 - 1/)
      }
      assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, 'tx0 nonce', value)))), /nonce above 2\^53 - 1/)
      assertDecodeError(() => decodeGenesis(hex(join(withField(GENESIS_A_SEGMENTS, 'genesisTime', value)))), /genesisTime above 2\^53 - 1/)
    }
    // Amounts are full u64: 2^64 - 1 is fine there.
    assert.equal(decodeTx(hex(join(withField(TX_A_SEGMENTS, 'amount', 'ffffffffffffffff')))).amount, MAX_U64)
    assert.equal(decodeTx(hex(join(withField(TX_A_SEGMENTS, 'nonce', u64hex(BigInt(MAX_SAFE)))))).nonce, MAX_SAFE)
  })

  it('block: txCount that does not match the bytes', () => {
    // More announced than present: runs out of bytes.
    assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, 'header txCount', '00000003')))), /truncated/)
    // Fewer announced than present: the rest is trailing.
    assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, 'header txCount', '00000001')))), /trailing/)
    assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, 'header txCount', '00000000')))), /trailing/)
    // An empty block that claims a transaction.
    assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_B_SEGMENTS, 'header txCount', '00000001')))), /truncated/)
    // Above the protocol maximum: refused on the count alone, before any tx is read.
    assertDecodeError(() => decodeBlock(hex(join(withField(BLOCK_A_SEGMENTS, 'header txCount', u32hex(20_001))))), /txCount 20001 exceeds limit 20000/)
    assertDecodeError(() => decodeHeader(hex(join(withField(HEADER_A_SEGMENTS, 'txCount', 'ffffffff')))), /exceeds limit/)
  })

  it('genesis: unsorted or duplicate addresses', () => {
    const swapValidators = withField(withField(GENESIS_A_SEGMENTS, 'validator 0 address', '22'.repeat(32)), 'validator 1 address', '11'.repeat(32))
    assertDecodeError(() => decodeGenesis(hex(join(swapValidators))), /validators must be sorted/)
    const duplicateValidator = withField(GENESIS_A_SEGMENTS, 'validator 1 address', '11'.repeat(32))
    assertDecodeError(() => decodeGenesis(hex(join(duplicateValidator))), /validators must be sorted/)

    const twoAccounts = (first: string, second: string): Segments => {
      const out: Segments = []
      for (const segment of withField(GENESIS_A_SEGMENTS, 'account count', '00000002')) {
        if (segment[0] === 'account 0 address') {
          out.push(['account 0 address', first], ['account 0 balance', '0000000000000001'], ['account 1 address', second])
          continue
        }
        out.push(segment)
      }
      return out
    }
    // The helper itself builds a valid genesis when the order is right.
    assert.equal(decodeGenesis(hex(join(twoAccounts('33'.repeat(32), '34'.repeat(32))))).accounts.length, 2)
    assertDecodeError(() => decodeGenesis(hex(join(twoAccounts('34'.repeat(32), '33'.repeat(32))))), /accounts must be sorted/)
    assertDecodeError(() => decodeGenesis(hex(join(twoAccounts('33'.repeat(32), '33'.repeat(32))))), /accounts must be sorted/)
  })

  it('genesis: counts above the limits fail on the count, before reading or allocating entries', () => {
    const at = (field: string, count: number) => hex(join(withField(GENESIS_A_SEGMENTS, field, u32hex(count))))
    assertDecodeError(() => decodeGenesis(at('validator count', 1_025)), /validator count 1025 exceeds limit 1024/)
    assertDecodeError(() => decodeGenesis(at('validator count', 0xffffffff)), /validator count 4294967295 exceeds limit 1024/)
    assertDecodeError(() => decodeGenesis(at('account count', 1_000_001)), /account count 1000001 exceeds limit 1000000/)
    assertDecodeError(() => decodeGenesis(at('account count', 0xffffffff)), /exceeds limit/)
    // At the limit the count is accepted and the input simply runs out.
    assertDecodeError(() => decodeGenesis(at('validator count', 1_024)), /truncated/)
    assertDecodeError(() => decodeGenesis(at('account count', 1_000_000)), /truncated/)
  })
})

describe('binary primitives', () => {
  it('Reader bounds lengths before reading and refuses trailing bytes', () => {
    assertDecodeError(() => new Reader(hex('05')).bytes8(4, 'x'), /x length 5 exceeds limit 4/)
    assertDecodeError(() => new Reader(hex('0005')).bytes16(4, 'x'), /exceeds limit/)
    assertDecodeError(() => new Reader(hex('00000005')).bytes32(4, 'x'), /exceeds limit/)
    assertDecodeError(() => new Reader(hex('0004aabb')).bytes16(4, 'x'), /truncated/)
    assertDecodeError(() => new Reader(hex('00000005')).count(4), /exceeds limit 4/)
    const reader = new Reader(hex('0102'))
    reader.u8()
    assertDecodeError(() => reader.end(), /1 trailing bytes/)
    assertDecodeError(() => new Reader(hex('0020000000000000')).u53(), /above 2\^53 - 1/)
    assert.equal(new Reader(hex('001fffffffffffff')).u53(), MAX_SAFE)
  })

  it('Writer writes big-endian fixed-width integers and refuses out-of-range values', () => {
    const bytes = new Writer(1).u8(1).u16(0x0203).u32(0x04050607).u64(0x08090a0b0c0d0e0fn).bytes8(hex('aa')).bytes16(hex('bb')).bytes32(hex('cc')).finish()
    assert.equal(toHexString(bytes), '01' + '0203' + '04050607' + '08090a0b0c0d0e0f' + '01aa' + '0001bb' + '00000001cc')
    assert.throws(() => new Writer().u8(256), RangeError)
    assert.throws(() => new Writer().u16(-1), RangeError)
    assert.throws(() => new Writer().u32(2 ** 32), RangeError)
    assert.throws(() => new Writer().u53(2 ** 53), RangeError)
    assert.throws(() => new Writer().u64(1n << 64n), RangeError)
    assert.throws(() => new Writer().bytes8(new Uint8Array(256)), RangeError)
  })
})

// ---------------------------------------------------------------- properties

/** fc.record may build null-prototype objects, which deep-equal tells apart from decoded ones. */
const NO_NULL_PROTO = { noNullPrototype: true } as const
const chainIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,31}$/)
const bytesArb = (length: number) => fc.uint8Array({ minLength: length, maxLength: length })
const u64Arb = fc.bigInt({ min: 0n, max: MAX_U64 })
const u32Arb = fc.integer({ min: 0, max: 0xffffffff })
const u53Arb = fc.oneof(fc.nat(1000), fc.maxSafeNat())

const txArb: fc.Arbitrary<Transaction> = fc.record({
  chainId: chainIdArb,
  from: bytesArb(32),
  to: bytesArb(32),
  amount: u64Arb,
  fee: u64Arb,
  nonce: u53Arb,
  memo: fc.uint8Array({ maxLength: 256 }),
  signature: bytesArb(64),
}, NO_NULL_PROTO)

const headerArb = (txCount: fc.Arbitrary<number>): fc.Arbitrary<Header> =>
  fc.record({
    chainId: chainIdArb,
    height: u53Arb,
    slot: u53Arb,
    parentHash: bytesArb(32),
    timestamp: u53Arb,
    proposer: bytesArb(32),
    txRoot: bytesArb(32),
    stateRoot: bytesArb(32),
    txCount,
    signature: bytesArb(64),
  }, NO_NULL_PROTO)

const blockArb: fc.Arbitrary<Block> = fc
  .tuple(headerArb(fc.constant(0)), fc.array(txArb, { maxLength: 3 }))
  .map(([header, txs]) => ({ header: { ...header, txCount: txs.length }, txs: txs.map(toSignedTx) }))

const sortedUnique = <T extends { address: Uint8Array }>(entries: T[]): T[] =>
  [...entries].sort((a, b) => Buffer.compare(a.address, b.address))

const limitsArb = fc.record(
  {
    maxTxBytes: u32Arb,
    maxMemoBytes: u32Arb,
    maxBlockTxs: u32Arb,
    maxBlockBytes: u32Arb,
    minFee: u64Arb,
    mempoolMaxTxs: u32Arb,
    mempoolMaxBytes: u32Arb,
    mempoolTxTtlMs: u32Arb,
    maxClockDriftMs: u32Arb,
  },
  NO_NULL_PROTO,
)

const genesisArb: fc.Arbitrary<Genesis> = fc.record(
  {
    chainId: chainIdArb,
    genesisTime: u53Arb,
    slotMs: u32Arb,
    validators: fc
      .uniqueArray(fc.record({ address: bytesArb(32), stake: u64Arb }, NO_NULL_PROTO), { maxLength: 4, selector: (v) => toHexString(v.address) })
      .map(sortedUnique),
    accounts: fc
      .uniqueArray(fc.record({ address: bytesArb(32), balance: u64Arb }, NO_NULL_PROTO), { maxLength: 4, selector: (a) => toHexString(a.address) })
      .map(sortedUnique),
    limits: limitsArb,
  },
  NO_NULL_PROTO,
)

const DECODERS: Array<{ name: string; decode: (bytes: Uint8Array) => unknown; encode: (value: never) => Uint8Array }> = [
  { name: 'tx', decode: decodeTx, encode: encodeTx },
  { name: 'header', decode: decodeHeader, encode: encodeHeader },
  { name: 'block', decode: decodeBlock, encode: encodeBlock },
  { name: 'genesis', decode: decodeGenesis, encode: encodeGenesis },
]

/** The codec's contract on any input: DecodeError, or a value that re-encodes to exactly these bytes. */
function checkCanonical(bytes: Uint8Array, only?: string): void {
  for (const { name, decode, encode } of DECODERS) {
    if (only !== undefined && name !== only) continue
    let value: unknown
    try {
      value = decode(bytes)
    } catch (error) {
      if (!(error instanceof DecodeError)) throw new Error(`${name}: threw ${String(error)} instead of DecodeError`)
      continue
    }
    assert.equal(toHexString((encode as (value: unknown) => Uint8Array)(value)), toHexString(bytes), `${name} re-encoding differs`)
  }
}

/** Arbitrary bytes, some starting like a real object so decoding gets past the first fields. */
const inputArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc
    .tuple(fc.constantFrom(0x01, 0x02, 0x03), chainIdArb, fc.uint8Array({ maxLength: 400 }))
    .map(([type, chainId, rest]) => new Uint8Array([type, chainId.length, ...Buffer.from(chainId, 'latin1'), ...rest])),
)

type Mutation = { kind: 'flip'; at: number; mask: number } | { kind: 'insert'; at: number; byte: number } | { kind: 'delete'; at: number }

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }, NO_NULL_PROTO),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }, NO_NULL_PROTO),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }, NO_NULL_PROTO),
)

function mutate(bytes: Uint8Array, mutation: Mutation): Uint8Array {
  const out = [...bytes]
  if (mutation.kind === 'flip') {
    const at = mutation.at % out.length
    out[at] = (out[at] as number) ^ mutation.mask
  } else if (mutation.kind === 'insert') {
    out.splice(mutation.at % (out.length + 1), 0, mutation.byte)
  } else {
    out.splice(mutation.at % out.length, 1)
  }
  return new Uint8Array(out)
}

describe('codec properties', () => {
  it('any byte string: every decoder throws DecodeError or re-encodes to the same bytes', () => {
    fc.assert(fc.property(inputArb, (bytes) => checkCanonical(bytes)), { numRuns: 300 })
  })

  it('valid transactions, headers, blocks and genesis values round-trip', () => {
    fc.assert(
      fc.property(txArb, (tx) => {
        const bytes = encodeTx(tx)
        assert.deepEqual(decodeTx(bytes), tx)
        assert.equal(decodeSignedTx(bytes).idHex, sha256Hex(bytes))
      }),
      { numRuns: 300 },
    )
    fc.assert(
      fc.property(headerArb(fc.integer({ min: 0, max: 20_000 })), (header) => assert.deepEqual(decodeHeader(encodeHeader(header)), header)),
      { numRuns: 200 },
    )
    fc.assert(
      fc.property(blockArb, (block) => {
        const bytes = encodeBlock(block)
        assert.equal(bytes.length, blockEncodedSize(block))
        assert.deepEqual(blockView(decodeBlock(bytes)), blockView(block))
      }),
      { numRuns: 150 },
    )
    fc.assert(
      fc.property(genesisArb, (genesis) => assert.deepEqual(decodeGenesis(encodeGenesis(genesis)), genesis)),
      { numRuns: 150 },
    )
  })

  it('mutations of a valid encoding fail with DecodeError or re-encode identically', () => {
    const cases: Array<{ name: string; arb: fc.Arbitrary<Uint8Array> }> = [
      { name: 'tx', arb: txArb.map(encodeTx) },
      { name: 'header', arb: headerArb(fc.integer({ min: 0, max: 20_000 })).map(encodeHeader) },
      { name: 'block', arb: blockArb.map(encodeBlock) },
      { name: 'genesis', arb: genesisArb.map(encodeGenesis) },
    ]
    for (const { name, arb } of cases) {
      fc.assert(
        fc.property(arb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (bytes, mutations) => {
          let mutated = bytes
          for (const mutation of mutations) if (mutated.length > 0) mutated = mutate(mutated, mutation)
          checkCanonical(mutated, name)
        }),
        { numRuns: 200 },
      )
    }
  })
})

// ---------------------------------------------------------------- finality objects and messages

describe('finality codec vectors', () => {
  const chainHex = u8hex(4) + ascii('test')
  const voteSegments: Segments = [
    ['type', '04'],
    ['chainId', chainHex],
    ['height', u64hex(7n)],
    ['blockHash', SEQ_00_1F],
    ['validatorIndex', u16hex(3)],
    ['signature', SEQ_A0_BF + SEQ_A0_BF],
  ]
  const vote: Vote = { chainId: 'test', height: 7, blockHash: hex(SEQ_00_1F), validatorIndex: 3, signature: hex(SEQ_A0_BF + SEQ_A0_BF) }
  const otherVote: Vote = { ...vote, blockHash: hex(SEQ_A0_BF) }
  const certificate: Certificate = {
    height: 7,
    blockHash: hex(SEQ_00_1F),
    signatures: [
      { validatorIndex: 0, signature: hex(SEQ_A0_BF + SEQ_A0_BF) },
      { validatorIndex: 5, signature: hex(SEQ_00_1F + SEQ_00_1F) },
    ],
  }
  const certificateSegments: Segments = [
    ['type', '06'],
    ['height', u64hex(7n)],
    ['blockHash', SEQ_00_1F],
    ['count', u16hex(2)],
    ['index0', u16hex(0)],
    ['signature0', SEQ_A0_BF + SEQ_A0_BF],
    ['index1', u16hex(5)],
    ['signature1', SEQ_00_1F + SEQ_00_1F],
  ]

  const vectors: Array<{ name: string; bytes: string; roundTrip: () => Uint8Array; decode: (bytes: Uint8Array) => unknown; value: unknown }> = [
    { name: 'vote', bytes: join(voteSegments), roundTrip: () => encodeVote(vote), decode: decodeVote, value: vote },
    {
      name: 'evidence',
      bytes: '05' + join(voteSegments) + join(withField(voteSegments, 'blockHash', SEQ_A0_BF)),
      roundTrip: () => encodeEvidence(makeEvidence(otherVote, vote)),
      decode: decodeEvidence,
      value: { first: vote, second: otherVote },
    },
    { name: 'certificate', bytes: join(certificateSegments), roundTrip: () => encodeCertificate(certificate), decode: decodeCertificate, value: certificate },
  ]
  for (const vector of vectors) {
    it(`${vector.name}: encode → bytes → decode`, () => {
      assert.equal(toHexString(vector.roundTrip()), vector.bytes)
      assert.deepEqual(vector.decode(hex(vector.bytes)), vector.value)
    })
  }

  it('the vote signing message is the domain tag, then type, chainId, height and block hash', () => {
    const expected = toHexString(SIGNING_DOMAIN) + '04' + chainHex + u64hex(7n) + SEQ_00_1F
    assert.equal(toHexString(voteSigningMessage('test', 7, hex(SEQ_00_1F))), expected)
    // A vote tag distinct from the transaction (0x01), header (0x02) and genesis (0x03) tags.
    assert.notEqual(TYPE_VOTE_V1, 0x01)
    assert.notEqual(TYPE_VOTE_V1, 0x02)
    assert.notEqual(TYPE_VOTE_V1, 0x03)
  })

  const invalid: Array<[string, () => unknown]> = [
    ['vote: unknown type', () => decodeVote(hex(join(withField(voteSegments, 'type', '01'))))],
    ['vote: validator index ≥ 1,024', () => decodeVote(hex(join(withField(voteSegments, 'validatorIndex', u16hex(1024)))))],
    ['vote: trailing byte', () => decodeVote(hex(join(voteSegments) + '00'))],
    ['vote: bad chainId', () => decodeVote(hex(join(withField(voteSegments, 'chainId', u8hex(4) + ascii('TEST')))))],
    ['vote: height above 2^53 - 1', () => decodeVote(hex(join(withField(voteSegments, 'height', 'ffffffffffffffff'))))],
    ['vote: too long before decoding', () => decodeVote(new Uint8Array(MAX_VOTE_BYTES + 1))],
    ['evidence: same block twice', () => decodeEvidence(hex('05' + join(voteSegments) + join(voteSegments)))],
    ['evidence: hashes descending', () => decodeEvidence(hex('05' + join(withField(voteSegments, 'blockHash', SEQ_A0_BF)) + join(voteSegments)))],
    [
      'evidence: two validators',
      () => decodeEvidence(hex('05' + join(voteSegments) + join(withField(withField(voteSegments, 'blockHash', SEQ_A0_BF), 'validatorIndex', u16hex(4))))),
    ],
    ['certificate: no signatures', () => decodeCertificate(hex('06' + u64hex(7n) + SEQ_00_1F + u16hex(0)))],
    ['certificate: indexes not ascending', () => decodeCertificate(hex(join(withField(certificateSegments, 'index1', u16hex(0)))))],
    ['certificate: count above the entries', () => decodeCertificate(hex(join(withField(certificateSegments, 'count', u16hex(3)))))],
    ['certificate: count above 1,024', () => decodeCertificate(hex('06' + u64hex(7n) + SEQ_00_1F + u16hex(1025)))],
    ['certificate: too long before decoding', () => decodeCertificate(new Uint8Array(MAX_CERTIFICATE_BYTES + 1))],
  ]
  for (const [name, fn] of invalid) it(`refuses ${name}`, () => assertDecodeError(fn))

  it('refuses every truncation of each vector', () => {
    for (const vector of vectors) {
      const bytes = hex(vector.bytes)
      for (let length = 0; length < bytes.length; length++) assertDecodeError(() => vector.decode(bytes.subarray(0, length)))
    }
  })

  it('wire: votes, evidence, inventory kinds 4 and 5, getFinality and finality round-trip', () => {
    const header: Header = {
      chainId: 'test',
      height: 7,
      slot: 9,
      parentHash: hex(SEQ_00_1F),
      timestamp: 1_700_000_000_000,
      proposer: hex(SEQ_A0_BF),
      txRoot: hex(SEQ_00_1F),
      stateRoot: hex(SEQ_A0_BF),
      txCount: 0,
      signature: hex(SEQ_A0_BF + SEQ_A0_BF),
    }
    const gossip: GossipMessage[] = [
      { type: 'votes', solicited: false, votes: [vote, otherVote] },
      { type: 'evidence', solicited: true, evidence: [makeEvidence(vote, otherVote)] },
      { type: 'inv', items: [{ kind: INV_VOTE, hash: hex(SEQ_00_1F) }, { kind: INV_EVIDENCE, hash: hex(SEQ_A0_BF) }] },
    ]
    for (const message of gossip) assert.deepEqual(decodeGossip(encodeGossip(message)), message)
    assert.equal(toHexString(encodeGossip(gossip[0] as GossipMessage)), '0900' + u32hex(2) + join(voteSegments) + join(withField(voteSegments, 'blockHash', SEQ_A0_BF)))
    const requests: SyncRequest[] = [
      { type: 'getFinality', height: undefined },
      { type: 'getFinality', height: 12 },
    ]
    assert.equal(toHexString(encodeSyncRequest(requests[0] as SyncRequest)), '2700')
    assert.equal(toHexString(encodeSyncRequest(requests[1] as SyncRequest)), '2701' + u64hex(12n))
    for (const request of requests) assert.deepEqual(decodeSyncRequest(encodeSyncRequest(request)), request)
    const responses: SyncResponse[] = [
      { type: 'finality', proof: undefined },
      { type: 'finality', proof: { certificate, header } },
    ]
    assert.equal(toHexString(encodeSyncResponse(responses[0] as SyncResponse)), '3700')
    for (const response of responses) assert.deepEqual(decodeSyncResponse(encodeSyncResponse(response)), response)
    assertDecodeError(() => decodeSyncRequest(hex('2702')))
    assertDecodeError(() => decodeSyncResponse(hex('3702')))
    assertDecodeError(() => decodeGossip(hex('0900' + u32hex(MAX_VOTES_PER_MESSAGE + 1))))
    assertDecodeError(() => decodeGossip(hex('0a00' + u32hex(1) + join(voteSegments))))
    assertDecodeError(() => decodeGossip(hex('01' + u32hex(1) + '06' + SEQ_00_1F)), /inventory kind/)
  })
})

describe('leaf pages (LeafPageWriter)', () => {
  const key = (byte: number) => new Uint8Array(32).fill(byte)
  const leaves = [
    { keyHash: key(0xaa), balance: 0x0102030405060708n, nonce: 2 ** 53 - 1 },
    { keyHash: key(0x01), balance: 0n, nonce: 0x1_0000_0001 },
  ]

  it('a leaves answer keeps its bytes: type 0x33, more, u32 count, then key ‖ u64 balance ‖ u64 nonce per leaf', () => {
    // Written by the encoder before leaf pages were written record by record (c05d858).
    const expected =
      '330100000002' +
      'aa'.repeat(32) + '0102030405060708' + '001fffffffffffff' +
      '01'.repeat(32) + '0000000000000000' + '0000000100000001'
    assert.equal(Buffer.from(encodeSyncResponse({ type: 'leaves', more: true, leaves })).toString('hex'), expected)
    assert.equal(Buffer.from(encodeSyncResponse({ type: 'leaves', more: false, leaves: [] })).toString('hex'), '330000000000')
  })

  it('a page grown from room for one leaf gives the same bytes as the whole answer, and decodes to its leaves', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ keyHash: fc.uint8Array({ minLength: 32, maxLength: 32 }), balance: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), nonce: fc.nat({ max: Number.MAX_SAFE_INTEGER }) }), { maxLength: 40 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 8 }),
        (generated, more, room) => {
          const records = generated.map((leaf) => ({ ...leaf }))
          const page = new LeafPageWriter(records.length + 3, room)
          for (const leaf of records) page.add(leaf.keyHash, leaf.balance, leaf.nonce)
          assert.equal(page.count, records.length)
          const bytes = page.finish(more)
          assert.deepEqual(bytes, encodeSyncResponse({ type: 'leaves', more, leaves: records }))
          assert.deepEqual(decodeSyncResponse(bytes), { type: 'leaves', more, leaves: records })
        },
      ),
      { numRuns: 200 },
    )
  })

  it('refuses a leaf past its max and values the wire cannot carry', () => {
    const page = new LeafPageWriter(1)
    assert.throws(() => page.add(key(1), 1n << 64n, 0), RangeError)
    assert.throws(() => page.add(key(1), -1n, 0), RangeError)
    assert.throws(() => page.add(key(1), 1n, 2 ** 53), RangeError)
    assert.throws(() => page.add(key(1), 1n, -1), RangeError)
    assert.throws(() => page.add(new Uint8Array(31), 1n, 0), RangeError)
    assert.equal(page.count, 0, 'nothing refused was written')
    page.add(key(1), 1n, 0)
    assert.throws(() => page.add(key(2), 1n, 0), /full/)
    assert.throws(() => new LeafPageWriter(65_537), RangeError)
  })
})
