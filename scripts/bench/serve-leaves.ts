/**
 * Benchmark: what serving state pages costs the server — CPU and garbage collection per page.
 *
 *   node --import tsx scripts/bench/serve-leaves.ts [--accounts 100000] [--pages 60] [--page 8192] [--json]
 *
 * A state of --accounts accounts (uniformly random 32-byte key hashes) is built into a
 * MemoryNodeStore; then --pages getLeaves pages of --page leaves are served one after another the
 * way the node serves a big range (`serveLeavesInSlices`: slices of LEAVES_PER_SLICE leaves, a
 * `setImmediate` between slices, so the page lives across turns of the event loop as it does on a
 * node that also gossips), each encoded for the wire, paging on from the last key as a joiner
 * does. Reported: CPU ms per page, and the collections V8 made meanwhile (scavenges and
 * mark-compacts: count and total pause, from PerformanceObserver 'gc' entries).
 *
 * The pages are served in a child process with V8's default heap settings (as `grapevine node`
 * runs), not under the larger young generation `npm run bench` gives its scripts: the point is
 * how often a node's own collector runs.
 * Time: ~10 s by default.
 */
import '../../src/polyfill.ts'
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { type PerformanceEntry, PerformanceObserver, constants as perfConstants } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { compareBytes } from '../../src/codec/bytes.ts'
import { LEAF_RECORD_BYTES, encodeSyncResponse } from '../../src/codec/wire.ts'
import { type AccountUpdate, MemoryNodeStore, buildSubtree } from '../../src/state/trie.ts'
import { LEAVES_PER_SLICE, serveLeavesInSlices } from '../../src/sync/server.ts'
import { fmt, intOption, parseOptions, printHeader, printJson, printTable, round } from './util.ts'

const USAGE = `usage: node --import tsx scripts/bench/serve-leaves.ts [--accounts N] [--pages N] [--page N] [--json]
  --accounts N  accounts in the state (default 100000)
  --pages N     pages served (default 60)
  --page N      leaves per page (default 8192, what our client asks)
  --json        also print one JSON object as the last line`

interface Measured {
  pages: number
  leaves: number
  bytes: number
  cpuMs: number
  wallMs: number
  scavenges: number
  scavengeMs: number
  markCompacts: number
  markCompactMs: number
}

const MEASURE = '--measure-child'

async function measure(accounts: number, pages: number, pageLeaves: number): Promise<Measured> {
  const keys = randomBytes(32 * accounts)
  const items: AccountUpdate[] = Array.from({ length: accounts }, (_, i) => ({
    keyHash: new Uint8Array(keys.buffer, keys.byteOffset + 32 * i, 32),
    account: { balance: 1_000_000n + BigInt(i), nonce: i % 50 },
  })).sort((a, b) => compareBytes(a.keyHash, b.keyHash))
  const built = buildSubtree(items, 0)
  const store = new MemoryNodeStore()
  for (const [key, node] of built.nodes) store.nodes.set(key, node)
  const deps = { chain: { stateNodes: store } }
  const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve))
  const serve = async (startAfter: Uint8Array | undefined) => {
    const answer = await serveLeavesInSlices({ type: 'getLeaves', subtree: built.root, depth: 0, startAfter, max: pageLeaves }, deps, yieldNow)
    if (answer.type === 'encodedLeaves') {
      // The last record's key: records are the answer's tail, LEAF_RECORD_BYTES each, key first.
      const at = answer.bytes.length - LEAF_RECORD_BYTES
      return { bytes: answer.bytes, leaves: answer.leaves, last: answer.bytes.slice(at, at + 32) }
    }
    // Leaf objects: how commits before 199264d served a page (the "before" of docs/benchmarks.md,
    // "A served leaf page is bytes", was this script run on one of them).
    if (answer.type !== 'leaves') throw new Error(`served ${answer.type}`)
    return { bytes: encodeSyncResponse(answer), leaves: answer.leaves.length, last: answer.leaves[answer.leaves.length - 1]?.keyHash.slice() }
  }
  // Warm-up (compiled code, as on a node that has run a while), then settle the heap.
  for (let i = 0; i < 5; i++) await serve(undefined)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const gc = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0 }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
        gc.scavenges++
        gc.scavengeMs += entry.duration
      } else if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.markCompacts++
        gc.markCompactMs += entry.duration
      }
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  const cpu = process.cpuUsage()
  const started = performance.now()
  let startAfter: Uint8Array | undefined
  let leaves = 0
  let bytes = 0
  for (let page = 0; page < pages; page++) {
    const served = await serve(startAfter)
    leaves += served.leaves
    bytes += served.bytes.length
    // Paging on as a joiner does; from the start again at the end of the state.
    startAfter = served.leaves < pageLeaves ? undefined : served.last
  }
  const wallMs = performance.now() - started
  const used = process.cpuUsage(cpu)
  await new Promise((resolve) => setTimeout(resolve, 50))
  observer.disconnect()
  return { pages, leaves, bytes, cpuMs: (used.user + used.system) / 1000, wallMs, ...gc }
}

if (process.argv.includes(MEASURE)) {
  const [accounts, pages, page] = process.argv.slice(process.argv.indexOf(MEASURE) + 1).map(Number) as [number, number, number]
  process.send?.(await measure(accounts, pages, page))
  process.exit(0)
}

const { numbers, flags } = parseOptions(USAGE, { numbers: { accounts: 100_000, pages: 60, page: 8_192 } })
const accounts = intOption(numbers, 'accounts')
const pages = intOption(numbers, 'pages')
const pageLeaves = Math.min(65_536, intOption(numbers, 'page'))
const machine = printHeader('Serving state pages: CPU and garbage collection per page', { accounts, pages, page: pageLeaves, slice: LEAVES_PER_SLICE })

const child = fork(fileURLToPath(import.meta.url), [MEASURE, String(accounts), String(pages), String(pageLeaves)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
const result = await new Promise<Measured>((resolve, reject) => {
  child.once('message', (message) => resolve(message as Measured))
  child.once('exit', (code) => reject(new Error(`measuring process exited (${code}) without a result`)))
})
const per = (value: number) => value / result.pages
printTable(
  ['', 'per page', `all ${fmt(result.pages)} pages`],
  [
    ['leaves', fmt(per(result.leaves)), fmt(result.leaves)],
    ['answer bytes', fmt(per(result.bytes)), fmt(result.bytes)],
    ['CPU ms', fmt(per(result.cpuMs), 2), fmt(result.cpuMs)],
    ['scavenges', fmt(per(result.scavenges), 2), fmt(result.scavenges)],
    ['scavenge pause ms', fmt(per(result.scavengeMs), 2), fmt(result.scavengeMs, 1)],
    ['mark-compacts', fmt(per(result.markCompacts), 2), fmt(result.markCompacts)],
    ['mark-compact pause ms', fmt(per(result.markCompactMs), 2), fmt(result.markCompactMs, 1)],
  ],
)
if (flags['json']) {
  printJson({
    machine,
    accounts,
    pageLeaves,
    pages: result.pages,
    cpuMsPerPage: round(per(result.cpuMs), 3),
    scavengesPerPage: round(per(result.scavenges), 3),
    scavengeMsPerPage: round(per(result.scavengeMs), 3),
    markCompactsPerPage: round(per(result.markCompacts), 3),
    markCompactMsPerPage: round(per(result.markCompactMs), 3),
    wallMs: round(result.wallMs, 1),
  })
}
