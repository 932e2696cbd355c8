/**
 * Benchmark: ed25519 signature verification, single core, every implementation in ONE process.
 *
 *   node --import tsx scripts/bench/verify.ts [--seconds 2] [--bytes 200] [--keys 256] [--json]
 *
 * Compares Grapevine's fast path `verify` (src/crypto/sign.ts, libsodium via sodium-native), raw
 * sodium-native crypto_sign_verify_detached, @noble/curves ed25519.verify (ZIP-215 default),
 * node:crypto (OpenSSL) with a cached KeyObject and with the key built on every call, and
 * Grapevine's `verifyReference` (@noble/curves arithmetic, the cross-check implementation).
 * Each runs for --seconds after a short warm-up over --keys distinct keys and random messages
 * of --bytes bytes (about the size of a signed transaction). Prints ops/s and µs/op, and names
 * the fastest raw (library-level) verifier. With --json the last line is one JSON object.
 */
import '../../src/polyfill.ts'
import { createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import sodium from 'sodium-native'
import { generateKeypair } from '../../src/crypto/keys.ts'
import { sign, verify, verifyReference } from '../../src/crypto/sign.ts'
import {
  type OpsResult,
  type SignedSample,
  ed25519SpkiDer,
  fmt,
  heading,
  intOption,
  measureOps,
  parseOptions,
  printHeader,
  printJson,
  printTable,
  round,
  toSample,
} from './util.ts'

const USAGE = `usage: node --import tsx scripts/bench/verify.ts [--seconds N] [--bytes N] [--keys N] [--json]
  --seconds N   measured duration per verifier, after a warm-up (default 2)
  --bytes N     message length in bytes (default 200, about a signed transaction)
  --keys N      distinct keypairs/messages cycled through (default 256)
  --json        also print one JSON object as the last line`

const { numbers, flags } = parseOptions(USAGE, { numbers: { seconds: 2, bytes: 200, keys: 256 } })
const seconds = numbers['seconds'] as number
const messageBytes = intOption(numbers, 'bytes', 0)
const keyCount = intOption(numbers, 'keys')

const machine = printHeader('ed25519 verify, single core', { seconds, bytes: messageBytes, keys: keyCount })

interface Sample extends SignedSample {
  der: Buffer
}

const samples: Sample[] = []
for (let i = 0; i < keyCount; i++) {
  const keypair = generateKeypair()
  const message = new Uint8Array(randomBytes(messageBytes))
  const signature = sign(message, keypair)
  samples.push({ ...toSample(message, signature, keypair.publicKey), der: ed25519SpkiDer(keypair.publicKey) })
}
const pick = (i: number): Sample => samples[i % samples.length] as Sample

interface Case {
  name: string
  /** Library-level verifier (candidate for "fastest raw verify"), as opposed to a Grapevine wrapper. */
  raw: boolean
  op: (sample: Sample) => boolean
}

const cases: Case[] = [
  { name: 'grapevine verify (fast path, sodium-native)', raw: false, op: (s) => verify(s.signature, s.message, s.publicKey) },
  { name: 'sodium-native crypto_sign_verify_detached', raw: true, op: (s) => sodium.crypto_sign_verify_detached(s.signature, s.message, s.publicKey) },
  { name: '@noble/curves ed25519.verify (zip215)', raw: true, op: (s) => ed25519.verify(s.signature, s.message, s.publicKey) },
  { name: 'node:crypto verify, cached KeyObject', raw: true, op: (s) => nodeVerify(null, s.message, s.keyObject, s.signature) },
  {
    name: 'node:crypto verify, key built per call',
    raw: true,
    op: (s) => nodeVerify(null, s.message, createPublicKey({ key: s.der, format: 'der', type: 'spki' }), s.signature),
  },
  { name: 'grapevine verifyReference (@noble/curves)', raw: false, op: (s) => verifyReference(s.signature, s.message, s.publicKey) },
]

// Sanity: every implementation accepts every sample and rejects a tampered one.
for (const c of cases) {
  const sample = pick(0)
  const tampered = { ...sample, message: sample.message.slice() }
  tampered.message[0] = (tampered.message[0] ?? 0) ^ 1
  if (messageBytes > 0 && c.op(tampered)) throw new Error(`${c.name} accepted a tampered message`)
}

const results: Array<OpsResult & { raw: boolean }> = []
for (const c of cases) {
  const result = measureOps(c.name, (i) => c.op(pick(i)), { seconds })
  results.push({ ...result, raw: c.raw })
  console.log(`  measured ${c.name}: ${fmt(result.opsPerSec)} ops/s`)
}

const fastestRaw = results.filter((r) => r.raw).reduce((best, r) => (r.opsPerSec > best.opsPerSec ? r : best))
const sodiumRaw = results.find((r) => r.name.startsWith('sodium-native')) as OpsResult

heading('Results (higher ops/s is better)')
printTable(
  ['verifier', 'ops/s', 'µs/op', 'vs fastest raw', 'ops'],
  results.map((r) => [r.name + (r.raw ? '' : ' *'), fmt(r.opsPerSec), fmt(r.usPerOp, 2), `${(r.opsPerSec / fastestRaw.opsPerSec).toFixed(3)}×`, fmt(r.ops)]),
)
console.log('  * Grapevine wrapper (not a raw library call)')
console.log(`\nFastest raw verify: ${fastestRaw.name} — ${fmt(fastestRaw.opsPerSec)} ops/s (${fmt(fastestRaw.usPerOp, 2)} µs/op)`)
const fastPath = results[0] as OpsResult
console.log(`Grapevine fast path vs raw sodium-native: ${((fastPath.opsPerSec / sodiumRaw.opsPerSec) * 100).toFixed(1)}%`)

if (flags['json']) {
  printJson({
    benchmark: 'verify',
    machine,
    settings: { seconds, bytes: messageBytes, keys: keyCount },
    results: results.map((r) => ({ name: r.name, raw: r.raw, opsPerSec: round(r.opsPerSec, 1), usPerOp: round(r.usPerOp, 3), ops: r.ops })),
    fastestRaw: { name: fastestRaw.name, opsPerSec: round(fastestRaw.opsPerSec, 1), usPerOp: round(fastestRaw.usPerOp, 3) },
  })
}
