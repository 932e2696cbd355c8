// How often, and for how long, this machine takes the CPU away from a busy process: the stalls a
// node's event loop suffers that no profile of the node shows (a VM's vCPU descheduled by its
// hypervisor — /proc/stat's `steal` — or the OS running something else on the core). A probe
// spins on one core for `--seconds` reading the clock, with no allocation in the loop, and keeps
// every gap between two reads above `--min-ms`: each is time the process was not running.
//
//   node --import tsx scripts/bench/host-stalls.ts [--seconds 30] [--warmup 12] [--min-ms 1] [--core 0] [--json]
//
// The first `--warmup` seconds are spun and not counted: the probe process's own start-up work
// (module loading, JIT tiers, V8's first heap housekeeping) stops it at the same offsets in every
// run — around 8–9.5 s here — and is not the machine's doing.
// Run it on a quiet machine (nothing else busy): it measures the machine, not a neighbour's load.
// Printed: stalls per second, their length ventiles, the share of the time lost, and the steal
// share /proc/stat reported meanwhile. The simulator's host-stall model (src/sim/cpu-costs.ts,
// `CALIBRATED_HOST_STALLS`) holds these figures.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'

const arg = (name: string, fallback: string): string => (process.argv.includes(name) ? (process.argv[process.argv.indexOf(name) + 1] ?? fallback) : fallback)
const SECONDS = Number(arg('--seconds', '30'))
const MIN_MS = Number(arg('--min-ms', '1'))
const CORE = arg('--core', '0')
const WARMUP_SECONDS = Number(arg('--warmup', '12'))

/** /proc/stat's aggregate CPU line: busy (user+nice+system+irq+softirq), steal and total jiffies. */
function cpuTimes(): { busy: number; steal: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
    const [, user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number)
    const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)
    return { busy, steal: steal ?? 0, total: busy + (idle ?? 0) + (iowait ?? 0) + (steal ?? 0) }
  } catch {
    return undefined
  }
}

function pin(): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', CORE, String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Spins for `seconds`; returns the gaps above `minMs` (ms) and when each began (ms from the start). */
function spin(seconds: number, minMs: number): { gaps: Float64Array; at: Float64Array; count: number; wallMs: number } {
  const capacity = 1_000_000
  const gaps = new Float64Array(capacity)
  const at = new Float64Array(capacity)
  let count = 0
  const start = performance.now()
  const end = start + seconds * 1000
  let last = start
  for (;;) {
    const now = performance.now()
    const gap = now - last
    if (gap > minMs && count < capacity) {
      gaps[count] = gap
      at[count] = last - start
      count++
    }
    last = now
    if (now >= end) break
  }
  return { gaps, at, count, wallMs: last - start }
}

const pinned = pin()
spin(WARMUP_SECONDS, MIN_MS)
const before = cpuTimes()
const load = loadavg()[0] ?? 0
const { gaps, at, count, wallMs } = spin(SECONDS, MIN_MS)
const after = cpuTimes()
const lengths = Array.from(gaps.subarray(0, count)).sort((a, b) => a - b)
const lostMs = lengths.reduce((sum, gap) => sum + gap, 0)
const ventiles = Array.from({ length: 20 }, (_, k) => lengths[Math.min(lengths.length - 1, Math.floor(((k + 0.5) / 20) * lengths.length))] ?? 0)
const steal = before !== undefined && after !== undefined && after.total > before.total ? (after.steal - before.steal) / (after.total - before.total) : undefined
const summary = {
  seconds: wallMs / 1000,
  pinned,
  loadAtStart: Number(load.toFixed(2)),
  minMs: MIN_MS,
  stalls: count,
  stallsPerSecond: Number((count / (wallMs / 1000)).toFixed(3)),
  lostShare: Number((lostMs / wallMs).toFixed(4)),
  longestMs: Number((lengths[lengths.length - 1] ?? 0).toFixed(2)),
  ventilesMs: ventiles.map((v) => Number(v.toFixed(2))),
  stealShareOfMachine: steal === undefined ? null : Number(steal.toFixed(4)),
  /** When the 10 longest began (ms from the start): bunched or spread. */
  longestAtMs: Array.from(at.subarray(0, count))
    .map((when, i) => [when, gaps[i] as number] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([when, gap]) => `${when.toFixed(0)}:${gap.toFixed(1)}`),
}
if (process.argv.includes('--json')) console.log(JSON.stringify(summary))
else {
  console.log(`host stalls: a busy probe on core ${CORE}${pinned ? '' : ' (not pinned: taskset unavailable)'} for ${summary.seconds.toFixed(1)} s after ${WARMUP_SECONDS} s of warm-up, load ${summary.loadAtStart} at start; gaps over ${MIN_MS} ms`)
  console.log(`  ${count} stalls (${summary.stallsPerSecond}/s), ${(100 * summary.lostShare).toFixed(2)} % of the time lost, longest ${summary.longestMs} ms`)
  console.log(`  length ventiles (ms): ${summary.ventilesMs.join(' ')}`)
  console.log(`  steal (whole machine, /proc/stat): ${summary.stealShareOfMachine === null ? 'n/a' : `${(100 * summary.stealShareOfMachine).toFixed(2)} %`}`)
  console.log(`  longest (start ms:length ms): ${summary.longestAtMs.join(' ')}`)
}
