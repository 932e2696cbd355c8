// The mempool (src/mempool/mempool.ts) and the ingest pipeline (src/mempool/ingest.ts):
// one test per reject code, named after it, then replacement, eviction, expiry, packing,
// head changes and the verify-once rule.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { toHexKey } from '../../src/codec/bytes.ts'
import { encodeUnsignedTx, toSignedTx } from '../../src/codec/objects.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { sign, signingMessage } from '../../src/crypto/sign.ts'
import { TxError } from '../../src/ledger/errors.ts'
import { DEFAULT_LIMITS } from '../../src/ledger/genesis.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { Account, Address, GenesisLimits, SignedTx } from '../../src/ledger/types.ts'
import type { TxRules } from '../../src/ledger/validation.ts'
import { TxIngest } from '../../src/mempool/ingest.ts'
import { Mempool, type MempoolOptions } from '../../src/mempool/mempool.ts'
import { transfer } from '../helpers/chain.ts'

const CHAIN_ID = 'grapevine-devnet'
const RECIPIENT = devKeypair(500).publicKey
/** A transfer on CHAIN_ID with an empty memo encodes to this many bytes. */
const TX_BYTES = 1 + 1 + CHAIN_ID.length + 32 + 32 + 8 + 8 + 8 + 2 + 64

const address = (index: number): Address => devKeypair(index).publicKey

/** Committed state the mempool reads (the head), editable by tests. */
class Accounts {
  readonly map = new Map<string, Account>()

  constructor(balance = 1_000_000n, count = 10) {
    for (let i = 0; i < count; i++) this.set(i, { balance, nonce: 0 })
  }

  set(index: number, account: Account): void {
    this.map.set(toHexKey(address(index)), account)
  }

  get = (who: Address): Account => {
    const account = this.map.get(toHexKey(who))
    return account === undefined ? { balance: 0n, nonce: 0 } : { ...account }
  }
}

interface Setup {
  accounts: Accounts
  mempool: Mempool
  ingest: TxIngest
  included: Set<string>
  rules: TxRules
}

function setup(options: Partial<MempoolOptions> = {}, limits: Partial<GenesisLimits> = {}): Setup {
  const accounts = new Accounts()
  const mempool = new Mempool({ getAccount: accounts.get }, { maxTxs: 1_000, maxBytes: 1_000_000, ttlMs: 60_000, ...options })
  const included = new Set<string>()
  const rules: TxRules = { chainId: CHAIN_ID, limits: { ...DEFAULT_LIMITS, ...limits } }
  const ingest = new TxIngest({ rules, mempool, getAccount: accounts.get, isIncluded: (signed) => included.has(signed.idHex) })
  return { accounts, mempool, ingest, included, rules }
}

/** Key `from` sends `amount` to RECIPIENT at `nonce` paying `fee`. */
const tx = (from: number, nonce: number, fee: bigint, amount = 10n): SignedTx => transfer(from, RECIPIENT, amount, nonce, fee, CHAIN_ID)

function withMemo(from: number, nonce: number, fee: bigint, memoBytes: number): SignedTx {
  return signTransfer({ chainId: CHAIN_ID, from: devKeypair(from), to: RECIPIENT, amount: 10n, fee, nonce, memo: new Uint8Array(memoBytes).fill(7) })
}

function expectTxError(fn: () => unknown, code: string, action: 'reject' | 'ignore'): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TxError, `expected TxError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    assert.equal(error.action, action, `${code} should be ${action}`)
    return true
  })
}

/** What "the pool did not change" compares. */
function poolState(mempool: Mempool) {
  return { ids: [...mempool.ids()].sort(), size: mempool.size, bytes: mempool.sizeBytes }
}

const ids = (txs: SignedTx[]) => txs.map((s) => s.idHex)
const sortedIds = (txs: SignedTx[]) => ids(txs).sort()

// ---------------------------------------------------------------- reject codes

describe('mempool reject codes', () => {
  it('TX_MALFORMED', () => {
    const { ingest, mempool } = setup()
    const good = tx(1, 0, 1n)
    expectTxError(() => ingest.ingestBytes(new Uint8Array([...good.bytes, 0]), 0), 'TX_MALFORMED', 'reject')
    expectTxError(() => ingest.ingestBytes(good.bytes.subarray(0, good.bytes.length - 1), 0), 'TX_MALFORMED', 'reject')
    expectTxError(() => ingest.ingestBytes(new Uint8Array([0x02, 0x00]), 0), 'TX_MALFORMED', 'reject')
    expectTxError(() => ingest.ingestBytes(new Uint8Array(0), 0), 'TX_MALFORMED', 'reject')
    assert.equal(mempool.size, 0)
    // The untouched bytes are accepted, so the failures above are about the changes.
    ingest.ingestBytes(good.bytes, 0)
    assert.ok(mempool.has(good.idHex))
  })

  it('TX_TOO_LARGE', () => {
    const { ingest, mempool } = setup({}, { maxTxBytes: 200 })
    const big = withMemo(1, 0, 1n, 40)
    assert.equal(big.bytes.length, TX_BYTES + 40)
    // Refused on its length, before decoding (bytes and already-decoded paths both).
    expectTxError(() => ingest.ingestBytes(big.bytes, 0), 'TX_TOO_LARGE', 'reject')
    expectTxError(() => ingest.ingest(big, 0), 'TX_TOO_LARGE', 'reject')
    expectTxError(() => ingest.ingestBytes(new Uint8Array(100_000), 0), 'TX_TOO_LARGE', 'reject')
    assert.equal(mempool.size, 0)
    const fits = withMemo(1, 0, 1n, 200 - TX_BYTES)
    assert.equal(fits.bytes.length, 200)
    ingest.ingestBytes(fits.bytes, 0)
    assert.equal(mempool.size, 1)
  })

  it('TX_WRONG_CHAIN', () => {
    const { ingest, mempool } = setup()
    const other = transfer(1, RECIPIENT, 10n, 0, 1n, 'other-chain')
    expectTxError(() => ingest.ingestBytes(other.bytes, 0), 'TX_WRONG_CHAIN', 'reject')
    expectTxError(() => ingest.ingest(other, 0), 'TX_WRONG_CHAIN', 'reject')
    assert.equal(mempool.size, 0)
  })

  it('TX_MEMO_TOO_LARGE', () => {
    const { ingest, mempool } = setup({}, { maxMemoBytes: 8 })
    expectTxError(() => ingest.ingest(withMemo(1, 0, 1n, 9), 0), 'TX_MEMO_TOO_LARGE', 'reject')
    assert.equal(mempool.size, 0)
    ingest.ingest(withMemo(1, 0, 1n, 8), 0)
    assert.equal(mempool.size, 1)
  })

  it('TX_FEE_TOO_LOW', () => {
    const { ingest, mempool } = setup({}, { minFee: 5n })
    expectTxError(() => ingest.ingest(tx(1, 0, 4n), 0), 'TX_FEE_TOO_LOW', 'reject')
    expectTxError(() => ingest.ingest(tx(1, 0, 0n), 0), 'TX_FEE_TOO_LOW', 'reject')
    assert.equal(mempool.size, 0)
    ingest.ingest(tx(1, 0, 5n), 0)
    assert.equal(mempool.size, 1)
  })

  it('TX_BAD_SIGNATURE', () => {
    const { ingest, mempool } = setup()
    const good = tx(1, 0, 1n)
    // Signed by another key.
    const wrongKey = toSignedTx({ ...good.tx, signature: sign(signingMessage(encodeUnsignedTx(good.tx)), devKeypair(2)) })
    // A signature byte flipped.
    const flipped = good.tx.signature.slice()
    flipped[10] = (flipped[10] as number) ^ 1
    const tampered = toSignedTx({ ...good.tx, signature: flipped })
    // A field changed after signing.
    const changedAmount = toSignedTx({ ...good.tx, amount: good.tx.amount + 1n })
    for (const bad of [wrongKey, tampered, changedAmount]) {
      expectTxError(() => ingest.ingest(bad, 0), 'TX_BAD_SIGNATURE', 'reject')
      expectTxError(() => ingest.ingestBytes(bad.bytes, 0), 'TX_BAD_SIGNATURE', 'reject')
      assert.equal(ingest.verified.has(bad.idHex), false)
    }
    assert.equal(mempool.size, 0)
  })

  it('TX_NONCE_TOO_LOW', () => {
    const { ingest, mempool, accounts } = setup()
    accounts.set(1, { balance: 1_000n, nonce: 3 })
    expectTxError(() => ingest.ingest(tx(1, 2, 1n), 0), 'TX_NONCE_TOO_LOW', 'ignore')
    expectTxError(() => mempool.add(tx(1, 0, 1n), 0), 'TX_NONCE_TOO_LOW', 'ignore')
    assert.equal(mempool.size, 0)
    ingest.ingest(tx(1, 3, 1n), 0)
    assert.equal(mempool.size, 1)
  })

  it('TX_NONCE_TOO_HIGH', () => {
    const { ingest, mempool, accounts } = setup({ maxNonceAhead: 4 })
    accounts.set(1, { balance: 1_000n, nonce: 10 })
    expectTxError(() => ingest.ingest(tx(1, 14, 1n), 0), 'TX_NONCE_TOO_HIGH', 'ignore')
    expectTxError(() => mempool.add(tx(1, 1_000_000, 1n), 0), 'TX_NONCE_TOO_HIGH', 'ignore')
    assert.equal(mempool.size, 0)
    // The last nonce inside the window is held even with a gap before it.
    ingest.ingest(tx(1, 13, 1n), 0)
    assert.equal(mempool.size, 1)
  })

  it('TX_INSUFFICIENT_FUNDS', () => {
    const { ingest, mempool, accounts } = setup()
    accounts.set(1, { balance: 100n, nonce: 0 })
    expectTxError(() => ingest.ingest(tx(1, 0, 2n, 99n), 0), 'TX_INSUFFICIENT_FUNDS', 'ignore')
    // Queued txs before it count against the balance too.
    ingest.ingest(tx(1, 0, 1n, 50n), 0)
    expectTxError(() => ingest.ingest(tx(1, 1, 1n, 49n), 0), 'TX_INSUFFICIENT_FUNDS', 'ignore')
    ingest.ingest(tx(1, 1, 1n, 48n), 0)
    assert.equal(mempool.size, 2)
    // An account that does not exist has nothing.
    expectTxError(() => mempool.add(transfer(77, RECIPIENT, 0n, 0, 1n), 0), 'TX_INSUFFICIENT_FUNDS', 'ignore')
  })

  it('TX_ALREADY_KNOWN', () => {
    const { ingest, mempool, included, accounts } = setup()
    const first = tx(1, 0, 1n)
    ingest.ingest(first, 0)
    const before = poolState(mempool)
    expectTxError(() => ingest.ingest(first, 1), 'TX_ALREADY_KNOWN', 'ignore')
    expectTxError(() => ingest.ingestBytes(first.bytes, 1), 'TX_ALREADY_KNOWN', 'ignore')
    expectTxError(() => mempool.add(first, 1), 'TX_ALREADY_KNOWN', 'ignore')
    assert.deepEqual(poolState(mempool), before)
    // Already in the chain (its nonce is spent) counts as known too.
    const inChain = tx(2, 0, 1n)
    included.add(inChain.idHex)
    accounts.set(2, { balance: 1_000_000n, nonce: 1 })
    expectTxError(() => ingest.ingest(inChain, 1), 'TX_ALREADY_KNOWN', 'ignore')
    assert.equal(mempool.has(inChain.idHex), false)
  })

  it("a peer's batch (terse) is refused with the same codes and actions as one tx at a time, and admits the same txs", async () => {
    const build = () => {
      const setupResult = setup()
      setupResult.accounts.set(1, { balance: 1_000n, nonce: 2 })
      setupResult.accounts.set(2, { balance: 5n, nonce: 0 })
      const pending = tx(1, 2, 1n)
      setupResult.ingest.ingest(pending, 0)
      const inChain = tx(1, 0, 1n)
      setupResult.included.add(inChain.idHex)
      // pending again, in the chain, spent nonce, cannot pay, unfunded key, fine.
      return { ...setupResult, batch: [pending, inChain, tx(1, 1, 1n), tx(2, 0, 1n, 10n), transfer(77, RECIPIENT, 1n, 0, 1n, CHAIN_ID), tx(1, 3, 1n)] }
    }
    const detailed = build()
    const one = detailed.batch.map((signed) => {
      try {
        detailed.ingest.ingest(signed, 1)
        return 'ok'
      } catch (error) {
        assert.ok(error instanceof TxError)
        return `${error.code}/${error.action}`
      }
    })
    const terse = build()
    const outcomes = await terse.ingest.ingestMany(terse.batch, () => 1, { terse: true })
    const many = outcomes.map((outcome) => (outcome.ok ? 'ok' : `${outcome.error.code}/${outcome.error.action}`))
    assert.deepEqual(many, one)
    assert.deepEqual(one, ['TX_ALREADY_KNOWN/ignore', 'TX_ALREADY_KNOWN/ignore', 'TX_NONCE_TOO_LOW/ignore', 'TX_INSUFFICIENT_FUNDS/ignore', 'TX_INSUFFICIENT_FUNDS/ignore', 'ok'])
    assert.deepEqual(poolState(terse.mempool), poolState(detailed.mempool))
  })

  it('TX_REPLACEMENT_UNDERPRICED', () => {
    const { ingest, mempool } = setup()
    const original = tx(1, 0, 5n, 10n)
    ingest.ingest(original, 0)
    const before = poolState(mempool)
    expectTxError(() => ingest.ingest(tx(1, 0, 5n, 11n), 1), 'TX_REPLACEMENT_UNDERPRICED', 'ignore')
    expectTxError(() => ingest.ingest(tx(1, 0, 4n, 11n), 1), 'TX_REPLACEMENT_UNDERPRICED', 'ignore')
    assert.deepEqual(poolState(mempool), before)
    assert.ok(mempool.has(original.idHex))
  })

  it('MEMPOOL_FULL', () => {
    const { ingest, mempool } = setup({ maxTxs: 2 })
    ingest.ingest(tx(1, 0, 5n), 0)
    ingest.ingest(tx(2, 0, 5n), 0)
    const before = poolState(mempool)
    // Equal to the cheapest is not enough; lower certainly is not.
    expectTxError(() => ingest.ingest(tx(3, 0, 5n), 1), 'MEMPOOL_FULL', 'ignore')
    expectTxError(() => ingest.ingest(tx(3, 0, 1n), 1), 'MEMPOOL_FULL', 'ignore')
    assert.deepEqual(poolState(mempool), before)
  })
})

// ---------------------------------------------------------------- replacement and eviction

describe('mempool replacement and eviction', () => {
  it('a higher fee replaces the same sender and nonce', () => {
    const { mempool } = setup()
    const original = tx(1, 0, 5n, 10n)
    const later = tx(1, 1, 5n)
    mempool.add(original, 0)
    mempool.add(later, 0)
    const replacement = withMemo(1, 0, 6n, 30)
    const result = mempool.add(replacement, 1)
    assert.equal(result.replaced?.idHex, original.idHex)
    assert.deepEqual(result.evicted, [])
    assert.equal(mempool.has(original.idHex), false)
    assert.ok(mempool.has(replacement.idHex))
    assert.ok(mempool.has(later.idHex), "the sender's later nonce stays")
    assert.equal(mempool.size, 2)
    assert.equal(mempool.sizeBytes, 2 * TX_BYTES + 30)
    assert.deepEqual(ids(mempool.pack(() => true, 10, 1_000_000)), [replacement.idHex, later.idHex])
  })

  it('full by count: the lowest fee is evicted with its sender\'s later nonces', () => {
    const { mempool } = setup({ maxTxs: 4 })
    const a0 = tx(1, 0, 5n)
    const b0 = tx(2, 0, 2n)
    const b1 = tx(2, 1, 9n)
    const c0 = tx(3, 0, 7n)
    for (const signed of [a0, b0, b1, c0]) mempool.add(signed, 0)
    const d0 = tx(4, 0, 3n)
    const result = mempool.add(d0, 1)
    assert.deepEqual(sortedIds(result.evicted), sortedIds([b0, b1]))
    assert.equal(result.replaced, undefined)
    assert.deepEqual(poolState(mempool).ids, sortedIds([a0, c0, d0]))
    assert.equal(mempool.sizeBytes, 3 * TX_BYTES)
    assert.equal(mempool.nextNonce(address(2), 0), 0)
  })

  it('full by bytes: cheapest txs go until the newcomer fits', () => {
    const { mempool } = setup({ maxBytes: 3 * TX_BYTES })
    const a0 = tx(1, 0, 5n)
    const b0 = tx(2, 0, 2n)
    const c0 = tx(3, 0, 4n)
    for (const signed of [a0, b0, c0]) mempool.add(signed, 0)
    assert.equal(mempool.sizeBytes, 3 * TX_BYTES)
    // 100 bytes more than one slot: both b0 (fee 2) and c0 (fee 4) must go, a0 (fee 5) stays.
    const big = withMemo(4, 0, 6n, 100)
    const result = mempool.add(big, 1)
    assert.deepEqual(sortedIds(result.evicted), sortedIds([b0, c0]))
    assert.deepEqual(poolState(mempool).ids, sortedIds([a0, big]))
    assert.equal(mempool.sizeBytes, 2 * TX_BYTES + 100)
    assert.ok(mempool.sizeBytes <= 3 * TX_BYTES)
  })

  it('full by bytes: a newcomer that would need a non-outbid tx evicted gets MEMPOOL_FULL and changes nothing', () => {
    const { mempool } = setup({ maxBytes: 3 * TX_BYTES })
    for (const signed of [tx(1, 0, 5n), tx(2, 0, 2n), tx(3, 0, 4n)]) mempool.add(signed, 0)
    const before = poolState(mempool)
    // Fee 3 outbids b0 but must also push out c0 (fee 4) to fit.
    expectTxError(() => mempool.add(withMemo(4, 0, 3n, 100), 1), 'MEMPOOL_FULL', 'ignore')
    assert.deepEqual(poolState(mempool), before)
  })

  it('a refused newcomer leaves eviction order intact for the next one', () => {
    const { mempool } = setup({ maxTxs: 3 })
    const a0 = tx(1, 0, 4n)
    const b0 = tx(2, 0, 2n)
    const c0 = tx(3, 0, 6n)
    for (const signed of [a0, b0, c0]) mempool.add(signed, 0)
    const before = poolState(mempool)
    for (let i = 0; i < 3; i++) expectTxError(() => mempool.add(tx(4, 0, 2n), 1), 'MEMPOOL_FULL', 'ignore')
    assert.deepEqual(poolState(mempool), before)
    // The cheapest is still found first, then the next cheapest.
    const e0 = tx(5, 0, 3n)
    assert.deepEqual(ids(mempool.add(e0, 2).evicted), [b0.idHex])
    expectTxError(() => mempool.add(tx(6, 0, 3n), 2), 'MEMPOOL_FULL', 'ignore')
    const f0 = tx(6, 0, 5n)
    assert.deepEqual(ids(mempool.add(f0, 2).evicted), [e0.idHex])
    assert.deepEqual(poolState(mempool).ids, sortedIds([a0, c0, f0]))
  })

  it("a newcomer is not admitted by evicting its own sender's earlier nonce", () => {
    const { mempool } = setup({ maxTxs: 2 })
    mempool.add(tx(1, 0, 1n), 0)
    mempool.add(tx(2, 0, 10n), 0)
    const before = poolState(mempool)
    expectTxError(() => mempool.add(tx(1, 1, 5n), 1), 'MEMPOOL_FULL', 'ignore')
    assert.deepEqual(poolState(mempool), before)
  })

  it('a larger replacement in a byte-full pool evicts another tx, not the one it replaces, and keeps the byte bound', () => {
    const maxBytes = 3 * TX_BYTES
    const { mempool } = setup({ maxBytes })
    const a0 = tx(1, 0, 1n)
    const c0 = tx(3, 0, 2n)
    const b0 = tx(2, 0, 10n)
    for (const signed of [a0, c0, b0]) mempool.add(signed, 0)
    const bigger = withMemo(1, 0, 4n, 10)
    const result = mempool.add(bigger, 1)
    assert.equal(result.replaced?.idHex, a0.idHex)
    assert.deepEqual(ids(result.evicted), [c0.idHex])
    assert.deepEqual(poolState(mempool).ids, sortedIds([bigger, b0]))
    assert.ok(mempool.sizeBytes <= maxBytes, `${mempool.sizeBytes} bytes pending, bound ${maxBytes}`)
  })

  it("a larger replacement does not evict its own sender's later nonces to make room", () => {
    const { mempool } = setup({ maxBytes: 3 * TX_BYTES })
    const a0 = tx(1, 0, 2n)
    const a1 = tx(1, 1, 30n)
    const b0 = tx(2, 0, 10n)
    for (const signed of [a0, a1, b0]) mempool.add(signed, 0)
    const before = poolState(mempool)
    // Only a0 (being replaced) is cheaper than the newcomer, so there is no room to make.
    expectTxError(() => mempool.add(withMemo(1, 0, 4n, 10), 1), 'MEMPOOL_FULL', 'ignore')
    assert.deepEqual(poolState(mempool), before)
    // A same-size replacement needs no room and goes through.
    const same = tx(1, 0, 4n, 11n)
    assert.equal(mempool.add(same, 1).replaced?.idHex, a0.idHex)
    assert.deepEqual(poolState(mempool).ids, sortedIds([same, a1, b0]))
  })

  it('ties in fee: the later arrival is evicted first', () => {
    const { mempool } = setup({ maxTxs: 2 })
    const early = tx(1, 0, 2n)
    const late = tx(2, 0, 2n)
    mempool.add(early, 0)
    mempool.add(late, 1)
    assert.deepEqual(ids(mempool.add(tx(3, 0, 3n), 2).evicted), [late.idHex])
  })
})

// ---------------------------------------------------------------- expiry, packing, head changes

describe('mempool expiry', () => {
  it('drops a tx after ttlMs together with the same sender\'s later nonces', () => {
    const { mempool } = setup({ ttlMs: 1_000 })
    const a0 = tx(1, 0, 1n)
    const a1 = tx(1, 1, 1n)
    const b0 = tx(2, 0, 1n)
    mempool.add(a0, 0)
    mempool.add(a1, 500)
    mempool.add(b0, 600)
    assert.deepEqual(mempool.expire(999), [])
    assert.equal(mempool.size, 3)
    const dropped = mempool.expire(1_000)
    assert.deepEqual(sortedIds(dropped), sortedIds([a0, a1]), 'a1 is younger than the TTL but stranded without a0')
    assert.deepEqual(poolState(mempool).ids, [b0.idHex])
    assert.equal(mempool.sizeBytes, TX_BYTES)
    assert.deepEqual(ids(mempool.expire(1_600)), [b0.idHex])
    assert.equal(mempool.size, 0)
    assert.equal(mempool.sizeBytes, 0)
  })

  it('an expired later nonce does not take earlier ones with it', () => {
    const { mempool } = setup({ ttlMs: 1_000 })
    const a0 = tx(1, 0, 1n)
    const a1 = tx(1, 1, 1n)
    mempool.add(a1, 0)
    mempool.add(a0, 900)
    assert.deepEqual(ids(mempool.expire(1_000)), [a1.idHex])
    assert.deepEqual(poolState(mempool).ids, [a0.idHex])
  })
})

describe('mempool pack', () => {
  it('takes executable txs highest fee first, in nonce order per sender', () => {
    const { mempool, accounts } = setup()
    accounts.set(3, { balance: 1_000_000n, nonce: 0 })
    const a0 = tx(1, 0, 9n)
    const a1 = tx(1, 1, 1n)
    const b0 = tx(2, 0, 5n)
    const b1 = tx(2, 1, 8n)
    const c1 = tx(3, 1, 100n) // nonce gap: not executable
    for (const signed of [a1, b1, c1, a0, b0]) mempool.add(signed, 0)
    const applied: string[] = []
    const picked = mempool.pack((signed) => (applied.push(signed.idHex), true), 100, 1_000_000)
    assert.deepEqual(ids(picked), ids([a0, b0, b1, a1]))
    assert.deepEqual(applied, ids(picked))
    assert.equal(mempool.size, 5, 'packing does not remove')
  })

  it('starts each sender at its account nonce', () => {
    const { mempool, accounts } = setup()
    const a0 = tx(1, 0, 9n)
    const a1 = tx(1, 1, 1n)
    mempool.add(a0, 0)
    mempool.add(a1, 0)
    accounts.set(1, { balance: 1_000_000n, nonce: 1 })
    assert.deepEqual(ids(mempool.pack(() => true, 100, 1_000_000)), [a1.idHex])
  })

  it('ties in fee go to the earlier arrival', () => {
    const { mempool } = setup()
    const first = tx(2, 0, 3n)
    const second = tx(1, 0, 3n)
    mempool.add(first, 0)
    mempool.add(second, 1)
    assert.deepEqual(ids(mempool.pack(() => true, 100, 1_000_000)), ids([first, second]))
  })

  it('stops at maxTxs and at maxBytes', () => {
    const { mempool } = setup()
    const txs = [tx(1, 0, 5n), tx(2, 0, 4n), tx(3, 0, 3n), tx(4, 0, 2n)]
    for (const signed of txs) mempool.add(signed, 0)
    assert.deepEqual(ids(mempool.pack(() => true, 2, 1_000_000)), ids(txs.slice(0, 2)))
    assert.deepEqual(ids(mempool.pack(() => true, 100, 3 * TX_BYTES - 1)), ids(txs.slice(0, 2)))
    assert.deepEqual(ids(mempool.pack(() => true, 100, 3 * TX_BYTES)), ids(txs.slice(0, 3)))
    assert.deepEqual(mempool.pack(() => true, 0, 1_000_000), [])
    assert.deepEqual(mempool.pack(() => true, 100, TX_BYTES - 1), [])
  })

  it('a tx over the byte budget is skipped and smaller ones still fit', () => {
    const { mempool } = setup()
    const big = withMemo(1, 0, 9n, 200)
    const small = tx(2, 0, 1n)
    mempool.add(big, 0)
    mempool.add(small, 0)
    assert.deepEqual(ids(mempool.pack(() => true, 100, TX_BYTES + 100)), [small.idHex])
  })

  it('skips a sender when tryApply returns false', () => {
    const { mempool } = setup()
    const a0 = tx(1, 0, 9n)
    const a1 = tx(1, 1, 9n)
    const b0 = tx(2, 0, 5n)
    const b1 = tx(2, 1, 1n)
    for (const signed of [a0, a1, b0, b1]) mempool.add(signed, 0)
    const offered: string[] = []
    const picked = mempool.pack(
      (signed) => {
        offered.push(signed.idHex)
        return signed.idHex !== a0.idHex
      },
      100,
      1_000_000,
    )
    assert.deepEqual(ids(picked), ids([b0, b1]))
    assert.equal(offered.includes(a1.idHex), false, "the refused sender's later nonce is never offered")
    // A refusal part-way skips only what follows it.
    const picked2 = mempool.pack((signed) => signed.idHex !== a1.idHex, 100, 1_000_000)
    assert.deepEqual(ids(picked2), ids([a0, b0, b1]))
  })
})

describe('mempool head changes and nonces', () => {
  it('onHeadChange drops included txs and txs whose nonce is now spent', () => {
    const { mempool, accounts } = setup()
    const a0 = tx(1, 0, 1n)
    const a1 = tx(1, 1, 1n)
    const a2 = tx(1, 2, 1n)
    const b0 = tx(2, 0, 1n)
    const c0 = tx(3, 0, 1n)
    for (const signed of [a0, a1, a2, b0, c0]) mempool.add(signed, 0)
    // The chain included a0 and another tx with nonce 1 from the same sender, plus c0.
    accounts.set(1, { balance: 1_000_000n, nonce: 2 })
    accounts.set(3, { balance: 1_000_000n, nonce: 1 })
    mempool.onHeadChange([a0.idHex, c0.idHex, 'ff'.repeat(32)], [address(1), address(3)])
    assert.deepEqual(poolState(mempool).ids, sortedIds([a2, b0]))
    assert.equal(mempool.sizeBytes, 2 * TX_BYTES)
    assert.deepEqual(ids(mempool.pack(() => true, 100, 1_000_000)), ids([a2, b0]))
  })

  it('onHeadChange leaves senders it is not told about alone', () => {
    const { mempool, accounts } = setup()
    const b0 = tx(2, 0, 1n)
    mempool.add(b0, 0)
    accounts.set(2, { balance: 1_000_000n, nonce: 1 })
    mempool.onHeadChange([], [address(1)])
    assert.ok(mempool.has(b0.idHex))
    mempool.onHeadChange([], [address(2)])
    assert.equal(mempool.has(b0.idHex), false)
  })

  it('nextNonce is the first nonce at or after the account nonce with nothing pending', () => {
    const { mempool } = setup()
    assert.equal(mempool.nextNonce(address(1), 0), 0)
    assert.equal(mempool.nextNonce(address(9), 7), 7)
    mempool.add(tx(1, 0, 1n), 0)
    mempool.add(tx(1, 1, 1n), 0)
    mempool.add(tx(1, 3, 1n), 0)
    assert.equal(mempool.nextNonce(address(1), 0), 2, 'stops at the gap')
    assert.equal(mempool.nextNonce(address(1), 1), 2)
    assert.equal(mempool.nextNonce(address(1), 3), 4)
    assert.equal(mempool.nextNonce(address(1), 5), 5)
  })

  it('remove, has and get', () => {
    const { mempool } = setup()
    const a0 = tx(1, 0, 1n)
    mempool.add(a0, 0)
    assert.equal(mempool.get(a0.idHex), a0)
    assert.equal(mempool.remove(a0.idHex), true)
    assert.equal(mempool.remove(a0.idHex), false)
    assert.equal(mempool.has(a0.idHex), false)
    assert.equal(mempool.get(a0.idHex), undefined)
    assert.equal(mempool.sizeBytes, 0)
    assert.equal(mempool.nextNonce(address(1), 0), 0)
  })
})

// ---------------------------------------------------------------- verify once

describe('signature verified once', () => {
  it('an ingested tx is recorded as verified, and a second ingest after removal does not verify again', () => {
    const { ingest, mempool } = setup()
    const good = tx(1, 0, 1n)
    ingest.ingest(good, 0)
    assert.ok(ingest.verified.has(good.idHex))
    assert.ok(ingest.isVerified(good.idHex))
    mempool.remove(good.idHex)
    assert.ok(ingest.isVerified(good.idHex), 'still known as verified after leaving the pool')

    // The same id carrying a signature that does not verify: accepted only if the check is skipped.
    const forged: SignedTx = { ...good, tx: { ...good.tx, signature: new Uint8Array(64) } }
    const result = ingest.ingest(forged, 1)
    assert.equal(result.signed, forged)
    assert.ok(mempool.has(good.idHex))

    // A pipeline that has not seen the id does verify, and refuses it.
    const fresh = setup()
    expectTxError(() => fresh.ingest.ingest(forged, 1), 'TX_BAD_SIGNATURE', 'reject')
  })

  it('a sender who cannot pay for the tx alone is refused before the signature is paid for', () => {
    const { ingest, accounts } = setup()
    accounts.set(1, { balance: 1n, nonce: 0 })
    const unfunded = tx(1, 0, 5n)
    expectTxError(() => ingest.ingest(unfunded, 0), 'TX_INSUFFICIENT_FUNDS', 'ignore')
    assert.equal(ingest.verified.has(unfunded.idHex), false, 'no signature check for a sender who cannot pay')
  })

  it('a tx that fails after the signature check (funds spent by queued txs) is still remembered as verified', () => {
    const { ingest, accounts } = setup()
    const first = tx(1, 0, 5n)
    const cost = first.tx.amount + first.tx.fee
    accounts.set(1, { balance: cost + cost / 2n, nonce: 0 })
    ingest.ingest(first, 0)
    const second = tx(1, 1, 5n)
    expectTxError(() => ingest.ingest(second, 0), 'TX_INSUFFICIENT_FUNDS', 'ignore')
    assert.ok(ingest.verified.has(second.idHex), 'it could pay alone: the signature was checked, then the mempool refused it')
  })

  it('a spent nonce is refused before the signature is paid for', () => {
    const { ingest, accounts } = setup()
    accounts.set(1, { balance: 1_000n, nonce: 5 })
    const stale = tx(1, 4, 1n)
    expectTxError(() => ingest.ingest(stale, 0), 'TX_NONCE_TOO_LOW', 'ignore')
    assert.equal(ingest.verified.has(stale.idHex), false)
  })

  it('a tx refused before the signature check is not marked verified', () => {
    const { ingest } = setup({}, { minFee: 10n })
    const cheap = tx(1, 0, 1n)
    expectTxError(() => ingest.ingest(cheap, 0), 'TX_FEE_TOO_LOW', 'reject')
    assert.equal(ingest.verified.has(cheap.idHex), false)
  })
})

// ---------------------------------------------------------------- invariants

describe('mempool invariants', () => {
  it('under random adds, replacements and expiry: bounds hold, accounting is exact, refusals change nothing', () => {
    // Signed once up front: 4 senders × 5 nonces × 3 fees × 2 sizes.
    const catalogue: SignedTx[] = []
    for (let from = 1; from <= 4; from++) {
      for (let nonce = 0; nonce < 5; nonce++) {
        for (const fee of [1n, 3n, 7n]) for (const memo of [0, 60]) catalogue.push(withMemo(from, nonce, fee + BigInt(from), memo))
      }
    }
    const opArb = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('add' as const), index: fc.nat(catalogue.length - 1) }, { noNullPrototype: true }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 400 }) }, { noNullPrototype: true }) },
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 2, max: 8 }), fc.array(opArb, { maxLength: 60 }), (maxTxs, maxSlots, ops) => {
        const maxBytes = maxSlots * TX_BYTES
        const { mempool } = setup({ maxTxs, maxBytes, ttlMs: 1_000 })
        let now = 0
        for (const op of ops) {
          if (op.kind === 'tick') {
            now += op.ms
            for (const dropped of mempool.expire(now)) assert.equal(mempool.has(dropped.idHex), false)
          } else {
            const signed = catalogue[op.index] as SignedTx
            const before = poolState(mempool)
            try {
              const result = mempool.add(signed, now)
              assert.ok(mempool.has(signed.idHex))
              if (result.replaced !== undefined) {
                assert.equal(mempool.has(result.replaced.idHex), false)
                assert.ok(result.replaced.tx.fee < signed.tx.fee, 'a replacement pays more')
              }
              // Per evicted sender: its first evicted nonce paid less than the newcomer (later ones go with it).
              const firstEvicted = new Map<string, SignedTx>()
              for (const gone of result.evicted) {
                assert.equal(mempool.has(gone.idHex), false)
                const key = toHexKey(gone.tx.from)
                const first = firstEvicted.get(key)
                if (first === undefined || gone.tx.nonce < first.tx.nonce) firstEvicted.set(key, gone)
              }
              for (const first of firstEvicted.values()) assert.ok(first.tx.fee < signed.tx.fee, 'only a lower fee makes way')
            } catch (error) {
              assert.ok(error instanceof TxError, String(error))
              assert.deepEqual(poolState(mempool), before, `${error.code} changed the pool`)
            }
          }
          const entries = [...mempool.entries()]
          assert.ok(mempool.size <= maxTxs)
          assert.ok(mempool.sizeBytes <= maxBytes, `${mempool.sizeBytes} > ${maxBytes}`)
          assert.equal(mempool.size, entries.length)
          assert.equal(mempool.sizeBytes, entries.reduce((sum, e) => sum + e.signed.bytes.length, 0))
          const slots = new Set(entries.map((e) => `${e.senderKey}:${e.signed.tx.nonce}`))
          assert.equal(slots.size, entries.length, 'one tx per sender and nonce')
        }
      }),
      { numRuns: 150 },
    )
  })
})
