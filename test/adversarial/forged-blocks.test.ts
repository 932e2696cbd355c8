/**
 * Blocks forged on the way, against one real node on 127.0.0.1: a peer relays a leader's genuine
 * header with a body that is not the one it signed, or a header no leader signed, for a block
 * whose parent the node does not have yet. A block waiting for its parent is held by its header's
 * hash, so a copy kept in the genuine block's place would shut the genuine one out — it would
 * count as already had, and when the parent came the forged copy would fail and leave the node
 * without the block (Bitcoin Core's CVE-2012-2459 was this shape: a mutated block cached as
 * invalid by the hash of a valid one). The node must refuse such a block at once (BLOCK_REJECTED,
 * fatal for its relayer), keep the genuine copy from an honest peer, and import it with its parent.
 * A forged copy given as the answer to our getdata must not end the search either: the next
 * announcer is asked at once.
 *
 * The genesis has two validators: the node (dev key 0) and dev key 1, which runs no node, so the
 * test can sign genuine blocks in its slots. Nothing is finalized (key 1 never votes), so a branch
 * from genesis is a fork the node stores.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { PeerId } from '@libp2p/interface'
import type { Chain } from '../../src/chain/chain.ts'
import { toHexKey } from '../../src/codec/bytes.ts'
import { headerHash } from '../../src/codec/objects.ts'
import { INV_BLOCK } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { Block } from '../../src/ledger/types.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { admittedRaw } from '../helpers/attack.ts'
import { buildNext, memoryChain, transfer } from '../helpers/chain.ts'
import { type RawPeer, genesisStartingNow, peerSet, rejectedCount, sleep, startNode, stopAll, waitFor } from '../helpers/net.ts'

const RECIPIENT = devKeypair(7200).publicKey
const ABSENT_VALIDATOR = devKeypair(1).publicKey

describe('blocks forged on the way', { timeout: 90_000 }, () => {
  const nodes: RunningNode[] = []
  const raws: RawPeer[] = []
  let victim: RunningNode
  /** The test's own copy of the chain: a branch of key 1's blocks from genesis. */
  let branch: Chain

  before(async () => {
    const genesis = genesisStartingNow(2)
    victim = await startNode({ genesis, key: devKeypair(0), name: 'victim' })
    nodes.push(victim)
    branch = await memoryChain(genesis)
  })
  after(() => stopAll(nodes, raws))

  async function admittedRawPeer(): Promise<{ raw: RawPeer; victimId: PeerId }> {
    const admitted = await admittedRaw(victim)
    raws.push(admitted.raw)
    return admitted
  }

  /** The next slot after `after` that key 1 leads, once it has begun (its block is not from the future). */
  async function absentValidatorSlot(after: number): Promise<number> {
    let slot = after + 1
    while (toHexKey(branch.schedule.leaderFor(slot).address) !== toHexKey(ABSENT_VALIDATOR)) slot++
    const begins = branch.schedule.slotStart(slot) + 1
    await sleep(Math.max(0, begins - Date.now() + 5))
    return slot
  }

  /** A parent (imported into the branch) and a child on it carrying `txs`: genuine blocks by key 1. */
  async function parentAndChild(txs: Parameters<typeof buildNext>[1]): Promise<{ parent: Block; child: Block }> {
    const parentSlot = await absentValidatorSlot(branch.head.header.slot)
    const built = buildNext(branch, [], parentSlot)
    await branch.importOwnBlock(built.block, built.execution)
    const child = buildNext(branch, txs, await absentValidatorSlot(parentSlot))
    await branch.importOwnBlock(child.block, child.execution)
    return { parent: built.block, child: child.block }
  }

  it('BLOCK_REJECTED: a body that is not the one its leader signed, sent before the parent, is refused at once; the genuine copy is kept and imported', async () => {
    const { parent, child } = await parentAndChild([transfer(60, RECIPIENT, 1n, 0)])
    const childHash = headerHash(child.header)
    // The same signed header, another (valid) transaction: the header's tx root no longer matches.
    const mutated: Block = { header: child.header, txs: [transfer(61, RECIPIENT, 1n, 0)] }

    const mallory = await admittedRawPeer()
    const honest = await admittedRawPeer()
    await mallory.raw.send(mallory.victimId, { type: 'block', solicited: false, block: mutated })
    await waitFor('the forger banned', () => peerSet(victim).isBanned(mallory.raw.peerId))
    assert.deepEqual(peerSet(victim).scores.reasons(mallory.raw.peerId), { BLOCK_REJECTED: 1 })
    assert.equal(await rejectedCount(victim, 'BLOCK_BAD_TX_ROOT'), 1, 'refused for its tx root')

    // The genuine block, then its parent, from an honest relay: both imported.
    await honest.raw.send(honest.victimId, { type: 'block', solicited: false, block: child })
    await sleep(300)
    await honest.raw.send(honest.victimId, { type: 'block', solicited: false, block: parent })
    await waitFor('the genuine block imported with its parent', () => victim.node.chain.hasBlock(childHash), { timeoutMs: 10_000 })
    assert.deepEqual(peerSet(victim).scores.reasons(honest.raw.peerId), {}, 'the honest relay is not charged')
  })

  it('BLOCK_REJECTED: a forged answer to our getdata does not end the search: the next announcer is asked, and its genuine block imported', async () => {
    const { parent, child } = await parentAndChild([transfer(62, RECIPIENT, 1n, 0)])
    const childHash = headerHash(child.header)
    const childHex = toHexKey(childHash)
    const mutated: Block = { header: child.header, txs: [transfer(63, RECIPIENT, 1n, 0)] }
    const asked = (raw: RawPeer) => raw.received.some(({ message }) => message.type === 'getdata' && message.items.some((item) => toHexKey(item.hash) === childHex))

    const mallory = await admittedRawPeer()
    const honest = await admittedRawPeer()
    // Both announce it, the forger first: it is asked first, and answers with a forged body.
    const announcement = { type: 'inv' as const, items: [{ kind: INV_BLOCK, hash: childHash }] }
    await mallory.raw.send(mallory.victimId, announcement)
    await waitFor('the forger asked', () => asked(mallory.raw))
    await honest.raw.send(honest.victimId, announcement)
    await sleep(100)
    assert.equal(asked(honest.raw), false, 'one announcer at a time')
    await mallory.raw.send(mallory.victimId, { type: 'block', solicited: true, block: mutated })
    await waitFor('the forger banned', () => peerSet(victim).isBanned(mallory.raw.peerId))

    // The refusal sends the victim to the honest announcer at once, not after a timeout.
    await waitFor('the honest announcer asked', () => asked(honest.raw), { timeoutMs: 1_500 })
    await honest.raw.send(honest.victimId, { type: 'block', solicited: true, block: child })
    await honest.raw.send(honest.victimId, { type: 'block', solicited: false, block: parent })
    await waitFor('the genuine block imported', () => victim.node.chain.hasBlock(childHash), { timeoutMs: 10_000 })
    assert.deepEqual(peerSet(victim).scores.reasons(honest.raw.peerId), {}, 'the honest announcer is not charged')
  })

  it('BLOCK_REJECTED: a block whose parent is unknown and whose header its leader did not sign is refused at once, not held', async () => {
    const { child } = await parentAndChild([])
    const signature = new Uint8Array(child.header.signature)
    signature[0] = (signature[0] as number) ^ 0x01
    const forged: Block = { header: { ...child.header, signature }, txs: child.txs }

    const mallory = await admittedRawPeer()
    const before = await rejectedCount(victim, 'BLOCK_BAD_SIGNATURE')
    await mallory.raw.send(mallory.victimId, { type: 'block', solicited: false, block: forged })
    await waitFor('the forger banned', () => peerSet(victim).isBanned(mallory.raw.peerId))
    assert.deepEqual(peerSet(victim).scores.reasons(mallory.raw.peerId), { BLOCK_REJECTED: 1 })
    assert.equal(await rejectedCount(victim, 'BLOCK_BAD_SIGNATURE'), before + 1, 'refused for its signature')
  })
})
