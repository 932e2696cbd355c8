/**
 * `npm run sim` / `grapevine sim`: parses options, runs the simulator with a progress bar on
 * stderr, prints a summary, writes JSON and SVG charts.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { barChart, lineChart } from './charts.ts'
import { type CpuCosts, parseCpuCosts } from './cpu-costs.ts'
import { type AdversaryKind, DEFAULT_SIM_OPTIONS, type SimOptions, type SimProgress, type SimResult, runSim } from './simulator.ts'
import { STRATEGIES, type StrategyName } from './strategies.ts'

export const SIM_USAGE = `grapevine sim [options]
  --nodes N            simulated nodes (default ${DEFAULT_SIM_OPTIONS.nodes})
  --txs T              transactions (default ${DEFAULT_SIM_OPTIONS.txs})
  --rate R             injection rate, tx/s of virtual time (default ${DEFAULT_SIM_OPTIONS.rate})
  --strategy S         ${STRATEGIES.join(' | ')} (default ours)
  --adversary F        share of nodes that are adversaries (default 0)
  --adversary-kind K   drop | delay | withhold | invalid (default drop)
  --sybils N           zero-stake nodes dropping everything, each dialing --sybil-degree honest nodes
  --spies F            share of honest nodes that are spies (first-spy estimator)
  --loss P             message loss probability
  --churn P            share of honest nodes leaving per second (back after 5 s)
  --partition-ms MS    50/50 partition from 1 s for MS, then healed
  --degree D           outbound dials per node (default ${DEFAULT_SIM_OPTIONS.degree})
  --latency-ms MS      fixed one-way link delay instead of the region matrix
  --uplink-mbps M      upload bandwidth per node (default ${DEFAULT_SIM_OPTIONS.uplinkMbps})
  --announce-ms MS     announce batch window (default ${DEFAULT_SIM_OPTIONS.announceBatchMs})
  --status-ms MS       anti-entropy round interval, 0 = off (default ${DEFAULT_SIM_OPTIONS.statusIntervalMs})
  --k K                rumor counter / coin parameter (default ${DEFAULT_SIM_OPTIONS.k})
  --cycle-ms MS        rumor / push-pull cycle (default ${DEFAULT_SIM_OPTIONS.cycleMs})
  --ring               add a ring to the random graph
  --hosts H            CPU model: per-node (each node its own host), one-host (all nodes share one, as
                       propagation.ts's single process), off (CPU is free) (default ${DEFAULT_SIM_OPTIONS.hosts})
  --cores C            cores per host (default ${DEFAULT_SIM_OPTIONS.cores})
  --costs FILE         the CPU cost table measured on this machine: the output of
                       scripts/bench/sim-calibrate.ts --json (default: the committed table, measured
                       on the machine src/sim/cpu-costs.ts names)
  --seed S             (default 1)
  --out DIR            where to write sim.json and the charts (default .sim)
  --quiet              no progress bar`

const NUMERIC: Record<string, keyof SimOptions> = {
  '--nodes': 'nodes',
  '--txs': 'txs',
  '--rate': 'rate',
  '--adversary': 'adversary',
  '--sybils': 'sybils',
  '--sybil-degree': 'sybilDegree',
  '--spies': 'spies',
  '--loss': 'lossRate',
  '--churn': 'churnPerSecond',
  '--partition-ms': 'partitionMs',
  '--degree': 'degree',
  '--latency-ms': 'fixedLatencyMs',
  '--uplink-mbps': 'uplinkMbps',
  '--announce-ms': 'announceBatchMs',
  '--status-ms': 'statusIntervalMs',
  '--k': 'k',
  '--cycle-ms': 'cycleMs',
  '--seed': 'seed',
  '--tail-ms': 'tailLimitMs',
  '--cores': 'cores',
}

export interface SimCliArgs {
  options: Partial<SimOptions>
  out: string
  quiet: boolean
  help: boolean
}

export function parseSimArgs(argv: readonly string[]): SimCliArgs {
  const options: Record<string, unknown> = {}
  let out = '.sim'
  let quiet = false
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string
    const value = argv[i + 1]
    const key = NUMERIC[flag]
    if (key !== undefined) {
      const number = Number(value)
      if (value === undefined || !Number.isFinite(number)) throw new Error(`${flag} needs a number`)
      options[key] = number
      i++
    } else if (flag === '--strategy') {
      if (!STRATEGIES.includes(value as StrategyName)) throw new Error(`--strategy must be one of ${STRATEGIES.join(', ')}`)
      options.strategy = value
      i++
    } else if (flag === '--adversary-kind') {
      if (!['drop', 'delay', 'withhold', 'invalid'].includes(value ?? '')) throw new Error('--adversary-kind must be drop, delay, withhold or invalid')
      options.adversaryKind = value as AdversaryKind
      i++
    } else if (flag === '--hosts') {
      if (!['per-node', 'one-host', 'off'].includes(value ?? '')) throw new Error('--hosts must be per-node, one-host or off')
      options.hosts = value
      i++
    } else if (flag === '--costs') {
      if (value === undefined) throw new Error('--costs needs a file (scripts/bench/sim-calibrate.ts --json output)')
      options.cpuCosts = readCostsFile(value)
      options.cpuCostsSource = `measured by sim-calibrate.ts (${value})`
      i++
    } else if (flag === '--out') {
      out = value ?? out
      i++
    } else if (flag === '--ring') options.ring = true
    else if (flag === '--quiet') quiet = true
    else if (flag === '--help' || flag === '-h') help = true
    else throw new Error(`unknown option ${flag}`)
  }
  if (options.partitionMs !== undefined) options.partitionAtMs = 1_000
  return { options: options as Partial<SimOptions>, out, quiet, help }
}

/** Larger than any sim-calibrate.ts --json output (~60 KB a run): checked before the file is read. */
const MAX_COSTS_FILE_BYTES = 4 * 1024 * 1024

/** A cost table from a file: sim-calibrate.ts --json output (its last line) or a bare table; size-checked, then parsed and checked key by key. */
export function readCostsFile(path: string): CpuCosts {
  const size = statSync(path).size
  if (size > MAX_COSTS_FILE_BYTES) throw new Error(`${path}: ${size} bytes, more than a cost table's ${MAX_COSTS_FILE_BYTES}`)
  const last = readFileSync(path, 'utf8').trim().split('\n').pop() ?? ''
  let parsed: unknown
  try {
    parsed = JSON.parse(last)
  } catch {
    throw new Error(`${path}: its last line is not JSON (sim-calibrate.ts --json prints the table as its last line)`)
  }
  return parseCpuCosts(parsed)
}

export function progressBar(progress: SimProgress, width = 30): string {
  const filled = Math.round(progress.delivered * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(progress.delivered * 100).toFixed(1).padStart(5)}% delivered  injected ${progress.injected}  virtual ${(progress.virtualMs / 1000).toFixed(1)} s  wall ${(progress.wallMs / 1000).toFixed(1)} s  ${(progress.events / 1e6).toFixed(2)} M events`
}

const fmt = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—')

export function summarize(result: SimResult): string {
  const o = result.options
  const lines = [
    `sim: ${o.nodes.toLocaleString('en-US')} nodes (+${o.sybils} Sybils), ${o.txs} txs at ${o.rate} tx/s, strategy ${o.strategy}, adversary ${o.adversary} (${o.adversaryKind}), loss ${o.lossRate}, churn ${o.churnPerSecond}/s, seed ${o.seed}`,
    `  honest nodes ${result.nodes.honest} (online at end ${result.delivery.honestNodes}); stake: top 1% of validators hold ${fmt(result.nodes.top1PercentStake * 100)}%`,
    `  delivery: ${fmt(result.delivery.share * 100, 3)}% of (honest node, tx) pairs; ${result.delivery.txsReachingAll}/${result.delivery.txs} txs reached every honest node`,
    `  all-nodes latency (ms): p50 ${fmt(result.allNodesLatencyMs.p50, 0)}  p90 ${fmt(result.allNodesLatencyMs.p90, 0)}  p99 ${fmt(result.allNodesLatencyMs.p99, 0)}  max ${fmt(result.allNodesLatencyMs.max, 0)}`,
    `  per-node latency (ms): p50 ${fmt(result.nodeLatencyMs.p50, 0)}  p90 ${fmt(result.nodeLatencyMs.p90, 0)}  p99 ${fmt(result.nodeLatencyMs.p99, 0)}  max ${fmt(result.nodeLatencyMs.max, 0)}`,
    `  tail: last honest delivery ${fmt(result.tailMs, 0)} ms after the last injection`,
    `  hops: p50 ${result.hops.p50}  p99 ${result.hops.p99}  max ${result.hops.max}  (bound log2(N)+3 = ${fmt(result.hops.bound, 2)})`,
    `  bytes per honest node per tx: ${fmt(result.bytesPerNodePerTx, 0)} (framing included); ${result.bytesByKind.messages.toLocaleString('en-US')} messages, ${result.bytesByKind.lost} lost`,
  ]
  if (result.spies !== undefined) lines.push(`  first-spy estimator: ${result.spies.count} spies name the origin of ${fmt(result.spies.precision * 100)}% of txs`)
  if (result.cpu !== undefined) {
    const c = result.cpu
    lines.push(`  CPU (${c.placement}, ${c.hosts.toLocaleString('en-US')} host(s) × ${c.cores} core(s)): busiest host busy ${fmt(c.busiestUtilisation * 100)}% of the run; ${c.jobs.toLocaleString('en-US')} jobs waited ${fmt(c.meanWaitMs, 2)} ms on average in the queue (max ${fmt(c.maxWaitMs, 1)} ms)${c.gcPauses > 0 ? `; ${c.gcPauses.toLocaleString('en-US')} GC pauses, ${fmt(c.gcPauseMs, 0)} ms` : ''}${c.stallsFelt > 0 ? `; ${c.stallsFelt.toLocaleString('en-US')} host stalls felt, ${fmt(c.stallMs, 0)} ms` : ''}`)
  }
  if (result.healCurve !== undefined) lines.push(`  partition healed: all honest nodes hold every tx ${result.healConvergedMs === undefined ? 'NOT within the run' : `${fmt(result.healConvergedMs, 0)} ms after the heal`}`)
  lines.push(
    `  run: ${fmt(result.virtualMs / 1000)} s virtual, ${fmt(result.wallMs / 1000)} s wall (${fmt(result.cpuMs / 1000)} s CPU), ${result.events.toLocaleString('en-US')} events, ${result.settles.toLocaleString('en-US')} settles`,
    `  memory per node: ${fmt(result.memory.bytesPerNode / 1024)} KiB heap at setup, ${fmt(result.memory.heapPerNodeAtEnd / 1024)} KiB heap + arrays at the end, ${fmt(result.memory.rssPerNode / 1024)} KiB peak RSS ÷ nodes; heap ${fmt(result.memory.heapUsedBytes / 2 ** 20, 0)} MiB, peak RSS ${fmt(result.memory.peakRssBytes / 2 ** 20, 0)} MiB`,
    '  what is real, modelled and replaced:',
    ...result.substitutions.map((line) => `    - ${line}`),
  )
  return lines.join('\n')
}

/** Writes sim.json and the charts; returns the files written. */
export function writeOutputs(result: SimResult, dir: string): string[] {
  mkdirSync(dir, { recursive: true })
  const files: Array<[string, string]> = [
    ['sim.json', JSON.stringify(result, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value), 2)],
    ['delivery.svg', lineChart(`Share of honest nodes holding a tx vs time since injection (${result.options.strategy}, ${result.options.nodes} nodes)`, 'ms since injection', 'share of (node, tx) pairs', [{ name: result.options.strategy, points: result.deliveryCurve }], 1)],
    ['hops.svg', barChart('Hops from the origin (honest nodes)', 'hops', '(node, tx) pairs', result.hops.histogram.map((_, i) => String(i)), result.hops.histogram)],
  ]
  if (result.healCurve !== undefined) files.push(['heal.svg', lineChart('Convergence after the partition heals', 'ms since heal', 'share of (node, tx) pairs', [{ name: 'delivered', points: result.healCurve }], 1)])
  for (const [name, text] of files) writeFileSync(join(dir, name), text)
  return files.map(([name]) => join(dir, name))
}

export async function simMain(argv: readonly string[], out: (line: string) => void, err: NodeJS.WriteStream): Promise<number> {
  let args: SimCliArgs
  try {
    args = parseSimArgs(argv)
  } catch (error) {
    out((error as Error).message)
    out(SIM_USAGE)
    return 2
  }
  if (args.help) {
    out(SIM_USAGE)
    return 0
  }
  const tty = err.isTTY === true
  let lastPrint = 0
  const result = await runSim(args.options, (progress) => {
    if (args.quiet) return
    const line = progressBar(progress)
    if (tty) err.write(`\r${line}`)
    else if (progress.wallMs - lastPrint > 10_000) {
      lastPrint = progress.wallMs
      err.write(`${line}\n`)
    }
  })
  if (tty && !args.quiet) err.write('\n')
  out(summarize(result))
  for (const file of writeOutputs(result, args.out)) out(`  wrote ${file}`)
  return 0
}
