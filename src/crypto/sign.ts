/**
 * Signatures under ONE pinned consensus rule (docs/protocol.md, "Signature rule"):
 *
 *   1. signature is 64 bytes R || S, public key A is 32 bytes;
 *   2. S < ℓ (the group order), so S is not malleable;
 *   3. A is a canonical encoding (y < p) of a point on the curve;
 *   4. neither A nor R is a small-order point, under any of its encodings;
 *   5. cofactorless equation, checked on bytes: encode([S]B − [k]A) == R,
 *      with k = SHA-512(R || A || M) mod ℓ. This also makes a non-canonical R fail.
 *
 * This is libsodium's `crypto_sign_verify_detached`, which is the fast path. `verifyReference`
 * implements the same rule independently on @noble/curves point arithmetic; the tests require
 * both to answer identically on generated edge cases.
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha512 } from '@noble/hashes/sha2.js'
import sodium from 'sodium-native'
import type { Keypair } from './keys.ts'

export const SIGNATURE_BYTES = 64

/** Every signed message starts with this tag, then the object's type byte and chainId. */
export const SIGNING_DOMAIN = new TextEncoder().encode('grapevine/sig/v1\0')

/** The exact bytes signed for an object whose unsigned encoding is `body`. */
export function signingMessage(body: Uint8Array): Uint8Array {
  const message = new Uint8Array(SIGNING_DOMAIN.length + body.length)
  message.set(SIGNING_DOMAIN, 0)
  message.set(body, SIGNING_DOMAIN.length)
  return message
}

export function sign(message: Uint8Array, keypair: Keypair): Uint8Array {
  const signature = new Uint8Array(SIGNATURE_BYTES)
  sodium.crypto_sign_detached(signature, message, keypair.secretKey)
  return signature
}

/** The node's fast path (libsodium). Never throws: malformed lengths are simply invalid. */
export function verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== 32) return false
  return sodium.crypto_sign_verify_detached(signature, message, publicKey)
}

const Point = ed25519.Point
const GROUP_ORDER = Point.CURVE().n
const FIELD_PRIME = Point.CURVE().p

function littleEndianToBigint(bytes: Uint8Array): bigint {
  let value = 0n
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] as number)
  return value
}

/** y with the sign bit masked off, compared against p. */
function isCanonicalPointEncoding(bytes: Uint8Array): boolean {
  const y = littleEndianToBigint(bytes) & ((1n << 255n) - 1n)
  return y < FIELD_PRIME
}

/** Decodes any y < 2^255 (non-canonical allowed) so small-order checks see every encoding. */
function decodeAnyEncoding(bytes: Uint8Array): InstanceType<typeof Point> | undefined {
  try {
    return Point.fromBytes(bytes, true)
  } catch {
    return undefined
  }
}

/** The same rule as `verify`, built on @noble/curves arithmetic: slow, for cross-checking only. */
export function verifyReference(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== 32) return false
  const encodedR = signature.subarray(0, 32)
  const scalarS = littleEndianToBigint(signature.subarray(32, 64))
  if (scalarS >= GROUP_ORDER) return false
  const pointR = decodeAnyEncoding(encodedR)
  if (pointR !== undefined && pointR.isSmallOrder()) return false
  if (!isCanonicalPointEncoding(publicKey)) return false
  const pointA = decodeAnyEncoding(publicKey)
  if (pointA === undefined || pointA.isSmallOrder()) return false
  const hashed = new Uint8Array(32 + 32 + message.length)
  hashed.set(encodedR, 0)
  hashed.set(publicKey, 32)
  hashed.set(message, 64)
  const k = littleEndianToBigint(sha512(hashed)) % GROUP_ORDER
  const check = Point.BASE.multiplyUnsafe(scalarS).subtract(pointA.multiplyUnsafe(k))
  const encodedCheck = check.toBytes()
  for (let i = 0; i < 32; i++) if (encodedCheck[i] !== encodedR[i]) return false
  return true
}
