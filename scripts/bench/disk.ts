/**
 * Benchmark: store size after many transfers, pruned (the default: 128 states — the last 16 heights
 * and the finalized block's as trie nodes, the others as reverse diffs — and 128 bodies) vs archive. Both chains import the same blocks into LevelDB in temp dirs (removed at the end).
 * As on a devnet, each block is finalized `--finality-lag` blocks after it is imported (a
 * certificate signed by the dev validator keys; the devnet's measured lag is 1–2 blocks);
 * `--finality-lag 0` never finalizes (the finalized block stays the genesis block, whose whole
 * state a pruned node then keeps as well).
 *
 *   node --import tsx scripts/bench/disk.ts [--accounts 20000] [--transfers 40000] [--per-block 100]
 *        [--keep-states 128] [--keep-materialized 16] [--keep-bodies 128] [--finality-lag 1] [--json]
 *
 * The full figure is --accounts 100000 --transfers 200000. Reported per store: logical
 * bytes (sum of key + value lengths, by kind) and bytes on disk after a full LevelDB compaction;
 * the pruned store's trie nodes split into the head's state, the other materialized states' own
 * nodes and garbage, and its reverse diffs; the target: pruned ≤ 2 × (one copy of the head's live
 * state + the retained blocks' headers, bodies, indexes and certificates), computed from the same
 * logical sizes; and the cost of serving the oldest retained state (rebuilt from reverse diffs),
 * checked against the archive's state at that height.
 */
import '../../src/polyfill.ts'
import { createHash } from 'node:crypto'
import { Chain } from '../../src/chain/chain.ts'
import { devCertificate } from '../../src/chain/history.ts'
import { RetainedStates } from '../../src/chain/retained-states.ts'
import { toHexKey } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { decodeNode, nodeHash } from '../../src/state/nodes.ts'
import type { NodeSource } from '../../src/state/trie.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { LevelStore } from '../../src/store/level.ts'
import {
  benchGenesis,
  dirBytes,
  fmt,
  fmtBytes,
  heading,
  intOption,
  leaderOf,
  listPacker,
  makeTempDir,
  now,
  parseOptions,
  printHeader,
  printJson,
  printTable,
  removeDir,
  seededRandom,
} from './util.ts'

const USAGE = 'usage: disk.ts [--accounts N] [--transfers N] [--per-block N] [--keep-states N] [--keep-materialized N] [--keep-bodies N] [--finality-lag N] [--json]'
const { numbers, flags } = parseOptions(USAGE, {
  numbers: { accounts: 20_000, transfers: 40_000, 'per-block': 100, 'keep-states': 128, 'keep-materialized': 16, 'keep-bodies': 128, 'finality-lag': 1 },
})
const accounts = intOption(numbers, 'accounts')
const transfers = intOption(numbers, 'transfers')
const perBlock = intOption(numbers, 'per-block')
const keepStates = intOption(numbers, 'keep-states', 2)
const keepMaterialized = intOption(numbers, 'keep-materialized', 1)
const keepBodies = intOption(numbers, 'keep-bodies')
const finalityLag = intOption(numbers, 'finality-lag', 0)
const SENDERS = 200
const machine = printHeader('disk: store size, pruned vs archive', { accounts, transfers, perBlock, keepStates, keepMaterialized, keepBodies, finalityLag })

const validators = [0, 1, 2, 3].map((i) => devKeypair(i))
const senders = Array.from({ length: SENDERS }, (_, i) => devKeypair(1_000 + i))
const { genesis, bulk } = benchGenesis({ validators, senders, bulkAccounts: accounts, balance: 1_000_000_000_000n })
const random = seededRandom(7)

interface Opened {
  name: string
  dir: string
  kv: LevelStore
  chain: Chain
}

async function open(name: string, archive: boolean): Promise<Opened> {
  const dir = makeTempDir(`disk-${name}`)
  const kv = await LevelStore.open(`${dir}/chain`)
  const chain = await Chain.open({ store: new ChainStore(kv), genesis }, { pruning: { archive, keepStateBlocks: keepStates, materializedStateBlocks: keepMaterialized, keepBodyBlocks: keepBodies } })
  return { name, dir, kv, chain }
}

const pruned = await open('pruned', false)
const archive = await open('archive', true)
const nonces = new Array<number>(SENDERS).fill(0)
const started = now()
let sent = 0
/** The pruned chain's block imports (execution without signature checks, trie update, store write; prunes excluded). */
let prunedImportMs = 0
while (sent < transfers) {
  const txs: SignedTx[] = []
  const count = Math.min(perBlock, transfers - sent)
  for (let i = 0; i < count; i++) {
    const sender = (sent + i) % SENDERS
    const to = bulk[Math.floor(random() * bulk.length)] as Uint8Array
    txs.push(signTransfer({ chainId: genesis.chainId, from: senders[sender]!, to, amount: 1n, fee: 1n, nonce: nonces[sender]!++ }))
  }
  const slot = archive.chain.head.header.slot + 1
  const { block, execution } = archive.chain.buildBlock(slot, archive.chain.schedule.slotStart(slot) + 1, leaderOf(archive.chain, validators, slot), listPacker(txs))
  if (block.txs.length !== count) throw new Error(`built ${block.txs.length} of ${count} transfers`)
  await archive.chain.importOwnBlock(block, execution)
  const importStarted = now()
  await pruned.chain.importBlock(block, { now: Number.MAX_SAFE_INTEGER, isVerified: () => true })
  prunedImportMs += now() - importStarted
  sent += count
  if (sent % Math.max(perBlock, Math.floor(transfers / 10 / perBlock) * perBlock) === 0) process.stderr.write(`  ${fmt(sent)} transfers imported (${fmt((now() - started) / 1000, 0)} s)\n`)
  const finalHeight = archive.chain.head.header.height - finalityLag
  if (finalityLag > 0 && finalHeight > 0) {
    const certificate = devCertificate(archive.chain, finalHeight)
    for (const chain of [archive.chain, pruned.chain]) await chain.applyCertificate(certificate, { signaturesVerified: true })
  }
}
const report = await pruned.chain.prune()
await pruned.chain.idle()
const importSeconds = (now() - started) / 1000
if (pruned.chain.lastPruneError !== undefined) throw pruned.chain.lastPruneError

/** Logical bytes by key prefix. */
async function logical(kv: LevelStore): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for await (const [key, value] of kv.range({ gte: new Uint8Array([0]), lt: new Uint8Array([0xff]) })) {
    const kind = String.fromCharCode(key[0] as number)
    out[kind] = (out[kind] ?? 0) + key.length + value.length
  }
  return out
}

/** Trie nodes reachable from `roots` and not yet in `seen` (which it extends): key + value bytes. */
function reachable(chain: Chain, roots: Uint8Array[], seen: Set<string>): { bytes: number; nodes: number } {
  let bytes = 0
  let nodes = 0
  const stack = [...roots]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const hex = toHexKey(hash)
    if (seen.has(hex)) continue
    seen.add(hex)
    const node = chain.store.getNode(hash)
    if (node === undefined) continue
    bytes += 33 + node.length
    nodes++
    const decoded = decodeNode(node)
    if (decoded.kind === 'branch') for (const child of decoded.children) if (child !== undefined) stack.push(child)
  }
  return { bytes, nodes }
}

// The pruned store's trie nodes, split: the head's state (one copy of the live state), the nodes
// only the other materialized states need (the heights from the materialized cutoff up, and the
// finalized block), and the rest (reachable from no materialized root: garbage a prune should have removed).
const seen = new Set<string>()
const live = reachable(pruned.chain, [pruned.chain.head.header.stateRoot], seen)
const headHeight = pruned.chain.head.header.height
const materializedRoots = new Map<string, Uint8Array>()
for (let h = report.materializedCutoff; h <= headHeight; h++) {
  const header = pruned.chain.store.getHeader(pruned.chain.getCanonicalHash(h) as Uint8Array)
  if (header !== undefined) materializedRoots.set(toHexKey(header.stateRoot), header.stateRoot)
}
const finalizedHeader = pruned.chain.store.getHeader(pruned.chain.finalized.hash)
if (finalizedHeader !== undefined) materializedRoots.set(toHexKey(finalizedHeader.stateRoot), finalizedHeader.stateRoot)
materializedRoots.delete(toHexKey(pruned.chain.head.header.stateRoot))
const otherStates = reachable(pruned.chain, [...materializedRoots.values()], seen)
const diffHeights = Math.max(0, report.materializedCutoff - report.stateCutoff)

// Serving the oldest retained state: rebuilt from the reverse diffs (the first node asked for
// triggers it), then walked in full through the same node source state sync reads, and compared
// with the archive's state at that height. None when every retained state is materialized (no finality).
function serveOldest(): { height: number; ms: number; warmMs: number; diffs: number; diffBytes: number; cachedBytes: number; walkMs: number; accounts: number } | undefined {
  if (diffHeights === 0) return undefined
  const height = report.stateCutoff
  const header = pruned.chain.store.getHeader(pruned.chain.getCanonicalHash(height) as Uint8Array)
  if (header === undefined || pruned.chain.store.hasNode(header.stateRoot)) throw new Error(`state ${height} should be kept as reverse diffs`)
  const started = now()
  if (pruned.chain.stateNodes.getNode(header.stateRoot) === undefined) throw new Error(`state ${height} not served: ${pruned.chain.retainedStates.stats.lastFailure ?? 'over the rebuild budget'}`)
  const ms = now() - started
  const stats = { ...pruned.chain.retainedStates.stats }
  // Once more from scratch (a second rebuilder over the same store): the nodes it reads are now in
  // the store's cache, so the difference is the cost of cold reads.
  const again = new RetainedStates(pruned.chain.store, { head: () => pruned.chain.head, lowestRetainedHeight: () => report.stateCutoff })
  const againStarted = now()
  if (again.getNode(header.stateRoot) === undefined) throw new Error('second rebuild failed')
  const warmMs = now() - againStarted
  const walkStarted = now()
  const rebuiltLeaves = countLeaves(pruned.chain.stateNodes, header.stateRoot)
  const walkMs = now() - walkStarted
  const archiveLeaves = countLeaves(archive.chain.store, header.stateRoot)
  if (rebuiltLeaves.leaves !== archiveLeaves.leaves || rebuiltLeaves.digest !== archiveLeaves.digest) throw new Error("the rebuilt state differs from the archive's")
  return { height, ms, warmMs, diffs: stats.rebuiltDiffs, diffBytes: stats.rebuiltDiffBytes, cachedBytes: stats.cachedBytes, walkMs, accounts: rebuiltLeaves.leaves }
}
const oldest = serveOldest()

const rows: string[][] = []
const results: Record<string, { logical: number; disk: number; byKind: Record<string, number> }> = {}
for (const store of [pruned, archive]) {
  const byKind = await logical(store.kv)
  await store.kv.compact()
  const total = Object.values(byKind).reduce((a, b) => a + b, 0)
  const disk = dirBytes(store.dir)
  results[store.name] = { logical: total, disk, byKind }
  const indexes = (byKind['H'] ?? 0) + (byKind['C'] ?? 0) + (byKind['T'] ?? 0) + (byKind['K'] ?? 0) + (byKind['F'] ?? 0) + (byKind['M'] ?? 0)
  rows.push([store.name, fmtBytes(byKind['N'] ?? 0), fmtBytes(byKind['D'] ?? 0), fmtBytes(byKind['B'] ?? 0), fmtBytes(indexes), fmtBytes(byKind['F'] ?? 0), fmtBytes(total), fmtBytes(disk)])
}
const prunedKinds = results['pruned']!.byKind
const prunedLogical = results['pruned']!.logical
const prunedNodes = prunedKinds['N'] ?? 0
const prunedDiffs = prunedKinds['D'] ?? 0
// Retained blocks, exactly as stored: headers, bodies, canonical/tx/height indexes, certificates, meta.
const retainedBlockBytes = prunedLogical - prunedNodes - prunedDiffs
const garbage = prunedNodes - live.bytes - otherStates.bytes
const base = live.bytes + retainedBlockBytes
const target = 2 * base
heading(`after ${fmt(transfers)} transfers in ${fmt(headHeight)} blocks on ${fmt(accounts)} accounts (${fmt(importSeconds, 1)} s), finalized height ${fmt(pruned.chain.finalized.height)}`)
printTable(['store', 'trie nodes', 'reverse diffs', 'bodies', 'headers+indexes+certs+meta', 'of which certs', 'logical total', 'on disk (compacted)'], rows)
console.log(`  pruned trie nodes: head state (one copy of the live state) ${fmtBytes(live.bytes)} in ${fmt(live.nodes)} nodes; the other ${fmt(materializedRoots.size)} materialized states' own nodes (heights ${fmt(report.materializedCutoff)}–${fmt(headHeight)} and the finalized block) ${fmtBytes(otherStates.bytes)} in ${fmt(otherStates.nodes)} nodes (${fmtBytes(otherStates.bytes / Math.max(1, materializedRoots.size))} per state); unreachable ${fmtBytes(garbage)}`)
console.log(`  pruned reverse diffs: ${fmtBytes(prunedDiffs)} for the blocks of heights ${fmt(report.stateCutoff)}–${fmt(headHeight)} (${fmtBytes(prunedDiffs / Math.max(1, headHeight - report.stateCutoff + 1))} per block); ${fmt(diffHeights)} retained states kept only as reverse diffs`)
console.log(`  retained blocks (every header and certificate, ${fmt(Math.min(keepBodies, headHeight))} bodies, indexes, meta): ${fmtBytes(retainedBlockBytes)}`)
console.log(`  target: pruned ≤ 2 × (live state + retained blocks) = ${fmtBytes(target)}; pruned is ${fmtBytes(prunedLogical)} (${fmt(prunedLogical / base, 2)}×) → ${prunedLogical <= target ? 'met' : 'NOT met'}`)
console.log(`  archive / pruned: ${fmt(results['archive']!.logical / prunedLogical, 2)}× logical, ${fmt(results['archive']!.disk / results['pruned']!.disk, 2)}× on disk`)
if (oldest === undefined) console.log('  no retained state is kept as reverse diffs only (nothing finalized: every height from the finalized block up stays materialized)')
else {
  console.log(
    `  serving the oldest retained state (height ${fmt(oldest.height)}, ${fmt(report.materializedCutoff - oldest.height)} reverse diffs below the lowest materialized state): rebuilt in ${fmt(oldest.ms, 0)} ms (${fmt(oldest.warmMs, 0)} ms again with the store's cache warm; ${fmt(oldest.diffs)} diffs, ${fmtBytes(oldest.diffBytes)}, merged and applied in one trie update) into ${fmtBytes(oldest.cachedBytes)} of cached nodes; a full hash walk of it through the serving path ${fmt(oldest.walkMs, 0)} ms, ${fmt(oldest.accounts)} accounts, equal to the archive's state at that height; for comparison, importing a block took ${fmt(prunedImportMs / headHeight, 1)} ms on average`,
  )
}
for (const store of [pruned, archive]) {
  await store.kv.close()
  removeDir(store.dir)
}
if (flags['json']) {
  printJson({
    machine,
    accounts,
    transfers,
    perBlock,
    keepStates,
    keepMaterialized,
    keepBodies,
    finalityLag,
    liveStateBytes: live.bytes,
    otherMaterializedStateBytes: otherStates.bytes,
    reverseDiffBytes: prunedDiffs,
    unreachableNodeBytes: garbage,
    retainedBlockBytes,
    rebuildOldest: oldest,
    importMsPerBlock: prunedImportMs / headHeight,
    results,
  })
}

/** Leaves under `root` (a full hash walk: each node must hash to the hash that named it) and a digest of them in key order. */
function countLeaves(source: NodeSource, root: Uint8Array): { leaves: number; digest: string } {
  let leaves = 0
  const digest = createHash('sha256')
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const bytes = source.getNode(hash)
    if (bytes === undefined) throw new Error(`node ${toHexKey(hash)} missing`)
    if (toHexKey(nodeHash(bytes)) !== toHexKey(hash)) throw new Error(`node ${toHexKey(hash)} does not hash to its hash`)
    const node = decodeNode(bytes)
    if (node.kind === 'leaf') {
      leaves++
      digest.update(bytes)
    } else for (let nibble = 15; nibble >= 0; nibble--) if (node.children[nibble] !== undefined) stack.push(node.children[nibble] as Uint8Array)
  }
  return { leaves, digest: digest.digest('hex') }
}
