// The state transition (src/ledger/transition.ts): applyTransfer over a StateOverlay.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { toHexKey } from '../../src/codec/bytes.ts'
import { toSignedTx } from '../../src/codec/objects.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { TxError } from '../../src/ledger/errors.ts'
import { StateOverlay, applyTransfer } from '../../src/ledger/transition.ts'
import type { Account, Address, SignedTx } from '../../src/ledger/types.ts'
import { transfer } from '../helpers/chain.ts'

const ALICE = devKeypair(1).publicKey
const BOB = devKeypair(2).publicKey
const CAROL = devKeypair(3).publicKey
const PROPOSER = devKeypair(0).publicKey

/** Committed state keyed by keyHash = SHA-256(address), as the trie stores it. */
function committed(entries: Array<[Address, Account]>): { lookup: (keyHash: Uint8Array) => Account | undefined; reads: number } {
  const byKeyHash = new Map(entries.map(([address, account]) => [toHexKey(sha256(address)), account]))
  const state = {
    reads: 0,
    lookup: (keyHash: Uint8Array) => {
      state.reads++
      const account = byKeyHash.get(toHexKey(keyHash))
      return account === undefined ? undefined : { ...account }
    },
  }
  return state
}

/** A transfer that is not signed: the transition does not look at signatures. */
function unsigned(from: Address, to: Address, amount: bigint, fee: bigint, nonce: number): SignedTx {
  return toSignedTx({ chainId: 'grapevine-devnet', from, to, amount, fee, nonce, memo: new Uint8Array(0), signature: new Uint8Array(64) })
}

function expectTxError(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TxError, `expected TxError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    assert.equal(error.action, 'reject')
    return true
  })
}

/** Every touched account's value, for before/after comparisons. */
const snapshot = (overlay: StateOverlay, addresses: Address[]) => addresses.map((address) => overlay.get(address))

describe('applyTransfer', () => {
  it('moves amount to the recipient, fee to the proposer, and bumps the sender nonce', () => {
    const overlay = new StateOverlay(committed([[ALICE, { balance: 1_000n, nonce: 4 }], [BOB, { balance: 50n, nonce: 9 }]]).lookup)
    applyTransfer(overlay, transfer(1, BOB, 300n, 4, 7n), PROPOSER)
    assert.deepEqual(overlay.get(ALICE), { balance: 693n, nonce: 5 })
    assert.deepEqual(overlay.get(BOB), { balance: 350n, nonce: 9 }, "the recipient's nonce is untouched")
    assert.deepEqual(overlay.get(PROPOSER), { balance: 7n, nonce: 0 }, 'a missing account starts empty')
    // The next nonce applies on top of the overlay, not the committed state.
    applyTransfer(overlay, transfer(1, CAROL, 93n, 5, 600n), PROPOSER)
    assert.deepEqual(overlay.get(ALICE), { balance: 0n, nonce: 6 }, 'amount + fee may spend the whole balance')
    assert.deepEqual(overlay.get(CAROL), { balance: 93n, nonce: 0 })
    assert.deepEqual(overlay.get(PROPOSER), { balance: 607n, nonce: 0 })
  })

  it('updates() lists every touched account once, keyed by SHA-256(address)', () => {
    const overlay = new StateOverlay(committed([[ALICE, { balance: 1_000n, nonce: 0 }]]).lookup)
    applyTransfer(overlay, unsigned(ALICE, BOB, 1n, 1n, 0), PROPOSER)
    applyTransfer(overlay, unsigned(ALICE, BOB, 1n, 1n, 1), PROPOSER)
    const updates = new Map(overlay.updates().map((u) => [toHexKey(u.keyHash), u.account]))
    assert.equal(updates.size, 3)
    assert.deepEqual(updates.get(toHexKey(sha256(ALICE))), { balance: 996n, nonce: 2 })
    assert.deepEqual(updates.get(toHexKey(sha256(BOB))), { balance: 2n, nonce: 0 })
    assert.deepEqual(updates.get(toHexKey(sha256(PROPOSER))), { balance: 2n, nonce: 0 })
  })

  it('a zero fee does not touch the proposer', () => {
    const overlay = new StateOverlay(committed([[ALICE, { balance: 10n, nonce: 0 }]]).lookup)
    applyTransfer(overlay, unsigned(ALICE, BOB, 10n, 0n, 0), PROPOSER)
    assert.equal(overlay.updates().length, 2)
    assert.deepEqual(overlay.get(ALICE), { balance: 0n, nonce: 1 })
  })

  it('self-transfer: only the fee leaves, the nonce moves once', () => {
    const overlay = new StateOverlay(committed([[ALICE, { balance: 100n, nonce: 2 }]]).lookup)
    applyTransfer(overlay, transfer(1, ALICE, 60n, 2, 3n), PROPOSER)
    assert.deepEqual(overlay.get(ALICE), { balance: 97n, nonce: 3 })
    assert.deepEqual(overlay.get(PROPOSER), { balance: 3n, nonce: 0 })
    // The whole balance may be "sent" to oneself if it covers amount + fee.
    applyTransfer(overlay, transfer(1, ALICE, 94n, 3, 3n), PROPOSER)
    assert.deepEqual(overlay.get(ALICE), { balance: 94n, nonce: 4 })
    expectTxError(() => applyTransfer(overlay, transfer(1, ALICE, 94n, 4, 1n), PROPOSER), 'TX_INSUFFICIENT_FUNDS')
  })

  it('proposer == sender: the fee comes back, the nonce moves once', () => {
    const overlay = new StateOverlay(committed([[ALICE, { balance: 100n, nonce: 0 }]]).lookup)
    applyTransfer(overlay, transfer(1, BOB, 40n, 0, 5n), ALICE)
    assert.deepEqual(overlay.get(ALICE), { balance: 60n, nonce: 1 })
    assert.deepEqual(overlay.get(BOB), { balance: 40n, nonce: 0 })
    // Still needs amount + fee up front, even though the fee returns.
    expectTxError(() => applyTransfer(overlay, transfer(1, BOB, 60n, 1, 1n), ALICE), 'TX_INSUFFICIENT_FUNDS')
  })

  it('proposer == recipient: receives amount and fee', () => {
    const overlay = new StateOverlay(committed([[ALICE, { balance: 100n, nonce: 0 }]]).lookup)
    applyTransfer(overlay, transfer(1, BOB, 40n, 0, 5n), BOB)
    assert.deepEqual(overlay.get(BOB), { balance: 45n, nonce: 0 })
    assert.deepEqual(overlay.get(ALICE), { balance: 55n, nonce: 1 })
  })

  it('self-transfer by the proposer changes only the nonce', () => {
    const overlay = new StateOverlay(committed([[ALICE, { balance: 100n, nonce: 7 }]]).lookup)
    applyTransfer(overlay, transfer(1, ALICE, 100n - 9n, 7, 9n), ALICE)
    assert.deepEqual(overlay.get(ALICE), { balance: 100n, nonce: 8 })
    assert.equal(overlay.updates().length, 1)
  })

  const failures: Array<{ code: string; tx: () => SignedTx }> = [
    { code: 'TX_NONCE_TOO_LOW', tx: () => transfer(1, BOB, 1n, 4, 1n) },
    { code: 'TX_NONCE_TOO_LOW', tx: () => transfer(1, BOB, 1n, 0, 1n) },
    { code: 'TX_NONCE_TOO_HIGH', tx: () => transfer(1, BOB, 1n, 6, 1n) },
    { code: 'TX_NONCE_TOO_HIGH', tx: () => transfer(1, BOB, 1n, 1000, 1n) },
    { code: 'TX_INSUFFICIENT_FUNDS', tx: () => transfer(1, BOB, 100n, 5, 1n) },
    { code: 'TX_INSUFFICIENT_FUNDS', tx: () => transfer(1, BOB, 0n, 5, 101n) },
    { code: 'TX_INSUFFICIENT_FUNDS', tx: () => unsigned(ALICE, BOB, (1n << 64n) - 1n, (1n << 64n) - 1n, 5) },
  ]
  for (const { code, tx } of failures) {
    it(`${code} leaves the overlay unchanged (${tx().tx.amount} + ${tx().tx.fee} at nonce ${tx().tx.nonce})`, () => {
      const state = committed([[ALICE, { balance: 100n, nonce: 5 }], [BOB, { balance: 1n, nonce: 0 }]])
      const overlay = new StateOverlay(state.lookup)
      // An earlier transfer in the same block, so "unchanged" means the overlay, not just the committed state.
      applyTransfer(overlay, transfer(3, BOB, 0n, 0, 0n), PROPOSER)
      const everyone = [ALICE, BOB, CAROL, PROPOSER]
      const before = snapshot(overlay, everyone)
      const updatesBefore = overlay.updates().map((u) => [toHexKey(u.keyHash), u.account])
      expectTxError(() => applyTransfer(overlay, tx(), PROPOSER), code)
      assert.deepEqual(snapshot(overlay, everyone), before)
      assert.deepEqual(overlay.updates().map((u) => [toHexKey(u.keyHash), u.account]), updatesBefore)
      // The same transfer at the right nonce and within the balance still applies afterwards.
      applyTransfer(overlay, transfer(1, BOB, 10n, 5, 1n), PROPOSER)
      assert.deepEqual(overlay.get(ALICE), { balance: 89n, nonce: 6 })
    })
  }

  it('the overlay reads each committed account once and never writes through to it', () => {
    const base: Account = { balance: 100n, nonce: 0 }
    const state = committed([[ALICE, base]])
    const overlay = new StateOverlay(state.lookup)
    applyTransfer(overlay, unsigned(ALICE, BOB, 10n, 1n, 0), PROPOSER)
    applyTransfer(overlay, unsigned(ALICE, BOB, 10n, 1n, 1), PROPOSER)
    assert.equal(state.reads, 3, 'ALICE, BOB and PROPOSER, once each')
    assert.deepEqual(base, { balance: 100n, nonce: 0 })
    // get() hands out copies: changing one does not change the overlay.
    const copy = overlay.get(ALICE)
    copy.balance = 0n
    assert.equal(overlay.get(ALICE).balance, 78n)
  })
})

describe('applyTransfer properties', () => {
  it('supply is conserved and every account matches a simple model over random transfer sequences', () => {
    const parties = [ALICE, BOB, CAROL, PROPOSER, devKeypair(4).publicKey]
    const stepArb = fc.record(
      {
        from: fc.nat(parties.length - 1),
        to: fc.nat(parties.length - 1),
        proposer: fc.nat(parties.length - 1),
        amount: fc.oneof(fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
        fee: fc.oneof(fc.bigInt({ min: 0n, max: 20n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
        // Mostly the right nonce, sometimes off by a little.
        nonceOffset: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -2, max: 2 })),
      },
      { noNullPrototype: true },
    )
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 0n, max: 1_000n }), { minLength: parties.length, maxLength: parties.length }), fc.array(stepArb, { maxLength: 40 }), (balances, steps) => {
        const overlay = new StateOverlay(committed(parties.map((address, i) => [address, { balance: balances[i] as bigint, nonce: 0 }])).lookup)
        const model: Account[] = balances.map((balance) => ({ balance, nonce: 0 }))
        const supply = balances.reduce((sum, b) => sum + b, 0n)
        for (const step of steps) {
          const sender = model[step.from] as Account
          const nonce = Math.max(0, sender.nonce + step.nonceOffset)
          const tx = unsigned(parties[step.from] as Address, parties[step.to] as Address, step.amount, step.fee, nonce)
          const expected = nonce < sender.nonce ? 'TX_NONCE_TOO_LOW' : nonce > sender.nonce ? 'TX_NONCE_TOO_HIGH' : sender.balance < step.amount + step.fee ? 'TX_INSUFFICIENT_FUNDS' : 'ok'
          const before = snapshot(overlay, parties)
          try {
            applyTransfer(overlay, tx, parties[step.proposer] as Address)
            assert.equal(expected, 'ok')
            sender.balance -= step.amount + step.fee
            sender.nonce++
            ;(model[step.to] as Account).balance += step.amount
            ;(model[step.proposer] as Account).balance += step.fee
          } catch (error) {
            assert.ok(error instanceof TxError, String(error))
            assert.equal(error.code, expected)
            assert.deepEqual(snapshot(overlay, parties), before)
          }
          const now = snapshot(overlay, parties)
          assert.deepEqual(now, model)
          assert.equal(
            now.reduce((sum, a) => sum + a.balance, 0n),
            supply,
            'supply conserved',
          )
          for (const account of now) assert.ok(account.balance >= 0n)
        }
      }),
      { numRuns: 200 },
    )
  })
})
