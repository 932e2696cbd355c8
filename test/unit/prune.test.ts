// Pruning (src/chain/prune.ts): retained states stay complete (a full hash walk), states and bodies
// below the window go, the finalized block's state is kept until finality moves on, headers and
// certificates stay, and archive mode deletes nothing.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Chain } from '../../src/chain/chain.ts'
import { signVote } from '../../src/chain/finality.ts'
import { bytesEqual, toHexKey, utf8 } from '../../src/codec/bytes.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { Certificate, Genesis } from '../../src/ledger/types.ts'
import { decodeNode, nodeHash } from '../../src/state/nodes.ts'
import { collectLeaves, isEmptyRoot } from '../../src/state/trie.ts'
import { PRUNE_NODES_PER_SLICE } from '../../src/chain/prune.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { buildNext, testGenesis, transfer } from '../helpers/chain.ts'

/** Walks the whole trie under `root`, checking every node's hash; returns the leaf count (throws if a node is missing). */
export function walkTrie(store: ChainStore, root: Uint8Array): number {
  if (isEmptyRoot(root)) return 0
  let leaves = 0
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const bytes = store.getNode(hash)
    if (bytes === undefined) throw new Error(`node ${toHexKey(hash)} missing`)
    assert.ok(bytesEqual(nodeHash(bytes), hash))
    const node = decodeNode(bytes)
    if (node.kind === 'leaf') leaves++
    else for (const child of node.children) if (child !== undefined) stack.push(child)
  }
  return leaves
}

function reachable(store: ChainStore, root: Uint8Array, into: Set<string>): void {
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    if (into.has(toHexKey(hash))) continue
    into.add(toHexKey(hash))
    const node = decodeNode(store.getNode(hash) as Uint8Array)
    if (node.kind === 'branch') for (const child of node.children) if (child !== undefined) stack.push(child)
  }
}

function certify(chain: Chain, height: number): Certificate {
  const hash = chain.getCanonicalHash(height) as Uint8Array
  const signatures = chain.genesis.validators.map((validator, index) => {
    let key = devKeypair(0)
    for (let i = 0; i < chain.genesis.validators.length; i++) if (bytesEqual(devKeypair(i).publicKey, validator.address)) key = devKeypair(i)
    return { validatorIndex: index, signature: signVote(key, chain.genesis.chainId, index, height, hash).signature }
  })
  return { height, blockHash: hash, signatures }
}

async function grow(chain: Chain, blocks: number, mirror?: Chain): Promise<void> {
  for (let i = 0; i < blocks; i++) {
    const height = chain.head.header.height + 1
    const txs = [0, 1, 2].map((sender) =>
      transfer(sender + 10, sha256(utf8(`prune/${height}/${sender}`)), 5n, chain.getAccount(devKeypair(sender + 10).publicKey).nonce),
    )
    const { block } = buildNext(chain, txs)
    await chain.importBlock(block, { now: Number.MAX_SAFE_INTEGER })
    if (mirror !== undefined) await mirror.importBlock(block, { now: Number.MAX_SAFE_INTEGER })
  }
  await chain.idle()
}

async function open(genesis: Genesis, pruning: Partial<Chain['pruning']>): Promise<{ chain: Chain; kv: MemoryStore }> {
  const kv = new MemoryStore()
  const chain = await Chain.open({ store: new ChainStore(kv, { nodeCacheEntries: 10 }), genesis }, { pruning })
  return { chain, kv }
}

async function nodeCount(kv: MemoryStore): Promise<number> {
  let count = 0
  for await (const _ of kv.range({ gte: new Uint8Array([0x4e]), lt: new Uint8Array([0x4f]) })) count++
  return count
}

describe('pruning', () => {
  const genesis = testGenesis()

  it('keeps the last states, bodies and the finalized state; drops the rest; headers stay', async () => {
    const { chain, kv } = await open(genesis, { keepStateBlocks: 4, keepBodyBlocks: 3, pruneIntervalBlocks: 1 })
    const archive = await open(genesis, { archive: true })
    await grow(chain, 3, archive.chain)
    assert.equal((await chain.applyCertificate(certify(chain, 3))).status, 'finalized')
    await grow(chain, 17, archive.chain)
    const head = chain.head.header.height
    assert.equal(head, 20)
    for (let h = 0; h <= head; h++) {
      const hash = chain.getCanonicalHash(h) as Uint8Array
      const header = chain.getHeader(hash)
      assert.ok(header !== undefined, `header ${h} kept`)
      const retainedState: boolean = h > head - 4 || h === 3
      if (retainedState) {
        assert.equal(walkTrie(chain.store, header.stateRoot) > 0, true, `state ${h} complete`)
        // A pruned node still serves state sync for every retained root.
        assert.ok(collectLeaves(chain.store, header.stateRoot, 0, undefined, 100_000) !== undefined)
      } else {
        assert.equal(chain.hasState(header), false, `state ${h} pruned`)
      }
      const retainedBody: boolean = h > head - 3 || h === 3 || h === 0
      assert.equal(chain.hasBlock(hash), retainedBody, `body ${h} ${retainedBody ? 'kept' : 'pruned'}`)
    }
    // The tx index no longer names pruned bodies.
    const pruned = archive.chain.getBlock(archive.chain.getCanonicalHash(5) as Uint8Array)!
    assert.equal(chain.store.getTxLocation(pruned.txs[0]!.id), undefined)
    const kept = chain.getBlock(chain.getCanonicalHash(head) as Uint8Array)!
    assert.ok(chain.store.getTxLocation(kept.txs[0]!.id) !== undefined)
    // Exactly the nodes of the retained states remain: no garbage.
    const live = new Set<string>()
    for (const h of [3, 17, 18, 19, 20]) reachable(chain.store, chain.getHeader(chain.getCanonicalHash(h) as Uint8Array)!.stateRoot, live)
    assert.equal(await nodeCount(kv), live.size)
    assert.ok(live.size < (await nodeCount(archive.kv)), 'fewer nodes than the archive')

    // Finality moves on: the old finalized state goes at the next prune.
    const oldFinalRoot = chain.getHeader(chain.getCanonicalHash(3) as Uint8Array)!.stateRoot
    // A certificate for a canonical block whose body is already pruned still applies.
    assert.equal((await chain.applyCertificate(certify(chain, 16))).status, 'finalized')
    await grow(chain, 2, archive.chain)
    assert.equal(chain.store.hasNode(oldFinalRoot), false)
    assert.ok(chain.lastPruneError === undefined, String(chain.lastPruneError))
    assert.equal(walkTrie(chain.store, chain.head.header.stateRoot), walkTrie(archive.chain.store, archive.chain.head.header.stateRoot))
  })

  it('a prune walks in slices: it yields to the event loop every PRUNE_NODES_PER_SLICE nodes and prunes the same', async () => {
    // A state of ~3,000 accounts: a mark walks ~3,500 nodes, so a run must yield several times.
    const genesis = testGenesis({ funded: 3_000 })
    const pruning = { keepStateBlocks: 4, materializedStateBlocks: 2, keepBodyBlocks: 4, pruneIntervalBlocks: 1_000 }
    let yields = 0
    let interleaved = 0
    const yieldNow = () =>
      new Promise<void>((resolve) => {
        yields++
        // Work the loop does meanwhile (gossip): it runs between slices, not after the whole run.
        setImmediate(() => interleaved++)
        setImmediate(resolve)
      })
    const sliced = await Chain.open({ store: new ChainStore(new MemoryStore(), { nodeCacheEntries: 10 }), genesis }, { pruning, yieldNow })
    const whole = await open(genesis, pruning)
    await grow(sliced, 10, whole.chain)
    const before = yields
    const [a, b] = [await sliced.prune(), await whole.chain.prune()]
    assert.ok(a.liveNodes > 3 * PRUNE_NODES_PER_SLICE, `a big state (${a.liveNodes} live nodes)`)
    assert.ok(yields - before >= Math.floor(a.liveNodes / PRUNE_NODES_PER_SLICE), `yielded ${yields - before} times over ${a.liveNodes} nodes`)
    assert.ok(interleaved >= yields - before - 1, 'other work ran between the slices')
    assert.deepEqual(a, b)
    assert.equal(walkTrie(sliced.store, sliced.head.header.stateRoot), walkTrie(whole.chain.store, whole.chain.head.header.stateRoot))
  })

  it('a prune held part-way (a state sync took its hold) stops before deleting anything more; the next run does it all', async () => {
    const genesis = testGenesis({ funded: 3_000 })
    const pruning = { keepStateBlocks: 4, materializedStateBlocks: 2, keepBodyBlocks: 4, pruneIntervalBlocks: 1_000 }
    let release: (() => void) | undefined
    let sliced: Chain | undefined
    // At the first slice (still marking), a state sync takes its hold.
    const yieldNow = () =>
      new Promise<void>((resolve) => {
        release ??= sliced?.holdPruning()
        setImmediate(resolve)
      })
    const held = await Chain.open({ store: new ChainStore(new MemoryStore(), { nodeCacheEntries: 10 }), genesis }, { pruning, yieldNow })
    sliced = held
    const kv = held.store.kv as MemoryStore
    const whole = await open(genesis, pruning)
    await grow(held, 10, whole.chain)
    const before = await nodeCount(kv)
    const stopped = await held.prune()
    assert.equal(stopped.stopped, true)
    assert.equal(await nodeCount(kv), before, 'nothing deleted once held')
    release?.()
    release = () => undefined // no hold the second time
    const [again, reference] = [await held.prune(), await whole.chain.prune()]
    assert.equal(again.stopped, undefined)
    assert.equal(again.deletedNodes, reference.deletedNodes)
    assert.equal(await nodeCount(kv), await nodeCount(whole.kv))
  })

  it('archive keeps every state and body', async () => {
    const { chain } = await open(genesis, { archive: true, pruneIntervalBlocks: 1 })
    await grow(chain, 8)
    for (let h = 0; h <= 8; h++) {
      const hash = chain.getCanonicalHash(h) as Uint8Array
      assert.ok(chain.hasBlock(hash))
      walkTrie(chain.store, chain.getHeader(hash)!.stateRoot)
    }
    const report = await chain.prune()
    assert.equal(report.deletedNodes + report.deletedBodies, 0)
  })
})

describe('height ranges for pruning', () => {
  it('canonicalInRange answers only the stored entries in [from, to), by height, on a sparse index', async () => {
    const store = new ChainStore(new MemoryStore())
    const batch = store.batch()
    // A certificate-joined node: nothing below the pivot at 100,000.
    for (const height of [100_000, 100_001, 100_002, 300]) batch.setCanonical(height, sha256(utf8(`block ${height}`)))
    await batch.commit()
    const found = await store.canonicalInRange(0, 100_002)
    assert.deepEqual(
      found.map((entry) => entry.height),
      [300, 100_000, 100_001],
    )
    assert.ok(bytesEqual(found[1]?.hash as Uint8Array, sha256(utf8('block 100000'))))
    assert.deepEqual(await store.canonicalInRange(301, 100_000), [])
    assert.deepEqual(await store.canonicalInRange(5, 5), [])
  })

  it('MemoryStore.range keeps byte order, bounds and limit', async () => {
    const kv = new MemoryStore()
    const keys = [[0x43, 0x00], [0x43, 0x0f], [0x43, 0xf0], [0x44], [0x42, 0xff]].map((bytes) => new Uint8Array(bytes))
    await kv.write(keys.map((key) => ({ type: 'put' as const, key, value: new Uint8Array([key.length]) })))
    const seen: string[] = []
    for await (const [key] of kv.range({ gte: new Uint8Array([0x43]), lt: new Uint8Array([0x44]) })) seen.push(toHexKey(key))
    assert.deepEqual(seen, ['4300', '430f', '43f0'])
    const limited: string[] = []
    for await (const [key] of kv.range({ gte: new Uint8Array([0x00]), lt: new Uint8Array([0xff]), limit: 2 })) limited.push(toHexKey(key))
    assert.deepEqual(limited, ['42ff', '4300'])
  })
})
