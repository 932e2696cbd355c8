/**
 * The node's finality glue (docs/protocol.md, "Vote gossip"): this validator's votes (signed by
 * `VotingPolicy` for blocks joining the canonical chain, the highest voted height persisted
 * before a vote leaves the node), the vote pool (`VoteTracker`) fed by peers' votes and evidence
 * with signatures checked in batches (the VerifyPool when the node has one), and certificates
 * applied to the chain as soon as they form. It knows nothing of peers: ingress relays what it
 * accepts (the `votes` and `evidence` events) and charges senders for what it rejects.
 */
import { Reader, Writer } from '../codec/binary.ts'
import { toHexKey } from '../codec/bytes.ts'
import { evidenceId, voteId } from '../codec/finality.ts'
import { headerHash } from '../codec/objects.ts'
import { type Chain, FinalityConflictError, type HeadChange } from '../chain/chain.ts'
import { DEFAULT_VOTE_TRACKER_OPTIONS, type OwnVote, VoteError, VoteTracker, VotingPolicy, type VotingView, validatorIndexOf } from '../chain/finality.ts'
import type { Keypair } from '../crypto/keys.ts'
import { verify } from '../crypto/sign.ts'
import type { VerifyItem } from '../crypto/verify-pool.ts'
import type { Certificate, Evidence, Genesis, Vote } from '../ledger/types.ts'
import type { ChainStore, FinalizedPointer } from '../store/chain-store.ts'
import type { Logger } from '../util/logger.ts'
import { LruMap, LruSet } from '../util/lru.ts'

/** Store meta key of the highest height this validator signed a vote at (never vote twice across restarts). */
export const META_LAST_VOTE = 'lastVote'
/** Store meta key of this validator's votes that bind it (VotingPolicy), (u64be height ‖ hash) each: never vote off their branch across restarts. */
export const META_BINDING_VOTES = 'bindingVotes'
/** Recent votes kept by id to answer getdata (a few heights of a full validator set). */
export const MAX_SERVED_VOTES = 8_192
/** Vote ids seen (accepted or ignored, except too far ahead of our head), so re-announcements are not fetched again. */
export const MAX_SEEN_VOTES = 65_536
/** Certificates waiting for their block (votes can outrun the block they name). */
export const MAX_PENDING_CERTIFICATES = 16
/** This validator's own recent votes, re-sent to each newly admitted peer: the pool's window below the head. */
export const MAX_OWN_VOTES = 64

export type VoteOrigin = { kind: 'local' } | { kind: 'peer'; peerId: string }

export interface FinalityHooks {
  /** Accepted votes to relay (own votes: `local`). */
  votes(votes: Vote[], origin: VoteOrigin): void
  /** New equivocation evidence to gossip once. */
  evidence(evidence: Evidence, origin: VoteOrigin): void
  /** The finalized pointer moved. */
  finalized(pointer: FinalizedPointer, certificate: Certificate): void
  /** Applying a certificate moved the head to another branch. */
  headChanged(change: HeadChange): void
}

export interface NodeFinalityDeps {
  chain: Chain
  store: ChainStore
  genesis: Genesis
  /** The validator key: votes are signed only when it is a genesis validator. */
  key: Keypair | undefined
  /** Batch signature check (VerifyPool.verifyMany, or inline). */
  verifyMany: (items: readonly VerifyItem[]) => Promise<boolean[]>
  hooks: FinalityHooks
  log: Logger
}

/** What a peer's `votes` message did: the first REJECT code (one penalty per message) and counts. */
export interface VoteBatchOutcome {
  accepted: number
  ignored: number
  rejected: number
  equivocations: number
  fault: string | undefined
  /** Codes of the votes not accepted, for metrics. */
  codes: string[]
}

export class NodeFinality {
  readonly tracker: VoteTracker
  private readonly policy: VotingPolicy | undefined
  /** voteId hex → vote. BOUNDED: MAX_SERVED_VOTES (LRU). */
  private readonly served = new LruMap<string, Vote>(MAX_SERVED_VOTES)
  /** voteId hex. BOUNDED: MAX_SEEN_VOTES (LRU). */
  private readonly seen = new LruSet<string>(MAX_SEEN_VOTES)
  /** evidenceId hex → evidence. BOUNDED: the tracker's maxEvidence (1,024, LRU). */
  private readonly evidenceById: LruMap<string, Evidence>
  /** height → this validator's own vote. BOUNDED: MAX_OWN_VOTES (lowest dropped), and none at or below the finalized height. */
  private readonly ownVotes = new Map<number, Vote>()
  /** height → certificate whose block is not imported yet. BOUNDED: MAX_PENDING_CERTIFICATES (lowest dropped). */
  private readonly pending = new Map<number, Certificate>()
  /** Serialises vote signing and its store write, and certificate application. */
  private queue: Promise<unknown> = Promise.resolve()
  private votesReceivedTotal = 0
  private stopped = false

  constructor(private readonly deps: NodeFinalityDeps) {
    this.tracker = new VoteTracker(deps.genesis)
    this.evidenceById = new LruMap(1_024)
    const index = deps.key === undefined ? undefined : validatorIndexOf(deps.genesis, deps.key.publicKey)
    if (deps.key !== undefined && index !== undefined) {
      this.policy = new VotingPolicy(deps.key, deps.genesis, deps.store.getMetaHeight(META_LAST_VOTE) ?? 0, decodeBindingVotes(deps.store.getMeta(META_BINDING_VOTES)))
    }
    this.tracker.setHead(deps.chain.head.header.height)
    this.tracker.setFinalized(deps.chain.finalized.height)
  }

  /** This validator's own votes above the finalized height, oldest first (for a newly admitted peer). */
  ownVotesAboveFinalized(): Vote[] {
    const finalized = this.deps.chain.finalized.height
    for (const height of [...this.ownVotes.keys()]) if (height <= finalized) this.ownVotes.delete(height)
    return [...this.ownVotes.values()].sort((a, b) => a.height - b.height)
  }

  get isVoting(): boolean {
    return this.policy !== undefined
  }

  get lastVotedHeight(): number | undefined {
    return this.policy?.lastVotedHeight
  }

  /** Votes received from peers (any verdict). */
  get votesReceived(): number {
    return this.votesReceivedTotal
  }

  hasVote(idHex: string): boolean {
    return this.seen.has(idHex)
  }

  getVote(idHex: string): Vote | undefined {
    return this.served.get(idHex)
  }

  hasEvidence(idHex: string): boolean {
    return this.evidenceById.has(idHex)
  }

  getEvidence(idHex: string): Evidence | undefined {
    return this.evidenceById.get(idHex)
  }

  /** Evidence on record, oldest first (RPC `chain_getEvidence`). */
  evidence(): Evidence[] {
    return this.tracker.evidence()
  }

  /** The head moved: the pool's window follows it; a validator votes for the blocks that joined. */
  onHead(change: HeadChange): void {
    this.tracker.setHead(change.head.header.height)
    if (this.pending.size > 0) this.enqueue(() => this.retryPending())
    if (this.policy === undefined || change.added.length === 0) return
    const added = change.added.map((block) => ({ height: block.header.height, hash: headerHash(block.header) }))
    this.enqueue(() => this.vote(added))
  }

  /**
   * A vote held back (the head left the branch of a binding vote) is retried when what releases it
   * may have changed: votes counted at its height, or finality. The head block is enough: a
   * certificate for it finalizes the blocks below it.
   */
  private retryHeldVote(): void {
    if (this.policy === undefined || !this.policy.held) return
    this.enqueue(() => {
      const head = this.deps.chain.head
      return this.vote([{ height: head.header.height, hash: head.hash }])
    })
  }

  private votingView(): VotingView {
    const chain = this.deps.chain
    return {
      headHeight: chain.head.header.height,
      ancestorAt: (hash, height) => chain.ancestorAt(hash, height),
      stakeAgainst: (height, hash) => this.tracker.stakeAgainst(height, hash),
    }
  }

  private async vote(added: ReadonlyArray<{ height: number; hash: Uint8Array }>): Promise<void> {
    if (this.stopped || this.policy === undefined) return
    const votes = this.policy.onCanonicalBlocks(added, this.deps.chain.finalized.height, this.votingView())
    if (votes.length === 0) return
    // Durable before it leaves the node: a restart never signs a second vote at these heights,
    // nor one off the branch of the votes that bind it.
    await this.deps.store
      .batch()
      .putMetaHeight(META_LAST_VOTE, this.policy.lastVotedHeight)
      .putMeta(META_BINDING_VOTES, encodeBindingVotes(this.policy.bindingVotes()))
      .commit()
    const own: Vote[] = []
    for (const vote of votes) {
      try {
        const outcome = this.tracker.add(vote, true)
        this.remember(vote)
        this.ownVotes.set(vote.height, vote)
        while (this.ownVotes.size > MAX_OWN_VOTES) this.ownVotes.delete(Math.min(...this.ownVotes.keys()))
        own.push(vote)
        if (outcome.kind === 'counted' && outcome.certificate !== undefined) await this.applyNow(outcome.certificate)
      } catch (error) {
        // Our own vote outside the pool's window (far behind, or finalized meanwhile): not relayed.
        if (!(error instanceof VoteError)) throw error
      }
    }
    if (own.length > 0) this.deps.hooks.votes(own, { kind: 'local' })
  }

  /** A peer's `votes` message: cheap checks, signatures as one batch, then counted in order. */
  async acceptVotes(votes: readonly Vote[], peerId: string): Promise<VoteBatchOutcome> {
    this.votesReceivedTotal += votes.length
    const outcome: VoteBatchOutcome = { accepted: 0, ignored: 0, rejected: 0, equivocations: 0, fault: undefined, codes: [] }
    for (const vote of votes) this.seen.add(toHexKey(voteId(vote)))
    const results = await this.tracker.addVotes(votes, this.deps.verifyMany)
    const accepted: Vote[] = []
    const certificates: Certificate[] = []
    results.forEach((result, index) => {
      const vote = votes[index] as Vote
      if (result instanceof VoteError) {
        outcome.codes.push(result.code)
        // Far above our head only because we are behind: once we catch up the same vote counts, so
        // a re-announcement must be fetched again (the check is cheap: no signature was verified).
        if (result.code === 'VOTE_TOO_FAR_AHEAD') this.seen.delete(toHexKey(voteId(vote)))
        if (result.action === 'reject') {
          outcome.rejected++
          outcome.fault ??= result.code
        } else outcome.ignored++
        return
      }
      if (result.kind === 'equivocation') {
        outcome.equivocations++
        outcome.codes.push(result.code)
        this.recordEvidence(result.evidence, { kind: 'peer', peerId })
        return
      }
      outcome.accepted++
      this.remember(vote)
      accepted.push(vote)
      if (result.certificate !== undefined) certificates.push(result.certificate)
    })
    if (accepted.length > 0) this.deps.hooks.votes(accepted, { kind: 'peer', peerId })
    for (const certificate of certificates) this.applyCertificate(certificate)
    if (accepted.length > 0) this.retryHeldVote()
    return outcome
  }

  /** A peer's `evidence` message: each item's votes are checked; new evidence is gossiped once. Returns the first REJECT code. */
  acceptEvidence(items: readonly Evidence[], peerId: string): string | undefined {
    let fault: string | undefined
    for (const evidence of items) {
      try {
        if (this.tracker.addEvidence(evidence, (item) => verify(item.signature, item.message, item.publicKey))) {
          this.recordEvidence(evidence, { kind: 'peer', peerId })
        }
      } catch (error) {
        if (!(error instanceof VoteError)) throw error
        fault ??= error.code
      }
    }
    return fault
  }

  private recordEvidence(evidence: Evidence, origin: VoteOrigin): void {
    const hex = toHexKey(evidenceId(evidence))
    if (this.evidenceById.has(hex)) return
    this.evidenceById.set(hex, evidence)
    this.deps.log.warn({ validator: evidence.first.validatorIndex, height: evidence.first.height }, 'validator equivocated')
    this.deps.hooks.evidence(evidence, origin)
  }

  private remember(vote: Vote): void {
    const hex = toHexKey(voteId(vote))
    this.seen.add(hex)
    this.served.set(hex, vote)
  }

  /** Applies a certificate formed from verified votes (queued behind earlier ones). */
  applyCertificate(certificate: Certificate): void {
    this.enqueue(() => this.applyNow(certificate))
  }

  /**
   * Applies a certificate whose signatures were checked elsewhere (a peer's, fetched by the sync
   * manager's finality repair) and resolves when it has been applied or set aside as pending.
   */
  applyVerified(certificate: Certificate): Promise<void> {
    this.applyCertificate(certificate)
    return this.queue.then(() => undefined)
  }

  private async applyNow(certificate: Certificate): Promise<void> {
    if (this.stopped || certificate.height <= this.deps.chain.finalized.height) return
    try {
      const result = await this.deps.chain.applyCertificate(certificate, { signaturesVerified: true })
      if (result.status === 'unknown-block') {
        this.pending.set(certificate.height, certificate)
        while (this.pending.size > MAX_PENDING_CERTIFICATES) this.pending.delete(Math.min(...this.pending.keys()))
        return
      }
      if (result.status !== 'finalized') return
      for (const height of [...this.pending.keys()]) if (height <= result.finalized.height) this.pending.delete(height)
      this.tracker.setFinalized(result.finalized.height)
      if (result.change !== undefined) this.deps.hooks.headChanged(result.change)
      this.deps.hooks.finalized(result.finalized, certificate)
      this.retryHeldVote()
    } catch (error) {
      if (error instanceof FinalityConflictError) {
        this.deps.log.error({ err: error.message, height: certificate.height }, 'conflicting certificate: more than 1/3 of the stake equivocated')
        return
      }
      throw error
    }
  }

  private async retryPending(): Promise<void> {
    const heights = [...this.pending.keys()].sort((a, b) => b - a)
    for (const height of heights) {
      const certificate = this.pending.get(height)
      if (certificate === undefined || !this.deps.chain.hasBlock(certificate.blockHash)) continue
      this.pending.delete(height)
      await this.applyNow(certificate)
      // The highest applicable certificate finalizes everything below it.
      return
    }
  }

  /** A certificate learnt by the chain itself (a join from a certificate): the pool follows. */
  onFinalized(height: number): void {
    this.tracker.setFinalized(height)
    this.retryHeldVote()
  }

  private enqueue(task: () => Promise<void>): void {
    const run = this.queue.then(task)
    this.queue = run.catch((error: unknown) => this.deps.log.error({ err: error }, 'finality task failed'))
  }

  /** Resolves once queued work (vote writes, certificates) has finished; nothing new starts after. */
  async stop(): Promise<void> {
    await this.queue
    this.stopped = true
    await this.queue
  }
}

/** One binding vote in META_BINDING_VOTES: u64be height ‖ 32-byte block hash. */
const BINDING_VOTE_BYTES = 40

/** META_BINDING_VOTES: (u64be height ‖ 32-byte hash) per vote. */
export function encodeBindingVotes(votes: readonly OwnVote[]): Uint8Array {
  const writer = new Writer(BINDING_VOTE_BYTES * votes.length)
  for (const vote of votes) writer.u53(vote.height).fixed(vote.hash, 32)
  return writer.finish()
}

export function decodeBindingVotes(bytes: Uint8Array | undefined): OwnVote[] {
  const votes: OwnVote[] = []
  if (bytes === undefined) return votes
  // A file: read at most the policy's bound (one vote per height of the pool window), however long it is.
  const reader = new Reader(bytes.subarray(0, BINDING_VOTE_BYTES * (DEFAULT_VOTE_TRACKER_OPTIONS.maxHeightsBehindHead + 1)))
  while (reader.remaining >= BINDING_VOTE_BYTES) votes.push({ height: Number(reader.u64('binding vote height')), hash: reader.fixed(32, 'binding vote hash').slice() })
  return votes
}
