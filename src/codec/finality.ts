/**
 * Canonical encodings of the finality objects (docs/protocol.md, "Finality"): Vote (type 0x04),
 * Evidence (type 0x05) and Certificate (type 0x06). Same rules as src/codec/objects.ts: fixed-width
 * big-endian integers, every count bounded before allocation, no trailing bytes, and the decoder
 * refuses anything that has another encoding (unsorted or repeated certificate entries, evidence
 * in the wrong order), so decode∘encode is the identity.
 */
import { sha256 } from '../crypto/hash.ts'
import { SIGNATURE_BYTES, signingMessage } from '../crypto/sign.ts'
import type { Certificate, CertificateSignature, Evidence, Vote } from '../ledger/types.ts'
import { DecodeError, type Reader, Writer, decodeExact } from './binary.ts'
import { bytesEqual, compareBytes } from './bytes.ts'
import { MAX_CHAIN_ID_BYTES, MAX_GENESIS_VALIDATORS } from './limits.ts'
import { readChainId, writeChainId } from './objects.ts'

export const TYPE_VOTE_V1 = 0x04
export const TYPE_EVIDENCE_V1 = 0x05
export const TYPE_CERTIFICATE_V1 = 0x06

/** type + chainId + height + blockHash + validatorIndex + signature */
export const MAX_VOTE_BYTES = 1 + (1 + MAX_CHAIN_ID_BYTES) + 8 + 32 + 2 + SIGNATURE_BYTES
export const MAX_EVIDENCE_BYTES = 1 + 2 * MAX_VOTE_BYTES
/** type + height + blockHash + u16 count + (u16 index + signature) × every validator */
export const MAX_CERTIFICATE_BYTES = 1 + 8 + 32 + 2 + MAX_GENESIS_VALIDATORS * (2 + SIGNATURE_BYTES)

// ---------------------------------------------------------------- votes

/** The signed part of a vote: type, chainId, height, block hash (the validator index is not signed). */
function writeVoteBody(writer: Writer, chainId: string, height: number, blockHash: Uint8Array): void {
  writer.u8(TYPE_VOTE_V1)
  writeChainId(writer, chainId)
  writer.u53(height).fixed(blockHash, 32)
}

/** What a vote's signature covers: SIGNING_DOMAIN || 0x04 || chainId || u64 height || blockHash. */
export function voteSigningMessage(chainId: string, height: number, blockHash: Uint8Array): Uint8Array {
  const writer = new Writer(1 + 1 + chainId.length + 8 + 32)
  writeVoteBody(writer, chainId, height, blockHash)
  return signingMessage(writer.finish())
}

function writeVote(writer: Writer, vote: Vote): void {
  writeVoteBody(writer, vote.chainId, vote.height, vote.blockHash)
  if (vote.validatorIndex >= MAX_GENESIS_VALIDATORS) throw new RangeError(`validator index ${vote.validatorIndex} out of range`)
  writer.u16(vote.validatorIndex).fixed(vote.signature, SIGNATURE_BYTES)
}

export function encodeVote(vote: Vote): Uint8Array {
  const writer = new Writer(MAX_VOTE_BYTES)
  writeVote(writer, vote)
  return writer.finish()
}

/** Reads one self-delimiting vote; returns owned copies (a frame is never retained). */
export function readVote(reader: Reader): Vote {
  const type = reader.u8('vote type')
  if (type !== TYPE_VOTE_V1) throw new DecodeError(`unknown vote type 0x${type.toString(16)}`)
  const chainId = readChainId(reader)
  const height = reader.u53('height')
  const blockHash = new Uint8Array(reader.fixed(32, 'blockHash'))
  const validatorIndex = reader.u16('validatorIndex')
  if (validatorIndex >= MAX_GENESIS_VALIDATORS) throw new DecodeError(`validator index ${validatorIndex} out of range`)
  const signature = new Uint8Array(reader.fixed(SIGNATURE_BYTES, 'signature'))
  return { chainId, height, blockHash, validatorIndex, signature }
}

export function decodeVote(bytes: Uint8Array): Vote {
  if (bytes.length > MAX_VOTE_BYTES) throw new DecodeError(`vote of ${bytes.length} bytes exceeds ${MAX_VOTE_BYTES}`)
  return decodeExact(bytes, readVote, 'vote')
}

/** A vote's inventory id (gossip `inv` kind 4): SHA-256 of its encoding, signature included. */
export function voteId(vote: Vote): Uint8Array {
  return sha256(encodeVote(vote))
}

// ---------------------------------------------------------------- evidence

/** True when the two votes form evidence in canonical order (same validator, chain and height; hashes ascending). */
export function isCanonicalEvidence(first: Vote, second: Vote): boolean {
  return (
    first.validatorIndex === second.validatorIndex &&
    first.height === second.height &&
    first.chainId === second.chainId &&
    compareBytes(first.blockHash, second.blockHash) < 0
  )
}

/** Orders two conflicting votes canonically (lower block hash first). */
export function makeEvidence(a: Vote, b: Vote): Evidence {
  const [first, second] = compareBytes(a.blockHash, b.blockHash) < 0 ? [a, b] : [b, a]
  if (!isCanonicalEvidence(first, second)) throw new RangeError('votes do not conflict: evidence needs one validator, one height, two blocks')
  return { first, second }
}

export function encodeEvidence(evidence: Evidence): Uint8Array {
  if (!isCanonicalEvidence(evidence.first, evidence.second)) throw new RangeError('evidence votes are not a canonical conflicting pair')
  const writer = new Writer(MAX_EVIDENCE_BYTES)
  writer.u8(TYPE_EVIDENCE_V1)
  writeVote(writer, evidence.first)
  writeVote(writer, evidence.second)
  return writer.finish()
}

export function readEvidence(reader: Reader): Evidence {
  const type = reader.u8('evidence type')
  if (type !== TYPE_EVIDENCE_V1) throw new DecodeError(`unknown evidence type 0x${type.toString(16)}`)
  const first = readVote(reader)
  const second = readVote(reader)
  if (!isCanonicalEvidence(first, second)) {
    throw new DecodeError('evidence must be two votes of one validator at one height, block hashes ascending')
  }
  return { first, second }
}

export function decodeEvidence(bytes: Uint8Array): Evidence {
  if (bytes.length > MAX_EVIDENCE_BYTES) throw new DecodeError(`evidence of ${bytes.length} bytes exceeds ${MAX_EVIDENCE_BYTES}`)
  return decodeExact(bytes, readEvidence, 'evidence')
}

/** Evidence's inventory id (gossip `inv` kind 5). */
export function evidenceId(evidence: Evidence): Uint8Array {
  return sha256(encodeEvidence(evidence))
}

export function evidenceEqual(a: Evidence, b: Evidence): boolean {
  return bytesEqual(encodeEvidence(a), encodeEvidence(b))
}

// ---------------------------------------------------------------- certificates

export function encodeCertificate(certificate: Certificate): Uint8Array {
  const signatures = certificate.signatures
  if (signatures.length === 0 || signatures.length > MAX_GENESIS_VALIDATORS) throw new RangeError('a certificate carries 1 to 1,024 signatures')
  const writer = new Writer(1 + 8 + 32 + 2 + signatures.length * (2 + SIGNATURE_BYTES))
  writer.u8(TYPE_CERTIFICATE_V1).u53(certificate.height).fixed(certificate.blockHash, 32).u16(signatures.length)
  let previous = -1
  for (const entry of signatures) {
    if (entry.validatorIndex <= previous || entry.validatorIndex >= MAX_GENESIS_VALIDATORS) {
      throw new RangeError('certificate signatures must be sorted by validator index, each index once')
    }
    previous = entry.validatorIndex
    writer.u16(entry.validatorIndex).fixed(entry.signature, SIGNATURE_BYTES)
  }
  return writer.finish()
}

export function readCertificate(reader: Reader): Certificate {
  const type = reader.u8('certificate type')
  if (type !== TYPE_CERTIFICATE_V1) throw new DecodeError(`unknown certificate type 0x${type.toString(16)}`)
  const height = reader.u53('height')
  const blockHash = new Uint8Array(reader.fixed(32, 'blockHash'))
  const count = reader.u16('signature count')
  if (count === 0 || count > MAX_GENESIS_VALIDATORS) throw new DecodeError(`certificate signature count ${count} outside 1..${MAX_GENESIS_VALIDATORS}`)
  const signatures: CertificateSignature[] = []
  let previous = -1
  for (let i = 0; i < count; i++) {
    const validatorIndex = reader.u16('validatorIndex')
    if (validatorIndex <= previous) throw new DecodeError('certificate validator indexes must be strictly ascending')
    if (validatorIndex >= MAX_GENESIS_VALIDATORS) throw new DecodeError(`validator index ${validatorIndex} out of range`)
    previous = validatorIndex
    signatures.push({ validatorIndex, signature: new Uint8Array(reader.fixed(SIGNATURE_BYTES, 'signature')) })
  }
  return { height, blockHash, signatures }
}

export function decodeCertificate(bytes: Uint8Array): Certificate {
  if (bytes.length > MAX_CERTIFICATE_BYTES) throw new DecodeError(`certificate of ${bytes.length} bytes exceeds ${MAX_CERTIFICATE_BYTES}`)
  return decodeExact(bytes, readCertificate, 'certificate')
}
