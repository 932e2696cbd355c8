// Retained states kept as reverse diffs (src/chain/prune.ts, src/chain/retained-states.ts): a pruned
// chain keeps trie nodes for the last `materializedStateBlocks` heights and the finalized block,
// reverse diffs for the rest of the 128-height window, and still serves every retained root —
// checked against an archive chain that imported the same blocks.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Chain, type ChainOptions } from '../../src/chain/chain.ts'
import { devCertificate } from '../../src/chain/history.ts'
import { bytesEqual, toHexKey, utf8 } from '../../src/codec/bytes.ts'
import type { SyncRequest, SyncResponse } from '../../src/codec/wire.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { Block, Genesis, Header } from '../../src/ledger/types.ts'
import { Mempool } from '../../src/mempool/mempool.ts'
import { decodeNode, nodeHash } from '../../src/state/nodes.ts'
import { decodeReverseDiff } from '../../src/state/reverse-diff.ts'
import { type NodeSource, isEmptyRoot } from '../../src/state/trie.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { StateSyncEngine, driveStateSync } from '../../src/sync/state-sync.ts'
import { serveSyncRequest } from '../../src/sync/server.ts'
import { systemClock, systemTimers } from '../../src/util/clock.ts'
import { FAR_FUTURE, buildNext, testGenesis, transfer } from '../helpers/chain.ts'
import { CheckedStore, FakePool, FakeTransport } from '../helpers/sync.ts'

const SENDERS = [10, 11, 12, 13, 14]

/** A full hash walk of the trie under `root` in `source`: every node must hash to the hash that named it. Returns the leaves in key order. */
function walk(source: NodeSource, root: Uint8Array): string[] {
  const leaves: string[] = []
  if (isEmptyRoot(root)) return leaves
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const bytes = source.getNode(hash)
    if (bytes === undefined) throw new Error(`node ${toHexKey(hash)} missing`)
    assert.ok(bytesEqual(nodeHash(bytes), hash), 'node hashes to its hash')
    const node = decodeNode(bytes)
    if (node.kind === 'leaf') leaves.push(`${toHexKey(node.keyHash)}:${node.account.balance}:${node.account.nonce}`)
    else for (let nibble = 15; nibble >= 0; nibble--) if (node.children[nibble] !== undefined) stack.push(node.children[nibble] as Uint8Array)
  }
  return leaves
}

/** An archive chain building the blocks and pruned chains importing them, all finalized `lag` blocks behind the head (0: never). */
class Fleet {
  private constructor(
    readonly archive: Chain,
    readonly pruned: Chain[],
    readonly kvs: MemoryStore[],
  ) {}

  static async open(genesis: Genesis, count: number, options: ChainOptions = {}): Promise<Fleet> {
    const archive = await Chain.open({ store: new ChainStore(new MemoryStore()), genesis }, { pruning: { archive: true } })
    const kvs = Array.from({ length: count }, () => new MemoryStore())
    const pruned = await Promise.all(kvs.map((kv) => Chain.open({ store: new ChainStore(kv, { nodeCacheEntries: 64 }), genesis }, options)))
    return new Fleet(archive, pruned, kvs)
  }

  async grow(blocks: number, lag = 1): Promise<void> {
    for (let i = 0; i < blocks; i++) {
      const height = this.archive.head.header.height + 1
      const txs = SENDERS.map((sender) => transfer(sender, sha256(utf8(`retained/${height}/${sender}`)), 3n, this.archive.getAccount(devKeypair(sender).publicKey).nonce))
      // One existing account changes too (not only new leaves).
      txs.push(transfer(20, devKeypair(21 + (height % 7)).publicKey, 1n, this.archive.getAccount(devKeypair(20).publicKey).nonce))
      const { block, execution } = buildNext(this.archive, txs)
      await this.archive.importOwnBlock(block, execution)
      for (const chain of this.pruned) await chain.importBlock(block, { now: FAR_FUTURE, isVerified: () => true })
      if (lag > 0 && height - lag > this.archive.finalized.height) {
        const certificate = devCertificate(this.archive, height - lag)
        for (const chain of [this.archive, ...this.pruned]) await chain.applyCertificate(certificate, { signaturesVerified: true })
      }
    }
    for (const chain of this.pruned) {
      await chain.idle()
      assert.equal(chain.lastPruneError, undefined, String(chain.lastPruneError))
    }
  }

  header(height: number): Header {
    return this.archive.getHeader(this.archive.getCanonicalHash(height) as Uint8Array) as Header
  }
}

async function nodeCount(kv: MemoryStore): Promise<number> {
  let count = 0
  for await (const _ of kv.range({ gte: new Uint8Array([0x4e]), lt: new Uint8Array([0x4f]) })) count++
  return count
}

function mempoolFor(chain: Chain): Mempool {
  return new Mempool({ getAccount: (address) => chain.getAccount(address) }, { maxTxs: 10, maxBytes: 1 << 20, ttlMs: 60_000 })
}

describe('retained states kept as reverse diffs', () => {
  const genesis = testGenesis()

  it('import stores each block\'s reverse diff with it (not on an archive); a prune keeps trie nodes only for the materialized window and the finalized block', async () => {
    const fleet = await Fleet.open(genesis, 1)
    const [chain] = fleet.pruned as [Chain]
    await fleet.grow(170)
    const head = chain.head.header.height
    assert.equal(head, 170)
    // Pruned at 160 (every 32 blocks): states from 160 − 127 = 33; trie nodes from 160 − 15 = 145.
    const report = chain.lastPruneReport
    assert.ok(report !== undefined)
    assert.equal(report.stateCutoff, 33)
    assert.equal(report.materializedCutoff, 145)
    for (let height = 1; height <= head; height++) {
      const hash = chain.getCanonicalHash(height) as Uint8Array
      const header = fleet.header(height)
      const diff = chain.store.getReverseDiff(hash)
      assert.equal(diff !== undefined, height >= 33, `diff ${height}`)
      if (diff !== undefined) assert.equal(decodeReverseDiff(diff).length, SENDERS.length * 2 + 3, 'senders, recipients, the proposer, one changed account and its sender')
      assert.equal(fleet.archive.store.getReverseDiff(hash), undefined, 'an archive keeps every trie and writes no diffs')
      assert.equal(chain.hasMaterializedState(header), height >= 145, `trie nodes of ${height}`)
      assert.equal(chain.hasState(header), height >= 33, `state ${height} retained`)
    }
    // Exactly the materialized states' nodes remain (no garbage), a fraction of the archive's.
    const live = new Set<string>()
    for (let height = 145; height <= head; height++) for (const hex of reachable(chain.store, fleet.header(height).stateRoot)) live.add(hex)
    assert.equal(await nodeCount(fleet.kvs[0] as MemoryStore), live.size)
  })

  it('after pruning, a root 100 heights back is rebuilt: a full hash walk gives its root and the archive\'s leaves at that height', async () => {
    const fleet = await Fleet.open(genesis, 1)
    const [chain] = fleet.pruned as [Chain]
    await fleet.grow(170)
    const old = fleet.header(chain.head.header.height - 100)
    assert.equal(chain.store.hasNode(old.stateRoot), false, 'not stored as trie nodes')
    assert.equal(chain.hasState(old), true)
    const leaves = walk(chain.stateNodes, old.stateRoot)
    assert.deepEqual(leaves, walk(fleet.archive.store, old.stateRoot))
    assert.ok(leaves.length > genesis.accounts.length)
    assert.equal(chain.retainedStates.stats.rebuilds, 1)
    assert.equal(chain.retainedStates.stats.failures, 0)
    // getLeaves over the rebuilt trie answers as the archive does.
    const deps = { chain, mempool: mempoolFor(chain) }
    const request: SyncRequest = { type: 'getLeaves', subtree: old.stateRoot, depth: 0, startAfter: undefined, max: 65_536 }
    assert.deepEqual(serveSyncRequest(request, deps), serveSyncRequest(request, { chain: fleet.archive, mempool: mempoolFor(fleet.archive) }))
    // Every retained height in between rebuilds as well (from the one cached above it, or a stored state).
    for (let height = chain.head.header.height - 127; height <= chain.head.header.height; height += 9) {
      const header = fleet.header(height)
      assert.deepEqual(walk(chain.stateNodes, header.stateRoot), walk(fleet.archive.store, header.stateRoot), `state ${height}`)
    }
    assert.ok(chain.retainedStates.stats.cachedBytes <= chain.retainedStates.options.maxCacheBytes)
  })

  it('state sync from two pruned servers to a fresh node for a root 100 heights back completes', async () => {
    const fleet = await Fleet.open(genesis, 2)
    await fleet.grow(170)
    const old = fleet.header(fleet.archive.head.header.height - 100)
    const peers = new Map(
      fleet.pruned.map((chain, index) => {
        const deps = { chain, mempool: mempoolFor(chain) }
        return [`pruned-${index}`, (request: SyncRequest): SyncResponse => serveSyncRequest(request, deps)] as const
      }),
    )
    const transport = new FakeTransport(peers)
    const pool = new FakePool([...peers.keys()])
    const store = new CheckedStore()
    // Small ranges and node batches, so the descent spreads over both servers.
    const engine = new StateSyncEngine(old.stateRoot, store, { probeLeaves: 16, leavesPerRequest: 32, nodesPerRequest: 8, maxInFlightPerPeer: 1 })
    await driveStateSync(engine, transport, pool, { clock: systemClock, timers: systemTimers, idleWaitMs: 5 })
    assert.equal(engine.complete, true)
    assert.deepEqual(store.violations, [])
    assert.deepEqual(pool.bad, [], 'no server was found useless or forging')
    assert.deepEqual(walk(store.nodes, old.stateRoot), walk(fleet.archive.store, old.stateRoot))
    for (const id of peers.keys()) assert.ok(transport.requestsTo(id) > 1, `${id} served part of it`)
    for (const chain of fleet.pruned) assert.equal(chain.retainedStates.stats.rebuilds, 1, 'each server rebuilt the root once')
  })

  it('a root older than the 128 retained heights is refused (hasState, getNodes, getLeaves)', async () => {
    const fleet = await Fleet.open(genesis, 1)
    const [chain] = fleet.pruned as [Chain]
    await fleet.grow(170)
    const deps = { chain, mempool: mempoolFor(chain) }
    for (const height of [32, 10]) {
      const gone = fleet.header(height)
      assert.equal(chain.hasState(gone), false)
      assert.equal(chain.stateNodes.getNode(gone.stateRoot), undefined)
      assert.deepEqual(serveSyncRequest({ type: 'getNodes', hashes: [gone.stateRoot] }, deps), { type: 'nodes', nodes: [new Uint8Array(0)] })
      assert.equal(serveSyncRequest({ type: 'getLeaves', subtree: gone.stateRoot, depth: 0, startAfter: undefined, max: 10 }, deps).type, 'error')
    }
    assert.equal(chain.retainedStates.stats.rebuilds, 0)
  })

  it('an inner node of a remembered root is served again after a prune deletes the base it was rebuilt from, and a root asked while materialized after it is demoted', async () => {
    const fleet = await Fleet.open(genesis, 1)
    const [chain] = fleet.pruned as [Chain]
    await fleet.grow(170)
    const old = fleet.header(chain.head.header.height - 100)
    walk(chain.stateNodes, old.stateRoot)
    // Nodes of the old state that only the rebuilt trie holds.
    const inner = reachable(fleet.archive.store, old.stateRoot).filter((hex) => !chain.store.hasNode(Buffer.from(hex, 'hex')))
    assert.ok(inner.length > 10)
    // A joiner asks the head's root (materialized) and walks part of it.
    const recent = chain.head.header
    assert.equal(chain.stateNodes.getNode(recent.stateRoot) !== undefined, true)
    // 32 more blocks: the next prune demotes both the rebuilt trie's base and the recent state.
    await fleet.grow(32)
    assert.equal(chain.lastPruneReport?.materializedCutoff, 177)
    assert.equal(chain.hasMaterializedState(recent), false)
    for (const hex of inner.slice(0, 10)) {
      const bytes = chain.stateNodes.getNode(Buffer.from(hex, 'hex'))
      assert.ok(bytes !== undefined && toHexKey(nodeHash(bytes)) === hex, 'inner node of the old root, asked without its root')
    }
    const recentInner = reachable(fleet.archive.store, recent.stateRoot).filter((hex) => !chain.store.hasNode(Buffer.from(hex, 'hex')))
    assert.ok(recentInner.length > 0)
    for (const hex of recentInner) assert.ok(chain.stateNodes.getNode(Buffer.from(hex, 'hex')) !== undefined, 'inner node of the demoted root')
    assert.equal(chain.retainedStates.stats.failures, 0)
  })

  it('rebuilds are bounded: over the budget they are refused until imported blocks refill it; a rebuilt state over the cache cap is not served', async () => {
    const fleet = await Fleet.open(genesis, 2)
    const [budgeted, capped] = fleet.pruned as [Chain, Chain]
    await fleet.grow(170)
    const materializedCutoff = budgeted.lastPruneReport?.materializedCutoff as number
    const first = fleet.header(70)
    const second = fleet.header(71)
    // The retained-state options are in memory only: a chain re-opened on the same store, with a
    // budget of exactly one rebuild of height 70 (one diff per block up to the lowest materialized state).
    const tight = await Chain.open({ store: budgeted.store, genesis }, { retainedStates: { maxRebuildDiffs: materializedCutoff - 70, rebuildDiffsPerBlock: 1 } })
    assert.ok(tight.stateNodes.getNode(first.stateRoot) !== undefined)
    assert.equal(tight.retainedStates.stats.rebuilds, 1)
    assert.equal(tight.retainedStates.stats.rebuiltDiffs, materializedCutoff - 70)
    // The budget is spent: the next root (above the first, so nothing cached helps) waits for blocks.
    assert.equal(tight.stateNodes.getNode(second.stateRoot), undefined)
    assert.equal(tight.retainedStates.stats.refusedBudget, 1)
    assert.equal(tight.hasState(second), true, 'still retained: only the work is deferred')
    for (let i = 0; i < materializedCutoff - 71 - 1; i++) tight.retainedStates.onBlockImported()
    assert.equal(tight.stateNodes.getNode(second.stateRoot), undefined, 'one block short')
    tight.retainedStates.onBlockImported()
    assert.ok(tight.stateNodes.getNode(second.stateRoot) !== undefined)
    assert.equal(tight.retainedStates.stats.rebuilds, 2)

    const small = await Chain.open({ store: capped.store, genesis }, { retainedStates: { maxCacheBytes: 10_000 } })
    assert.equal(small.stateNodes.getNode(first.stateRoot), undefined)
    assert.match(small.retainedStates.stats.lastFailure ?? '', /exceeds the cache/)
    assert.equal(small.retainedStates.stats.cachedBytes, 0)
  })

  it('while finality stalls every height from the finalized block up stays materialized, so a fork deep below the head still imports', async () => {
    const fleet = await Fleet.open(genesis, 1, { pruning: { pruneIntervalBlocks: 8 } })
    const [chain] = fleet.pruned as [Chain]
    await fleet.grow(5)
    const finalHeight = chain.finalized.height
    assert.equal(finalHeight, 4)
    await fleet.grow(60, 0)
    assert.equal(chain.lastPruneReport?.materializedCutoff, 4)
    for (let height = 4; height <= chain.head.header.height; height++) assert.equal(chain.hasMaterializedState(fleet.header(height)), true)
    // A rival block on the block at height 10 (a fork 55 deep, above the finalized block) imports.
    const parent = fleet.header(10)
    const rival = await Chain.open({ store: new ChainStore(new MemoryStore()), genesis }, { pruning: { archive: true } })
    for (let height = 1; height <= 10; height++) {
      const block = fleet.archive.getBlock(fleet.archive.getCanonicalHash(height) as Uint8Array) as Block
      await rival.importBlock(block, { now: FAR_FUTURE, isVerified: () => true })
    }
    assert.ok(bytesEqual(rival.head.header.stateRoot, parent.stateRoot))
    const { block } = buildNext(rival, [], fleet.header(11).slot + 1)
    const result = await chain.importBlock(block, { now: FAR_FUTURE, isVerified: () => true })
    assert.equal(result.change, undefined, 'stored on a side branch')
    assert.equal(chain.hasBlock(result.hash), true)
  })
})

/** Hex hashes of every node under `root`. */
function reachable(source: NodeSource, root: Uint8Array): string[] {
  const seen = new Set<string>()
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const hex = toHexKey(hash)
    if (seen.has(hex)) continue
    seen.add(hex)
    const node = decodeNode(source.getNode(hash) as Uint8Array)
    if (node.kind === 'branch') for (const child of node.children) if (child !== undefined) stack.push(child)
  }
  return [...seen]
}
