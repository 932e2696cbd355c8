/**
 * Benchmark: state-trie update cost per account at 1,000,000 accounts.
 *
 *   node --import tsx scripts/bench/trie.ts [--accounts 1000000] [--updates 20000] [--level] [--node-cache 500000] [--json]
 *
 * 1. Bulk build: one applyUpdates call inserting --accounts accounts (uniformly random 32-byte
 *    key hashes, as SHA-256 of addresses are) into the empty trie, the genesis path; the nodes go
 *    into a MemoryNodeStore. Reports accounts/s, nodes, bytes.
 * 2. Updates on the MemoryNodeStore: batches of 1, 100, 1,000 and 10,000 random EXISTING keys
 *    (unique within a batch), each applied on the previous batch's root and its nodes stored,
 *    until about --updates accounts have been updated per batch size (at least 3 batches),
 *    after an unmeasured warm-up of 200 single-key and 5 hundred-key batches.
 *    Reports µs per updated account, trie-node reads, new nodes and new bytes per account.
 * 3. With --level: the built trie is persisted into LevelDB (temp dir, removed at the end)
 *    through ChainStore batches of 100,000 nodes (reported as a persist rate), then the same
 *    update batches run over a fresh ChainStore (cold node cache, --node-cache entries) on
 *    that LevelDB, each batch's nodes committed as one ChainStore batch (commit time reported
 *    separately).
 * Memory: about 1.1 GiB rss at 1M accounts, 1.5 GiB with --level.
 * Time: about 1 minute by default, about 2 more with --level.
 */
import '../../src/polyfill.ts'
import { randomBytes } from 'node:crypto'
import type { Account } from '../../src/ledger/types.ts'
import { type AccountUpdate, EMPTY_ROOT, MemoryNodeStore, type NodeSource, applyUpdates } from '../../src/state/trie.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { LevelStore } from '../../src/store/level.ts'
import {
  dirBytes,
  fmt,
  fmtBytes,
  heading,
  intOption,
  makeTempDir,
  memoryMiB,
  now,
  parseOptions,
  printHeader,
  printJson,
  printTable,
  removeDir,
  round,
  seededRandom,
  timed,
  timedAsync,
} from './util.ts'

const USAGE = `usage: node --import tsx scripts/bench/trie.ts [--accounts N] [--updates N] [--level] [--node-cache N] [--json]
  --accounts N   accounts in the trie (default 1000000)
  --updates N    accounts updated per batch size, at least 3 batches each (default 20000)
  --level        also persist the trie in LevelDB (temp dir) and repeat the updates there
  --node-cache N ChainStore trie-node cache entries in the LevelDB phase (default 500000, the ChainStore default)
  --json         also print one JSON object as the last line`

const BATCH_SIZES = [1, 100, 1_000, 10_000]
const PERSIST_CHUNK = 100_000

const { numbers, flags } = parseOptions(USAGE, { numbers: { accounts: 1_000_000, updates: 20_000, 'node-cache': 500_000 }, flags: ['level'] })
const accountCount = intOption(numbers, 'accounts', 1)
const updatesPerSize = intOption(numbers, 'updates')
const useLevel = flags['level'] === true
const nodeCacheEntries = intOption(numbers, 'node-cache')

const machine = printHeader('State trie: bulk build and per-account update cost', { accounts: accountCount, updates: updatesPerSize, level: useLevel, nodeCache: nodeCacheEntries })

// ---------------------------------------------------------------- keys and bulk build

const keyBytes = randomBytes(32 * accountCount)
const keyAt = (i: number): Uint8Array => new Uint8Array(keyBytes.buffer, keyBytes.byteOffset + 32 * i, 32)

let updates: AccountUpdate[] | undefined = []
for (let i = 0; i < accountCount; i++) updates.push({ keyHash: keyAt(i), account: { balance: 1_000_000n + BigInt(i), nonce: 0 } })

const emptySource: NodeSource = { getNode: () => undefined }
const built = timed(() => applyUpdates(emptySource, EMPTY_ROOT, updates as AccountUpdate[]))
updates = undefined
const initialRoot = built.value.root
const initialNodes = built.value.nodes
const initialNodeCount = initialNodes.size
let initialBytes = 0
for (const bytes of initialNodes.values()) initialBytes += bytes.length
const memory = new MemoryNodeStore()
const stored = timed(() => memory.putAll(initialNodes))
const afterBuild = memoryMiB()
const buildRate = accountCount / (built.ms / 1000)
console.log(
  `  bulk build: ${fmt(accountCount)} accounts in ${fmt(built.ms)} ms (${fmt(buildRate)} accounts/s); ${fmt(initialNodeCount)} nodes, ${fmtBytes(initialBytes)}; MemoryNodeStore insert ${fmt(stored.ms)} ms; rss ${afterBuild.rss} MiB, heap ${afterBuild.heapUsed} MiB`,
)

// ---------------------------------------------------------------- update phase

interface SizeResult {
  size: number
  batches: number
  accounts: number
  updateMs: number
  persistMs: number
  reads: number
  nodes: number
  bytes: number
}

/** Counts node reads on the way to `inner`. */
class CountingSource implements NodeSource {
  reads = 0
  constructor(private readonly inner: NodeSource) {}
  getNode(hash: Uint8Array): Uint8Array | undefined {
    this.reads++
    return this.inner.getNode(hash)
  }
}

async function updatePhase(source: NodeSource, startRoot: Uint8Array, persist: (nodes: Map<string, Uint8Array>) => Promise<void> | void): Promise<SizeResult[]> {
  const random = seededRandom(20_240_601)
  const counting = new CountingSource(source)
  let root = startRoot
  let version = 1
  const results: SizeResult[] = []
  // Warm-up (JIT, caches on the top of the trie): unmeasured batches, applied like the others.
  for (const [size, count] of [[1, 200], [100, 5]] as const) {
    for (let b = 0; b < count; b++) {
      const chosen = new Set<number>()
      while (chosen.size < Math.min(size, accountCount)) chosen.add(Math.floor(random() * accountCount))
      const account: Account = { balance: 5_000_000n + BigInt(version), nonce: version++ }
      const { root: next, nodes } = applyUpdates(source, root, [...chosen].map((i) => ({ keyHash: keyAt(i), account })))
      await persist(nodes)
      root = next
    }
  }
  for (const size of BATCH_SIZES) {
    const batchSize = Math.min(size, accountCount)
    const batches = Math.max(3, Math.ceil(updatesPerSize / batchSize))
    const result: SizeResult = { size: batchSize, batches, accounts: 0, updateMs: 0, persistMs: 0, reads: 0, nodes: 0, bytes: 0 }
    for (let b = 0; b < batches; b++) {
      const chosen = new Set<number>()
      while (chosen.size < batchSize) chosen.add(Math.floor(random() * accountCount))
      const account: Account = { balance: 5_000_000n + BigInt(version), nonce: version++ }
      const batch: AccountUpdate[] = [...chosen].map((i) => ({ keyHash: keyAt(i), account }))
      counting.reads = 0
      const start = now()
      const { root: next, nodes } = applyUpdates(counting, root, batch)
      const updated = now()
      await persist(nodes)
      result.persistMs += now() - updated
      result.updateMs += updated - start
      result.accounts += batchSize
      result.reads += counting.reads
      result.nodes += nodes.size
      for (const bytes of nodes.values()) result.bytes += bytes.length
      root = next
    }
    results.push(result)
    console.log(`  batches of ${fmt(batchSize)}: ${fmt((result.updateMs * 1000) / result.accounts, 1)} µs/account over ${fmt(result.accounts)} accounts`)
  }
  return results
}

function printUpdates(title: string, results: SizeResult[], persistLabel: string): void {
  heading(title)
  printTable(
    ['batch size', 'batches', 'µs/account', 'node reads/acct', 'new nodes/acct', 'new bytes/acct', `${persistLabel} µs/acct`, 'total µs/acct'],
    results.map((r) => [
      fmt(r.size),
      fmt(r.batches),
      fmt((r.updateMs * 1000) / r.accounts, 2),
      fmt(r.reads / r.accounts, 2),
      fmt(r.nodes / r.accounts, 2),
      fmt(r.bytes / r.accounts, 0),
      fmt((r.persistMs * 1000) / r.accounts, 2),
      fmt(((r.updateMs + r.persistMs) * 1000) / r.accounts, 2),
    ]),
  )
}

const jsonSizes = (results: SizeResult[]) =>
  results.map((r) => ({
    batchSize: r.size,
    batches: r.batches,
    accounts: r.accounts,
    usPerAccount: round((r.updateMs * 1000) / r.accounts, 3),
    readsPerAccount: round(r.reads / r.accounts, 3),
    newNodesPerAccount: round(r.nodes / r.accounts, 3),
    newBytesPerAccount: round(r.bytes / r.accounts, 1),
    persistUsPerAccount: round((r.persistMs * 1000) / r.accounts, 3),
  }))

heading(`Updates on the MemoryNodeStore (${fmt(accountCount)} accounts)`)
const memoryResults = await updatePhase(memory, initialRoot, (nodes) => memory.putAll(nodes))
printUpdates(`Trie updates, MemoryNodeStore, ${fmt(accountCount)} accounts (µs/account = applyUpdates time ÷ accounts in the batch)`, memoryResults, 'store insert')
const afterMemory = memoryMiB()
console.log(`  rss ${afterMemory.rss} MiB, heap ${afterMemory.heapUsed} MiB`)
memory.nodes.clear()

let levelReport: Record<string, unknown> | undefined
if (useLevel) {
  const dir = makeTempDir('trie')
  const kv = await LevelStore.open(dir)
  try {
    heading(`Persisting the built trie into LevelDB through ChainStore batches of ${fmt(PERSIST_CHUNK)} nodes`)
    const writer = new ChainStore(kv, { nodeCacheEntries })
    const persisted = await timedAsync(async () => {
      let chunk = new Map<string, Uint8Array>()
      for (const [hex, bytes] of initialNodes) {
        chunk.set(hex, bytes)
        if (chunk.size >= PERSIST_CHUNK) {
          await writer.batch().putNodes(chunk).commit()
          chunk = new Map()
        }
      }
      if (chunk.size > 0) await writer.batch().putNodes(chunk).commit()
    })
    const persistRate = accountCount / (persisted.ms / 1000)
    const diskAfterBuild = dirBytes(dir)
    console.log(
      `  persisted ${fmt(initialNodeCount)} nodes (${fmtBytes(initialBytes)}) in ${fmt(persisted.ms)} ms: ${fmt(persistRate)} accounts/s, ${fmt(initialNodeCount / (persisted.ms / 1000))} nodes/s; LevelDB dir ${fmtBytes(diskAfterBuild)}`,
    )
    initialNodes.clear()

    const store = new ChainStore(kv, { nodeCacheEntries })
    heading(`Updates on LevelDB (fresh ChainStore: cold node cache of ${fmt(nodeCacheEntries)} entries; each batch committed as one ChainStore batch)`)
    const levelResults = await updatePhase(store, initialRoot, (nodes) => store.batch().putNodes(nodes).commit())
    printUpdates(`Trie updates, ChainStore over LevelDB, ${fmt(accountCount)} accounts`, levelResults, 'commit')
    const diskAfterUpdates = dirBytes(dir)
    const afterLevel = memoryMiB()
    console.log(`  LevelDB dir ${fmtBytes(diskAfterUpdates)}; rss ${afterLevel.rss} MiB, heap ${afterLevel.heapUsed} MiB`)
    levelReport = {
      persistMs: round(persisted.ms, 1),
      persistAccountsPerSec: round(persistRate, 1),
      persistNodesPerSec: round(initialNodeCount / (persisted.ms / 1000), 1),
      diskBytesAfterBuild: diskAfterBuild,
      diskBytesAfterUpdates: diskAfterUpdates,
      updates: jsonSizes(levelResults),
    }
  } finally {
    await kv.close()
    removeDir(dir)
  }
}

if (flags['json']) {
  printJson({
    benchmark: 'trie',
    machine,
    settings: { accounts: accountCount, updatesPerSize, batchSizes: BATCH_SIZES, level: useLevel, nodeCache: nodeCacheEntries },
    build: {
      ms: round(built.ms, 1),
      accountsPerSec: round(buildRate, 1),
      nodes: initialNodeCount,
      bytes: initialBytes,
      rssMiB: afterBuild.rss,
      heapMiB: afterBuild.heapUsed,
    },
    memory: jsonSizes(memoryResults),
    level: levelReport,
  })
}
