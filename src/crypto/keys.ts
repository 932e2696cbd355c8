/**
 * ed25519 keys and addresses. An address is the 32-byte public key, written `0x` + 64 hex digits.
 * A key is kept as its 32-byte seed (what key files hold) plus libsodium's 64-byte expanded form.
 */
import { randomBytes } from 'node:crypto'
import sodium from 'sodium-native'
import { fromHex, toHex, utf8 } from '../codec/bytes.ts'
import { sha256Concat } from './hash.ts'

export interface Keypair {
  /** The 32-byte seed: the secret a key file stores. */
  seed: Uint8Array
  /** The 32-byte public key, which is also the address. */
  publicKey: Uint8Array
  /** libsodium's 64-byte secret key (seed || public key), used to sign. */
  secretKey: Uint8Array
}

export const SEED_BYTES = 32
export const PUBLIC_KEY_BYTES = 32

export function keypairFromSeed(seed: Uint8Array): Keypair {
  if (seed.length !== SEED_BYTES) throw new RangeError(`a key seed is ${SEED_BYTES} bytes`)
  const publicKey = new Uint8Array(PUBLIC_KEY_BYTES)
  const secretKey = new Uint8Array(64)
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  return { seed: new Uint8Array(seed), publicKey, secretKey }
}

export function generateKeypair(): Keypair {
  return keypairFromSeed(new Uint8Array(randomBytes(SEED_BYTES)))
}

const DEV_KEY_TAG = utf8('grapevine/devnet-key/v1')

/**
 * Deterministic devnet key i: seed = SHA-256("grapevine/devnet-key/v1" || u32be(i)).
 * These keys are PUBLIC (anyone can derive them) and exist only for local devnets and tests.
 */
export function devKeypair(index: number): Keypair {
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new RangeError('dev key index must be a u32')
  const indexBytes = new Uint8Array(4)
  new DataView(indexBytes.buffer).setUint32(0, index)
  return keypairFromSeed(sha256Concat(DEV_KEY_TAG, indexBytes))
}

export function addressToHex(address: Uint8Array): string {
  return toHex(address)
}

export class AddressError extends Error {
  override name = 'AddressError'
}

/** Parses `0x` + 64 hex digits. */
export function parseAddress(text: string): Uint8Array {
  if (typeof text !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(text)) {
    throw new AddressError('an address is 0x followed by 64 hex digits (a 32-byte ed25519 public key)')
  }
  return fromHex(text, { expectedBytes: PUBLIC_KEY_BYTES })
}
