// Reverse diffs (src/state/reverse-diff.ts): the canonical encoding (hex vectors, invalid inputs,
// round trips both ways, size bounds) and what they are for: applied to a block's state trie they
// give its parent's root exactly.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { DecodeError } from '../../src/codec/binary.ts'
import { MAX_BLOCK_TXS } from '../../src/codec/limits.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { StateOverlay, applyTransfer } from '../../src/ledger/transition.ts'
import {
  ABSENT_ENTRY_BYTES,
  MAX_REVERSE_DIFF_ENTRIES,
  PRESENT_ENTRY_BYTES,
  decodeReverseDiff,
  encodeReverseDiff,
} from '../../src/state/reverse-diff.ts'
import { type AccountWrite, EMPTY_ROOT, MemoryNodeStore, applyUpdates, applyWrites, getAccount } from '../../src/state/trie.ts'
import { transfer } from '../helpers/chain.ts'

const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const fromHexString = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'))
const key = (byte: number): Uint8Array => new Uint8Array(32).fill(byte)

describe('reverse diff encoding', () => {
  it('encodes the documented layout (hex vectors) and decodes back', () => {
    const vectors: Array<{ entries: AccountWrite[]; hex: string }> = [
      { entries: [], hex: '00000000' },
      { entries: [{ keyHash: key(0x11), account: undefined }], hex: '00000001' + '11'.repeat(32) + '00' },
      {
        entries: [
          { keyHash: key(0x01), account: { balance: 0x0102030405060708n, nonce: 9 } },
          { keyHash: key(0xfe), account: undefined },
        ],
        hex: '00000002' + '01'.repeat(32) + '01' + '0102030405060708' + '0000000000000009' + 'fe'.repeat(32) + '00',
      },
    ]
    for (const { entries, hex } of vectors) {
      const bytes = encodeReverseDiff(entries)
      assert.equal(hexOf(bytes), hex)
      assert.deepEqual(decodeReverseDiff(bytes), entries)
    }
  })

  it('refuses every non-canonical or oversized input', () => {
    const present = '01' + '0000000000000005' + '0000000000000001'
    const bad: Array<{ hex: string; why: RegExp }> = [
      { hex: '', why: /truncated/ },
      { hex: '000001', why: /truncated/ },
      { hex: '00000001' + '11'.repeat(32), why: /truncated/ },
      { hex: '00000001' + '11'.repeat(32) + '01' + '00'.repeat(8), why: /truncated/ },
      { hex: '00000000' + '00', why: /trailing/ },
      { hex: '00000001' + '11'.repeat(32) + '00' + 'ff', why: /trailing/ },
      { hex: '00000001' + '11'.repeat(32) + '02', why: /unknown reverse diff flag/ },
      { hex: '00000002' + '22'.repeat(32) + '00' + '11'.repeat(32) + '00', why: /out of order/ },
      { hex: '00000002' + '11'.repeat(32) + '00' + '11'.repeat(32) + present, why: /out of order/ },
      { hex: '00000001' + '11'.repeat(32) + '01' + '0000000000000005' + '0020000000000000', why: /above 2\^53/ },
      // A count the input cannot hold is refused before anything is allocated for it.
      { hex: '00000100' + '11'.repeat(32) + '00', why: /truncated: 256 reverse diff entries/ },
      { hex: (MAX_REVERSE_DIFF_ENTRIES + 1).toString(16).padStart(8, '0'), why: /exceeds limit/ },
    ]
    for (const { hex, why } of bad) {
      assert.throws(
        () => decodeReverseDiff(fromHexString(hex)),
        (error: unknown) => error instanceof DecodeError && why.test(error.message),
        `${hex.slice(0, 24)}… should fail with ${why}`,
      )
    }
    assert.throws(() => decodeReverseDiff(new Uint8Array(4 + (MAX_REVERSE_DIFF_ENTRIES + 1) * PRESENT_ENTRY_BYTES)), /too large/)
  })

  it('the encoder refuses unsorted, duplicate, short keys and too many entries', () => {
    assert.throws(() => encodeReverseDiff([{ keyHash: key(2), account: undefined }, { keyHash: key(1), account: undefined }]), RangeError)
    assert.throws(() => encodeReverseDiff([{ keyHash: key(2), account: undefined }, { keyHash: key(2), account: undefined }]), RangeError)
    assert.throws(() => encodeReverseDiff([{ keyHash: new Uint8Array(31), account: undefined }]), RangeError)
    const tooMany = Array.from({ length: MAX_REVERSE_DIFF_ENTRIES + 1 }, () => ({ keyHash: key(0), account: undefined }))
    assert.throws(() => encodeReverseDiff(tooMany), /exceeds/)
  })

  it('bounds: 33 bytes per account that was absent, 49 per account that existed; a full block fits the entry limit', () => {
    assert.equal(ABSENT_ENTRY_BYTES, 33)
    assert.equal(PRESENT_ENTRY_BYTES, 49)
    // Sender, recipient per transfer and one proposer.
    assert.equal(MAX_REVERSE_DIFF_ENTRIES, 2 * MAX_BLOCK_TXS + 1)
    const entries = [{ keyHash: key(1), account: undefined }, { keyHash: key(2), account: { balance: 1n, nonce: 1 } }]
    assert.equal(encodeReverseDiff(entries).length, 4 + 33 + 49)
  })

  it('decode ∘ encode and encode ∘ decode are identities (generated diffs)', () => {
    const entryArb = fc.record(
      {
        keyHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        account: fc.option(fc.record({ balance: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), nonce: fc.maxSafeNat() }, { noNullPrototype: true }), { nil: undefined }),
      },
      { noNullPrototype: true },
    )
    fc.assert(
      fc.property(fc.uniqueArray(entryArb, { maxLength: 40, selector: (entry) => hexOf(entry.keyHash) }), (entries) => {
        const sorted = [...entries].sort((a, b) => Buffer.compare(a.keyHash, b.keyHash))
        const bytes = encodeReverseDiff(sorted)
        const decoded = decodeReverseDiff(bytes)
        assert.deepEqual(decoded, sorted)
        assert.equal(hexOf(encodeReverseDiff(decoded)), hexOf(bytes))
      }),
      { numRuns: 200 },
    )
  })
})

describe('reverse diff of a block', () => {
  it('StateOverlay.reverseDiff applied to the new root gives the old root; new accounts revert to absent', () => {
    const store = new MemoryNodeStore()
    const funded = [0, 1, 2, 3].map((i) => ({ keyHash: sha256(devKeypair(i).publicKey), account: { balance: 1_000_000n, nonce: 0 } }))
    const genesis = applyUpdates(store, EMPTY_ROOT, funded)
    store.putAll(genesis.nodes)
    const proposer = devKeypair(3).publicKey
    const overlay = new StateOverlay((keyHash) => getAccount(store, genesis.root, keyHash))
    const fresh = [1, 2, 3].map((i) => createHash('sha256').update(`fresh-${i}`).digest())
    applyTransfer(overlay, transfer(0, fresh[0] as Uint8Array, 5n, 0), proposer)
    applyTransfer(overlay, transfer(0, devKeypair(1).publicKey, 7n, 1), proposer)
    applyTransfer(overlay, transfer(1, fresh[1] as Uint8Array, 1n, 0), proposer)
    // Read, not changed: not in the diff.
    overlay.get(devKeypair(2).publicKey)
    const next = applyUpdates(store, genesis.root, overlay.updates())
    store.putAll(next.nodes)
    const diff = overlay.reverseDiff()
    // Senders 0 and 1, the proposer (fees), and two new recipients.
    assert.equal(diff.length, 5)
    assert.equal(diff.filter((entry) => entry.account === undefined).length, 2)
    const bytes = encodeReverseDiff(diff)
    assert.equal(bytes.length, 4 + 3 * PRESENT_ENTRY_BYTES + 2 * ABSENT_ENTRY_BYTES)
    const reverted = applyWrites(store, next.root, decodeReverseDiff(bytes))
    assert.equal(hexOf(reverted.root), hexOf(genesis.root))
    for (const hex of reverted.nodes.keys()) assert.ok(store.nodes.has(hex), 'the nodes it makes are those of the old state')
  })
})
