import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { devKeypair } from '../../src/crypto/keys.ts'
import { sign, verify } from '../../src/crypto/sign.ts'
import { type VerifyItem, VerifyPool } from '../../src/crypto/verify-pool.ts'

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
