/**
 * The sync engines without a network: StateSyncEngine (Merkle descent with leaf ranges) and
 * ChainSync (locator, headers first, parallel bodies), driven through an in-memory transport whose
 * peers are plain functions (test/helpers/sync.ts). Honest peers answer from a source trie or a
 * source Chain through the same code as src/sync/server.ts; dishonest ones corrupt the answer.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import { encodeUnsignedHeader } from '../../src/codec/objects.ts'
import type { SyncRequest, SyncResponse } from '../../src/codec/wire.ts'
import type { Chain } from '../../src/chain/chain.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { sign, signingMessage } from '../../src/crypto/sign.ts'
import type { Block, Header } from '../../src/ledger/types.ts'
import { Mempool } from '../../src/mempool/mempool.ts'
import { type AccountUpdate, EMPTY_ROOT, MemoryNodeStore, getAccount } from '../../src/state/trie.ts'
import { ChainSync, buildLocator } from '../../src/sync/chain-sync.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { serveSyncRequest } from '../../src/sync/server.ts'
import { BadAnswerError, StateSyncEngine, type StateSyncOptions, type StateWork, chainStoreTarget, driveStateSync } from '../../src/sync/state-sync.ts'
import { systemClock, systemTimers } from '../../src/util/clock.ts'
import { FAR_FUTURE, buildNext, extend, memoryChain, testGenesis, transfer } from '../helpers/chain.ts'
import {
  CheckedStore,
  type FakePeer,
  FakePool,
  FakeTransport,
  applyToStore,
  makeAccounts,
  reachableNodes,
  trieServer,
} from '../helpers/sync.ts'

const ACCOUNTS = 5_000

/** One source trie shared by the state tests (built once). */
function sourceTrie(count = ACCOUNTS): { store: MemoryNodeStore; root: Uint8Array; accounts: AccountUpdate[] } {
  const store = new MemoryNodeStore()
  const accounts = makeAccounts(count)
  const root = applyToStore(store, EMPTY_ROOT, accounts)
  return { store, root, accounts }
}

const base = sourceTrie()
const baseNodes = reachableNodes(base.store, base.root)

/** A copy of the base trie (base.store holds exactly its nodes). */
function copyBase(): MemoryNodeStore {
  const copy = new MemoryNodeStore()
  copy.putAll(base.store.nodes)
  return copy
}

function fetchedItems(engine: StateSyncEngine): number {
  return engine.progress.nodesFetched + engine.progress.leavesFetched
}

/** Asserts `store` holds the whole trie under `root` in `source`, and every account reads the same. */
function assertSameState(store: CheckedStore, source: MemoryNodeStore, root: Uint8Array, accounts: AccountUpdate[]): void {
  const wanted = reachableNodes(source, root)
  let missing = 0
  for (const hex of wanted) if (!store.nodes.nodes.has(hex)) missing++
  assert.equal(missing, 0, `${missing} of ${wanted.size} target nodes missing after sync`)
  for (const { keyHash } of accounts) {
    assert.deepEqual(getAccount(store.nodes, root, keyHash), getAccount(source, root, keyHash))
  }
  assert.equal(getAccount(store.nodes, root, new Uint8Array(32).fill(0xee)), undefined)
  assert.deepEqual(store.violations, [])
  assert.equal(store.danglingChildren(), 0)
}

/** Runs the real driver with a fresh pool over `peers` (in candidate order). */
async function drive(engine: StateSyncEngine, peers: Array<[string, FakePeer]>, signal?: AbortSignal, onProgress?: () => void) {
  const transport = new FakeTransport(new Map(peers))
  const pool = new FakePool(peers.map(([id]) => id))
  await driveStateSync(engine, transport, pool, { clock: systemClock, timers: systemTimers, idleWaitMs: 5, ...(signal === undefined ? {} : { signal }), ...(onProgress === undefined ? {} : { onProgress }) })
  return { transport, pool }
}

function flipByte(bytes: Uint8Array, index = bytes.length - 1): Uint8Array {
  const out = new Uint8Array(bytes)
  out[index] = (out[index] as number) ^ 0x01
  return out
}

/** An honest server whose answers pass through `corrupt` first. */
function corrupted(source: MemoryNodeStore, corrupt: (response: SyncResponse, request: SyncRequest) => SyncResponse): FakePeer {
  const honest = trieServer(source)
  return async (request) => corrupt(await honest(request), request)
}

/** Bumps the first leaf's balance in a leaves answer. */
function forgeLeaves(response: SyncResponse): SyncResponse {
  const first = response.type === 'leaves' ? response.leaves[0] : undefined
  if (response.type !== 'leaves' || first === undefined) return response
  return { ...response, leaves: [{ ...first, balance: first.balance + 1n }, ...response.leaves.slice(1)] }
}

/** Flips a byte of the first non-empty node in a nodes answer. */
function forgeNodes(response: SyncResponse): SyncResponse {
  if (response.type !== 'nodes') return response
  const index = response.nodes.findIndex((node) => node.length > 0)
  if (index < 0) return response
  const nodes = response.nodes.slice()
  nodes[index] = flipByte(nodes[index] as Uint8Array)
  return { type: 'nodes', nodes }
}

function takeNodes(engine: StateSyncEngine): Extract<StateWork, { kind: 'nodes' }> {
  const work = engine.takeWork()
  assert.ok(work !== undefined && work.kind === 'nodes', `expected a getNodes work item, got ${work?.kind}`)
  return work
}

function takeLeaves(engine: StateSyncEngine): Extract<StateWork, { kind: 'leaves' }> {
  const work = engine.takeWork()
  assert.ok(work !== undefined && work.kind === 'leaves', `expected a getLeaves work item, got ${work?.kind}`)
  return work
}

function assertBadAnswer(fn: () => void, kind: 'forged' | 'useless'): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof BadAnswerError, `expected BadAnswerError, got ${String(error)}`)
    assert.equal(error.kind, kind, error.message)
    return true
  })
}

describe('state sync engine', () => {
  it('full sync of an empty store by leaf ranges reaches the exact root', async () => {
    const store = new CheckedStore()
    const engine = new StateSyncEngine(base.root, store, { leavesPerRequest: 100, commitBatchNodes: 500 })
    const { transport } = await drive(engine, [
      ['a', trieServer(base.store)],
      ['b', trieServer(base.store)],
    ])
    assert.ok(engine.complete)
    assert.equal(engine.bufferedNodes, 0, 'the driver flushes everything before it returns')
    assertSameState(store, base.store, base.root, base.accounts)
    // The root by hash, then every account exactly once as a leaf record.
    assert.equal(engine.progress.nodesFetched, 1)
    assert.equal(engine.progress.leavesFetched, ACCOUNTS)
    assert.equal(engine.progress.badAnswers, 0)
    assert.equal(engine.progress.keySpaceDone, 1)
    assert.ok(transport.requestsTo('a') > 0 && transport.requestsTo('b') > 0, 'work is spread over both peers')
    assert.ok(store.commits > 1, 'nodes are written in several batches')
  })

  it('full sync node by node fetches every node of the target trie once', async () => {
    const store = new CheckedStore()
    const engine = new StateSyncEngine(base.root, store, { leavesModeMinDepth: 65, nodesPerRequest: 64, commitBatchNodes: 300 })
    await drive(engine, [['a', trieServer(base.store)]])
    assertSameState(store, base.store, base.root, base.accounts)
    assert.equal(engine.progress.leavesFetched, 0)
    assert.equal(engine.progress.nodesFetched, baseNodes.size)
  })

  it('a node holding a small genesis state fetches a big target by leaf ranges below the genesis branches', async () => {
    // The joiner's local state: 100 genesis accounts. The target: those 100 plus the 5,000 of base.
    const genesisAccounts = makeAccounts(100, 'genesis')
    const local = new MemoryNodeStore()
    const localRoot = applyToStore(local, EMPTY_ROOT, genesisAccounts)
    const source = copyBase()
    const target = applyToStore(source, base.root, genesisAccounts)
    const store = new CheckedStore(local)
    const engine = new StateSyncEngine(target, store, {}, localRoot)
    await drive(engine, [['a', trieServer(source)]])
    assertSameState(store, source, target, [...base.accounts, ...genesisAccounts])
    // Node by node only where the local trie holds more than 64 accounts (the root); below it the
    // subtrees come as leaf ranges, one request each: not a request per level and per child.
    // (Walking every local branch instead took 183 nodes and 1,303 requests here.)
    assert.ok(engine.progress.nodesFetched <= 20, `${engine.progress.nodesFetched} nodes fetched by hash`)
    assert.ok(engine.progress.requests <= 60, `${engine.progress.requests} requests for ${ACCOUNTS + 100} accounts`)
    assert.ok(engine.progress.leavesFetched <= ACCOUNTS + 100)
  })

  it('an empty target root or a root already stored needs no work', () => {
    assert.ok(new StateSyncEngine(EMPTY_ROOT, new CheckedStore()).complete)
    const engine = new StateSyncEngine(base.root, new CheckedStore(base.store))
    assert.ok(engine.complete)
    assert.equal(engine.takeWork(), undefined)
  })

  for (const changed of [1, 4, 10]) {
    it(`a stale store fetches only O(d·depth) items (d = ${changed} of ${ACCOUNTS} accounts)`, async () => {
      const source = copyBase()
      const updates: AccountUpdate[] = []
      for (let i = 0; i < changed; i++) {
        if (i % 2 === 0) {
          const existing = base.accounts[(i * 977) % ACCOUNTS] as AccountUpdate
          updates.push({ keyHash: existing.keyHash, account: { balance: existing.account.balance + 1n, nonce: existing.account.nonce + 1 } })
        } else {
          updates.push((makeAccounts(1, 'fresh', i)[0] as AccountUpdate))
        }
      }
      const target = applyToStore(source, base.root, updates)
      const store = new CheckedStore(copyBase())
      // The stale node names its current root, so the descent walks it beside the target.
      const engine = new StateSyncEngine(target, store, {}, base.root)
      await drive(engine, [
        ['a', trieServer(source)],
        ['b', trieServer(source)],
      ])
      assertSameState(store, source, target, [...base.accounts, ...updates])
      const newNodes = [...reachableNodes(source, target)].filter((hex) => !baseNodes.has(hex))
      assert.ok(fetchedItems(engine) < 30 * changed, `${fetchedItems(engine)} items fetched for ${changed} changed accounts`)
      assert.ok(engine.progress.nodesFetched <= newNodes.length, `fetched ${engine.progress.nodesFetched} nodes, only ${newNodes.length} differ`)
      // Nothing already stored is written again.
      assert.equal(store.nodesWritten, newNodes.length)
    })
  }

  it('resumes after an abort: a new engine on the same store fetches less than a fresh sync', async () => {
    const options: Partial<StateSyncOptions> = { leavesPerRequest: 64, probeLeaves: 64, commitBatchNodes: 40, maxInFlightPerPeer: 1 }
    const fresh = new StateSyncEngine(base.root, new CheckedStore(), options)
    await drive(fresh, [['a', trieServer(base.store)]])
    const freshItems = fetchedItems(fresh)

    const store = new CheckedStore()
    const first = new StateSyncEngine(base.root, store, options)
    const controller = new AbortController()
    let answers = 0
    await assert.rejects(
      drive(first, [['a', trieServer(base.store)]], controller.signal, () => {
        answers++
        if (answers >= 45) controller.abort()
      }),
      /aborted/,
    )
    await first.flush()
    assert.ok(!first.complete)
    assert.ok(store.nodesWritten > 0, 'some finished subtrees were written before the abort')
    assert.ok(!store.hasNode(base.root), 'the root is written only once its whole trie is')
    assert.equal(store.danglingChildren(), 0)

    const second = new StateSyncEngine(base.root, store, options)
    await drive(second, [['b', trieServer(base.store)]])
    assertSameState(store, base.store, base.root, base.accounts)
    assert.ok(
      fetchedItems(second) < freshItems,
      `resumed sync fetched ${fetchedItems(second)} items, a fresh one ${freshItems}`,
    )
    assert.ok(fetchedItems(first) + fetchedItems(second) < 2 * freshItems)
  })

  it('a forged node raises BadAnswerError(forged) and its work is requeued', () => {
    const engine = new StateSyncEngine(base.root, new CheckedStore())
    const work = takeNodes(engine)
    const honest = trieServer(base.store)(work.request) as SyncResponse
    assertBadAnswer(() => engine.onResponse(work, forgeNodes(honest), 'evil'), 'forged')
    assert.equal(engine.progress.badAnswers, 1)
    assert.equal(engine.progress.nodesFetched, 0)
    assert.ok(engine.hasWork, 'the root is asked for again')
    const retry = takeNodes(engine)
    assert.equal(toHexKey(retry.tasks[0]?.hash ?? new Uint8Array(0)), toHexKey(base.root))
    engine.onResponse(retry, honest, 'good')
    assert.equal(engine.progress.nodesFetched, 1)
  })

  it('forged leaves (a changed balance) raise BadAnswerError(forged) and are requeued', () => {
    const engine = new StateSyncEngine(base.root, new CheckedStore())
    const serve = trieServer(base.store)
    const root = takeNodes(engine)
    engine.onResponse(root, serve(root.request) as SyncResponse, 'good')
    const work = takeLeaves(engine)
    const honest = serve(work.request) as SyncResponse
    assert.ok(honest.type === 'leaves' && !honest.more, 'the subtree fits one page')
    const outstanding = engine.progress.outstanding
    assertBadAnswer(() => engine.onResponse(work, forgeLeaves(honest), 'evil'), 'forged')
    assert.equal(engine.progress.outstanding, outstanding, 'the subtree is back on the stack')
    const retry = takeLeaves(engine)
    assert.equal(retry.task.hex, work.task.hex)
    assert.equal(retry.task.leaves.length, 0, 'the forged records are dropped')
    engine.onResponse(retry, honest, 'good')
  })

  it('a forging peer is reported and dropped, and an honest peer completes the sync', async () => {
    for (const [label, evil, options] of [
      ['nodes', corrupted(base.store, forgeNodes), { leavesModeMinDepth: 65, nodesPerRequest: 32 }],
      ['leaves', corrupted(base.store, forgeLeaves), { leavesPerRequest: 10_000 }],
    ] as const) {
      const store = new CheckedStore()
      const engine = new StateSyncEngine(base.root, store, options)
      const { pool, transport } = await drive(engine, [
        ['evil', evil],
        ['good', trieServer(base.store)],
      ])
      assertSameState(store, base.store, base.root, base.accounts)
      // Each answer already in flight when the first forgery is caught is reported too.
      assert.ok(pool.bad.length >= 1, label)
      assert.ok(
        pool.bad.every((report) => report.peerId === 'evil' && report.kind === 'forged'),
        `${label}: ${JSON.stringify(pool.bad)}`,
      )
      const reportedAt = (pool.bad[0] as (typeof pool.bad)[number]).sequence
      assert.deepEqual(
        transport.sent.filter((record) => record.peerId === 'evil' && record.sequence > reportedAt),
        [],
        `${label}: the forger is not asked again`,
      )
      assert.ok(engine.progress.badAnswers >= 1)
    }
  })

  it("a peer answering 'error' or empty nodes gives BadAnswerError(useless)", () => {
    const engine = new StateSyncEngine(base.root, new CheckedStore())
    const root = takeNodes(engine)
    assertBadAnswer(() => engine.onResponse(root, { type: 'nodes', nodes: [new Uint8Array(0)] }, 'empty'), 'useless')
    const again = takeNodes(engine)
    assertBadAnswer(() => engine.onResponse(again, { type: 'error', message: 'pruned' }, 'pruned'), 'useless')
    const third = takeNodes(engine)
    engine.onResponse(third, trieServer(base.store)(third.request) as SyncResponse, 'good')
    const leaves = takeLeaves(engine)
    assertBadAnswer(() => engine.onResponse(leaves, { type: 'error', message: 'unknown subtree' }, 'pruned'), 'useless')
    assert.equal(takeLeaves(engine).task.hex, leaves.task.hex, 'the subtree is requeued')
  })

  it('a useless peer is reported as useless (not forged) and the sync completes elsewhere', async () => {
    const store = new CheckedStore()
    const engine = new StateSyncEngine(base.root, store)
    const empty = trieServer(new MemoryNodeStore())
    const { pool } = await drive(engine, [
      ['empty', empty],
      ['good', trieServer(base.store)],
    ])
    assertSameState(store, base.store, base.root, base.accounts)
    assert.deepEqual(pool.bad.map((report) => [report.peerId, report.kind]), [['empty', 'useless']])
  })

  it('transport failures requeue the work', async () => {
    const store = new CheckedStore()
    const engine = new StateSyncEngine(base.root, store, { leavesPerRequest: 500 })
    let calls = 0
    const honest = trieServer(base.store)
    const flaky: FakePeer = (request) => {
      calls++
      if (calls % 3 === 0) throw new Error('stream reset')
      return honest(request)
    }
    const { pool } = await drive(engine, [['flaky', flaky]])
    assertSameState(store, base.store, base.root, base.accounts)
    assert.ok(pool.failures.length > 0 && engine.progress.failures === pool.failures.length)
    assert.equal(pool.bad.length, 0)
  })

  it('syncs a real chain state served by serveSyncRequest (fresh store, then a stale one)', async () => {
    const genesis = testGenesis({ funded: 2_000 })
    const source = await memoryChain(genesis)
    const recipients: Uint8Array[] = []
    for (let i = 0; i < 6; i++) {
      const to = devKeypair(50_000 + i).publicKey
      recipients.push(to)
      const { block, execution } = buildNext(source, [transfer(20 + i, to, 5_000n + BigInt(i), 0), transfer(40, to, 1n, i)])
      assert.equal(block.txs.length, 2)
      await source.importOwnBlock(block, execution)
    }
    const target = source.head.header.stateRoot
    const addresses = [...genesis.accounts.map((account) => account.address), ...recipients]

    const freshStore = new ChainStore(new MemoryStore())
    const fresh = new StateSyncEngine(target, chainStoreTarget(freshStore))
    await drive(fresh, [['peer', chainPeer(source)]])
    assert.equal(fresh.progress.leavesFetched, addresses.length)
    for (const address of addresses) {
      assert.deepEqual(getAccount(freshStore, target, sha256(address)), source.getAccount(address))
    }

    // A node still at genesis holds most of that trie already.
    const stale = await memoryChain(genesis)
    const engine = new StateSyncEngine(target, chainStoreTarget(stale.store), {}, stale.head.header.stateRoot)
    await drive(engine, [['peer', chainPeer(source)]])
    assert.ok(fetchedItems(engine) < 30 * 3 * 6, `${fetchedItems(engine)} items for ~18 changed accounts`)
    for (const address of addresses) assert.deepEqual(stale.getAccount(address, target), source.getAccount(address))
  })

  it('post-order: after every flush each stored node has all its children stored', async () => {
    // Small batches, a forger, an abort and a resume: every commit is checked by CheckedStore, and
    // the whole store is checked after each flush.
    const store = new CheckedStore()
    const options: Partial<StateSyncOptions> = { leavesPerRequest: 50, probeLeaves: 50, commitBatchNodes: 10, leavesModeMinDepth: 2, nodesPerRequest: 8 }
    const danglingAfterCommit: number[] = []
    const checking = {
      hasNode: (hash: Uint8Array) => store.hasNode(hash),
      getNode: (hash: Uint8Array) => store.getNode(hash),
      commit: async (batch: Array<[Uint8Array, Uint8Array]>) => {
        await store.commit(batch)
        danglingAfterCommit.push(store.danglingChildren())
      },
    }
    const controller = new AbortController()
    let answers = 0
    const first = new StateSyncEngine(base.root, checking, options)
    await assert.rejects(
      drive(first, [['evil', corrupted(base.store, forgeLeaves)], ['good', trieServer(base.store)]], controller.signal, () => {
        if (++answers >= 60) controller.abort()
      }),
      /aborted/,
    )
    await first.flush()
    const second = new StateSyncEngine(base.root, checking, options)
    await drive(second, [['good', trieServer(base.store)]])
    assertSameState(store, base.store, base.root, base.accounts)
    assert.ok(danglingAfterCommit.length > 20, `${danglingAfterCommit.length} commits`)
    assert.deepEqual(
      danglingAfterCommit.filter((count) => count > 0),
      [],
      'no commit left a stored branch without one of its children',
    )
  })
})

// ---------------------------------------------------------------- chain sync

function mempoolFor(chain: Chain): Mempool {
  return new Mempool({ getAccount: (address) => chain.getAccount(address) }, { maxTxs: 100, maxBytes: 1 << 20, ttlMs: 60_000 })
}

/** A peer serving headers and blocks from `chain` through the real sync server. */
function chainPeer(chain: Chain, transform: (response: SyncResponse, request: SyncRequest) => SyncResponse = (response) => response): FakePeer {
  const deps = { chain, mempool: mempoolFor(chain) }
  return (request) => transform(serveSyncRequest(request, deps), request)
}

/** A chain of `blocks` empty blocks. */
async function sourceChain(blocks: number): Promise<Chain> {
  const chain = await memoryChain()
  await extend(chain, blocks)
  return chain
}

/** A chain whose blocks carry transfers (nonces tracked per sender). */
async function busyChain(blocks: number): Promise<Chain> {
  const chain = await memoryChain()
  const nonces = new Map<number, number>()
  for (let i = 0; i < blocks; i++) {
    const sender = 10 + (i % 5)
    const nonce = nonces.get(sender) ?? 0
    nonces.set(sender, nonce + 1)
    const { block, execution } = buildNext(chain, [transfer(sender, devKeypair(2_000 + i).publicKey, 1_000n + BigInt(i), nonce)])
    assert.equal(block.txs.length, 1)
    await chain.importOwnBlock(block, execution)
  }
  return chain
}

function heightOf(chain: Chain, hash: Uint8Array): number {
  const header = chain.getHeader(hash)
  assert.ok(header !== undefined, 'locator hash is a known header')
  return header.height
}

function resignedBy(header: Header, keyIndex: number): Header {
  const key = devKeypair(keyIndex)
  const unsigned = { ...header, proposer: key.publicKey, signature: new Uint8Array(64) }
  return { ...unsigned, signature: sign(signingMessage(encodeUnsignedHeader(unsigned)), key) }
}

/** Replaces the header at `index` of a headers answer. */
function forgeHeaderAt(index: number, forge: (header: Header) => Header) {
  return (response: SyncResponse): SyncResponse => {
    if (response.type !== 'headers' || response.headers.length <= index) return response
    const headers = response.headers.slice()
    headers[index] = forge(headers[index] as Header)
    return { type: 'headers', headers }
  }
}

function chainSyncFor(local: Chain, peers: Array<[string, FakePeer]>, options: ConstructorParameters<typeof ChainSync>[1] = {}, delayMs?: (peerId: string, request: SyncRequest) => number) {
  const transport = new FakeTransport(new Map(peers), delayMs)
  const pool = new FakePool(peers.map(([id]) => id))
  const imported: number[] = []
  const sync = new ChainSync(
    {
      chain: local,
      transport,
      peers: pool,
      now: () => FAR_FUTURE,
      timers: systemTimers,
      importBlock: async (block: Block) => {
        imported.push(block.header.height)
        await local.importBlock(block, { now: FAR_FUTURE })
      },
    },
    options,
  )
  return { sync, transport, pool, imported }
}

describe('chain sync', () => {
  it('buildLocator: ten dense hashes, then exponential gaps, ending at genesis, at most 64', async () => {
    const genesisOnly = await memoryChain()
    assert.deepEqual(buildLocator(genesisOnly).map(toHexKey), [toHexKey(genesisOnly.genesisBlock)])

    const short = await sourceChain(5)
    assert.deepEqual(
      buildLocator(short).map((hash) => heightOf(short, hash)),
      [5, 4, 3, 2, 1, 0],
    )

    const chain = await sourceChain(300)
    const locator = buildLocator(chain)
    const heights = locator.map((hash) => heightOf(chain, hash))
    assert.ok(locator.length <= 64)
    assert.equal(heights[0], 300)
    assert.ok(bytesEqual(locator[locator.length - 1] as Uint8Array, chain.genesisBlock), 'ends with genesis')
    const gaps = heights.slice(1).map((height, i) => (heights[i] as number) - height)
    assert.deepEqual(gaps.slice(0, 9), [1, 1, 1, 1, 1, 1, 1, 1, 1], `dense first: ${heights.join(',')}`)
    // After the dense part each gap doubles, until the final jump to genesis.
    const sparse = gaps.slice(9, -1)
    assert.ok(sparse.length >= 5, heights.join(','))
    sparse.forEach((gap, i) => assert.equal(gap, 2 ** (i + 1), `gap ${i}: ${heights.join(',')}`))
    assert.ok((gaps[gaps.length - 1] as number) <= 2 ** (sparse.length + 1))
    for (const hash of locator) assert.ok(bytesEqual(chain.getCanonicalHash(heightOf(chain, hash)) as Uint8Array, hash), 'canonical hashes only')
  })

  it('fetchHeaders returns the verified chain after the fork point, page by page', async () => {
    const source = await busyChain(40)
    const local = await memoryChain()
    for (let height = 1; height <= 10; height++) {
      const block = source.getBlock(source.getCanonicalHash(height) as Uint8Array) as Block
      await local.importBlock(block, { now: FAR_FUTURE })
    }
    const { sync, transport } = chainSyncFor(local, [['peer', chainPeer(source)]], { headersPerRequest: 16 })
    const headers = await sync.fetchHeaders('peer', 40)
    assert.deepEqual(
      headers.map((entry) => entry.header.height),
      Array.from({ length: 30 }, (_, i) => i + 11),
    )
    for (const entry of headers) assert.ok(bytesEqual(entry.hash, source.getCanonicalHash(entry.header.height) as Uint8Array))
    assert.equal(transport.requestsTo('peer'), 2)
  })

  it('fetchHeaders rejects a forged header with BadAnswerError(forged)', async () => {
    const source = await busyChain(12)
    const local = await memoryChain()
    const slotOf = (index: number) => (source.getHeader(source.getCanonicalHash(index + 1) as Uint8Array) as Header).slot
    const notLeader = (index: number) => {
      const leader = source.schedule.leaderFor(slotOf(index)).address
      for (let i = 0; i < 4; i++) if (!bytesEqual(devKeypair(i).publicKey, leader)) return i
      throw new Error('unreachable')
    }
    const cases: Array<[string, (response: SyncResponse) => SyncResponse, RegExp]> = [
      ['re-signed by a validator that does not lead the slot', forgeHeaderAt(4, (header) => resignedBy(header, notLeader(4))), /BLOCK_WRONG_LEADER/],
      ['a flipped signature byte', forgeHeaderAt(6, (header) => ({ ...header, signature: flipByte(header.signature, 0) })), /BLOCK_BAD_SIGNATURE/],
      ['a changed state root under the old signature', forgeHeaderAt(3, (header) => ({ ...header, stateRoot: flipByte(header.stateRoot) })), /BLOCK_BAD_SIGNATURE/],
      ['a header that does not link to its predecessor', (response) => (response.type === 'headers' ? { type: 'headers', headers: response.headers.filter((_, i) => i !== 5) } : response), /link/],
      ['a first header whose parent is unknown', (response) => (response.type === 'headers' ? { type: 'headers', headers: response.headers.slice(2) } : response), /link/],
    ]
    for (const [label, forge, pattern] of cases) {
      const { sync } = chainSyncFor(local, [['evil', chainPeer(source, forge)]])
      await assert.rejects(sync.fetchHeaders('evil', 12), (error: unknown) => {
        assert.ok(error instanceof BadAnswerError, `${label}: expected BadAnswerError, got ${String(error)}`)
        assert.equal(error.kind, 'forged', label)
        assert.match(error.message, pattern, label)
        return true
      })
    }
    // The same chain served honestly verifies.
    const { sync } = chainSyncFor(local, [['good', chainPeer(source)]])
    assert.equal((await sync.fetchHeaders('good', 12)).length, 12)
  })

  it('fetchAndImport imports in order from two peers answering out of order', async () => {
    const source = await busyChain(40)
    const local = await memoryChain()
    const answered: Array<{ peer: string; first: number }> = []
    const firstHeight = (request: SyncRequest) => (request.type === 'getBlocks' ? (source.getHeader(request.hashes[0] as Uint8Array)?.height ?? 0) : 0)
    const recording = (peer: string): FakePeer => {
      const serve = chainPeer(source)
      return (request) => {
        if (request.type === 'getBlocks') answered.push({ peer, first: firstHeight(request) })
        return serve(request)
      }
    }
    // Later chunks are answered sooner, so bodies arrive out of order.
    const delay = (_peer: string, request: SyncRequest) => (request.type === 'getBlocks' ? Math.max(1, 60 - firstHeight(request)) : 0)
    const { sync, transport, imported, pool } = chainSyncFor(
      local,
      [
        ['a', recording('a')],
        ['b', recording('b')],
      ],
      { blocksPerRequest: 4, maxInFlightPerPeer: 2 },
      delay,
    )
    const headers = await sync.fetchHeaders('a', 40)
    const count = await sync.fetchAndImport(headers)
    assert.equal(count, 40)
    assert.deepEqual(imported, Array.from({ length: 40 }, (_, i) => i + 1), 'imported strictly in chain order')
    const firsts = answered.map((entry) => entry.first)
    assert.ok(firsts.some((first, i) => i > 0 && first < (firsts[i - 1] as number)), `answers arrived in order: ${firsts.join(',')}`)
    assert.ok(answered.some((entry) => entry.peer === 'a') && answered.some((entry) => entry.peer === 'b'), 'both peers served bodies')
    assert.equal(transport.sent.filter((record) => record.request.type === 'getBlocks').length, 10)
    assert.equal(pool.bad.length, 0)
    assert.ok(bytesEqual(local.head.hash, source.head.hash))
    assert.ok(bytesEqual(local.head.header.stateRoot, source.head.header.stateRoot))
  })

  it('fetchAndImport completes partial answers elsewhere and drops a peer sending unrequested blocks', async () => {
    const source = await busyChain(24)
    const local = await memoryChain()
    const other = await busyChain(3)
    const stray = other.getBlock(other.getCanonicalHash(2) as Uint8Array) as Block
    const { sync, pool, imported } = chainSyncFor(
      local,
      [
        // Answers only the first half of each request.
        ['half', chainPeer(source, (response) => (response.type === 'blocks' ? { type: 'blocks', blocks: response.blocks.slice(0, Math.ceil(response.blocks.length / 2)) } : response))],
        // Adds a block nobody asked for.
        ['stray', chainPeer(source, (response) => (response.type === 'blocks' ? { type: 'blocks', blocks: [...response.blocks, stray] } : response))],
        ['good', chainPeer(source)],
      ],
      { blocksPerRequest: 4, maxInFlightPerPeer: 1 },
    )
    const headers = await sync.fetchHeaders('good', 24)
    assert.equal(await sync.fetchAndImport(headers), 24)
    assert.deepEqual(imported, Array.from({ length: 24 }, (_, i) => i + 1))
    assert.deepEqual(pool.bad.map((report) => [report.peerId, report.kind]), [['stray', 'forged']])
    assert.ok(bytesEqual(local.head.hash, source.head.hash))
  })
})
