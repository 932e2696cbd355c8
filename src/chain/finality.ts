/**
 * Finality (docs/protocol.md, "Finality"): vote validation with stable codes, the vote pool that
 * tallies stake per block, certificates and their verification against the genesis validators,
 * and the validator's own voting policy.
 *
 * Pure and sans-IO: no clock, no timers, no store. Signature checks are injected (a synchronous
 * verifier, or the caller runs them elsewhere, e.g. on the VerifyPool, and reports the verdict),
 * so the node can batch them on worker threads. A block with votes from MORE than 2/3 of the total
 * genesis stake is final, with all its ancestors.
 */
import { bytesEqual, toHexKey } from '../codec/bytes.ts'
import { makeEvidence, voteSigningMessage } from '../codec/finality.ts'
import { MAX_GENESIS_VALIDATORS } from '../codec/limits.ts'
import { headerHash } from '../codec/objects.ts'
import type { Keypair } from '../crypto/keys.ts'
import { sign, verify } from '../crypto/sign.ts'
import type { VerifyItem } from '../crypto/verify-pool.ts'
import type { ValidationAction } from '../ledger/errors.ts'
import type { Certificate, Evidence, Genesis, Header, Vote } from '../ledger/types.ts'

// ---------------------------------------------------------------- codes

export type VoteCode =
  | 'VOTE_WRONG_CHAIN'
  | 'VOTE_UNKNOWN_VALIDATOR'
  | 'VOTE_BEFORE_FINALIZED'
  | 'VOTE_TOO_OLD'
  | 'VOTE_TOO_FAR_AHEAD'
  | 'VOTE_DUPLICATE'
  | 'VOTE_BAD_SIGNATURE'
  | 'VOTE_EQUIVOCATION'

export class VoteError extends Error {
  override name = 'VoteError'
  constructor(
    readonly code: VoteCode,
    message: string,
    readonly action: ValidationAction,
  ) {
    super(message)
  }
}

export type CertificateCode = 'CERT_WRONG_BLOCK' | 'CERT_UNKNOWN_VALIDATOR' | 'CERT_INSUFFICIENT_STAKE' | 'CERT_FORGED'

/** A certificate that does not prove finality. Always REJECT: a certificate is never "not yet valid". */
export class CertificateError extends Error {
  override name = 'CertificateError'
  readonly action: ValidationAction = 'reject'
  constructor(
    readonly code: CertificateCode,
    message: string,
  ) {
    super(message)
  }
}

// ---------------------------------------------------------------- stake

/** More than 2/3 of `total`, in integers: 3·stake > 2·total. Exactly 2/3 is not enough. */
export function hasSupermajority(stake: bigint, total: bigint): boolean {
  return 3n * stake > 2n * total
}

export function totalStake(genesis: Genesis): bigint {
  let sum = 0n
  for (const validator of genesis.validators) sum += validator.stake
  return sum
}

/** This key's index in the genesis validator list, or undefined if it holds no stake. */
export function validatorIndexOf(genesis: Genesis, address: Uint8Array): number | undefined {
  const index = genesis.validators.findIndex((validator) => bytesEqual(validator.address, address))
  return index < 0 ? undefined : index
}

/** Signs a finality vote for (height, blockHash) on `chainId`. */
export function signVote(keypair: Keypair, chainId: string, validatorIndex: number, height: number, blockHash: Uint8Array): Vote {
  const signature = sign(voteSigningMessage(chainId, height, blockHash), keypair)
  return { chainId, height, blockHash: new Uint8Array(blockHash), validatorIndex, signature }
}

/** The signature check a vote needs (for a VerifyPool batch). The validator index must be in range. */
export function voteVerifyItem(vote: Vote, genesis: Genesis): VerifyItem {
  const validator = genesis.validators[vote.validatorIndex]
  if (validator === undefined) throw new RangeError(`no validator ${vote.validatorIndex}`)
  return { signature: vote.signature, message: voteSigningMessage(vote.chainId, vote.height, vote.blockHash), publicKey: validator.address }
}

function verifyItemsInline(items: readonly VerifyItem[]): boolean[] {
  return items.map((item) => verify(item.signature, item.message, item.publicKey))
}

// ---------------------------------------------------------------- certificates

/**
 * The cheap checks of a certificate against the header it claims and the genesis validators,
 * in order; returns the signature checks still to run. Throws CertificateError.
 */
export function certificateVerifyItems(certificate: Certificate, header: Header, genesis: Genesis): VerifyItem[] {
  // REJECT: the certificate must name exactly this header (hash and height), on this chain.
  if (header.chainId !== genesis.chainId || header.height !== certificate.height || !bytesEqual(headerHash(header), certificate.blockHash)) {
    throw new CertificateError('CERT_WRONG_BLOCK', 'certificate does not certify this header')
  }
  let stake = 0n
  let previous = -1
  for (const entry of certificate.signatures) {
    const validator = genesis.validators[entry.validatorIndex]
    // REJECT: every signer must be a genesis validator, each once (the decoder already sorts them).
    if (validator === undefined || entry.validatorIndex <= previous) {
      throw new CertificateError('CERT_UNKNOWN_VALIDATOR', `certificate names validator ${entry.validatorIndex}, not in the genesis set (or twice)`)
    }
    previous = entry.validatorIndex
    stake += validator.stake
  }
  // REJECT: more than 2/3 of the stake must have signed; checked before paying for signatures.
  if (!hasSupermajority(stake, totalStake(genesis))) {
    throw new CertificateError('CERT_INSUFFICIENT_STAKE', `certificate carries ${stake} of ${totalStake(genesis)} stake, not more than 2/3`)
  }
  const message = voteSigningMessage(genesis.chainId, certificate.height, certificate.blockHash)
  return certificate.signatures.map((entry) => ({
    signature: entry.signature,
    message,
    publicKey: (genesis.validators[entry.validatorIndex] as { address: Uint8Array }).address,
  }))
}

function assertAllValid(results: readonly boolean[]): void {
  const bad = results.indexOf(false)
  // REJECT (fatal for a peer): a certificate with a signature that does not verify is forged.
  if (bad >= 0) throw new CertificateError('CERT_FORGED', `certificate signature ${bad} does not verify`)
}

/** Checks that `certificate` proves `header` final under the genesis validator set. Throws CertificateError. */
export function verifyCertificate(certificate: Certificate, header: Header, genesis: Genesis): void {
  assertAllValid(verifyItemsInline(certificateVerifyItems(certificate, header, genesis)))
}

/** As `verifyCertificate`, with the signatures checked by `verifyMany` (e.g. `VerifyPool.verifyMany`). */
export async function verifyCertificateWith(
  certificate: Certificate,
  header: Header,
  genesis: Genesis,
  verifyMany: (items: readonly VerifyItem[]) => Promise<boolean[]>,
): Promise<void> {
  assertAllValid(await verifyMany(certificateVerifyItems(certificate, header, genesis)))
}

// ---------------------------------------------------------------- vote pool

export interface VoteTrackerOptions {
  /** A vote more than this many blocks below the head is VOTE_TOO_OLD (bounds the heights kept). */
  maxHeightsBehindHead: number
  /** A vote more than this many blocks above the head is VOTE_TOO_FAR_AHEAD (bounds the heights kept). */
  maxHeightsAheadOfHead: number
  /** Evidence kept for `chain_getEvidence`, oldest dropped first. */
  maxEvidence: number
}

export const DEFAULT_VOTE_TRACKER_OPTIONS: VoteTrackerOptions = {
  maxHeightsBehindHead: 64,
  maxHeightsAheadOfHead: 8,
  maxEvidence: 1_024,
}

/** What an accepted vote did. */
export type VoteOutcome =
  /** Counted for its block. `certificate` is set when this vote took the block past 2/3 (once per block). */
  | { kind: 'counted'; certificate: Certificate | undefined }
  /**
   * VOTE_EQUIVOCATION (IGNORE for the relaying peer: the validator misbehaved, not the peer): a
   * second, validly signed vote by the same validator at the same height for another block. Both
   * votes are kept as evidence, reported here once (gossip it once); the second vote is not counted.
   */
  | { kind: 'equivocation'; code: 'VOTE_EQUIVOCATION'; action: 'ignore'; evidence: Evidence }

interface BlockTally {
  blockHash: Uint8Array
  stake: bigint
  /** validatorIndex → its counted vote for this block. Bounded by the validator count. */
  votes: Map<number, Vote>
  certified: boolean
}

interface HeightVotes {
  /** validatorIndex → the vote that counts (the first valid one). Bounded by the validator count. */
  counted: Map<number, Vote>
  /** validatorIndex → the conflicting vote kept as evidence. Bounded by the validator count. */
  conflicting: Map<number, Vote>
  /** blockHash hex → tally. Bounded by the validator count (each validator counts for one block). */
  tallies: Map<string, BlockTally>
}

/**
 * The vote pool: validates votes (cheap checks first, the signature last), counts each validator
 * once per height, keeps equivocation evidence, and reports when a block passes 2/3 of the stake.
 *
 * Memory is bounded by the height window × 2 × validators votes (at most
 * (64 + 8 + 1) × 2 × 1,024 with the defaults) plus `maxEvidence` evidence items.
 */
export class VoteTracker {
  private readonly options: VoteTrackerOptions
  private readonly total: bigint
  /** height → votes. BOUNDED: only heights in (finalized, head + ahead] ∩ [head − behind, …]. */
  private readonly heights = new Map<number, HeightVotes>()
  /** `${validator}:${height}` → evidence. BOUNDED: maxEvidence, oldest dropped (insertion order). */
  private readonly evidenceByKey = new Map<string, Evidence>()
  private headHeight = 0
  private finalizedHeight = 0

  constructor(
    private readonly genesis: Genesis,
    options: Partial<VoteTrackerOptions> = {},
  ) {
    this.options = { ...DEFAULT_VOTE_TRACKER_OPTIONS, ...options }
    this.total = totalStake(genesis)
    if (genesis.validators.length > MAX_GENESIS_VALIDATORS) throw new RangeError('too many validators')
  }

  get head(): number {
    return this.headHeight
  }

  get finalized(): number {
    return this.finalizedHeight
  }

  /** The local head moved: heights that fell out of the window are forgotten. */
  setHead(height: number): void {
    this.headHeight = height
    this.dropOutsideWindow()
  }

  /** A block was finalized: votes at or below it can change nothing and are forgotten. */
  setFinalized(height: number): void {
    if (height <= this.finalizedHeight) return
    this.finalizedHeight = height
    this.dropOutsideWindow()
  }

  private dropOutsideWindow(): void {
    const low = Math.max(this.finalizedHeight + 1, this.headHeight - this.options.maxHeightsBehindHead)
    const high = this.headHeight + this.options.maxHeightsAheadOfHead
    for (const height of this.heights.keys()) if (height < low || height > high) this.heights.delete(height)
  }

  /**
   * The cheap checks, in order (docs/protocol.md, "Vote rules"). Returns the signature check still
   * to run. Throws VoteError.
   */
  check(vote: Vote): VerifyItem {
    // REJECT: peers of another network cannot even connect, so a wrong-chain vote is forged or buggy.
    if (vote.chainId !== this.genesis.chainId) throw new VoteError('VOTE_WRONG_CHAIN', `vote for chain ${vote.chainId}`, 'reject')
    // REJECT: the index names no genesis validator: the vote can never be valid.
    if (vote.validatorIndex >= this.genesis.validators.length) {
      throw new VoteError('VOTE_UNKNOWN_VALIDATOR', `no validator ${vote.validatorIndex}`, 'reject')
    }
    // IGNORE: at or below the finalized height a vote changes nothing (an honest laggard may send it).
    if (vote.height <= this.finalizedHeight) {
      throw new VoteError('VOTE_BEFORE_FINALIZED', `vote at ${vote.height}, finalized ${this.finalizedHeight}`, 'ignore')
    }
    // IGNORE: below the window we keep (memory bound); a later block's certificate finalizes it anyway.
    if (vote.height < this.headHeight - this.options.maxHeightsBehindHead) {
      throw new VoteError('VOTE_TOO_OLD', `vote at ${vote.height}, head ${this.headHeight}`, 'ignore')
    }
    // IGNORE: far above our head (we may be behind); not kept, so it cannot grow memory.
    if (vote.height > this.headHeight + this.options.maxHeightsAheadOfHead) {
      throw new VoteError('VOTE_TOO_FAR_AHEAD', `vote at ${vote.height}, head ${this.headHeight}`, 'ignore')
    }
    const atHeight = this.heights.get(vote.height)
    if (atHeight !== undefined) {
      const counted = atHeight.counted.get(vote.validatorIndex)
      const conflicting = atHeight.conflicting.get(vote.validatorIndex)
      // IGNORE: we hold this vote already, or this validator's equivocation here is already on record.
      if (
        (counted !== undefined && bytesEqual(counted.blockHash, vote.blockHash)) ||
        (conflicting !== undefined && (bytesEqual(conflicting.blockHash, vote.blockHash) || counted !== undefined))
      ) {
        throw new VoteError('VOTE_DUPLICATE', `validator ${vote.validatorIndex} at ${vote.height} already recorded`, 'ignore')
      }
    }
    return voteVerifyItem(vote, this.genesis)
  }

  /**
   * Adds a vote whose signature the caller checked (`signatureValid`, e.g. from the VerifyPool on
   * the item `check` returned). The cheap checks run again: the pool may have moved meanwhile.
   * Throws VoteError.
   */
  add(vote: Vote, signatureValid: boolean): VoteOutcome {
    this.check(vote)
    // REJECT: the signature does not verify under the validator's key (last: the expensive check).
    if (!signatureValid) throw new VoteError('VOTE_BAD_SIGNATURE', `bad signature by validator ${vote.validatorIndex}`, 'reject')
    let atHeight = this.heights.get(vote.height)
    if (atHeight === undefined) {
      atHeight = { counted: new Map(), conflicting: new Map(), tallies: new Map() }
      this.heights.set(vote.height, atHeight)
    }
    const counted = atHeight.counted.get(vote.validatorIndex)
    if (counted !== undefined) {
      // A second block at this height: evidence; the validator still counts once (its first vote).
      atHeight.conflicting.set(vote.validatorIndex, vote)
      const evidence = makeEvidence(counted, vote)
      this.rememberEvidence(`${vote.validatorIndex}:${vote.height}`, evidence)
      return { kind: 'equivocation', code: 'VOTE_EQUIVOCATION', action: 'ignore', evidence }
    }
    atHeight.counted.set(vote.validatorIndex, vote)
    const key = toHexKey(vote.blockHash)
    let tally = atHeight.tallies.get(key)
    if (tally === undefined) {
      tally = { blockHash: vote.blockHash, stake: 0n, votes: new Map(), certified: false }
      atHeight.tallies.set(key, tally)
    }
    tally.votes.set(vote.validatorIndex, vote)
    tally.stake += (this.genesis.validators[vote.validatorIndex] as { stake: bigint }).stake
    if (!tally.certified && hasSupermajority(tally.stake, this.total)) {
      tally.certified = true
      return { kind: 'counted', certificate: certificateOf(vote.height, tally) }
    }
    return { kind: 'counted', certificate: undefined }
  }

  /** `check` + the signature with the synchronous libsodium `verify` + `add`. Throws VoteError. */
  addVote(vote: Vote): VoteOutcome {
    const item = this.check(vote)
    return this.add(vote, verify(item.signature, item.message, item.publicKey))
  }

  /**
   * A batch (one gossip `votes` message): cheap checks first, the surviving signatures verified
   * together by `verifyMany` (e.g. `VerifyPool.verifyMany`), then added in order. One result per vote.
   */
  async addVotes(votes: readonly Vote[], verifyMany: (items: readonly VerifyItem[]) => Promise<boolean[]>): Promise<Array<VoteOutcome | VoteError>> {
    const results: Array<VoteOutcome | VoteError | undefined> = []
    const items: VerifyItem[] = []
    const positions: number[] = []
    votes.forEach((vote, index) => {
      try {
        items.push(this.check(vote))
        positions.push(index)
        results.push(undefined)
      } catch (error) {
        if (!(error instanceof VoteError)) throw error
        results.push(error)
      }
    })
    const verdicts = items.length === 0 ? [] : await verifyMany(items)
    positions.forEach((index, i) => {
      try {
        results[index] = this.add(votes[index] as Vote, verdicts[i] === true)
      } catch (error) {
        if (!(error instanceof VoteError)) throw error
        results[index] = error
      }
    })
    return results as Array<VoteOutcome | VoteError>
  }

  private rememberEvidence(key: string, evidence: Evidence): void {
    this.evidenceByKey.delete(key)
    this.evidenceByKey.set(key, evidence)
    while (this.evidenceByKey.size > this.options.maxEvidence) {
      const oldest = this.evidenceByKey.keys().next().value as string
      this.evidenceByKey.delete(oldest)
    }
  }

  /**
   * Evidence received from a peer (gossip `evidence`): both votes are checked like votes (chain,
   * validator, signatures) but need not be in the window. Returns true when it is new.
   * Throws VoteError (REJECT) when a vote in it is invalid.
   */
  addEvidence(evidence: Evidence, verifyOne: (item: VerifyItem) => boolean = (item) => verify(item.signature, item.message, item.publicKey)): boolean {
    for (const vote of [evidence.first, evidence.second]) {
      if (vote.chainId !== this.genesis.chainId) throw new VoteError('VOTE_WRONG_CHAIN', 'evidence for another chain', 'reject')
      if (vote.validatorIndex >= this.genesis.validators.length) throw new VoteError('VOTE_UNKNOWN_VALIDATOR', 'evidence names no validator', 'reject')
    }
    const key = `${evidence.first.validatorIndex}:${evidence.first.height}`
    if (this.evidenceByKey.has(key)) return false
    for (const vote of [evidence.first, evidence.second]) {
      if (!verifyOne(voteVerifyItem(vote, this.genesis))) throw new VoteError('VOTE_BAD_SIGNATURE', 'evidence vote signature does not verify', 'reject')
    }
    this.rememberEvidence(key, evidence)
    return true
  }

  /** Evidence on record, oldest first (for `chain_getEvidence`). */
  evidence(): Evidence[] {
    return [...this.evidenceByKey.values()]
  }

  /** A certificate for `blockHash` at `height` if its votes pass 2/3 (with every signature held so far). */
  certificateFor(height: number, blockHash: Uint8Array): Certificate | undefined {
    const tally = this.heights.get(height)?.tallies.get(toHexKey(blockHash))
    if (tally === undefined || !hasSupermajority(tally.stake, this.total)) return undefined
    return certificateOf(height, tally)
  }

  /** The highest certified block still in the window, if any. */
  bestCertificate(): Certificate | undefined {
    let best: Certificate | undefined
    for (const [height, atHeight] of this.heights) {
      if (best !== undefined && height <= best.height) continue
      for (const tally of atHeight.tallies.values()) {
        if (hasSupermajority(tally.stake, this.total)) best = certificateOf(height, tally)
      }
    }
    return best
  }

  /** The counted votes at `height` (to serve or re-announce). */
  votesAt(height: number): Vote[] {
    return [...(this.heights.get(height)?.counted.values() ?? [])]
  }

  /**
   * Stake counted at `height` for blocks other than `blockHash`, leaving out validators whose
   * equivocation there is on record (their votes prove nothing about what can still pass 2/3).
   */
  stakeAgainst(height: number, blockHash: Uint8Array): bigint {
    const atHeight = this.heights.get(height)
    if (atHeight === undefined) return 0n
    let stake = 0n
    for (const [index, vote] of atHeight.counted) {
      if (bytesEqual(vote.blockHash, blockHash) || atHeight.conflicting.has(index)) continue
      stake += (this.genesis.validators[index] as { stake: bigint }).stake
    }
    return stake
  }

  /** Stake counted for `blockHash` at `height`. */
  stakeFor(height: number, blockHash: Uint8Array): bigint {
    return this.heights.get(height)?.tallies.get(toHexKey(blockHash))?.stake ?? 0n
  }
}

function certificateOf(height: number, tally: BlockTally): Certificate {
  const signatures = [...tally.votes.values()]
    .sort((a, b) => a.validatorIndex - b.validatorIndex)
    .map((vote) => ({ validatorIndex: vote.validatorIndex, signature: vote.signature }))
  return { height, blockHash: tally.blockHash, signatures }
}

// ---------------------------------------------------------------- the validator's own votes

/** What the voting policy reads of the block tree and the vote pool (the node answers from Chain and VoteTracker). */
export interface VotingView {
  /** The local head's height (binding votes below the pool window are released). */
  headHeight: number
  /** The hash of block `hash`'s ancestor at `height` (itself at its own height); undefined when unknown. */
  ancestorAt(hash: Uint8Array, height: number): Uint8Array | undefined
  /** Stake whose counted votes at `height` are for other blocks than `blockHash` (VoteTracker.stakeAgainst). */
  stakeAgainst(height: number, blockHash: Uint8Array): bigint
}

/** One of this validator's own votes: the block it signed at a height. */
export interface OwnVote {
  height: number
  hash: Uint8Array
}

/**
 * Whether a block voted at its height can no longer be certified there: the stake counted for other
 * blocks leaves it at most 2/3 (each validator counts once per height, for its first vote).
 */
export function cannotPassTwoThirds(stakeAgainst: bigint, total: bigint): boolean {
  return !hasSupermajority(total - stakeAgainst, total)
}

/**
 * When this validator votes (docs/protocol.md, "Voting policy"): for each block that joins its
 * canonical chain, oldest first, if the block is above the finalized height and above every height
 * it has voted at (so it signs at most one vote per height, even after a reorg below its last
 * vote), and if the block descends from every block it voted for that still binds it.
 *
 * A vote binds until its height is finalized, or the block can no longer be certified at its height
 * (`cannotPassTwoThirds`: 1/3 of the stake voted other blocks there), or it falls below the pool
 * window (`maxHeightsBehindHead` under the head: no pool counts a vote there, VOTE_TOO_OLD). Without
 * this lock a validator that voted A at h and then reorged to a rival branch voted the rival from
 * h + 1: A could be certified at h by votes that came later while the rival was certified above h
 * with the same validator's vote — two conflicting finalized blocks and no equivocation. With it, a
 * block certified at h holds the votes of more than 2/3 of the stake, none of whom votes off its
 * branch again (less than 1/3 can have voted against it there), so no rival gathers 2/3 above it.
 * A vote held back is retried when votes arrive or finality moves (`held`).
 */
export class VotingPolicy {
  readonly validatorIndex: number
  private lastVoted: number
  private readonly total: bigint
  /** Own votes that still bind, by height. BOUNDED: heights in (finalized, lastVoted] within the pool window (≤ 64 + 1). */
  private readonly binding = new Map<number, Uint8Array>()
  private heldBack = false

  /**
   * `lastVotedHeight`: the highest height signed before a restart (persisted by the caller, e.g.
   * store meta `lastVote`), so a restarted validator does not vote twice at a height; `bindingVotes`:
   * its votes that bound it then (store meta `bindingVotes`), so it does not vote off their branch.
   */
  constructor(
    private readonly keypair: Keypair,
    private readonly genesis: Genesis,
    lastVotedHeight = 0,
    bindingVotes: readonly OwnVote[] = [],
  ) {
    const index = validatorIndexOf(genesis, keypair.publicKey)
    if (index === undefined) throw new RangeError('this key is not a genesis validator')
    this.validatorIndex = index
    this.lastVoted = lastVotedHeight
    this.total = totalStake(genesis)
    for (const vote of bindingVotes) this.binding.set(vote.height, new Uint8Array(vote.hash))
  }

  get lastVotedHeight(): number {
    return this.lastVoted
  }

  /** A canonical block was not voted for because it leaves the branch of a binding vote. */
  get held(): boolean {
    return this.heldBack
  }

  /** The votes that bind this validator, lowest first (to persist beside `lastVotedHeight`). */
  bindingVotes(): OwnVote[] {
    return [...this.binding.entries()].sort(([a], [b]) => a - b).map(([height, hash]) => ({ height, hash }))
  }

  /** Should this validator vote for a canonical block at `height` (heights only; see onCanonicalBlocks)? */
  shouldVote(height: number, finalizedHeight: number): boolean {
    return height > finalizedHeight && height > this.lastVoted
  }

  /** The signed votes for blocks that joined the canonical chain (HeadChange.added, oldest first). */
  onCanonicalBlocks(added: ReadonlyArray<{ height: number; hash: Uint8Array }>, finalizedHeight: number, view: VotingView): Vote[] {
    this.release(finalizedHeight, view)
    this.heldBack = false
    const votes: Vote[] = []
    for (const block of added) {
      if (!this.shouldVote(block.height, finalizedHeight)) continue
      if (!this.extendsBindingVotes(block, view)) {
        // Its descendants (the rest of `added`) leave that branch too.
        this.heldBack = true
        break
      }
      votes.push(signVote(this.keypair, this.genesis.chainId, this.validatorIndex, block.height, block.hash))
      this.lastVoted = block.height
      this.binding.set(block.height, new Uint8Array(block.hash))
    }
    return votes
  }

  private extendsBindingVotes(block: { height: number; hash: Uint8Array }, view: VotingView): boolean {
    for (const [height, hash] of this.binding) {
      const ancestor = view.ancestorAt(block.hash, height)
      if (ancestor === undefined || !bytesEqual(ancestor, hash)) return false
    }
    return true
  }

  private release(finalizedHeight: number, view: VotingView): void {
    const windowLow = view.headHeight - DEFAULT_VOTE_TRACKER_OPTIONS.maxHeightsBehindHead
    for (const [height, hash] of this.binding) {
      // At or below finality the fence decides (a block off the finalized chain can never be final);
      // below the pool window no pool counts the vote; and a block 1/3 voted against cannot pass 2/3.
      if (height <= finalizedHeight || height < windowLow || cannotPassTwoThirds(view.stakeAgainst(height, hash), this.total)) {
        this.binding.delete(height)
      }
    }
  }
}
