// Pruning (src/chain/prune.ts): retained states stay complete (a full hash walk), states and bodies
// below the window go, the finalized block's state is kept until finality moves on, headers and
// certificates stay, and archive mode deletes nothing.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
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

async function grow(chain: Chain, blocks: number, mirror?: Chain, senders = 3): Promise<void> {
  for (let i = 0; i < blocks; i++) {
    const height = chain.head.header.height + 1
    const txs = Array.from({ length: senders }, (_, sender) =>
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
    // Blocks of 60 transfers to new accounts on ~3,000: each demoted state differs from the
    // retained ones by ~500 nodes, so the collection reads thousands and must yield several times.
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
    await grow(sliced, 10, whole.chain, 60)
    const before = yields
    const [a, b] = [await sliced.prune(), await whole.chain.prune()]
    assert.ok(a.visitedNodes > 3 * PRUNE_NODES_PER_SLICE, `a big difference (${a.visitedNodes} nodes read)`)
    // A slice ends at the first check after 512 nodes were counted; the reads of one demoted node's retained versions may overshoot it.
    assert.ok(yields - before >= Math.floor(a.visitedNodes / (2 * PRUNE_NODES_PER_SLICE)), `yielded ${yields - before} times over ${a.visitedNodes} nodes`)
    assert.ok(interleaved >= yields - before - 1, 'other work ran between the slices')
    assert.deepEqual(a, b)
    assert.equal(walkTrie(sliced.store, sliced.head.header.stateRoot), walkTrie(whole.chain.store, whole.chain.head.header.stateRoot))
  })

  it('a prune reads what the demoted states changed, not the whole state', async () => {
    // 3 transfers a block on ~3,000 accounts (~3,500 nodes): a mark of the retained states read
    // every node each run; the collection reads the demoted states' differences.
    const { chain } = await open(testGenesis({ funded: 3_000 }), { keepStateBlocks: 4, materializedStateBlocks: 2, keepBodyBlocks: 4, pruneIntervalBlocks: 1_000 })
    await grow(chain, 10)
    const report = await chain.prune()
    assert.ok(report.deletedNodes > 0)
    assert.ok(report.visitedNodes < 1_000, `read ${report.visitedNodes} nodes`)
  })

  it('after any run of blocks, side branches, finality and prunes, the store holds exactly the retained states (generated)', async () => {
    const stepArb = fc.record(
      {
        transfers: fc.array(fc.record({ from: fc.nat(5), to: fc.nat(7), amount: fc.integer({ min: 1, max: 3 }) }, { noNullPrototype: true }), { maxLength: 4 }),
        fork: fc.boolean(),
        certify: fc.boolean(),
      },
      { noNullPrototype: true },
    )
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 8, maxLength: 40 }), fc.integer({ min: 1, max: 4 }), async (steps, interval) => {
        const { chain, kv } = await open(genesis, { keepStateBlocks: 6, materializedStateBlocks: 2, keepBodyBlocks: 4, pruneIntervalBlocks: interval })
        // An archive twin imports the same blocks (and so picks the same head): it builds the side blocks.
        const twin = await open(genesis, { archive: true })
        for (const [i, step] of steps.entries()) {
          // Funded accounts, or new ones: a new key can push an existing leaf down a level (the
          // collection must find it lower in a retained state), and a side block's new key can
          // leave a branch in a dropped state where the retained ones have a single leaf.
          const recipient = (to: number): Uint8Array => (to < 6 ? devKeypair(to + 10).publicKey : sha256(utf8(`prune/fresh/${i}/${to}`)))
          const nonces = new Map<number, number>()
          const txs = step.transfers.map(({ from, to, amount }) => {
            const nonce = nonces.get(from) ?? chain.getAccount(devKeypair(from + 10).publicKey).nonce
            nonces.set(from, nonce + 1)
            return transfer(from + 10, recipient(to), BigInt(amount), nonce)
          })
          const blocks = [buildNext(chain, txs).block]
          // A side block on the same parent, one slot later, with one transfer to a new account of its own.
          if (step.fork) blocks.push(buildNext(twin.chain, [transfer(16, sha256(utf8(`prune/side/${i}`)), 1n, twin.chain.getAccount(devKeypair(16).publicKey).nonce)], twin.chain.head.header.slot + 2).block)
          for (const block of blocks) {
            await chain.importBlock(block, { now: Number.MAX_SAFE_INTEGER })
            await twin.chain.importBlock(block, { now: Number.MAX_SAFE_INTEGER })
          }
          const height = chain.head.header.height - 1
          if (step.certify && height > chain.finalized.height) {
            const certificate = certify(chain, height)
            await chain.applyCertificate(certificate)
            await twin.chain.applyCertificate(certificate)
          }
        }
        await chain.idle()
        assert.ok(chain.lastPruneError === undefined, String(chain.lastPruneError))
        const report = await chain.prune()
        // Retained: every stored block from the materialized cutoff up, the finalized block and the head.
        const roots = (await chain.store.blocksAtHeights(report.materializedCutoff, chain.head.header.height + 1)).map((entry) => chain.getHeader(entry.hash)!.stateRoot)
        roots.push(chain.getHeader(chain.finalized.hash)!.stateRoot, chain.head.header.stateRoot)
        const live = new Set<string>()
        for (const root of roots) {
          if (isEmptyRoot(root)) continue
          walkTrie(chain.store, root)
          reachable(chain.store, root, live)
        }
        assert.equal(await nodeCount(kv), live.size, 'no node beyond the retained states')
        assert.equal(walkTrie(chain.store, chain.head.header.stateRoot), walkTrie(twin.chain.store, twin.chain.head.header.stateRoot))
      }),
      { numRuns: 25 },
    )
  })

  it('a prune held part-way (a state sync took its hold) stops before deleting anything more; the next run does it all', async () => {
    const genesis = testGenesis({ funded: 3_000 })
    const pruning = { keepStateBlocks: 4, materializedStateBlocks: 2, keepBodyBlocks: 4, pruneIntervalBlocks: 1_000 }
    let release: (() => void) | undefined
    let sliced: Chain | undefined
    // At the first slice (still collecting), a state sync takes its hold.
    const yieldNow = () =>
      new Promise<void>((resolve) => {
        release ??= sliced?.holdPruning()
        setImmediate(resolve)
      })
    const held = await Chain.open({ store: new ChainStore(new MemoryStore(), { nodeCacheEntries: 10 }), genesis }, { pruning, yieldNow })
    sliced = held
    const kv = held.store.kv as MemoryStore
    const whole = await open(genesis, pruning)
    await grow(held, 10, whole.chain, 60)
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
