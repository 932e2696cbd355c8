/**
 * Benchmark: store size after many transfers, pruned (the default: 128 states, 128 bodies) vs
 * archive. Both chains import the same blocks into LevelDB in temp dirs (removed at the end).
 * As on a devnet, each block is finalized `--finality-lag` blocks after it is imported (a
 * certificate signed by the dev validator keys; the devnet's measured lag is 1–2 blocks);
 * `--finality-lag 0` never finalizes (the finalized block stays the genesis block, whose whole
 * state a pruned node then keeps as well).
 *
 *   node --import tsx scripts/bench/disk.ts [--accounts 20000] [--transfers 40000] [--per-block 100]
 *        [--keep-states 128] [--keep-bodies 128] [--finality-lag 1] [--json]
 *
 * The issue's full figure is --accounts 100000 --transfers 200000. Reported per store: logical
 * bytes (sum of key + value lengths, by kind) and bytes on disk after a full LevelDB compaction;
 * and the target: pruned ≤ 2 × (one copy of the head's live state + the retained blocks' headers
 * and bodies), computed from the same logical sizes.
 */
import '../../src/polyfill.ts'
import { Chain } from '../../src/chain/chain.ts'
import { devCertificate } from '../../src/chain/history.ts'
import { toHexKey } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { decodeNode } from '../../src/state/nodes.ts'
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

const USAGE = 'usage: disk.ts [--accounts N] [--transfers N] [--per-block N] [--keep-states N] [--keep-bodies N] [--finality-lag N] [--json]'
const { numbers, flags } = parseOptions(USAGE, {
  numbers: { accounts: 20_000, transfers: 40_000, 'per-block': 100, 'keep-states': 128, 'keep-bodies': 128, 'finality-lag': 1 },
})
const accounts = intOption(numbers, 'accounts')
const transfers = intOption(numbers, 'transfers')
const perBlock = intOption(numbers, 'per-block')
const keepStates = intOption(numbers, 'keep-states', 2)
const keepBodies = intOption(numbers, 'keep-bodies')
const finalityLag = intOption(numbers, 'finality-lag', 0)
const SENDERS = 200
const machine = printHeader('disk: store size, pruned vs archive', { accounts, transfers, perBlock, keepStates, keepBodies, finalityLag })

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
  const chain = await Chain.open({ store: new ChainStore(kv), genesis }, { pruning: { archive, keepStateBlocks: keepStates, keepBodyBlocks: keepBodies } })
  return { name, dir, kv, chain }
}

const pruned = await open('pruned', false)
const archive = await open('archive', true)
const nonces = new Array<number>(SENDERS).fill(0)
const started = now()
let sent = 0
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
  await pruned.chain.importBlock(block, { now: Number.MAX_SAFE_INTEGER, isVerified: () => true })
  sent += count
  if (sent % Math.max(perBlock, Math.floor(transfers / 10 / perBlock) * perBlock) === 0) process.stderr.write(`  ${fmt(sent)} transfers imported (${fmt((now() - started) / 1000, 0)} s)\n`)
  const finalHeight = archive.chain.head.header.height - finalityLag
  if (finalityLag > 0 && finalHeight > 0) {
    const certificate = devCertificate(archive.chain, finalHeight)
    for (const chain of [archive.chain, pruned.chain]) await chain.applyCertificate(certificate, { signaturesVerified: true })
  }
}
await pruned.chain.prune()
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
// only the other retained states need (the last keepStates heights and the finalized block), and
// the rest (reachable from no retained root: garbage a prune should have removed).
const seen = new Set<string>()
const live = reachable(pruned.chain, [pruned.chain.head.header.stateRoot], seen)
const headHeight = pruned.chain.head.header.height
const retainedRoots: Uint8Array[] = []
for (let h = Math.max(0, headHeight - keepStates + 1); h <= headHeight; h++) {
  const header = pruned.chain.store.getHeader(pruned.chain.getCanonicalHash(h) as Uint8Array)
  if (header !== undefined) retainedRoots.push(header.stateRoot)
}
const finalizedHeader = pruned.chain.store.getHeader(pruned.chain.finalized.hash)
if (finalizedHeader !== undefined && !retainedRoots.some((root) => toHexKey(root) === toHexKey(finalizedHeader.stateRoot))) retainedRoots.push(finalizedHeader.stateRoot)
const otherStates = reachable(pruned.chain, retainedRoots, seen)

const rows: string[][] = []
const results: Record<string, { logical: number; disk: number; byKind: Record<string, number> }> = {}
for (const store of [pruned, archive]) {
  const byKind = await logical(store.kv)
  await store.kv.compact()
  const total = Object.values(byKind).reduce((a, b) => a + b, 0)
  const disk = dirBytes(store.dir)
  results[store.name] = { logical: total, disk, byKind }
  const indexes = (byKind['H'] ?? 0) + (byKind['C'] ?? 0) + (byKind['T'] ?? 0) + (byKind['K'] ?? 0) + (byKind['F'] ?? 0) + (byKind['M'] ?? 0)
  rows.push([store.name, fmtBytes(byKind['N'] ?? 0), fmtBytes(byKind['B'] ?? 0), fmtBytes(indexes), fmtBytes(byKind['F'] ?? 0), fmtBytes(total), fmtBytes(disk)])
}
const prunedKinds = results['pruned']!.byKind
const prunedLogical = results['pruned']!.logical
const prunedNodes = prunedKinds['N'] ?? 0
// Retained blocks, exactly as stored: headers, bodies, canonical/tx/height indexes, certificates, meta.
const retainedBlockBytes = prunedLogical - prunedNodes
const garbage = prunedNodes - live.bytes - otherStates.bytes
const base = live.bytes + retainedBlockBytes
const target = 2 * base
heading(`after ${fmt(transfers)} transfers in ${fmt(headHeight)} blocks on ${fmt(accounts)} accounts (${fmt(importSeconds, 1)} s), finalized height ${fmt(pruned.chain.finalized.height)}`)
printTable(['store', 'trie nodes', 'bodies', 'headers+indexes+certs+meta', 'of which certs', 'logical total', 'on disk (compacted)'], rows)
console.log(`  pruned trie nodes: head state (one copy of the live state) ${fmtBytes(live.bytes)} in ${fmt(live.nodes)} nodes; the other ${fmt(retainedRoots.length - 1)} retained states' own nodes ${fmtBytes(otherStates.bytes)} in ${fmt(otherStates.nodes)} nodes (${fmtBytes(otherStates.bytes / Math.max(1, retainedRoots.length - 1))} per state); unreachable ${fmtBytes(garbage)}`)
console.log(`  retained blocks (every header and certificate, ${fmt(Math.min(keepBodies, headHeight))} bodies, indexes, meta): ${fmtBytes(retainedBlockBytes)}`)
console.log(`  target: pruned ≤ 2 × (live state + retained blocks) = ${fmtBytes(target)}; pruned is ${fmtBytes(prunedLogical)} (${fmt(prunedLogical / base, 2)}×) → ${prunedLogical <= target ? 'met' : 'NOT met'}`)
console.log(`  archive / pruned: ${fmt(results['archive']!.logical / prunedLogical, 2)}× logical, ${fmt(results['archive']!.disk / results['pruned']!.disk, 2)}× on disk`)
for (const store of [pruned, archive]) {
  await store.kv.close()
  removeDir(store.dir)
}
if (flags['json']) printJson({ machine, accounts, transfers, perBlock, keepStates, keepBodies, finalityLag, liveStateBytes: live.bytes, otherRetainedStateBytes: otherStates.bytes, unreachableNodeBytes: garbage, retainedBlockBytes, results })
