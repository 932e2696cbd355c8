// Noise's X25519 on node:crypto's raw-key path (src/net/noise-crypto.ts): the same keys and shared
// secrets as the reference implementation (noble), for our own keys and for keys it did not make,
// and the same refusals (a short key, a low-order point) as noise's default crypto.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { x25519 } from '@noble/curves/ed25519.js'
import fc from 'fast-check'
import { Uint8ArrayList } from 'uint8arraylist'
import { noiseCrypto } from '../../../src/net/noise-crypto.ts'

const remoteKey = (seed: Uint8Array) => x25519.getPublicKey(seed)

describe('noise crypto', () => {
  it('a generated key pair is a real X25519 pair and its DH is the reference one', () => {
    for (let i = 0; i < 20; i++) {
      const pair = noiseCrypto.generateX25519KeyPair()
      assert.equal(pair.privateKey.byteLength, 32)
      assert.deepEqual(pair.publicKey, x25519.getPublicKey(pair.privateKey))
      const remote = randomBytes(32)
      assert.deepEqual(new Uint8Array(noiseCrypto.generateX25519SharedKey(pair.privateKey, remoteKey(remote))), x25519.getSharedSecret(pair.privateKey, remoteKey(remote)))
    }
  })

  it('both sides of a DH agree, whatever made each key', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const ours = noiseCrypto.generateX25519KeyPair()
        const seeded = noiseCrypto.generateX25519KeyPairFromSeed(seed)
        assert.deepEqual(seeded.publicKey, x25519.getPublicKey(seed))
        const a = noiseCrypto.generateX25519SharedKey(ours.privateKey, seeded.publicKey)
        const b = noiseCrypto.generateX25519SharedKey(seeded.privateKey, ours.publicKey)
        assert.deepEqual(new Uint8Array(a), new Uint8Array(b))
        // A private key this module did not make (a copy of the bytes) takes noise's own path, same answer.
        const c = noiseCrypto.generateX25519SharedKey(Uint8Array.from(ours.privateKey), seeded.publicKey)
        assert.deepEqual(new Uint8Array(c), new Uint8Array(a))
      }),
      { numRuns: 30 },
    )
  })

  it('takes the remote key as a Uint8ArrayList, as noise may pass it', () => {
    const pair = noiseCrypto.generateX25519KeyPair()
    const remote = remoteKey(randomBytes(32))
    // Our uint8arraylist and noise's are different versions of one class: the same shape at runtime.
    const list = new Uint8ArrayList(remote.subarray(0, 10), remote.subarray(10)) as unknown as Parameters<typeof noiseCrypto.generateX25519SharedKey>[1]
    assert.deepEqual(new Uint8Array(noiseCrypto.generateX25519SharedKey(pair.privateKey, list)), x25519.getSharedSecret(pair.privateKey, remote))
  })

  it('refuses a remote key of the wrong length and the all-zero (low-order) point', () => {
    const pair = noiseCrypto.generateX25519KeyPair()
    assert.throws(() => noiseCrypto.generateX25519SharedKey(pair.privateKey, new Uint8Array(31)), /31 bytes/)
    assert.throws(() => noiseCrypto.generateX25519SharedKey(pair.privateKey, new Uint8Array(33)), /33 bytes/)
    assert.throws(() => noiseCrypto.generateX25519SharedKey(pair.privateKey, new Uint8Array(32)))
  })
})
