// Where the real network's latency tail comes from: reads the timeline propagation.ts writes with
// `--phase grapevine --trace FILE` (or `--trace FILE` on a full run) and prints, per mechanism the
// simulator might be missing, how much of the slow transactions it accounts for.
//
//   node --import tsx scripts/bench/sim-tail.ts FILE [FILE …]
//
// For each trace: the event loop's delay and lag, every GC pause, the injection loop's lateness,
// the main thread's CPU per 500 ms (from /proc), libp2p's connection-monitor rounds (each node
// pings all its connections 10 s after its libp2p started and every 10 s after), and the slowest
// 10 % / 1 % of transactions: how many were injected within `ROUND_WINDOW_MS` after a round
// began, how many among the first 50, how long a GC pause overlapped them, how late they were
// injected; the major GCs and how many of the slowest overlap their marking cycles. Then the
// percentiles with the round windows left out.
import { readFileSync } from 'node:fs'
import { printTable } from './util.ts'

interface Trace {
  txs: Array<{ index: number; origin: number; dueMs: number; injectedMs: number; arrivalsMs: number[] }>
  gc: Array<{ startMs: number; durationMs: number; kind: number }>
  lag: Array<[number, number]>
  windows: Array<[number, number, number, number, number, number, number]>
  nodeStartedMs?: number[]
  loopDelay: { meanMs: number; p50Ms: number; p99Ms: number; maxMs: number }
  cpuMs: number
  wallMs: number
}

/** libp2p's DEFAULT_PING_INTERVAL_MS. */
const PING_INTERVAL_MS = 10_000
/** How long before a major GC's final pause its marking cycle is taken to slow the main thread. */
const MAJOR_CYCLE_MS = 300
/** A tx injected this soon after a monitor round began counts as "in a round". */
const ROUND_WINDOW_MS = 1_500

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
const f = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : '—')

function analyse(file: string): void {
  const trace = JSON.parse(readFileSync(file, 'utf8')) as Trace
  const t0 = trace.txs[0]?.dueMs ?? 0
  const end = Math.max(...trace.txs.map((tx) => tx.arrivalsMs[tx.arrivalsMs.length - 1] ?? tx.injectedMs))
  const txs = trace.txs.map((tx) => ({ ...tx, latencyMs: (tx.arrivalsMs[tx.arrivalsMs.length - 1] ?? Number.NaN) - tx.injectedMs, lateMs: tx.injectedMs - tx.dueMs }))
  const sorted = txs.map((tx) => tx.latencyMs).sort((a, b) => a - b)
  console.log(`\n${file}: ${txs.length} txs; all-nodes latency p50 ${f(pct(sorted, 50))}, p90 ${f(pct(sorted, 90))}, p99 ${f(pct(sorted, 99))}, max ${f(sorted[sorted.length - 1] ?? Number.NaN)} ms`)

  // Monitor rounds inside the measured part: each node's start + k × interval.
  const rounds: number[] = []
  for (const started of trace.nodeStartedMs ?? []) for (let at = started + PING_INTERVAL_MS; at < end; at += PING_INTERVAL_MS) if (at >= t0 - ROUND_WINDOW_MS) rounds.push(at)
  rounds.sort((a, b) => a - b)
  const roundSpans: Array<[number, number]> = []
  for (const at of rounds) {
    const last = roundSpans[roundSpans.length - 1]
    if (last !== undefined && at - last[1] < 2_000) last[1] = at
    else roundSpans.push([at, at])
  }
  const inRound = (at: number): boolean => roundSpans.some(([first, last]) => at >= first && at < last + ROUND_WINDOW_MS)

  const gcDurations = trace.gc.map((g) => g.durationMs).sort((a, b) => a - b)
  const gcSum = gcDurations.reduce((sum, d) => sum + d, 0)
  const lags = trace.lag.map(([, late]) => late).sort((a, b) => a - b)
  const late = txs.map((tx) => tx.lateMs).sort((a, b) => a - b)
  printTable(
    ['measure', 'value'],
    [
      ['event-loop delay (monitorEventLoopDelay): mean / p50 / p99 / max ms', `${f(trace.loopDelay.meanMs, 2)} / ${f(trace.loopDelay.p50Ms, 2)} / ${f(trace.loopDelay.p99Ms, 2)} / ${f(trace.loopDelay.maxMs)}`],
      ['1 ms timer lateness: p50 / p99 / max ms; samples > 20 ms', `${f(pct(lags, 50), 2)} / ${f(pct(lags, 99), 2)} / ${f(lags[lags.length - 1] ?? Number.NaN)}; ${lags.filter((l) => l > 20).length}`],
      ['GC pauses: count (kinds) / sum / median / max ms', `${trace.gc.length} (${[...new Set(trace.gc.map((g) => g.kind))].join(', ')}) / ${f(gcSum)} / ${f(pct(gcDurations, 50), 2)} / ${f(gcDurations[gcDurations.length - 1] ?? Number.NaN)}`],
      ['GC pauses per tx; share of wall time', `${f(trace.gc.length / txs.length, 3)}; ${f((100 * gcSum) / trace.wallMs, 2)} %`],
      ['injection lateness p50 / p99 / max ms', `${f(pct(late, 50), 2)} / ${f(pct(late, 99), 2)} / ${f(late[late.length - 1] ?? Number.NaN)}`],
      ['process CPU ÷ wall (all threads)', f(trace.cpuMs / trace.wallMs, 2)],
      ['connection-monitor rounds (ms from the first injection)', roundSpans.map(([a, b]) => `${f(a - t0, 0)}–${f(b - t0, 0)}`).join(', ')],
    ],
  )

  // Main-thread CPU per 500 ms, in and out of round windows.
  const windows = trace.windows
  let inCpu = 0
  let inWall = 0
  let outCpu = 0
  let outWall = 0
  const blocks: string[] = []
  for (let start = t0; start < end; start += 500) {
    const inside = windows.filter(([at]) => at > start && at <= start + 500)
    const first = windows.filter(([at]) => at <= start).pop()
    const last = inside[inside.length - 1]
    if (first === undefined || last === undefined) continue
    const wall = last[0] - first[0]
    const cpu = last[6] - first[6]
    const elu = inside.reduce((sum, w) => sum + w[1], 0) / inside.length
    blocks.push(`${f((start - t0) / 1000, 1)}s ${f(cpu / wall, 2)}/${f(elu, 2)}${inRound(start) || inRound(start + 499) ? '*' : ''}`)
    if (inRound(start) || inRound(start + 499)) {
      inCpu += cpu
      inWall += wall
    } else {
      outCpu += cpu
      outWall += wall
    }
  }
  console.log(`  main-thread CPU ÷ wall / event-loop utilisation per 500 ms (* = within ${ROUND_WINDOW_MS} ms after a monitor round began):`)
  for (let i = 0; i < blocks.length; i += 8) console.log(`    ${blocks.slice(i, i + 8).join('  ')}`)
  console.log(`  main thread: ${f(outCpu / outWall, 3)} of wall outside the round windows, ${f(inCpu / inWall, 3)} inside; main-thread CPU per tx outside them ${f(outCpu / ((outWall / 1000) * (txs.length / ((end - t0) / 1000))), 1)} ms`)

  // The GC model of src/sim/cpu-costs.ts (GcCosts), over the measured part: pauses per ms of
  // main-thread work besides them, their ventiles, and their share of the main thread's CPU.
  const spanFirst = windows.filter(([at]) => at <= t0).pop() ?? windows[0]
  const spanLast = windows[windows.length - 1]
  if (spanFirst !== undefined && spanLast !== undefined) {
    const from = spanFirst[0]
    const to = spanLast[0]
    const pauses = trace.gc.filter((g) => g.startMs >= from && g.startMs < to).map((g) => g.durationMs).sort((a, b) => a - b)
    const pauseSum = pauses.reduce((sum, d) => sum + d, 0)
    const mainCpu = spanLast[6] - spanFirst[6]
    const ventiles = Array.from({ length: 20 }, (_, i) => pct(pauses, 2.5 + 5 * i))
    console.log(
      `  GC model (src/sim/cpu-costs.ts GcCosts), ${f((to - from) / 1000, 1)} s measured: ${pauses.length} pauses (${trace.gc.filter((g) => g.startMs >= from && g.startMs < to && g.kind === 1).length} scavenges) in ${f(mainCpu / 1000, 1)} s of main-thread CPU\n` +
        `    pausesPerWorkMs ${(pauses.length / Math.max(1, mainCpu - pauseSum)).toFixed(5)}, shareOfCpu ${(pauseSum / Math.max(1, mainCpu)).toFixed(4)}, pauseMs [${ventiles.map((v) => v.toFixed(2)).join(', ')}]`,
    )
  }

  // The slow txs: what they have in common.
  const byLatency = [...txs].sort((a, b) => b.latencyMs - a.latencyMs)
  const describe = (label: string, share: number): string[] => {
    const slow = byLatency.slice(0, Math.max(1, Math.round(share * txs.length)))
    const overlapGc = (tx: (typeof txs)[number]) => trace.gc.filter((g) => g.startMs < tx.injectedMs + tx.latencyMs && g.startMs + g.durationMs > tx.injectedMs).reduce((sum, g) => sum + g.durationMs, 0)
    const lateSlow = slow.map((tx) => tx.lateMs).sort((a, b) => a - b)
    return [
      label,
      String(slow.length),
      `${slow.filter((tx) => inRound(tx.injectedMs)).length}`,
      `${slow.filter((tx) => tx.index < 50).length}`,
      f(slow.reduce((sum, tx) => sum + overlapGc(tx), 0) / slow.length, 1),
      f(pct(lateSlow, 50), 1),
      f(slow[slow.length - 1]?.latencyMs ?? Number.NaN),
    ]
  }
  const roundShare = txs.filter((tx) => inRound(tx.injectedMs)).length / txs.length
  printTable(
    ['slowest', 'txs', `in a round window (${f(100 * roundShare, 0)} % of all txs)`, 'among the first 50', 'GC ms overlapping (mean)', 'injected late p50 ms', 'latency ≥ ms'],
    [describe('1 %', 0.01), describe('10 %', 0.1)],
  )
  // Major GCs (mark-compact, perf_hooks kind 4): each ends a marking cycle that slows the main
  // thread for a while before it (incremental steps, concurrent markers on the other core). The
  // slow txs that overlap one's last MAJOR_CYCLE_MS, and the percentiles without them.
  const majors = trace.gc.filter((g) => g.kind === 4 && g.startMs >= t0 && g.startMs < end)
  const nearMajor = (tx: (typeof txs)[number]): boolean => majors.some((g) => tx.injectedMs < g.startMs + g.durationMs && tx.injectedMs + tx.latencyMs > g.startMs - MAJOR_CYCLE_MS)
  const slowest = byLatency.slice(0, Math.max(1, Math.round(0.01 * txs.length)))
  const away = txs.filter((tx) => !nearMajor(tx)).map((tx) => tx.latencyMs).sort((a, b) => a - b)
  console.log(
    `  major GCs in the measured part: ${majors.length}${majors.length > 0 ? ` (at ${majors.map((g) => `${f((g.startMs - t0) / 1000, 1)} s: ${f(g.durationMs)} ms`).join(', ')})` : ''}; of the slowest 1 %, ${slowest.filter(nearMajor).length} of ${slowest.length} overlap one's last ${MAJOR_CYCLE_MS} ms; without the txs that do (${away.length} txs): p50 ${f(pct(away, 50))}, p90 ${f(pct(away, 90))}, p99 ${f(pct(away, 99))} ms`,
  )
  const outside = txs.filter((tx) => !inRound(tx.injectedMs)).map((tx) => tx.latencyMs).sort((a, b) => a - b)
  console.log(`  without the txs injected in a round window (${outside.length} txs): p50 ${f(pct(outside, 50))}, p90 ${f(pct(outside, 90))}, p99 ${f(pct(outside, 99))} ms`)
}

const files = process.argv.slice(2)
if (files.length === 0) {
  console.error('usage: node --import tsx scripts/bench/sim-tail.ts TRACE.json [TRACE.json …]   (traces from propagation.ts --trace FILE)')
  process.exit(2)
}
for (const file of files) analyse(file)
