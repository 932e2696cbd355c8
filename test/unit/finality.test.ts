// Finality (src/chain/finality.ts and the chain fence in src/chain/chain.ts): one test per vote
// code, named after it; equivocation evidence; finalization at more than 2/3 and not at exactly
// 2/3; certificates verified against the genesis validators; the voting policy; fork choice
// never leaving the finalized chain; the finalized pointer and certificate across a restart.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { Chain, FinalityConflictError } from '../../src/chain/chain.ts'
import {
  CertificateError,
  VoteError,
  VoteTracker,
  type VotingView,
  VotingPolicy,
  signVote,
  verifyCertificate,
  verifyCertificateWith,
} from '../../src/chain/finality.ts'
import { bytesEqual } from '../../src/codec/bytes.ts'
import { encodeCertificate, decodeCertificate } from '../../src/codec/finality.ts'
import { headerHash } from '../../src/codec/objects.ts'
import { type Keypair, devKeypair } from '../../src/crypto/keys.ts'
import { verify } from '../../src/crypto/sign.ts'
import { BlockError } from '../../src/ledger/errors.ts'
import type { Certificate, Genesis, Vote } from '../../src/ledger/types.ts'
import { NodeFinality, decodeBindingVotes, encodeBindingVotes } from '../../src/node/finality.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { LevelStore } from '../../src/store/level.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { toHexKey } from '../../src/codec/bytes.ts'
import { voteId } from '../../src/codec/finality.ts'
import { silentLogger } from '../../src/util/logger.ts'
import { FAR_FUTURE, buildNext, extend, memoryChain, testGenesis } from '../helpers/chain.ts'

/** The keypair of genesis validator `index` (validators are dev keys, sorted by address). */
function validatorKey(genesis: Genesis, index: number): Keypair {
  const address = genesis.validators[index]?.address
  for (let i = 0; i < genesis.validators.length; i++) {
    const key = devKeypair(i)
    if (address !== undefined && bytesEqual(key.publicKey, address)) return key
  }
  throw new Error(`validator ${index} is not a dev key`)
}

function voteBy(genesis: Genesis, index: number, height: number, blockHash: Uint8Array): Vote {
  return signVote(validatorKey(genesis, index), genesis.chainId, index, height, blockHash)
}

/** Three validators of equal stake: two votes are exactly 2/3, three are more. */
function equalStakeGenesis(): Genesis {
  const base = testGenesis({ validators: 3 })
  return { ...base, validators: base.validators.map((validator) => ({ ...validator, stake: 100n })) }
}

const HASH_A = new Uint8Array(32).fill(0xaa)
const HASH_B = new Uint8Array(32).fill(0xbb)

function expectVoteCode(fn: () => unknown, code: string, action: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof VoteError, `expected VoteError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    assert.equal(error.action, action)
    return true
  })
}

function trackerAt(genesis: Genesis, head: number, finalized = 0): VoteTracker {
  const tracker = new VoteTracker(genesis, { maxHeightsBehindHead: 10, maxHeightsAheadOfHead: 4 })
  tracker.setHead(head)
  tracker.setFinalized(finalized)
  return tracker
}

/** A certificate for the chain's block at `height`, signed by the validators at `indexes`. */
function certify(chain: Chain, height: number, indexes: number[]): Certificate {
  const hash = chain.getCanonicalHash(height) as Uint8Array
  const signatures = indexes.map((index) => ({ validatorIndex: index, signature: voteBy(chain.genesis, index, height, hash).signature }))
  return { height, blockHash: hash, signatures }
}

describe('vote rules (one test per code)', () => {
  const genesis = testGenesis()

  it('VOTE_WRONG_CHAIN', () => {
    const vote = { ...voteBy(genesis, 0, 5, HASH_A), chainId: 'another-chain' }
    expectVoteCode(() => trackerAt(genesis, 5).addVote(vote), 'VOTE_WRONG_CHAIN', 'reject')
  })

  it('VOTE_UNKNOWN_VALIDATOR', () => {
    const vote = { ...voteBy(genesis, 0, 5, HASH_A), validatorIndex: genesis.validators.length }
    expectVoteCode(() => trackerAt(genesis, 5).addVote(vote), 'VOTE_UNKNOWN_VALIDATOR', 'reject')
  })

  it('VOTE_BEFORE_FINALIZED', () => {
    expectVoteCode(() => trackerAt(genesis, 10, 6).addVote(voteBy(genesis, 0, 6, HASH_A)), 'VOTE_BEFORE_FINALIZED', 'ignore')
  })

  it('VOTE_TOO_OLD', () => {
    // head 30, window 10 below: height 19 is out, 20 is in.
    const tracker = trackerAt(genesis, 30)
    expectVoteCode(() => tracker.addVote(voteBy(genesis, 0, 19, HASH_A)), 'VOTE_TOO_OLD', 'ignore')
    assert.equal(tracker.addVote(voteBy(genesis, 0, 20, HASH_A)).kind, 'counted')
  })

  it('VOTE_TOO_FAR_AHEAD', () => {
    const tracker = trackerAt(genesis, 30)
    expectVoteCode(() => tracker.addVote(voteBy(genesis, 0, 35, HASH_A)), 'VOTE_TOO_FAR_AHEAD', 'ignore')
    assert.equal(tracker.addVote(voteBy(genesis, 0, 34, HASH_A)).kind, 'counted')
  })

  it('VOTE_DUPLICATE', () => {
    const tracker = trackerAt(genesis, 5)
    const vote = voteBy(genesis, 1, 5, HASH_A)
    tracker.addVote(vote)
    expectVoteCode(() => tracker.addVote(vote), 'VOTE_DUPLICATE', 'ignore')
    assert.equal(tracker.stakeFor(5, HASH_A), genesis.validators[1]?.stake, 'counted once')
  })

  it('VOTE_BAD_SIGNATURE', () => {
    const good = voteBy(genesis, 0, 5, HASH_A)
    const signature = new Uint8Array(good.signature)
    signature[10] = (signature[10] as number) ^ 1
    const tracker = trackerAt(genesis, 5)
    expectVoteCode(() => tracker.addVote({ ...good, signature }), 'VOTE_BAD_SIGNATURE', 'reject')
    // Another validator's signature under this index is just as bad.
    expectVoteCode(() => tracker.addVote({ ...voteBy(genesis, 1, 5, HASH_A), validatorIndex: 0 }), 'VOTE_BAD_SIGNATURE', 'reject')
    assert.equal(tracker.stakeFor(5, HASH_A), 0n)
  })

  it('VOTE_EQUIVOCATION', () => {
    const tracker = trackerAt(genesis, 5)
    const first = voteBy(genesis, 2, 5, HASH_B)
    const second = voteBy(genesis, 2, 5, HASH_A)
    assert.equal(tracker.addVote(first).kind, 'counted')
    const outcome = tracker.addVote(second)
    assert.equal(outcome.kind, 'equivocation')
    assert.ok(outcome.kind === 'equivocation')
    assert.equal(outcome.code, 'VOTE_EQUIVOCATION')
    assert.equal(outcome.action, 'ignore')
    // Canonical order: lower block hash first.
    assert.ok(bytesEqual(outcome.evidence.first.blockHash, HASH_A))
    assert.ok(bytesEqual(outcome.evidence.second.blockHash, HASH_B))
  })
})

describe('equivocation evidence', () => {
  const genesis = testGenesis()

  it('keeps both votes, reports the evidence once, and counts the validator once', () => {
    const tracker = trackerAt(genesis, 5)
    tracker.addVote(voteBy(genesis, 0, 5, HASH_A))
    const outcome = tracker.addVote(voteBy(genesis, 0, 5, HASH_B))
    assert.equal(outcome.kind, 'equivocation')
    assert.equal(tracker.evidence().length, 1)
    // Replays of either vote, and a third block, are duplicates: no second report.
    expectVoteCode(() => tracker.addVote(voteBy(genesis, 0, 5, HASH_B)), 'VOTE_DUPLICATE', 'ignore')
    expectVoteCode(() => tracker.addVote(voteBy(genesis, 0, 5, new Uint8Array(32).fill(0xcc))), 'VOTE_DUPLICATE', 'ignore')
    assert.equal(tracker.evidence().length, 1)
    assert.equal(tracker.stakeFor(5, HASH_A), genesis.validators[0]?.stake)
    assert.equal(tracker.stakeFor(5, HASH_B), 0n, 'the second vote does not count')
  })

  it('accepts gossiped evidence once and refuses forged evidence', () => {
    const source = trackerAt(genesis, 5)
    source.addVote(voteBy(genesis, 1, 5, HASH_A))
    const outcome = source.addVote(voteBy(genesis, 1, 5, HASH_B))
    assert.ok(outcome.kind === 'equivocation')
    const tracker = trackerAt(genesis, 100)
    assert.equal(tracker.addEvidence(outcome.evidence), true)
    assert.equal(tracker.addEvidence(outcome.evidence), false)
    const forged = { ...outcome.evidence, second: { ...outcome.evidence.second, validatorIndex: 1, signature: new Uint8Array(64).fill(1) } }
    assert.throws(
      () => trackerAt(genesis, 5).addEvidence(forged),
      (error: unknown) => error instanceof VoteError && error.code === 'VOTE_BAD_SIGNATURE',
    )
  })
})

describe('finalization threshold', () => {
  it('is not reached at exactly 2/3 of the stake, and is reached above it', () => {
    const genesis = equalStakeGenesis()
    const tracker = trackerAt(genesis, 7)
    assert.deepEqual(tracker.addVote(voteBy(genesis, 0, 7, HASH_A)), { kind: 'counted', certificate: undefined })
    assert.deepEqual(tracker.addVote(voteBy(genesis, 1, 7, HASH_A)), { kind: 'counted', certificate: undefined })
    assert.equal(tracker.certificateFor(7, HASH_A), undefined, '200 of 300 is exactly 2/3: not final')
    const outcome = tracker.addVote(voteBy(genesis, 2, 7, HASH_A))
    assert.ok(outcome.kind === 'counted' && outcome.certificate !== undefined)
    assert.deepEqual(
      outcome.certificate.signatures.map((entry) => entry.validatorIndex),
      [0, 1, 2],
    )
    assert.equal(tracker.bestCertificate()?.height, 7)
  })

  it('weighs by stake: the two largest of four devnet validators are enough (700 of 1,000)', () => {
    const genesis = testGenesis()
    const byStake = genesis.validators.map((validator, index) => ({ index, stake: validator.stake })).sort((a, b) => Number(b.stake - a.stake))
    const tracker = trackerAt(genesis, 3)
    const first = tracker.addVote(voteBy(genesis, byStake[0]!.index, 3, HASH_A))
    assert.ok(first.kind === 'counted' && first.certificate === undefined)
    const second = tracker.addVote(voteBy(genesis, byStake[1]!.index, 3, HASH_A))
    assert.ok(second.kind === 'counted' && second.certificate !== undefined, '400 + 300 > 666.7')
  })

  it('verifies a batch through an injected verifier (the VerifyPool in the node)', async () => {
    const genesis = equalStakeGenesis()
    const tracker = trackerAt(genesis, 2)
    let calls = 0
    const verifyMany = async (items: readonly { signature: Uint8Array; message: Uint8Array; publicKey: Uint8Array }[]) => {
      calls++
      return items.map((item) => verify(item.signature, item.message, item.publicKey))
    }
    const votes = [0, 1, 2].map((index) => voteBy(genesis, index, 2, HASH_A))
    const results = await tracker.addVotes([...votes, { ...votes[0]!, chainId: 'x-chain' }], verifyMany)
    assert.equal(calls, 1)
    const last = results[2]
    assert.ok(!(last instanceof VoteError) && last?.kind === 'counted' && last.certificate !== undefined)
    assert.ok(results[3] instanceof VoteError && results[3].code === 'VOTE_WRONG_CHAIN')
  })
})

describe('certificates', () => {
  it('verify against the genesis validators; a forged one is refused with CERT_FORGED', async () => {
    const chain = await memoryChain(equalStakeGenesis())
    await extend(chain, 3)
    const header = chain.getHeader(chain.getCanonicalHash(2) as Uint8Array)!
    const certificate = certify(chain, 2, [0, 1, 2])
    verifyCertificate(certificate, header, chain.genesis)
    assert.deepEqual(decodeCertificate(encodeCertificate(certificate)), certificate)
    const forged = structuredClone(certificate)
    forged.signatures[1]!.signature[0] = (forged.signatures[1]!.signature[0] as number) ^ 1
    assert.throws(() => verifyCertificate(forged, header, chain.genesis), (error: unknown) => error instanceof CertificateError && error.code === 'CERT_FORGED')
    await assert.rejects(
      verifyCertificateWith(forged, header, chain.genesis, async (items) => items.map((item) => verify(item.signature, item.message, item.publicKey))),
      (error: unknown) => error instanceof CertificateError && error.code === 'CERT_FORGED',
    )
  })

  it('CERT_INSUFFICIENT_STAKE at exactly 2/3, CERT_WRONG_BLOCK for another header, CERT_UNKNOWN_VALIDATOR', async () => {
    const chain = await memoryChain(equalStakeGenesis())
    await extend(chain, 3)
    const header = chain.getHeader(chain.getCanonicalHash(2) as Uint8Array)!
    const other = chain.getHeader(chain.getCanonicalHash(3) as Uint8Array)!
    const code = (fn: () => void) => {
      try {
        fn()
      } catch (error) {
        assert.ok(error instanceof CertificateError)
        return error.code
      }
      return 'accepted'
    }
    assert.equal(code(() => verifyCertificate(certify(chain, 2, [0, 1]), header, chain.genesis)), 'CERT_INSUFFICIENT_STAKE')
    assert.equal(code(() => verifyCertificate(certify(chain, 2, [0, 1, 2]), other, chain.genesis)), 'CERT_WRONG_BLOCK')
    const unknown = certify(chain, 2, [0, 1, 2])
    unknown.signatures.push({ validatorIndex: 7, signature: new Uint8Array(64) })
    assert.equal(code(() => verifyCertificate(unknown, header, chain.genesis)), 'CERT_UNKNOWN_VALIDATOR')
  })
})

/** A block of a test tree: its height is its parent's + 1 (genesis children at 1). */
interface TreeBlock {
  height: number
  hash: Uint8Array
  parent: TreeBlock | undefined
}

function treeBlock(fill: number, parent?: TreeBlock): TreeBlock {
  return { height: (parent?.height ?? 0) + 1, hash: new Uint8Array(32).fill(fill), parent }
}

/** What the voting policy reads: ancestry from the test tree, votes against from `pool`. */
function votingView(blocks: readonly TreeBlock[], pool: VoteTracker, headHeight = pool.head): VotingView {
  return {
    headHeight,
    ancestorAt: (hash, height) => {
      let block = blocks.find((candidate) => bytesEqual(candidate.hash, hash))
      while (block !== undefined && block.height > height) block = block.parent
      return block?.height === height ? block.hash : undefined
    },
    stakeAgainst: (height, hash) => pool.stakeAgainst(height, hash),
  }
}

/** Validator indexes by stake, highest first (dev key i holds (n − i) × 100; indexes follow the addresses). */
function indexesByStake(genesis: Genesis): number[] {
  return genesis.validators.map((_, index) => index).sort((a, b) => Number((genesis.validators[b]?.stake ?? 0n) - (genesis.validators[a]?.stake ?? 0n)))
}

describe('voting policy', () => {
  const genesis = testGenesis()
  const key = validatorKey(genesis, 1)

  it('votes once per height for canonical blocks, never at or below finality', () => {
    const a1 = treeBlock(0xa1)
    const a2 = treeBlock(0xa2, a1)
    const a3 = treeBlock(0xa3, a2)
    const a4 = treeBlock(0xa4, a3)
    const pool = trackerAt(genesis, 4)
    const view = votingView([a1, a2, a3, a4], pool)
    const policy = new VotingPolicy(key, genesis)
    const votes = policy.onCanonicalBlocks([a1, a2], 0, view)
    assert.deepEqual(
      votes.map((vote) => vote.height),
      [1, 2],
    )
    assert.equal(votes[0]?.validatorIndex, 1)
    // The votes verify in a tracker.
    const tracker = trackerAt(genesis, 2)
    for (const vote of votes) assert.equal(tracker.addVote(vote).kind, 'counted')
    // Heights already voted are skipped, 3 is voted.
    assert.deepEqual(
      policy.onCanonicalBlocks([a2, a3], 0, view).map((vote) => vote.height),
      [3],
    )
    assert.deepEqual(policy.onCanonicalBlocks([a4], 4, view), [], 'never at the finalized height')
    // A restarted validator resumes above its persisted last vote.
    assert.deepEqual(new VotingPolicy(key, genesis, 3).onCanonicalBlocks([a3], 0, view), [])
  })

  it('does not vote off the branch of its vote while that block can still pass 2/3 there; does once 1/3 of the stake voted against it', () => {
    const [top, second, , fourth] = indexesByStake(genesis) as [number, number, number, number]
    const a1 = treeBlock(0xa1)
    const b1 = treeBlock(0xb1)
    const b2 = treeBlock(0xb2, b1)
    const b3 = treeBlock(0xb3, b2)
    const pool = trackerAt(genesis, 3)
    const view = () => votingView([a1, b1, b2, b3], pool)
    const policy = new VotingPolicy(validatorKey(genesis, top), genesis)
    for (const vote of policy.onCanonicalBlocks([a1], 0, view())) pool.addVote(vote)
    // 300 of 1,000 against A1 at 1: A1 may still gather 700 there.
    pool.addVote(voteBy(genesis, second, 1, b1.hash))
    assert.deepEqual(policy.onCanonicalBlocks([b1, b2], 0, view()), [], 'held while A1 can pass 2/3')
    assert.equal(policy.held, true)
    // 400 against (second and fourth): A1 can hold at most 600 at 1, not more than 2/3.
    pool.addVote(voteBy(genesis, fourth, 1, b1.hash))
    assert.deepEqual(
      policy.onCanonicalBlocks([b2], 0, view()).map((vote) => [vote.height, vote.blockHash]),
      [[2, b2.hash]],
    )
    assert.equal(policy.held, false)
    // The new vote binds in turn; a finalized height releases it.
    const c3 = treeBlock(0xc3, treeBlock(0xc2, a1))
    assert.deepEqual(policy.onCanonicalBlocks([c3], 0, votingView([a1, b1, b2, b3, c3], pool)), [])
    assert.equal(policy.onCanonicalBlocks([b3], 0, view()).length, 1)
    assert.deepEqual(
      policy.bindingVotes().map((vote) => vote.height),
      [2, 3],
    )
    assert.deepEqual(policy.onCanonicalBlocks([], 3, view()), [])
    assert.deepEqual(policy.bindingVotes(), [])
  })

  it('a restarted validator is still bound by the votes it persisted', () => {
    const [top] = indexesByStake(genesis) as [number]
    const a1 = treeBlock(0xa1)
    const b2 = treeBlock(0xb2, treeBlock(0xb1))
    const pool = trackerAt(genesis, 2)
    const bound = decodeBindingVotes(encodeBindingVotes([{ height: 1, hash: a1.hash }]))
    assert.deepEqual(bound, [{ height: 1, hash: a1.hash }])
    const restarted = new VotingPolicy(validatorKey(genesis, top), genesis, 1, bound)
    assert.deepEqual(restarted.onCanonicalBlocks([b2], 0, votingView([a1, b2, b2.parent as TreeBlock], pool)), [])
    assert.equal(restarted.held, true)
  })

  it('a start-up split: a validator that voted A1 and reorged to a rival chain does not help certify it, so A1 and the rival are never both final', () => {
    // As in the 8-node mesh test: the 300 validator builds B1..B3 before it has peers, the 400
    // validator builds A1 on genesis, then catches up on B; the 200 and 100 validators see A1 first.
    const [top, second, third, fourth] = indexesByStake(genesis) as [number, number, number, number]
    const a1 = treeBlock(0xa1)
    const b1 = treeBlock(0xb1)
    const b2 = treeBlock(0xb2, b1)
    const b3 = treeBlock(0xb3, b2)
    const blocks = [a1, b1, b2, b3]
    const pool = trackerAt(genesis, 3)
    const certificates: Certificate[] = []
    const cast = (votes: Vote[]) => {
      for (const vote of votes) {
        const outcome = pool.addVote(vote)
        if (outcome.kind === 'counted' && outcome.certificate !== undefined) certificates.push(outcome.certificate)
      }
    }
    const policies = new Map([top, second, third, fourth].map((index) => [index, new VotingPolicy(validatorKey(genesis, index), genesis)]))
    const policy = (index: number) => policies.get(index) as VotingPolicy
    cast(policy(second).onCanonicalBlocks([b1, b2, b3], 0, votingView(blocks, pool)))
    cast(policy(top).onCanonicalBlocks([a1], 0, votingView(blocks, pool)))
    cast(policy(top).onCanonicalBlocks([b1, b2, b3], 0, votingView(blocks, pool)))
    cast(policy(third).onCanonicalBlocks([a1], 0, votingView(blocks, pool)))
    cast(policy(fourth).onCanonicalBlocks([a1], 0, votingView(blocks, pool)))
    // A1 holds 700 of 1,000: final. Before the lock the top validator's votes at 2 and 3 made B3
    // final too (400 + 300), and the two halves of the network refused each other's blocks.
    assert.deepEqual(
      certificates.map((certificate) => [certificate.height, certificate.blockHash]),
      [[1, a1.hash]],
    )
    assert.equal(pool.stakeFor(3, b3.hash), 300n)
  })

  it('refuses a key without stake', () => {
    assert.throws(() => new VotingPolicy(devKeypair(50), genesis), RangeError)
  })
})

describe('chain finality fence', () => {
  it('applies a certificate, refuses a longer competing chain forking below it (BLOCK_BEFORE_FINALIZED)', async () => {
    const genesis = equalStakeGenesis()
    const chain = await memoryChain(genesis)
    const rival = await memoryChain(genesis)
    await extend(chain, 4)
    // The rival forks at height 1 (a later slot for block 2) and grows longer.
    for (let h = 1; h <= 1; h++) {
      const block = chain.getBlock(chain.getCanonicalHash(h) as Uint8Array)!
      await rival.importBlock(block, { now: FAR_FUTURE })
    }
    for (let i = 0; i < 6; i++) {
      const { block, execution } = buildNext(rival, [], rival.head.header.slot + 2)
      await rival.importOwnBlock(block, execution)
    }
    const result = await chain.applyCertificate(certify(chain, 3, [0, 1, 2]))
    assert.equal(result.status, 'finalized')
    assert.equal(chain.finalized.height, 3)
    assert.ok(bytesEqual(chain.finalized.hash, chain.getCanonicalHash(3) as Uint8Array))
    assert.equal(chain.isBelowFinality(2, rival.getCanonicalHash(2) as Uint8Array), true)
    assert.equal(chain.isBelowFinality(3, chain.getCanonicalHash(3) as Uint8Array), false)
    const before = chain.head.hash
    for (let h = 2; h <= rival.head.header.height; h++) {
      const block = rival.getBlock(rival.getCanonicalHash(h) as Uint8Array)!
      await assert.rejects(chain.importBlock(block, { now: FAR_FUTURE }), (error: unknown) => {
        assert.ok(error instanceof BlockError)
        // The first rival block's parent is on our chain at height 1, below finality; later ones have unknown parents.
        assert.ok(error.code === 'BLOCK_BEFORE_FINALIZED' || error.code === 'BLOCK_UNKNOWN_PARENT', error.code)
        if (h === 2) assert.equal(error.code, 'BLOCK_BEFORE_FINALIZED')
        return true
      })
    }
    assert.ok(bytesEqual(chain.head.hash, before), 'the head stays on the finalized chain')
    assert.equal(chain.isBelowFinality(rival.head.header.height, rival.head.hash), false, 'unknown ancestry above finality: not decidable')
  })

  it('refuses the rival branch when it was stored before the certificate arrived', async () => {
    const genesis = equalStakeGenesis()
    const chain = await memoryChain(genesis)
    await extend(chain, 4)
    // A side block at height 3 on the block at 2 (a later slot): stored, not the head.
    const parentHash = chain.getCanonicalHash(2) as Uint8Array
    const rival = await memoryChain(genesis)
    for (let h = 1; h <= 2; h++) await rival.importBlock(chain.getBlock(chain.getCanonicalHash(h) as Uint8Array)!, { now: FAR_FUTURE })
    const side = buildNext(rival, [], chain.getHeader(chain.getCanonicalHash(3) as Uint8Array)!.slot + 5)
    await rival.importOwnBlock(side.block, side.execution)
    await chain.importBlock(side.block, { now: FAR_FUTURE })
    assert.ok(bytesEqual(side.block.header.parentHash, parentHash))
    await chain.applyCertificate(certify(chain, 3, [0, 1, 2]))
    const child = buildNext(rival, [])
    await assert.rejects(chain.importBlock(child.block, { now: FAR_FUTURE }), (error: unknown) => error instanceof BlockError && error.code === 'BLOCK_BEFORE_FINALIZED')
    // A certificate for the side block now contradicts finality.
    const sideHash = headerHash(side.block.header)
    const conflicting = {
      height: 3,
      blockHash: sideHash,
      signatures: [0, 1, 2].map((index) => ({ validatorIndex: index, signature: voteBy(genesis, index, 3, sideHash).signature })),
    }
    await assert.rejects(chain.applyCertificate(conflicting), FinalityConflictError)
  })

  it('moves the head onto the certified block when it was on another branch', async () => {
    const genesis = equalStakeGenesis()
    const chain = await memoryChain(genesis)
    await extend(chain, 2)
    const ourHash = chain.head.hash
    const rival = await memoryChain(genesis)
    await rival.importBlock(chain.getBlock(chain.getCanonicalHash(1) as Uint8Array)!, { now: FAR_FUTURE })
    const side = buildNext(rival, [], chain.head.header.slot + 3)
    await rival.importOwnBlock(side.block, side.execution)
    await chain.importBlock(side.block, { now: FAR_FUTURE })
    // Two blocks at height 2; fork choice took the lower hash. Certify the other one.
    const sideHash = headerHash(side.block.header)
    const otherHash = bytesEqual(chain.head.hash, sideHash) ? ourHash : sideHash
    const previousHead = chain.head.hash
    assert.ok(!bytesEqual(previousHead, otherHash))
    const certificate = {
      height: 2,
      blockHash: otherHash,
      signatures: [0, 1, 2].map((index) => ({ validatorIndex: index, signature: voteBy(genesis, index, 2, otherHash).signature })),
    }
    const result = await chain.applyCertificate(certificate)
    assert.ok(result.status === 'finalized' && result.change !== undefined)
    assert.ok(bytesEqual(chain.head.hash, otherHash))
    assert.ok(bytesEqual(chain.getCanonicalHash(2) as Uint8Array, otherHash))
  })

  it('waits for an unknown certified block and refuses a forged certificate', async () => {
    const chain = await memoryChain(equalStakeGenesis())
    await extend(chain, 3)
    const unknown = { height: 9, blockHash: new Uint8Array(32).fill(9), signatures: [{ validatorIndex: 0, signature: new Uint8Array(64) }] }
    assert.deepEqual(await chain.applyCertificate(unknown), { status: 'unknown-block' })
    const forged = certify(chain, 2, [0, 1, 2])
    forged.signatures[0]!.signature[5] = (forged.signatures[0]!.signature[5] as number) ^ 1
    await assert.rejects(chain.applyCertificate(forged), (error: unknown) => error instanceof CertificateError && error.code === 'CERT_FORGED')
    assert.equal(chain.finalized.height, 0)
    assert.equal((await chain.applyCertificate(certify(chain, 2, [0, 1, 2]))).status, 'finalized')
    assert.deepEqual(await chain.applyCertificate(certify(chain, 1, [0, 1, 2])), { status: 'stale' })
  })
})

describe('finality persistence (LevelDB)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'grapevine-finality-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('keeps the finalized pointer and its certificate across a restart', async () => {
    const genesis = equalStakeGenesis()
    const open = async () => Chain.open({ store: new ChainStore(await LevelStore.open(join(dir, 'chain'))), genesis })
    const chain = await open()
    await extend(chain, 5)
    const first = certify(chain, 2, [0, 1, 2])
    const second = certify(chain, 4, [0, 1, 2])
    await chain.applyCertificate(first)
    await chain.applyCertificate(second)
    const finalized = chain.finalized
    const head = chain.head.hash
    await chain.idle()
    await chain.store.close()

    const reopened = await open()
    try {
      assert.equal(reopened.finalized.height, 4)
      assert.ok(bytesEqual(reopened.finalized.hash, finalized.hash))
      assert.ok(bytesEqual(reopened.head.hash, head))
      assert.deepEqual(encodeCertificate(reopened.finalizedCertificate!), encodeCertificate(second))
      assert.deepEqual(encodeCertificate(reopened.getCertificate(2)!), encodeCertificate(first), 'earlier certificates are retained by height')
      assert.equal(reopened.getCertificate(3), undefined)
      // The fence survives the restart.
      assert.equal(reopened.isBelowFinality(3, new Uint8Array(32)), true)
    } finally {
      await reopened.store.close()
    }
  })
})

describe('node finality', () => {
  it('VOTE_TOO_FAR_AHEAD is fetched again once the head catches up', async () => {
    const genesis = equalStakeGenesis()
    const store = new ChainStore(new MemoryStore())
    const chain = await Chain.open({ store, genesis })
    const finality = new NodeFinality({
      chain,
      store,
      genesis,
      key: undefined,
      verifyMany: async (items) => items.map((item) => verify(item.signature, item.message, item.publicKey)),
      hooks: { votes: () => undefined, evidence: () => undefined, finalized: () => undefined, headChanged: () => undefined },
      log: silentLogger(),
    })
    const vote = voteBy(genesis, 0, 10, HASH_A)
    const id = toHexKey(voteId(vote))
    const early = await finality.acceptVotes([vote], 'peer-a')
    assert.deepEqual(early.codes, ['VOTE_TOO_FAR_AHEAD'])
    assert.equal(finality.hasVote(id), false, 'a vote refused only because we are behind is not marked seen')
    await extend(chain, 5)
    finality.onHead({ previous: chain.head, head: chain.head, removed: [], added: [] })
    const later = await finality.acceptVotes([vote], 'peer-a')
    assert.equal(later.accepted, 1)
    assert.equal(finality.hasVote(id), true)
    // Other IGNORE verdicts stay seen: a duplicate is not fetched a third time.
    const again = await finality.acceptVotes([vote], 'peer-b')
    assert.deepEqual(again.codes, ['VOTE_DUPLICATE'])
    assert.equal(finality.hasVote(id), true)
    await finality.stop()
  })
})
