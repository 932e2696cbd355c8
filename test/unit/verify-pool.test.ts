import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { devKeypair } from '../../src/crypto/keys.ts'
import { sign, verify } from '../../src/crypto/sign.ts'
import { type VerifyItem, VerifyPool } from '../../src/crypto/verify-pool.ts'
import { decodeSignedTx } from '../../src/codec/objects.ts'
import { BlockError } from '../../src/ledger/errors.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { GrapevineNode } from '../../src/node/node.ts'
import { buildNext, memoryChain, testGenesis, transfer } from '../helpers/chain.ts'

function items(count: number): VerifyItem[] {
  const out: VerifyItem[] = []
  for (let i = 0; i < count; i++) {
    const key = devKeypair(i % 7)
    const message = new TextEncoder().encode(`message ${i}`)
    let signature = sign(message, key)
    // Every third signature is broken, every fifth message is signed by another key.
    if (i % 3 === 0) {
      signature = signature.slice()
      signature[10] = (signature[10] as number) ^ 0xff
    }
    out.push({ signature, message, publicKey: i % 5 === 0 ? devKeypair(99).publicKey : key.publicKey })
  }
  return out
}

describe('VerifyPool', () => {
  const pool = new VerifyPool({ workers: 2, inlineBelow: 8 })
  after(() => pool.close())

  it('answers like the fast path, in order, across workers', async () => {
    const batch = items(301)
    const expected = batch.map((item) => verify(item.signature, item.message, item.publicKey))
    assert.ok(expected.includes(true) && expected.includes(false), 'the batch mixes valid and invalid signatures')
    assert.deepEqual(await pool.verifyMany(batch), expected)
  })

  it('verifies small batches inline and malformed lengths as invalid', async () => {
    const small = items(5)
    assert.deepEqual(await pool.verifyMany(small), small.map((item) => verify(item.signature, item.message, item.publicKey)))
    const malformed = [...items(20), { signature: new Uint8Array(63), message: new Uint8Array(3), publicKey: devKeypair(1).publicKey }]
    const answers = await pool.verifyMany(malformed)
    assert.equal(answers[answers.length - 1], false)
    assert.equal(answers.length, malformed.length)
  })

  it('runs concurrent batches independently', async () => {
    const a = items(64)
    const b = items(97).reverse()
    const [ra, rb] = await Promise.all([pool.verifyMany(a), pool.verifyMany(b)])
    assert.deepEqual(ra, a.map((item) => verify(item.signature, item.message, item.publicKey)))
    assert.deepEqual(rb, b.map((item) => verify(item.signature, item.message, item.publicKey)))
  })
})

describe('block import with a verify pool', () => {
  const genesis = testGenesis()
  const nodes: GrapevineNode[] = []
  after(() => Promise.all(nodes.map((node) => node.stop())))

  /** 40 transfers from distinct dev keys: more than the pool verifies inline. */
  function transfers(): SignedTx[] {
    return Array.from({ length: 40 }, (_, i) => transfer(10 + i, devKeypair(5000 + i).publicKey, 7n, 0))
  }

  it('imports a block of transactions it has never seen, with the pool on', async () => {
    const node = await GrapevineNode.open({ genesis, verifyWorkers: 2 })
    nodes.push(node)
    const producer = await memoryChain(genesis)
    const txs = transfers()
    const { block } = buildNext(producer, txs)
    for (const signed of txs) assert.equal(node.ingest.isVerified(signed.idHex), false)
    await node.importBlock(block, { kind: 'sync', peerId: 'test' })
    assert.equal(node.chain.head.header.height, 1)
    for (const signed of txs) assert.equal(node.ingest.verified.has(signed.idHex), true)
  })

  it('still refuses a block carrying a forged signature, with the transaction\'s code', async () => {
    const node = await GrapevineNode.open({ genesis, verifyWorkers: 2 })
    nodes.push(node)
    const producer = await memoryChain(genesis)
    const txs = transfers()
    const bytes = new Uint8Array((txs[17] as SignedTx).bytes)
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] as number) ^ 0x10
    const forged = decodeSignedTx(bytes)
    txs[17] = forged
    // The producer's packer applies transfers without checking signatures: the block is well formed.
    const { block } = buildNext(producer, txs)
    await assert.rejects(node.importBlock(block, { kind: 'sync', peerId: 'test' }), (error: unknown) => {
      assert.ok(error instanceof BlockError)
      assert.equal(error.code, 'BLOCK_INVALID_TX')
      assert.equal(error.txCode, 'TX_BAD_SIGNATURE')
      return true
    })
    assert.equal(node.chain.head.header.height, 0)
    assert.equal(node.ingest.verified.has(forged.idHex), false)
    // The valid ones were verified on the workers and are remembered.
    assert.equal(node.ingest.verified.has((txs[0] as SignedTx).idHex), true)
  })
})
