// The simulator's figures (issue 12): scale (1,000 and 10,000 nodes), 30 % silent droppers,
// Sybils, partition and heal on complete nodes, strategies side by side with first-spy
// precision, the Demers rumor-mongering table, and the 16-node workload of propagation.ts.
//
//   node --import tsx scripts/bench/sim.ts [--full] [--part all|scale|drop|sybil|partition|strategies|demers|compare] [--real FILE] [--costs FILE] [--charts docs/sim] [--json]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { barChart, lineChart } from '../../src/sim/charts.ts'
import { PAPER_FEEDBACK_COUNTER, rumorTable } from '../../src/sim/demers.ts'
import { runPartition } from '../../src/sim/partition.ts'
import { readCostsFile } from '../../src/sim/cli.ts'
import { CALIBRATED_CPU_COSTS, CPU_COSTS_CALIBRATION, type CpuCosts } from '../../src/sim/cpu-costs.ts'
import { type SimOptions, type SimResult, runSim } from '../../src/sim/simulator.ts'
import { STRATEGIES } from '../../src/sim/strategies.ts'
import { type Verdict, fmt, propagationTopology } from './util.ts'

const USAGE = 'node --import tsx scripts/bench/sim.ts [--full] [--part all|scale|drop|sybil|partition|strategies|demers|compare] [--real FILE] [--costs FILE] [--charts DIR] [--json]'
const argv = process.argv.slice(2)
const full = argv.includes('--full')
const json = argv.includes('--json')
const part = argv[argv.indexOf('--part') + 1] !== undefined && argv.includes('--part') ? (argv[argv.indexOf('--part') + 1] as string) : 'all'
/** propagation.ts --json output to compare with (its last line); without it the reference run below. */
const realFile = argv.includes('--real') ? argv[argv.indexOf('--real') + 1] : undefined
/**
 * The comparison's cost table: `sim-calibrate.ts --json` output from the machine the real run ran
 * on (npm run bench passes its own run's); without it the committed table, which was measured on
 * another machine (CPU_COSTS_CALIBRATION) — on a faster or slower one its p50 is off by the ratio.
 */
const costsFile = argv.includes('--costs') ? argv[argv.indexOf('--costs') + 1] : undefined
const compareCosts: CpuCosts = costsFile === undefined ? CALIBRATED_CPU_COSTS : readCostsFile(costsFile)
/** Passed to the runs only when given, so that a run on the committed table says so. */
const givenCostsSource = `this machine's, measured by sim-calibrate.ts (${costsFile}: its "node path" medians)`
const givenCosts: Partial<SimOptions> = costsFile === undefined ? {} : { cpuCosts: compareCosts, cpuCostsSource: givenCostsSource }
const chartsDir = argv.includes('--charts') ? (argv[argv.indexOf('--charts') + 1] as string) : 'docs/sim'
if (argv.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}
/** One-way delay of a 127.0.0.1 link in the comparison (ms): kernel transit only. */
const LOOPBACK_MS = 0.05

/**
 * The comparison's latency tolerance: each all-nodes percentile within ±30 % of the real one, or
 * ±10 ms where that is larger. 10 ms: one scavenge GC, a timer slip or a fraction of the 25 ms
 * announce window moves a single figure by that much on the real run. 30 %: the real p50 repeats
 * within a few % on a quiet machine, its p99 does not (82 then 139 ms on two quiet runs; 89, 314
 * and 173 ms in five minutes on 2026-11-27 with warm-up, load 1.5–2.9: it follows where
 * libp2p's connection-monitor rounds fall and what else the machine runs), so p99 is held to the
 * same rule knowing the reference itself may miss it.
 */
const LATENCY_TOLERANCE = { share: 0.3, floorMs: 10 }

/**
 * The real run the comparison uses without --real: `node --import tsx scripts/bench/propagation.ts
 * --json` on 2026-11-27 23:13 UTC (100 warm-up txs not measured), load average 2.85 at its start
 * and 1.45 at its end, on this repository's machine (docs/benchmarks.md).
 */
const REFERENCE_REAL: RealFigures = {
  p50Ms: 29.24,
  p90Ms: 38.7,
  p99Ms: 89.29,
  bytesPerTxPerNode: 731.68,
  libp2pStartedMs: [-18672, -18625, -18554, -18508, -18391, -18294, -18244, -18209, -18163, -18128, -18080, -18028, -17994, -17956, -17927, -17893],
  mainThreadCpuPerTxMs: 31.65,
  source: 'propagation.ts run of 2026-11-27 23:13 UTC, load 2.85 → 1.45',
}

interface RealFigures {
  p50Ms: number
  p90Ms: number
  p99Ms: number
  bytesPerTxPerNode: number
  /** When each node's libp2p started, ms from the first measured injection (propagation.ts reports it since its connection monitor's pings were found to make the tail). */
  libp2pStartedMs?: number[]
  /** The main thread's CPU per measured tx (propagation.ts reports it since 2026-11-27 23:05). */
  mainThreadCpuPerTxMs?: number
  source: string
}

function realFigures(): RealFigures {
  if (realFile === undefined) return REFERENCE_REAL
  const lines = readFileSync(realFile, 'utf8').trim().split('\n')
  const parsed = JSON.parse(lines[lines.length - 1] as string) as { grapevine: Omit<RealFigures, 'source'> }
  return { ...parsed.grapevine, source: realFile }
}


function compareRows(result: SimResult, real: RealFigures): Verdict[] {
  const latency = (metric: string, realMs: number, simMs: number): Verdict => {
    const allowance = Math.max(LATENCY_TOLERANCE.share * realMs, LATENCY_TOLERANCE.floorMs)
    return { metric, real: realMs, sim: simMs, allowed: `${fmt(realMs - allowance, 1)}–${fmt(realMs + allowance, 1)}`, met: Math.abs(simMs - realMs) <= allowance }
  }
  const bytes = result.bytesPerNodePerTx
  return [
    latency('all-nodes latency p50 (ms)', real.p50Ms, result.allNodesLatencyMs.p50),
    latency('all-nodes latency p90 (ms)', real.p90Ms, result.allNodesLatencyMs.p90),
    latency('all-nodes latency p99 (ms)', real.p99Ms, result.allNodesLatencyMs.p99),
    { metric: 'bytes per tx per node', real: real.bytesPerTxPerNode, sim: bytes, allowed: `${fmt(real.bytesPerTxPerNode * 0.85)}–${fmt(real.bytesPerTxPerNode * 1.15)}`, met: Math.abs(bytes / real.bytesPerTxPerNode - 1) <= 0.15 },
  ]
}

const wants = (name: string): boolean => part === 'all' || part === name
const out: Record<string, unknown> = { full, loadAverage: loadavg()[0] }
mkdirSync(chartsDir, { recursive: true })
const chart = (name: string, svg: string): void => writeFileSync(join(chartsDir, name), svg)

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')
  console.log(`  ${line(header)}`)
  console.log(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`)
  for (const row of rows) console.log(`  ${line(row)}`)
}

const pct = (share: number, digits = 2): string => `${fmt(share * 100, digits)} %`
/** Milliseconds, or — when no tx got there (rumor mongering's residue). */
const ms = (value: number): string => (Number.isFinite(value) ? fmt(value) : '—')
const row = (label: string, r: SimResult): string[] => [
  label,
  pct(r.delivery.share, 3),
  `${r.delivery.txsReachingAll}/${r.delivery.txs}`,
  ms(r.allNodesLatencyMs.p50),
  ms(r.allNodesLatencyMs.p99),
  fmt(r.tailMs),
  `${r.hops.p99} (≤ ${fmt(r.hops.bound, 1)})`,
  fmt(r.bytesPerNodePerTx),
  fmt(r.wallMs / 1000, 1),
  fmt(r.memory.peakRssBytes / 2 ** 20),
  fmt(r.memory.heapPerNodeAtEnd / 1024, 1),
]
const HEADER = ['run', 'delivered', 'txs to all', 'all-nodes p50 ms', 'p99 ms', 'tail ms', 'hops p99', 'B/node/tx', 'wall s', 'peak RSS MiB', 'heap KiB/node']

async function sim(label: string, options: Partial<SimOptions>): Promise<SimResult> {
  const started = Date.now()
  process.stderr.write(`  running ${label} …`)
  const result = await runSim(options, (p) => {
    if (process.stderr.isTTY) process.stderr.write(`\r  running ${label} … ${pct(p.delivered, 1)} delivered, virtual ${fmt(p.virtualMs / 1000, 1)} s, wall ${fmt(p.wallMs / 1000, 1)} s   `)
  })
  process.stderr.write(`\r  ${label}: done in ${fmt((Date.now() - started) / 1000, 1)} s${' '.repeat(40)}\n`)
  return result
}

console.log(`simulator figures (${full ? 'full' : 'quick'} mode); load average at start ${fmt(loadavg()[0] ?? 0, 2)}`)

if (wants('scale')) {
  const txs = full ? 1_000 : 200
  const sizes = full ? [1_000, 10_000] : [1_000, 2_000]
  const results: SimResult[] = []
  for (const nodes of sizes) results.push(await sim(`ours, ${fmt(nodes)} nodes × ${fmt(txs)} txs`, { nodes, txs, rate: 500, seed: 1 }))
  console.log(`\nScale: our strategy, ${fmt(txs)} txs at 500 tx/s, region latency model, 50 Mbit/s uplinks, each node dials 4`)
  table(HEADER, results.map((r) => row(`${fmt(r.options.nodes)} nodes`, r)))
  const last = results[results.length - 1] as SimResult
  console.log(`  ${fmt(last.options.nodes)} nodes: ${fmt(last.events)} events, ${fmt(last.virtualMs / 1000, 1)} s virtual in ${fmt(last.wallMs / 1000, 1)} s wall (${fmt(last.cpuMs / 1000, 1)} s CPU); load average now ${fmt(loadavg()[0] ?? 0, 2)}`)
  console.log(`  bytes per node per tx: ${results.map((r) => `${fmt(r.options.nodes)} nodes ${fmt(r.bytesPerNodePerTx)}`).join(', ')} (ratio ${fmt(last.bytesPerNodePerTx / (results[0] as SimResult).bytesPerNodePerTx, 2)})`)
  console.log('  what is real, modelled and replaced:')
  for (const line of last.substitutions) console.log(`    - ${line}`)
  chart('scale-delivery.svg', lineChart('Share of honest nodes holding a tx vs time since injection (ours)', 'ms since injection', 'share of (node, tx) pairs', results.map((r) => ({ name: `${fmt(r.options.nodes)} nodes`, points: r.deliveryCurve })), 1))
  chart('scale-hops.svg', barChart(`Hops from the origin, ${fmt(last.options.nodes)} nodes (ours)`, 'hops', '(node, tx) pairs', last.hops.histogram.map((_, i) => String(i)), last.hops.histogram))
  chart('scale-bytes.svg', barChart('Bytes per honest node per tx (ours)', 'nodes', 'bytes', results.map((r) => fmt(r.options.nodes)), results.map((r) => r.bytesPerNodePerTx)))
  out.scale = results.map(({ deliveryCurve, ...rest }) => rest)
}

if (wants('drop')) {
  const nodes = full ? 2_000 : 500
  const txs = full ? 200 : 50
  const base = await sim('no adversary', { nodes, txs, rate: 100, seed: 2 })
  const dropped = await sim('30 % silent droppers', { nodes, txs, rate: 100, seed: 2, adversary: 0.3, adversaryKind: 'drop', tailLimitMs: 120_000 })
  const rumorOnly = await sim('30 % droppers, anti-entropy off', { nodes, txs, rate: 100, seed: 2, adversary: 0.3, adversaryKind: 'drop', statusIntervalMs: 0, tailLimitMs: 30_000 })
  const withhold = await sim('30 % announce-then-withhold', { nodes, txs, rate: 100, seed: 2, adversary: 0.3, adversaryKind: 'withhold', tailLimitMs: 120_000 })
  const delay = await sim('30 % delay 1 s', { nodes, txs, rate: 100, seed: 2, adversary: 0.3, adversaryKind: 'delay', tailLimitMs: 120_000 })
  const invalid = await sim('30 % push invalid txs', { nodes, txs, rate: 100, seed: 2, adversary: 0.3, adversaryKind: 'invalid', tailLimitMs: 120_000 })
  console.log(`\nAdversaries: ${fmt(nodes)} nodes, ${txs} txs at 100 tx/s (ours: rumor + anti-entropy every 2 s)`)
  table(HEADER, [row('no adversary', base), row('30 % drop everything', dropped), row('30 % drop, anti-entropy off', rumorOnly), row('30 % announce, withhold', withhold), row('30 % delay 1 s', delay), row('30 % invalid txs', invalid)])
  console.log(`  with 30 % silent droppers the last honest node got the last tx ${fmt(dropped.tailMs)} ms after its injection window closed (${fmt(dropped.tailMs / 2_000, 1)} anti-entropy rounds of 2 s)`)
  chart('drop-delivery.svg', lineChart('Delivery vs time since injection, 30 % silent droppers', 'ms since injection', 'share of (honest node, tx) pairs', [
    { name: 'no adversary', points: base.deliveryCurve },
    { name: '30 % droppers', points: dropped.deliveryCurve },
    { name: '30 % droppers, anti-entropy off', points: rumorOnly.deliveryCurve },
  ], 1))
  out.adversaries = [base, dropped, rumorOnly, withhold, delay, invalid].map(({ deliveryCurve, ...rest }) => rest)
}

if (wants('sybil')) {
  const txs = full ? 100 : 30
  const alone = await sim('100 honest nodes', { nodes: 100, txs, rate: 50, seed: 3 })
  const swarm = await sim('100 honest + 1,000 Sybils', { nodes: 100, txs, rate: 50, seed: 3, sybils: 1_000, sybilDegree: 8 })
  console.log(`\nSybils: 1,000 zero-stake nodes that drop everything, each dialing 8 of the 100 honest (validator) nodes`)
  table(HEADER, [row('100 honest', alone), row('100 honest + 1,000 Sybils', swarm)])
  out.sybil = [alone, swarm].map(({ deliveryCurve, ...rest }) => rest)
}

if (wants('partition')) {
  const result = await runPartition(full ? { nodes: 40, validators: 8, partitionMs: 30_000 } : { nodes: 24, validators: 6, partitionMs: 15_000 })
  console.log(`\nPartition and heal on complete nodes (real chain, trie, producer, SyncManager): ${result.options.nodes} nodes, ${result.options.validators} validators (Pareto stake), 50/50 cut for ${fmt(result.options.partitionMs / 1000)} s`)
  table(['metric', 'value'], [
    ['distinct heads at heal', String(result.headsBeforeHeal)],
    ['heights at heal (left / right)', `${result.heightsBeforeHeal.left} / ${result.heightsBeforeHeal.right}`],
    ['one head and state root on every node', result.converged ? 'yes' : 'NO'],
    ['time after heal (ms, checked every 250)', fmt(result.convergedMs)],
    ['anti-entropy rounds (status every 2 s)', fmt(Math.ceil(result.rounds))],
    ['wall (s)', fmt(result.wallMs / 1000, 1)],
  ])
  chart('partition-heal.svg', lineChart('Share of nodes on the majority head (and state root) after the heal', 'ms since heal', 'share of nodes', [{ name: 'complete nodes', points: [[0, 0.5], ...result.curve] }], 1))
  out.partition = result
}

if (wants('strategies')) {
  const nodes = full ? 1_000 : 300
  const txs = full ? 100 : 30
  const results: SimResult[] = []
  for (const strategy of STRATEGIES) results.push(await sim(strategy, { nodes, txs, rate: 50, seed: 4, strategy, spies: 0.1, k: 3, tailLimitMs: 30_000 }))
  console.log(`\nStrategies side by side: ${fmt(nodes)} nodes, ${txs} txs at 50 tx/s, same graph, latency model and workload; 10 % of honest nodes are spies (rumor k = 3, cycle 200 ms)`)
  table(['strategy', ...HEADER.slice(1, 8), 'first-spy precision'], results.map((r) => [...row(r.options.strategy, r).slice(0, 8), pct(r.spies?.precision ?? 0, 1)]))
  chart('strategies-delivery.svg', lineChart('Delivery vs time since injection, per strategy', 'ms since injection', 'share of (node, tx) pairs', results.map((r) => ({ name: r.options.strategy, points: r.deliveryCurve })), 1))
  chart('strategies-bytes.svg', barChart('Bytes per node per tx, per strategy', 'strategy', 'bytes', results.map((r) => r.options.strategy), results.map((r) => r.bytesPerNodePerTx)))
  out.strategies = results.map(({ deliveryCurve, ...rest }) => rest)
}

if (wants('demers')) {
  const seeds = 20
  const ks = [1, 2, 3, 4, 5]
  const counter = rumorTable(1_000, ks, 'feedback-counter', seeds)
  const coin = rumorTable(1_000, ks, 'blind-coin', seeds)
  console.log(`\nRumor mongering as in Demers et al. 1987 (n = 1,000, one update, push, mean of ${seeds} seeds; the paper's Table 1 figures as quoted in the brief)`)
  table(['variant', 'k', 'residue s', 'traffic m', 't_ave', 't_last', 'paper s', 'paper m'], [
    ...counter.map((r) => ['feedback + counter', String(r.k), fmt(r.residue, 4), fmt(r.traffic, 2), fmt(r.tAve, 1), fmt(r.tLast, 1), PAPER_FEEDBACK_COUNTER[r.k] === undefined ? '—' : fmt(PAPER_FEEDBACK_COUNTER[r.k]?.residue ?? 0, 3), PAPER_FEEDBACK_COUNTER[r.k] === undefined ? '—' : fmt(PAPER_FEEDBACK_COUNTER[r.k]?.traffic ?? 0, 1)]),
    ...coin.map((r) => ['blind + coin', String(r.k), fmt(r.residue, 4), fmt(r.traffic, 2), fmt(r.tAve, 1), fmt(r.tLast, 1), '—', '—']),
  ])
  out.demers = { counter, coin }
}

if (wants('compare')) {
  // propagation.ts's workload exactly: its graph and origins (the same seeded draw), 16 nodes without
  // stake, 400 transfers at 20 tx/s, 25 ms announce batches, no anti-entropy (its nodes run
  // without), and all 16 in ONE Node.js process: one host with one core. Links are 127.0.0.1:
  // the kernel's transit is tens of µs; the stack's time is in the CPU model.
  const { edges, origins } = propagationTopology(16, 4, 400, 1)
  // The nodes' libp2p start times (their connection monitors' phase) are the real run's: they start one after another during its setup.
  const real = realFigures()
  const libp2pStartedMs = real.libp2pStartedMs ?? REFERENCE_REAL.libp2pStartedMs
  const workload: Partial<SimOptions> = { nodes: 16, txs: 400, rate: 20, edges, origins, stake: 'none', announceBatchMs: 25, statusIntervalMs: 0, fixedLatencyMs: LOOPBACK_MS, jitter: 0, uplinkMbps: 10_000, resolutionMs: 0, seed: 1, libp2pStartedMs }
  console.log(`\nThe comparison's cost table: ${costsFile === undefined ? `the committed one (${CPU_COSTS_CALIBRATION})` : givenCostsSource}`)
  const oneHost = await sim('16 nodes on one host (1 core)', { ...workload, hosts: 'one-host', cores: 1, ...givenCosts })
  const perNode = await sim('16 nodes, a host each', { ...workload, hosts: 'per-node', cores: 1, ...givenCosts })
  const free = await sim('16 nodes, CPU not modelled', { ...workload, hosts: 'off' })
  console.log(`\nThe 16-node workload of propagation.ts in the simulator (its graph of ${edges.length} links and origins, 400 txs at 20 tx/s, 25 ms announce batches, ${LOOPBACK_MS} ms links, no anti-entropy)`)
  table(HEADER, [row('one host, 1 core', oneHost), row('a host per node', perNode), row('CPU not modelled', free)])
  const c = oneHost.cpu
  if (c !== undefined) console.log(`  one host: busy ${pct(c.busiestUtilisation, 1)} of the run; jobs waited ${fmt(c.meanWaitMs, 2)} ms on average (max ${fmt(c.maxWaitMs, 1)} ms)${c.gcPauses > 0 ? `; ${c.gcPauses} GC pauses, ${fmt(c.gcPauseMs, 0)} ms` : ''}${c.stallsFelt > 0 ? `; ${c.stallsFelt} host stalls felt, ${fmt(c.stallMs, 0)} ms` : ''}`)
  // A check of the cost table's level against the real stack (not used in the verdict): CPU per tx, simulated vs the real run's main thread.
  const simCpuPerTx = c === undefined ? Number.NaN : (c.busiestUtilisation * c.cores * oneHost.virtualMs) / 400
  if (real.mainThreadCpuPerTxMs !== undefined) {
    console.log(`  CPU per tx: simulated ${fmt(simCpuPerTx, 1)} ms on the one host; the real run's main thread ${fmt(real.mainThreadCpuPerTxMs, 1)} ms (${fmt(real.mainThreadCpuPerTxMs / simCpuPerTx, 2)}×)`)
    out.compare16CpuPerTx = { simulatedMs: simCpuPerTx, realMainThreadMs: real.mainThreadCpuPerTxMs }
    // Diagnostic only (not the verdict): every cost scaled by that measured ratio, to see how much of the latency gap the CPU level is.
    const scale = real.mainThreadCpuPerTxMs / simCpuPerTx
    const scaled = Object.fromEntries(Object.entries(compareCosts).map(([key, value]) => [key, value * scale])) as unknown as CpuCosts
    const atRealLevel = await sim('16 nodes on one host, costs at the real CPU per tx', { ...workload, hosts: 'one-host', cores: 1, cpuCosts: scaled })
    const p = atRealLevel.allNodesLatencyMs
    console.log(`  diagnostic, not the verdict: the cost table × ${fmt(scale, 2)} (the real run's CPU per tx) gives p50 ${fmt(p.p50, 1)}, p90 ${fmt(p.p90, 1)}, p99 ${fmt(p.p99, 1)} ms (host busy ${pct(atRealLevel.cpu?.busiestUtilisation ?? 0, 1)})`)
    out.compare16AtRealCpu = { scale, allNodesLatencyMs: p }
  }
  console.log(`\nSimulator (one host, 1 core) vs the real network (${real.source}); tolerance: latency percentiles within ±${LATENCY_TOLERANCE.share * 100} % or ±${LATENCY_TOLERANCE.floorMs} ms, whichever is larger; bytes within ±15 %`)
  const verdicts = compareRows(oneHost, real)
  table(['metric', 'libp2p (propagation.ts)', 'simulator', 'sim ÷ real', 'allowed', 'within'], verdicts.map((v) => [v.metric, fmt(v.real, 1), fmt(v.sim, 1), fmt(v.sim / v.real, 2), v.allowed, v.met ? 'yes' : 'NO']))
  console.log('  what is real, modelled and replaced:')
  for (const line of oneHost.substitutions) console.log(`    - ${line}`)
  out.compare16 = (({ deliveryCurve, ...rest }) => rest)(oneHost)
  out.compare16PerNode = (({ deliveryCurve, ...rest }) => rest)(perNode)
  out.compare16NoCpu = (({ deliveryCurve, ...rest }) => rest)(free)
  out.compare16Real = real
  out.compare16Costs = costsFile === undefined ? { source: 'committed', calibration: CPU_COSTS_CALIBRATION } : { source: costsFile, costs: compareCosts }
  out.compare16Verdicts = verdicts
}

out.loadAverageEnd = loadavg()[0]
if (json) console.log(JSON.stringify(out))
