// The pinned signature rule: the fast path (libsodium) and the reference (@noble/curves point
// arithmetic) must answer identically on generated edge cases, and the cases with a known
// answer must get it. Vectors are generated here; nothing outside the repo is read.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { devKeypair } from '../../src/crypto/keys.ts'
import { sign, verify, verifyReference } from '../../src/crypto/sign.ts'

const Point = ed25519.Point
type EdPoint = InstanceType<typeof Point>
const L = Point.CURVE().n
const P = Point.CURVE().p

const le = (bytes: Uint8Array): bigint => {
  let x = 0n
  for (let i = bytes.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[i] as number)
  return x
}
const toLe = (value: bigint, length = 32): Uint8Array => {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    out[i] = Number(value & 0xffn)
    value >>= 8n
  }
  return out
}
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}
const challenge = (R: Uint8Array, A: Uint8Array, M: Uint8Array) => le(sha512(concat(R, A, M))) % L

// An order-8 point: the prime-order part of a curve point removed ([L]·P has order dividing 8).
function findOrder8Point(): EdPoint {
  for (let y = 2n; ; y++) {
    let point: EdPoint
    try {
      point = Point.fromBytes(toLe(y), false)
    } catch {
      continue
    }
    const torsion = point.multiplyUnsafe(L - 1n).add(point)
    if (!torsion.double().double().is0()) return torsion
  }
}
const T8 = findOrder8Point()
const torsionPoints: EdPoint[] = [Point.ZERO]
for (let k = 1; k < 8; k++) torsionPoints.push((torsionPoints[k - 1] as EdPoint).add(T8))

/** Every 32-byte encoding of the small-order points: canonical, sign-flipped and y + p forms. */
function smallOrderEncodings(): Uint8Array[] {
  const out = new Map<string, Uint8Array>()
  for (const point of torsionPoints) {
    const canonical = point.toBytes()
    out.set(Buffer.from(canonical).toString('hex'), canonical)
    const flipped = canonical.slice()
    flipped[31] = (flipped[31] as number) ^ 0x80
    out.set(Buffer.from(flipped).toString('hex'), flipped)
    const y = le(canonical) & ((1n << 255n) - 1n)
    if (y + P < 1n << 255n) {
      for (const sign of [0, 0x80]) {
        const nonCanonical = toLe(y + P)
        nonCanonical[31] = (nonCanonical[31] as number) | sign
        out.set(Buffer.from(nonCanonical).toString('hex'), nonCanonical)
      }
    }
  }
  return [...out.values()]
}

interface Case {
  name: string
  signature: Uint8Array
  message: Uint8Array
  publicKey: Uint8Array
  /** The rule's answer when it is known independently of both implementations. */
  expected?: boolean
}

/** Signs with an explicit secret scalar and nonce point, for keys with torsion components. */
function signRaw(secret: bigint, publicKey: Uint8Array, nonce: bigint, noncePoint: EdPoint, message: Uint8Array) {
  const R = noncePoint.toBytes()
  const k = challenge(R, publicKey, message)
  const S = (nonce + k * secret) % L
  return { signature: concat(R, toLe(S)), k }
}

function buildCases(): Case[] {
  const cases: Case[] = []
  const message = new TextEncoder().encode('grapevine signature rule')
  const key = devKeypair(7)
  const valid = sign(message, key)

  for (let i = 0; i < 16; i++) {
    const k = devKeypair(100 + i)
    const m = new TextEncoder().encode(`message ${i}`)
    cases.push({ name: `valid ${i}`, signature: sign(m, k), message: m, publicKey: k.publicKey, expected: true })
  }

  // Flipped bits anywhere in signature, message or key must fail.
  for (let bit = 0; bit < 512; bit += 7) {
    const signature = valid.slice()
    signature[bit >> 3] = (signature[bit >> 3] as number) ^ (1 << (bit & 7))
    cases.push({ name: `sig bit ${bit}`, signature, message, publicKey: key.publicKey, expected: false })
  }
  for (let bit = 0; bit < 256; bit += 5) {
    const publicKey = key.publicKey.slice()
    publicKey[bit >> 3] = (publicKey[bit >> 3] as number) ^ (1 << (bit & 7))
    cases.push({ name: `key bit ${bit}`, signature: valid, message, publicKey, expected: false })
  }
  for (let bit = 0; bit < message.length * 8; bit += 11) {
    const m = message.slice()
    m[bit >> 3] = (m[bit >> 3] as number) ^ (1 << (bit & 7))
    cases.push({ name: `message bit ${bit}`, signature: valid, message: m, publicKey: key.publicKey, expected: false })
  }

  // S >= L: the same signature with S + L (still < 2^256) and extreme S values.
  const S = le(valid.subarray(32))
  for (const [name, value] of [
    ['S + L', S + L],
    ['S = L', L],
    ['S = 2^253', 1n << 253n],
    ['S = 2^256 - 1', (1n << 256n) - 1n],
  ] as const) {
    if (value < 1n << 256n) cases.push({ name, signature: concat(valid.subarray(0, 32), toLe(value)), message, publicKey: key.publicKey, expected: false })
  }

  // Small-order A and R in every encoding; signatures that satisfy the cofactored equation too.
  const encodings = smallOrderEncodings()
  for (const A of encodings) {
    for (const R of encodings) {
      cases.push({ name: `small A ${Buffer.from(A).toString('hex').slice(0, 8)} R ${Buffer.from(R).toString('hex').slice(0, 8)} S=0`, signature: concat(R, toLe(0n)), message, publicKey: A, expected: false })
    }
    // S·B = R + k·A holds cofactorless with R = S·B when k·A vanishes; reject anyway (small A).
    const R = Point.BASE.multiply(5n).toBytes()
    cases.push({ name: `small A with R=5B`, signature: concat(R, toLe(5n)), message, publicKey: A, expected: false })
  }
  for (const R of encodings) {
    // A valid key, R small order: never accepted.
    cases.push({ name: `small R only`, signature: concat(R, valid.subarray(32)), message, publicKey: key.publicKey, expected: false })
  }

  // Mixed-order public key A = a·B + T: the cofactorless equation holds exactly when k·T = 0.
  const secret = 0x1234567890abcdefn
  for (let t = 1; t < 8; t++) {
    const A = Point.BASE.multiply(secret).add(torsionPoints[t] as EdPoint).toBytes()
    let withZeroResidue = 0
    let withResidue = 0
    for (let r = 1n; r < 400n && (withZeroResidue < 2 || withResidue < 2); r++) {
      const { signature, k } = signRaw(secret, A, r, Point.BASE.multiply(r), message)
      const residueVanishes = (torsionPoints[t] as EdPoint).multiplyUnsafe(k % L).is0()
      if (residueVanishes && withZeroResidue < 2) {
        withZeroResidue++
        cases.push({ name: `mixed-order A t=${t}, k·T=0`, signature, message, publicKey: A, expected: true })
      } else if (!residueVanishes && withResidue < 2) {
        withResidue++
        cases.push({ name: `mixed-order A t=${t}, k·T≠0`, signature, message, publicKey: A, expected: false })
      }
    }
  }

  // Mixed-order R = r·B + T with the correct S for r: S·B − k·A = r·B, which is not R.
  const cleanSecret = 0xfeedbeefn
  const cleanKey = Point.BASE.multiply(cleanSecret).toBytes()
  for (let t = 1; t < 8; t++) {
    const noncePoint = Point.BASE.multiply(77n).add(torsionPoints[t] as EdPoint)
    const { signature } = signRaw(cleanSecret, cleanKey, 77n, noncePoint, message)
    cases.push({ name: `mixed-order R t=${t}`, signature, message, publicKey: cleanKey, expected: false })
  }
  // Control: the same construction without torsion verifies, so the cases above fail for R alone.
  cases.push({ name: 'clean R control', signature: signRaw(cleanSecret, cleanKey, 77n, Point.BASE.multiply(77n), message).signature, message, publicKey: cleanKey, expected: true })

  // Non-canonical encodings (y >= p) of ordinary points, as A and as R.
  for (let y = 2n; y < 19n; y++) {
    let point: EdPoint
    try {
      point = Point.fromBytes(toLe(y), false)
    } catch {
      continue
    }
    if (point.isSmallOrder()) continue
    for (const sign of [0, 0x80]) {
      const nonCanonical = toLe(y + P)
      nonCanonical[31] = (nonCanonical[31] as number) | sign
      cases.push({ name: `non-canonical A y=${y}`, signature: valid, message, publicKey: nonCanonical, expected: false })
      cases.push({ name: `non-canonical R y=${y}`, signature: concat(nonCanonical, valid.subarray(32)), message, publicKey: key.publicKey, expected: false })
    }
  }

  // Keys that are not curve points.
  for (let y = 2n, found = 0; found < 8; y++) {
    try {
      Point.fromBytes(toLe(y), false)
    } catch {
      found++
      cases.push({ name: `off-curve A y=${y}`, signature: valid, message, publicKey: toLe(y), expected: false })
    }
  }

  // Wrong lengths never verify (and never throw).
  cases.push({ name: 'short signature', signature: valid.subarray(0, 63), message, publicKey: key.publicKey, expected: false })
  cases.push({ name: 'short key', signature: valid, message, publicKey: key.publicKey.subarray(0, 31), expected: false })
  return cases
}

describe('signature rule', () => {
  const cases = buildCases()

  it('generates a broad set of edge cases', () => {
    assert.ok(cases.length > 400, `only ${cases.length} cases`)
    assert.ok(cases.some((c) => c.name.startsWith('mixed-order A') && c.expected === true))
  })

  it('fast path and reference agree on every case', () => {
    const disagreements = cases.filter((c) => verify(c.signature, c.message, c.publicKey) !== verifyReference(c.signature, c.message, c.publicKey))
    assert.deepEqual(disagreements.map((c) => c.name), [])
  })

  it('cases with a known answer get it from both', () => {
    for (const c of cases) {
      if (c.expected === undefined) continue
      assert.equal(verify(c.signature, c.message, c.publicKey), c.expected, `fast path: ${c.name}`)
      assert.equal(verifyReference(c.signature, c.message, c.publicKey), c.expected, `reference: ${c.name}`)
    }
  })

  it('noble default (ZIP-215, cofactored) accepts what the pinned rule rejects, so the rule is enforced explicitly', () => {
    // Small-order A with S = 0 and R = identity: cofactored verification accepts it.
    const identity = Point.ZERO.toBytes()
    const message = new TextEncoder().encode('x')
    const signature = concat(identity, toLe(0n))
    assert.equal(ed25519.verify(signature, message, identity), true)
    assert.equal(verify(signature, message, identity), false)
    assert.equal(verifyReference(signature, message, identity), false)
  })
})
