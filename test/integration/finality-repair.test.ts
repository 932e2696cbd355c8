/**
 * Finality repaired by anti-entropy (docs/protocol.md, "Finality repair"). Certificates spread as
 * rumor (votes); a vote made before its validator had any peer reaches nobody, and a node whose
 * canonical chain holds another block at a finalized height can never be final there. Seen on a
 * devnet's start: one validator finalized its first block with the votes of two, the others had
 * switched to a rival first block and never learnt the certificate — a split for good. Here a
 * node (X) holds block A at height 1 with a certificate; another (Y) built a longer chain on a
 * rival block B and never saw A. Once connected, Y asks X for its certificate, checks it, fetches A
 * and moves onto it: X's chain is not better by fork choice, so only the repair can do this.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import type { Chain } from '../../src/chain/chain.ts'
import { signVote } from '../../src/chain/finality.ts'
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import { voteId } from '../../src/codec/finality.ts'
import { headerHash } from '../../src/codec/objects.ts'
import { type Keypair, devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import type { Block, Certificate, Genesis } from '../../src/ledger/types.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { emptyPacker, leaderKey } from '../helpers/chain.ts'
import { connect, startNode, stopAll, waitFor } from '../helpers/net.ts'

/** The dev key of the genesis validator at `index` (validators are sorted by address). */
function validatorKey(genesis: Genesis, index: number): Keypair {
  const address = genesis.validators[index]?.address
  for (let i = 0; i < genesis.validators.length; i++) {
    const key = devKeypair(i)
    if (address !== undefined && bytesEqual(key.publicKey, address)) return key
  }
  throw new Error(`no dev key for validator ${index}`)
}

/** Builds the block at `slot` on the chain's head (by the slot's leader) and imports it. */
async function produce(chain: Chain, slot: number): Promise<Block> {
  const { block, execution } = chain.buildBlock(slot, chain.schedule.slotStart(slot) + 1, leaderKey(chain, slot), emptyPacker)
  await chain.importOwnBlock(block, execution)
  return block
}

describe('finality repair', { timeout: 60_000 }, () => {
  const nodes: RunningNode[] = []
  after(() => stopAll(nodes))

  it('a node on a longer rival branch adopts a peer\'s certified block it never received', { timeout: 50_000 }, async () => {
    // Slots in the past, so every block built below is on time; the nodes themselves are not
    // validators (random keys) and produce nothing.
    const genesis = devnetGenesis({ validatorCount: 3, genesisTime: Date.now() - 60_000, slotMs: 1_000 })
    const x = await startNode({ genesis, name: 'x', produce: false, sync: { statusIntervalMs: 500 } })
    const y = await startNode({ genesis, name: 'y', produce: false, sync: { statusIntervalMs: 500 } })
    nodes.push(x, y)

    // X: block A at height 1, finalized by all three validators' votes.
    const a = await produce(x.node.chain, 2)
    const hashA = headerHash(a.header)
    const certificate: Certificate = {
      height: 1,
      blockHash: hashA,
      signatures: genesis.validators.map((_, index) => ({ validatorIndex: index, signature: signVote(validatorKey(genesis, index), genesis.chainId, index, 1, hashA).signature })),
    }
    const applied = await x.node.chain.applyCertificate(certificate)
    assert.equal(applied.status, 'finalized')

    // Y: a rival block B at height 1 and one more on it — longer than X's chain, never final.
    const b = await produce(y.node.chain, 3)
    await produce(y.node.chain, 4)
    assert.ok(!bytesEqual(headerHash(b.header), hashA))
    assert.equal(y.node.chain.head.header.height, 2)

    await connect(y, x)
    await waitFor('Y finalized A', () => y.node.chain.finalized.height === 1, {
      timeoutMs: 30_000,
      detail: () => ({ head: y.node.chain.head.header.height, finalized: y.node.chain.finalized.height }),
    })
    assert.ok(bytesEqual(y.node.chain.finalized.hash, hashA), 'the certified block is final')
    assert.ok(bytesEqual(y.node.chain.getCanonicalHash(1) as Uint8Array, hashA), 'and on the canonical chain')
    assert.equal(y.node.chain.hasBlock(headerHash(b.header)), true, 'the rival block is still stored, off the canonical chain')
  })

  it('a validator\'s votes signed before it had peers reach the peers it meets later', { timeout: 40_000 }, async () => {
    // The split's cause, prevented: rumor spreads only what is new, so a newly admitted peer is
    // given this validator's own votes above the finalized height.
    const genesis = devnetGenesis({ validatorCount: 3, genesisTime: Date.now(), slotMs: 300 })
    const validator = await startNode({ genesis, key: devKeypair(0), name: 'v0' })
    nodes.push(validator)
    await waitFor('v0 voted alone', () => (validator.node.finality.lastVotedHeight ?? 0) >= 1, { timeoutMs: 15_000 })
    const early = validator.node.finality.ownVotesAboveFinalized()[0]
    assert.ok(early !== undefined, 'one third of the stake alone finalizes nothing: its votes stay above the finalized height')
    const observer = await startNode({ genesis, name: 'observer', produce: false })
    nodes.push(observer)
    await connect(observer, validator)
    await waitFor('the early vote reached the observer', () => observer.node.finality.hasVote(toHexKey(voteId(early))), { timeoutMs: 10_000 })
  })
})
