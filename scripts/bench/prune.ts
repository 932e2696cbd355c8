/**
 * Benchmark: what one prune run costs (src/chain/prune.ts) as a node runs: the wall time of each
 * run, the trie nodes it reads and the nodes it deletes. A chain on LevelDB (temp dir, removed at
 * the end) imports blocks of `--per-block` transfers from 200 senders to random accounts of
 * `--accounts`; each block is finalized `--finality-lag` blocks after it is imported (a dev-key
 * certificate, as on a devnet; `--finality-lag 0` never finalizes, so the whole 128-height window
 * stays materialized); every 32 blocks (the default `pruneIntervalBlocks`) a prune runs, alone, and
 * is timed. The first run after the window fills is the first that demotes states; runs before it
 * only drop nothing and are not counted.
 *
 *   node --import tsx scripts/bench/prune.ts [--accounts 100000] [--blocks 512] [--per-block 20]
 *        [--finality-lag 1] [--json]
 */
import '../../src/polyfill.ts'
import { Chain } from '../../src/chain/chain.ts'
import { devCertificate } from '../../src/chain/history.ts'
import { DEFAULT_PRUNING_OPTIONS, type PruneReport } from '../../src/chain/prune.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { LevelStore } from '../../src/store/level.ts'
import { benchGenesis, fmt, intOption, leaderOf, listPacker, makeTempDir, now, parseOptions, printHeader, printJson, printTable, removeDir, seededRandom } from './util.ts'

const USAGE = 'usage: prune.ts [--accounts N] [--blocks N] [--per-block N] [--finality-lag N] [--json]'
const { numbers, flags } = parseOptions(USAGE, { numbers: { accounts: 100_000, blocks: 512, 'per-block': 20, 'finality-lag': 1 } })
const accounts = intOption(numbers, 'accounts')
const blocks = intOption(numbers, 'blocks')
const perBlock = intOption(numbers, 'per-block', 0)
const finalityLag = intOption(numbers, 'finality-lag', 0)
const SENDERS = 200
const interval = DEFAULT_PRUNING_OPTIONS.pruneIntervalBlocks
const machine = printHeader('prune: one prune run, every 32 blocks', { accounts, blocks, perBlock, finalityLag })

const validators = [0, 1, 2, 3].map((i) => devKeypair(i))
const senders = Array.from({ length: SENDERS }, (_, i) => devKeypair(1_000 + i))
const { genesis, bulk } = benchGenesis({ validators, senders, bulkAccounts: accounts, balance: 1_000_000_000_000n })
const random = seededRandom(11)
const dir = makeTempDir('prune')
const kv = await LevelStore.open(`${dir}/chain`)
// Prunes run only when this script asks, so that each is timed alone.
const chain = await Chain.open({ store: new ChainStore(kv), genesis }, { pruning: { pruneIntervalBlocks: Number.MAX_SAFE_INTEGER } })
const nonces = new Array<number>(SENDERS).fill(0)
const runs: Array<{ height: number; ms: number; report: PruneReport }> = []
let sent = 0
for (let b = 0; b < blocks; b++) {
  const txs: SignedTx[] = []
  for (let i = 0; i < perBlock; i++) {
    const sender = (sent + i) % SENDERS
    txs.push(signTransfer({ chainId: genesis.chainId, from: senders[sender]!, to: bulk[Math.floor(random() * bulk.length)]!, amount: 1n, fee: 1n, nonce: nonces[sender]!++ }))
  }
  sent += perBlock
  const slot = chain.head.header.slot + 1
  const { block, execution } = chain.buildBlock(slot, chain.schedule.slotStart(slot) + 1, leaderOf(chain, validators, slot), listPacker(txs))
  await chain.importOwnBlock(block, execution)
  const height = chain.head.header.height
  if (finalityLag > 0 && height - finalityLag > 0) await chain.applyCertificate(devCertificate(chain, height - finalityLag), { signaturesVerified: true })
  if (height % interval === 0) {
    await chain.idle()
    const started = now()
    const report = await chain.prune()
    const ms = now() - started
    if (report.droppedRoots > 0) runs.push({ height, ms, report })
    process.stderr.write(`  height ${fmt(height)}: prune ${fmt(ms, 1)} ms, ${fmt(report.visitedNodes)} nodes read, ${fmt(report.deletedNodes)} deleted\n`)
  }
}
if (chain.lastPruneError !== undefined) throw chain.lastPruneError
await chain.idle()
await kv.close()
removeDir(dir)

const sorted = runs.map((run) => run.ms).sort((a, b) => a - b)
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)
const summary = {
  runs: runs.length,
  meanMs: mean(sorted),
  medianMs: sorted[Math.floor(sorted.length / 2)] ?? NaN,
  maxMs: sorted[sorted.length - 1] ?? NaN,
  nodesReadPerRun: mean(runs.map((run) => run.report.visitedNodes)),
  nodesDeletedPerRun: mean(runs.map((run) => run.report.deletedNodes)),
  retainedRoots: runs[runs.length - 1]?.report.retainedRoots ?? 0,
}
console.log(`\n${fmt(blocks)} blocks × ${fmt(perBlock)} transfers on ${fmt(accounts)} accounts, finality lag ${finalityLag === 0 ? 'none' : finalityLag}: prune runs that demoted states`)
printTable(
  ['runs', 'ms per run (mean)', 'median', 'max', 'nodes read per run', 'nodes deleted per run', 'retained roots'],
  [[fmt(summary.runs), fmt(summary.meanMs, 1), fmt(summary.medianMs, 1), fmt(summary.maxMs, 1), fmt(summary.nodesReadPerRun), fmt(summary.nodesDeletedPerRun), fmt(summary.retainedRoots)]],
)
if (flags.json) printJson({ machine, accounts, blocks, perBlock, finalityLag, ...summary })
