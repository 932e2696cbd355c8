// The account trie (src/state/trie.ts, src/state/nodes.ts). Roots are checked against an
// independent recomputation written here from the documented node layout:
//   leaf   = 0x00 || keyHash (32) || balance (u64) || nonce (u64)
//   branch = 0x01 || childMask (u16, bit i = nibble i) || child hashes in nibble order
//   a subtree holding one key is that key's leaf; the empty trie's root is 32 zero bytes.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { DecodeError } from '../../src/codec/binary.ts'
import type { Account } from '../../src/ledger/types.ts'
import { LEAF_BYTES, decodeNode, encodeBranch, encodeLeaf, nibbleAt, nodeHash } from '../../src/state/nodes.ts'
import {
  type AccountUpdate,
  type AccountWrite,
  EMPTY_ROOT,
  MemoryNodeStore,
  MissingNodeError,
  type NodeSource,
  ProofError,
  applyUpdates,
  applyWrites,
  getAccount,
  proveAccount,
  verifyAccountProof,
} from '../../src/state/trie.ts'

// ---------------------------------------------------------------- independent reference

const sha = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest()
const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

function refLeaf(key: Uint8Array, account: Account): Buffer {
  const out = Buffer.alloc(1 + 32 + 8 + 8)
  out[0] = 0x00
  Buffer.from(key).copy(out, 1)
  out.writeBigUInt64BE(account.balance, 33)
  out.writeBigUInt64BE(BigInt(account.nonce), 41)
  return out
}

/** Nibble i of a key, counted from the high half of byte 0. */
function refNibble(key: Uint8Array, i: number): number {
  const byte = key[Math.floor(i / 2)] as number
  return i % 2 === 0 ? byte >> 4 : byte & 0xf
}

function refSubtree(entries: Array<[Uint8Array, Account]>, depth: number): Buffer {
  if (entries.length === 1) {
    const [key, account] = entries[0] as [Uint8Array, Account]
    return sha(refLeaf(key, account))
  }
  const groups: Array<Array<[Uint8Array, Account]>> = Array.from({ length: 16 }, () => [])
  for (const entry of entries) (groups[refNibble(entry[0], depth)] as Array<[Uint8Array, Account]>).push(entry)
  let mask = 0
  const hashes: Buffer[] = []
  groups.forEach((group, nibble) => {
    if (group.length === 0) return
    mask |= 1 << nibble
    hashes.push(refSubtree(group, depth + 1))
  })
  const head = Buffer.alloc(3)
  head[0] = 0x01
  head.writeUInt16BE(mask, 1)
  return sha(Buffer.concat([head, ...hashes]))
}

/** The root of a key → account map, computed without the module under test. */
function refRoot(entries: Map<string, Account>): Uint8Array {
  if (entries.size === 0) return new Uint8Array(32)
  const list: Array<[Uint8Array, Account]> = [...entries].map(([key, account]) => [Buffer.from(key, 'hex'), account])
  return refSubtree(list, 0)
}

// ---------------------------------------------------------------- helpers

const keyOf = (label: string): Uint8Array => new Uint8Array(sha(Buffer.from(label)))
const keyFromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

function accountFor(i: number): Account {
  return { balance: 1_000n * BigInt(i + 1) + 7n, nonce: i * 3 }
}

/** Applies batches one after another on `store`, persisting each batch's nodes. */
function applyBatches(store: MemoryNodeStore, root: Uint8Array, batches: AccountUpdate[][]): Uint8Array {
  let current = root
  for (const batch of batches) {
    const result = applyUpdates(store, current, batch)
    store.putAll(result.nodes)
    current = result.root
  }
  return current
}

function build(updates: AccountUpdate[]): { store: MemoryNodeStore; root: Uint8Array } {
  const store = new MemoryNodeStore()
  const root = applyBatches(store, EMPTY_ROOT, [updates])
  return { store, root }
}

const asMap = (updates: AccountUpdate[]) => new Map(updates.map((u) => [hexOf(u.keyHash), u.account]))

function expectProofError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProofError, `expected ProofError, got ${String(error)}`)
    if (message !== undefined) assert.match(error.message, message)
    return true
  })
}

/** A source that forgets some nodes. */
function without(store: MemoryNodeStore, missing: Uint8Array): NodeSource {
  const skip = hexOf(missing)
  return { getNode: (hash) => (hexOf(hash) === skip ? undefined : store.getNode(hash)) }
}

const SEVENTEEN: AccountUpdate[] = Array.from({ length: 17 }, (_, i) => ({ keyHash: keyOf(`account-${i}`), account: accountFor(i) }))

// ---------------------------------------------------------------- node encoding

describe('trie nodes', () => {
  it('leaf and branch encodings follow the documented layout', () => {
    const key = keyFromHex('ab'.repeat(32))
    const leaf = encodeLeaf(key, { balance: 0x0102030405060708n, nonce: 9 })
    assert.equal(leaf.length, LEAF_BYTES)
    assert.equal(hexOf(leaf), '00' + 'ab'.repeat(32) + '0102030405060708' + '0000000000000009')
    assert.equal(hexOf(leaf), hexOf(refLeaf(key, { balance: 0x0102030405060708n, nonce: 9 })))

    const children: Array<Uint8Array | undefined> = new Array(16).fill(undefined)
    children[0] = keyFromHex('11'.repeat(32))
    children[5] = keyFromHex('55'.repeat(32))
    children[15] = keyFromHex('ff'.repeat(32))
    // bits 0, 5 and 15 → 0x8021
    assert.equal(hexOf(encodeBranch(children)), '01' + '8021' + '11'.repeat(32) + '55'.repeat(32) + 'ff'.repeat(32))
    assert.equal(hexOf(nodeHash(leaf)), hexOf(sha(leaf)))
  })

  it('decodeNode round-trips and refuses malformed nodes', () => {
    const key = keyOf('x')
    const leaf = encodeLeaf(key, { balance: 5n, nonce: 2 })
    assert.deepEqual(decodeNode(leaf), { kind: 'leaf', keyHash: key, account: { balance: 5n, nonce: 2 } })
    const children: Array<Uint8Array | undefined> = new Array(16).fill(undefined)
    children[3] = keyOf('a')
    children[12] = keyOf('b')
    const branch = decodeNode(encodeBranch(children))
    assert.equal(branch.kind, 'branch')
    assert.deepEqual(branch.kind === 'branch' ? branch.children.map((c) => (c === undefined ? undefined : hexOf(c))) : [], children.map((c) => (c === undefined ? undefined : hexOf(c))))

    const bad = [
      { bytes: new Uint8Array(0), why: /truncated/ },
      { bytes: new Uint8Array([0x02]), why: /unknown trie node kind/ },
      { bytes: leaf.subarray(0, 48), why: /truncated/ },
      { bytes: new Uint8Array([...leaf, 0]), why: /trailing/ },
      { bytes: new Uint8Array([0x01, 0x00, 0x00]), why: /without children/ },
      { bytes: new Uint8Array([0x01, 0x00, 0x03, ...new Uint8Array(32)]), why: /truncated/ },
      { bytes: new Uint8Array([0x01, 0x00, 0x01, ...new Uint8Array(33)]), why: /trailing/ },
      { bytes: new Uint8Array(516), why: /too large/ },
      { bytes: new Uint8Array([0x00, ...key, ...new Uint8Array(8), 0x00, 0x20, 0, 0, 0, 0, 0, 0]), why: /above 2\^53/ },
    ]
    for (const { bytes, why } of bad) {
      assert.throws(() => decodeNode(bytes), (error: unknown) => error instanceof DecodeError && why.test(error.message))
    }
  })

  it('nibbleAt reads high half first', () => {
    const key = keyFromHex('a5' + '0f'.repeat(31))
    assert.equal(nibbleAt(key, 0), 0xa)
    assert.equal(nibbleAt(key, 1), 0x5)
    assert.equal(nibbleAt(key, 2), 0x0)
    assert.equal(nibbleAt(key, 63), 0xf)
  })
})

// ---------------------------------------------------------------- roots

describe('trie roots', () => {
  it('the empty trie has the all-zero root and holds nothing', () => {
    assert.equal(hexOf(EMPTY_ROOT), '00'.repeat(32))
    const store = new MemoryNodeStore()
    assert.equal(getAccount(store, EMPTY_ROOT, keyOf('a')), undefined)
    const result = applyUpdates(store, EMPTY_ROOT, [])
    assert.equal(hexOf(result.root), '00'.repeat(32))
    assert.equal(result.nodes.size, 0)
  })

  it('one account: the root is the hash of its leaf', () => {
    const update = { keyHash: keyOf('solo'), account: { balance: 42n, nonce: 1 } }
    const { store, root } = build([update])
    assert.equal(hexOf(root), hexOf(sha(refLeaf(update.keyHash, update.account))))
    assert.equal(hexOf(root), hexOf(refRoot(asMap([update]))))
    assert.equal(store.nodes.size, 1)
    assert.deepEqual(getAccount(store, root, update.keyHash), update.account)
  })

  it('two accounts on different first nibbles: a branch over two leaves', () => {
    const a = { keyHash: keyFromHex('1' + '0'.repeat(63)), account: { balance: 1n, nonce: 0 } }
    const b = { keyHash: keyFromHex('e' + '0'.repeat(63)), account: { balance: 2n, nonce: 5 } }
    const { store, root } = build([b, a])
    const expected = sha(Buffer.concat([Buffer.from([0x01, 0x40, 0x02]), sha(refLeaf(a.keyHash, a.account)), sha(refLeaf(b.keyHash, b.account))]))
    assert.equal(hexOf(root), hexOf(expected), 'mask 0x4002 = nibbles 1 and 14')
    assert.equal(hexOf(root), hexOf(refRoot(asMap([a, b]))))
    assert.equal(store.nodes.size, 3)
  })

  it('two accounts sharing 63 nibbles: a chain of one-child branches down to depth 63', () => {
    const shared = '7'.repeat(63)
    const a = { keyHash: keyFromHex(shared + '3'), account: { balance: 10n, nonce: 1 } }
    const b = { keyHash: keyFromHex(shared + 'c'), account: { balance: 20n, nonce: 2 } }
    const { store, root } = build([a, b])
    assert.equal(hexOf(root), hexOf(refRoot(asMap([a, b]))))
    assert.equal(store.nodes.size, 64 + 2, '64 branches and 2 leaves')
    assert.deepEqual(getAccount(store, root, a.keyHash), a.account)
    assert.deepEqual(getAccount(store, root, b.keyHash), b.account)
    assert.equal(getAccount(store, root, keyFromHex(shared + '4')), undefined)
    assert.equal(proveAccount(store, root, a.keyHash).length, 65)
  })

  it('seventeen accounts match the reference root, and every account reads back', () => {
    const { store, root } = build(SEVENTEEN)
    assert.equal(hexOf(root), hexOf(refRoot(asMap(SEVENTEEN))))
    for (const { keyHash, account } of SEVENTEEN) assert.deepEqual(getAccount(store, root, keyHash), account)
    for (let i = 0; i < 50; i++) assert.equal(getAccount(store, root, keyOf(`absent-${i}`)), undefined)
  })

  it('getAccount after updates sees new and changed accounts, and old roots still read the old state', () => {
    const store = new MemoryNodeStore()
    const first = applyBatches(store, EMPTY_ROOT, [SEVENTEEN.slice(0, 10)])
    const changed = { keyHash: (SEVENTEEN[3] as AccountUpdate).keyHash, account: { balance: 1n, nonce: 99 } }
    const second = applyBatches(store, first, [[...SEVENTEEN.slice(10), changed]])
    const finalState = asMap(SEVENTEEN)
    finalState.set(hexOf(changed.keyHash), changed.account)
    assert.equal(hexOf(second), hexOf(refRoot(finalState)))
    assert.deepEqual(getAccount(store, second, changed.keyHash), changed.account)
    assert.deepEqual(getAccount(store, first, changed.keyHash), (SEVENTEEN[3] as AccountUpdate).account)
    assert.deepEqual(getAccount(store, second, (SEVENTEEN[16] as AccountUpdate).keyHash), (SEVENTEEN[16] as AccountUpdate).account)
    assert.equal(getAccount(store, first, (SEVENTEEN[16] as AccountUpdate).keyHash), undefined)
  })

  it('updating an existing key changes the root; writing the old value back restores it', () => {
    const store = new MemoryNodeStore()
    const root = applyBatches(store, EMPTY_ROOT, [SEVENTEEN])
    const target = SEVENTEEN[8] as AccountUpdate
    const sameAgain = applyBatches(store, root, [[{ keyHash: target.keyHash, account: { ...target.account } }]])
    assert.equal(hexOf(sameAgain), hexOf(root), 'rewriting an unchanged account is a no-op')
    for (const account of [
      { balance: target.account.balance + 1n, nonce: target.account.nonce },
      { balance: target.account.balance, nonce: target.account.nonce + 1 },
    ]) {
      const changed = applyBatches(store, root, [[{ keyHash: target.keyHash, account }]])
      assert.notEqual(hexOf(changed), hexOf(root))
      const reverted = applyBatches(store, changed, [[target]])
      assert.equal(hexOf(reverted), hexOf(root))
    }
  })

  it('a batch with the same key twice is refused', () => {
    const update = SEVENTEEN[0] as AccountUpdate
    assert.throws(() => applyUpdates(new MemoryNodeStore(), EMPTY_ROOT, [update, { ...update, account: { balance: 1n, nonce: 0 } }]), RangeError)
  })

  it('the nodes returned by each update are enough to read the new state from scratch', () => {
    const store = new MemoryNodeStore()
    const root = applyBatches(store, EMPTY_ROOT, [SEVENTEEN.slice(0, 5), SEVENTEEN.slice(5, 12), SEVENTEEN.slice(12)])
    const fresh = new MemoryNodeStore()
    for (const value of store.nodes.values()) fresh.nodes.set(hexOf(nodeHash(value)), value)
    assert.equal(fresh.nodes.size, store.nodes.size, 'every node is stored under its own hash')
    for (const { keyHash, account } of SEVENTEEN) assert.deepEqual(getAccount(fresh, root, keyHash), account)
  })

  it('any insertion order and any batch split give one root, equal to the single-batch build and the reference', () => {
    const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
    const accountArb = fc.record({ balance: u64, nonce: fc.oneof(fc.nat(10), fc.maxSafeNat()) }, { noNullPrototype: true })
    // Short keys drawn from a few values share prefixes often, so deep branches get exercised.
    const keyArb = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.tuple(fc.constantFrom(0x00, 0x0f, 0xf0, 0xff), fc.nat(3)).map(([a, b]) => {
        const key = new Uint8Array(32).fill(a)
        key[31] = b
        key[b] = 0x11
        return key
      }),
    )
    const caseArb = fc
      .uniqueArray(fc.record({ keyHash: keyArb, account: accountArb }, { noNullPrototype: true }), { minLength: 1, maxLength: 30, selector: (u) => hexOf(u.keyHash) })
      .chain((items) =>
        fc.tuple(
          fc.constant(items),
          fc.shuffledSubarray(items, { minLength: items.length, maxLength: items.length }),
          fc.array(fc.boolean(), { minLength: items.length, maxLength: items.length }),
          // Later overwrites of some keys, applied as one more batch.
          fc.subarray(items).chain((chosen) => fc.tuple(fc.constant(chosen), fc.array(accountArb, { minLength: chosen.length, maxLength: chosen.length }))),
        ),
      )
    fc.assert(
      fc.property(caseArb, ([items, shuffled, cuts, [overwritten, newAccounts]]) => {
        const single = build(items)
        assert.equal(hexOf(single.root), hexOf(refRoot(asMap(items))))

        const batches: AccountUpdate[][] = [[]]
        shuffled.forEach((item, i) => {
          ;(batches[batches.length - 1] as AccountUpdate[]).push(item)
          if (cuts[i] === true && i < shuffled.length - 1) batches.push([])
        })
        const store = new MemoryNodeStore()
        const incremental = applyBatches(store, EMPTY_ROOT, batches)
        assert.equal(hexOf(incremental), hexOf(single.root))
        for (const { keyHash, account } of items) assert.deepEqual(getAccount(store, incremental, keyHash), account)

        const overwrites = overwritten.map((item, i) => ({ keyHash: item.keyHash, account: newAccounts[i] as Account }))
        const afterOverwrite = applyBatches(store, incremental, [overwrites])
        const finalState = asMap(items)
        for (const { keyHash, account } of overwrites) finalState.set(hexOf(keyHash), account)
        assert.equal(hexOf(afterOverwrite), hexOf(refRoot(finalState)))
        const finalUpdates = [...finalState].map(([key, account]) => ({ keyHash: keyFromHex(key), account }))
        assert.equal(hexOf(afterOverwrite), hexOf(build(finalUpdates).root))
        // Writing the old values back restores the old root.
        const reverted = applyBatches(store, afterOverwrite, [overwritten])
        assert.equal(hexOf(reverted), hexOf(incremental))
      }),
      { numRuns: 150 },
    )
  })

  it('applyWrites removes keys: the root is the reference root of what is left, whatever the batches', () => {
    const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
    const accountArb = fc.record({ balance: u64, nonce: fc.nat(10) }, { noNullPrototype: true })
    // Keys sharing long prefixes, so removals collapse chains of one-child branches.
    const keyArb = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.tuple(fc.constantFrom(0x00, 0x0f, 0xff), fc.nat(3), fc.nat(31)).map(([fill, last, at]) => {
        const key = new Uint8Array(32).fill(fill)
        key[31] = last
        key[at] = 0x11
        return key
      }),
    )
    const caseArb = fc
      .uniqueArray(fc.record({ keyHash: keyArb, account: accountArb }, { noNullPrototype: true }), { minLength: 1, maxLength: 30, selector: (u) => hexOf(u.keyHash) })
      .chain((items) => fc.tuple(fc.constant(items), fc.subarray(items), fc.subarray(items), fc.array(keyArb, { maxLength: 3 })))
    fc.assert(
      fc.property(caseArb, ([items, removedFirst, removedSecond, absentKeys]) => {
        const store = new MemoryNodeStore()
        const full = applyBatches(store, EMPTY_ROOT, [items])
        const state = asMap(items)
        let root = full
        for (const removed of [removedFirst, removedSecond]) {
          const writes: AccountWrite[] = removed.filter((item) => state.has(hexOf(item.keyHash))).map((item) => ({ keyHash: item.keyHash, account: undefined }))
          // Removing a key that is absent leaves the trie as it is.
          for (const key of absentKeys) if (!state.has(hexOf(key)) && !writes.some((w) => hexOf(w.keyHash) === hexOf(key))) writes.push({ keyHash: key, account: undefined })
          const result = applyWrites(store, root, writes)
          store.putAll(result.nodes)
          root = result.root
          for (const write of writes) state.delete(hexOf(write.keyHash))
          assert.equal(hexOf(root), hexOf(refRoot(state)))
          for (const [key, account] of state) assert.deepEqual(getAccount(store, root, keyFromHex(key)), account)
        }
        // Putting everything back (a reverse diff of the removals) restores the first root.
        const restore: AccountWrite[] = items.filter((item) => !state.has(hexOf(item.keyHash)))
        assert.equal(hexOf(applyWrites(store, root, restore).root), hexOf(full))
      }),
      { numRuns: 150 },
    )
  })

  it('applyWrites: removing the last key gives the empty root; a lone leaf under a branch moves up', () => {
    const store = new MemoryNodeStore()
    const a = { keyHash: keyFromHex('7'.repeat(63) + '3'), account: { balance: 10n, nonce: 1 } }
    const b = { keyHash: keyFromHex('7'.repeat(63) + 'c'), account: { balance: 20n, nonce: 2 } }
    const both = applyBatches(store, EMPTY_ROOT, [[a, b]])
    const onlyA = applyWrites(store, both, [{ keyHash: b.keyHash, account: undefined }])
    assert.equal(hexOf(onlyA.root), hexOf(sha(refLeaf(a.keyHash, a.account))), '64 one-child branches collapse to the leaf')
    assert.equal(onlyA.nodes.size, 0, 'the leaf already exists: nothing new')
    store.putAll(onlyA.nodes)
    assert.equal(hexOf(applyWrites(store, onlyA.root, [{ keyHash: a.keyHash, account: undefined }]).root), hexOf(EMPTY_ROOT))
    // A removal and an insertion in one batch.
    const swapped = applyWrites(store, both, [{ keyHash: a.keyHash, account: undefined }, { keyHash: keyOf('new'), account: { balance: 1n, nonce: 0 } }])
    store.putAll(swapped.nodes)
    assert.equal(hexOf(swapped.root), hexOf(refRoot(asMap([b, { keyHash: keyOf('new'), account: { balance: 1n, nonce: 0 } }]))))
  })
})

// ---------------------------------------------------------------- proofs

describe('trie proofs', () => {
  const { store, root } = build(SEVENTEEN)

  /** Absent keys whose proof ends at an empty child, and at a different key's leaf. */
  function absentKeys(): { emptyChild: Uint8Array; otherLeaf: Uint8Array } {
    let emptyChild: Uint8Array | undefined
    let otherLeaf: Uint8Array | undefined
    for (let i = 0; i < 1000 && (emptyChild === undefined || otherLeaf === undefined); i++) {
      const key = keyOf(`absent-${i}`)
      const proof = proveAccount(store, root, key)
      const last = proof[proof.length - 1] as Uint8Array
      if (last[0] === 0x01) emptyChild ??= key
      else otherLeaf ??= key
    }
    assert.ok(emptyChild !== undefined && otherLeaf !== undefined, 'both kinds of absence found')
    return { emptyChild, otherLeaf }
  }

  it('inclusion proofs verify and return the account', () => {
    for (const { keyHash, account } of SEVENTEEN) {
      const proof = proveAccount(store, root, keyHash)
      assert.ok(proof.length >= 2, '17 keys cannot all hang off the root')
      assert.equal(hexOf(nodeHash(proof[0] as Uint8Array)), hexOf(root))
      assert.equal(hexOf(proof[proof.length - 1] as Uint8Array), hexOf(refLeaf(keyHash, account)))
      assert.deepEqual(verifyAccountProof(root, keyHash, proof), account)
    }
  })

  it('absence proofs ending at an empty child return undefined', () => {
    const { emptyChild } = absentKeys()
    const proof = proveAccount(store, root, emptyChild)
    const last = decodeNode(proof[proof.length - 1] as Uint8Array)
    assert.equal(last.kind, 'branch')
    assert.equal(verifyAccountProof(root, emptyChild, proof), undefined)
  })

  it('absence proofs ending at a different leaf return undefined', () => {
    const { otherLeaf } = absentKeys()
    const proof = proveAccount(store, root, otherLeaf)
    const last = decodeNode(proof[proof.length - 1] as Uint8Array)
    assert.equal(last.kind, 'leaf')
    assert.notEqual(last.kind === 'leaf' ? hexOf(last.keyHash) : '', hexOf(otherLeaf))
    assert.equal(verifyAccountProof(root, otherLeaf, proof), undefined)
  })

  it('single-leaf and empty tries', () => {
    const only = SEVENTEEN[0] as AccountUpdate
    const single = build([only])
    const proof = proveAccount(single.store, single.root, only.keyHash)
    assert.equal(proof.length, 1)
    assert.deepEqual(verifyAccountProof(single.root, only.keyHash, proof), only.account)
    assert.equal(verifyAccountProof(single.root, keyOf('other'), proveAccount(single.store, single.root, keyOf('other'))), undefined)
    assert.deepEqual(proveAccount(new MemoryNodeStore(), EMPTY_ROOT, only.keyHash), [])
    assert.equal(verifyAccountProof(EMPTY_ROOT, only.keyHash, []), undefined)
    expectProofError(() => verifyAccountProof(EMPTY_ROOT, only.keyHash, proof), /empty trie/)
    expectProofError(() => verifyAccountProof(single.root, only.keyHash, []), /empty proof/)
  })

  it('a modified node is refused', () => {
    const { emptyChild } = absentKeys()
    for (const key of [(SEVENTEEN[5] as AccountUpdate).keyHash, emptyChild]) {
      const proof = proveAccount(store, root, key)
      for (let index = 0; index < proof.length; index++) {
        const node = proof[index] as Uint8Array
        for (const at of [0, 1, node.length - 1]) {
          const tampered = proof.map((n) => new Uint8Array(n))
          ;(tampered[index] as Uint8Array)[at] = ((tampered[index] as Uint8Array)[at] as number) ^ 0x01
          expectProofError(() => verifyAccountProof(root, key, tampered))
        }
      }
    }
    // A leaf rewritten with a larger balance no longer matches its parent.
    const target = SEVENTEEN[5] as AccountUpdate
    const proof = proveAccount(store, root, target.keyHash)
    const forged = [...proof.slice(0, -1), encodeLeaf(target.keyHash, { balance: target.account.balance + 1_000_000n, nonce: target.account.nonce })]
    expectProofError(() => verifyAccountProof(root, target.keyHash, forged), /does not match/)
  })

  it('a dropped node is refused', () => {
    const { emptyChild, otherLeaf } = absentKeys()
    for (const key of [(SEVENTEEN[2] as AccountUpdate).keyHash, emptyChild, otherLeaf]) {
      const proof = proveAccount(store, root, key)
      for (let index = 0; index < proof.length; index++) {
        const dropped = [...proof.slice(0, index), ...proof.slice(index + 1)]
        if (dropped.length === 0) expectProofError(() => verifyAccountProof(root, key, dropped), /empty proof/)
        else expectProofError(() => verifyAccountProof(root, key, dropped))
      }
      if (proof.length > 1) expectProofError(() => verifyAccountProof(root, key, proof.slice(0, -1)), /ends before/)
    }
  })

  it('an extra node is refused', () => {
    const { emptyChild } = absentKeys()
    const included = (SEVENTEEN[9] as AccountUpdate).keyHash
    const inclusion = proveAccount(store, root, included)
    const leaf = inclusion[inclusion.length - 1] as Uint8Array
    expectProofError(() => verifyAccountProof(root, included, [...inclusion, leaf]), /past a leaf/)
    expectProofError(() => verifyAccountProof(root, included, [inclusion[0] as Uint8Array, ...inclusion]))
    const absence = proveAccount(store, root, emptyChild)
    expectProofError(() => verifyAccountProof(root, emptyChild, [...absence, leaf]), /past an empty child/)
  })

  it('a proof against the wrong root is refused', () => {
    const target = SEVENTEEN[11] as AccountUpdate
    const proof = proveAccount(store, root, target.keyHash)
    const flipped = new Uint8Array(root) // (root is a Buffer: .slice() would alias it)
    flipped[31] = (flipped[31] as number) ^ 0x80
    expectProofError(() => verifyAccountProof(flipped, target.keyHash, proof), /does not match/)
    const other = build(SEVENTEEN.slice(0, 16))
    expectProofError(() => verifyAccountProof(other.root, target.keyHash, proof), /does not match/)
    // A proof from an older state does not verify against the newer root.
    const newer = applyBatches(store, root, [[{ keyHash: target.keyHash, account: { balance: 0n, nonce: 100 } }]])
    expectProofError(() => verifyAccountProof(newer, target.keyHash, proof))
    assert.deepEqual(verifyAccountProof(newer, target.keyHash, proveAccount(store, newer, target.keyHash)), { balance: 0n, nonce: 100 })
  })

  it('a node that matches its hash but does not decode is refused', () => {
    const garbage = new Uint8Array([0x07, 1, 2, 3])
    expectProofError(() => verifyAccountProof(nodeHash(garbage), keyOf('k'), [garbage]), /malformed/)
  })
})

// ---------------------------------------------------------------- missing nodes

describe('missing nodes', () => {
  it('reads, updates and proofs through a missing node throw MissingNodeError naming it', () => {
    const { store, root } = build(SEVENTEEN)
    const target = SEVENTEEN[4] as AccountUpdate
    const proof = proveAccount(store, root, target.keyHash)
    const missingHash = nodeHash(proof[1] as Uint8Array)
    const partial = without(store, missingHash)
    const expectMissing = (fn: () => unknown) =>
      assert.throws(fn, (error: unknown) => error instanceof MissingNodeError && hexOf(error.hash) === hexOf(missingHash))
    expectMissing(() => getAccount(partial, root, target.keyHash))
    expectMissing(() => proveAccount(partial, root, target.keyHash))
    expectMissing(() => applyUpdates(partial, root, [{ keyHash: target.keyHash, account: { balance: 1n, nonce: 1 } }]))
    // Paths that avoid the missing node still work.
    const elsewhere = SEVENTEEN.find((u) => nibbleAt(u.keyHash, 0) !== nibbleAt(target.keyHash, 0)) as AccountUpdate
    assert.deepEqual(getAccount(partial, root, elsewhere.keyHash), elsewhere.account)
  })

  it('a root that is not in the store throws MissingNodeError', () => {
    const { root } = build(SEVENTEEN)
    const empty = new MemoryNodeStore()
    assert.throws(() => getAccount(empty, root, keyOf('a')), (error: unknown) => error instanceof MissingNodeError && hexOf(error.hash) === hexOf(root))
    assert.throws(() => applyUpdates(empty, root, [SEVENTEEN[0] as AccountUpdate]), MissingNodeError)
    assert.throws(() => proveAccount(empty, root, keyOf('a')), MissingNodeError)
  })
})
