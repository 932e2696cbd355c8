/**
 * Noise's X25519 on node:crypto without OpenSSL 3's key decoders.
 *
 * @chainsafe/libp2p-noise's default crypto imports both keys of every Diffie-Hellman from DER
 * (`createPrivateKey` of a PKCS#8 blob, `createPublicKey` of an SPKI one) and generates each
 * ephemeral key pair as DER. OpenSSL 3 runs DER through its generic decoder framework: in a
 * profile of 100 inbound connections, `createPrivateKey` alone took 3.6 ms of each. Importing the
 * same keys as JWK takes OpenSSL's raw-key path: a DH costs ~0.16 ms instead of ~1.1 ms, a key
 * pair generated and exported as JWK 0.14 ms instead of 0.42, and an inbound connection 0.68× the
 * listener's CPU (scripts/bench/stream-cost.ts, variant `noise`; docs/benchmarks.md).
 *
 * Our own private keys (the static key and every ephemeral one) are never re-imported: the
 * KeyObject that generated them is remembered against the exact byte array noise holds in its
 * key pair (a WeakMap: it goes with the key pair). A private key this module did not make falls
 * back to noise's own path. Everything else (hash, HKDF, ChaCha20-Poly1305) is noise's default.
 * The remote's public key goes to the same `crypto.diffieHellman`, so what is refused (a key of
 * the wrong length, a low-order point) is refused as before.
 */
import { type KeyObject, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'

const X25519_KEY_BYTES = 32
const PKCS8_X25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20])

/** Private key bytes handed to noise → the KeyObject they came from. Weak: dropped with the key pair. */
const ownKeys = new WeakMap<Uint8Array, KeyObject>()

/** A key as noise passes it: a Uint8Array or a Uint8ArrayList (noise's own version of that type). */
type KeyBytes = Parameters<ICryptoInterface['generateX25519SharedKey']>[1]

function bytes(data: KeyBytes): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

/** Raw private and public bytes of an X25519 KeyObject (JWK export: no DER encoder). */
function keyPairOf(privateKey: KeyObject): { publicKey: Uint8Array; privateKey: Uint8Array } {
  const jwk = privateKey.export({ format: 'jwk' })
  if (jwk.d === undefined || jwk.x === undefined) throw new Error('X25519 key export without d or x')
  const pair = { publicKey: new Uint8Array(Buffer.from(jwk.x, 'base64url')), privateKey: new Uint8Array(Buffer.from(jwk.d, 'base64url')) }
  ownKeys.set(pair.privateKey, privateKey)
  return pair
}

function remotePublicKey(publicKey: Uint8Array): KeyObject {
  if (publicKey.byteLength !== X25519_KEY_BYTES) throw new Error(`X25519 public key of ${publicKey.byteLength} bytes`)
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  generateX25519KeyPair() {
    return keyPairOf(generateKeyPairSync('x25519').privateKey)
  },
  generateX25519KeyPairFromSeed(seed) {
    // Once per noise instance (a configured static key): the DER import is fine here.
    return keyPairOf(createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, seed]), format: 'der', type: 'pkcs8' }))
  },
  generateX25519SharedKey(privateKey, publicKey) {
    const own = privateKey instanceof Uint8Array ? ownKeys.get(privateKey) : undefined
    if (own === undefined) return defaultCrypto.generateX25519SharedKey(privateKey, publicKey)
    return diffieHellman({ privateKey: own, publicKey: remotePublicKey(bytes(publicKey)) })
  },
}
