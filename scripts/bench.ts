#!/usr/bin/env node
// npm run bench [-- --full] [-- --only NAME]: runs every script under scripts/bench (quick
// arguments by default, their own defaults with --full) and rewrites the generated part of
// docs/benchmarks.md (between the bench:generated markers): each script's printed figures, the
// machine, how to reproduce, the simulator's charts, and the simulator-vs-libp2p comparison at 16
// nodes. The hand-written analysis outside the markers is kept.
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Verdict } from './bench/util.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const argv = process.argv.slice(2)
const full = argv.includes('--full')
/** `--full-only sim.ts,propagation.ts`: full mode for just these scripts, quick for the rest. */
const fullOnly = argv.includes('--full-only') ? (argv[argv.indexOf('--full-only') + 1] ?? '').split(',') : []
const isFull = (script: string): boolean => full || fullOnly.includes(script) || fullOnly.includes(script.replace(/\.ts$/, ''))
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined
const DOC = join(root, 'docs/benchmarks.md')
const START = '<!-- bench:generated:start -->'
const END = '<!-- bench:generated:end -->'

/** Quick-mode arguments per script: small enough that the whole report takes minutes. */
const QUICK: Record<string, string[]> = {
  'verify.ts': ['--seconds', '0.5', '--keys', '64'],
  'ingest.ts': ['--seconds', '0.5', '--senders', '500'],
  'disk.ts': ['--accounts', '5000', '--transfers', '10000'],
  'prune.ts': ['--accounts', '20000', '--blocks', '256'],
  'block-import.ts': ['--accounts', '10000', '--txs', '1000', '--senders', '1000', '--rounds', '1'],
  'trie.ts': ['--accounts', '50000', '--updates', '2000'],
  'propagation.ts': ['--seconds', '20'],
  'sim-calibrate.ts': ['--frames', '800', '--items', '1500'],
  'sim-calibrate-ping.ts': ['--rounds', '10'],
  'host-stalls.ts': ['--seconds', '10'],
  'sync.ts': ['--accounts', '50000', '--blocks', '100'],
  'sim.ts': [],
  'attacks.ts': ['--txs', '60'],
  'join.ts': ['--accounts', '10000', '--heights', '1000,10000', '--repeat', '1'],
  'serve-leaves.ts': ['--accounts', '50000', '--pages', '30'],
  'stream-cost.ts': ['--streams', '2000', '--repeat', '1'],
}
/** Files under scripts/bench that are not benchmarks to run unattended, and why. */
const NOT_RUN: Record<string, string> = {
  'attacker.ts': 'the attackers attacks.ts forks, not a benchmark',
  'finality-lag-devnet.ts': 'measures a running devnet (`npm run devnet`, then `grapevine load`); run it by hand',
  'sim-tail.ts': 'reads traces written by `propagation.ts --trace FILE`; an analysis, run it by hand on them',
}
/** Full-mode extras (the scripts' own defaults otherwise). */
const FULL: Record<string, string[]> = { 'sim.ts': ['--full'] }

interface Ran {
  script: string
  args: string[]
  seconds: number
  status: number | null
  text: string
  json: unknown
  loadStart: number
}

const scripts = readdirSync(join(root, 'scripts/bench'))
  .filter((name) => name.endsWith('.ts') && name !== 'util.ts' && NOT_RUN[name] === undefined)
  .filter((name) => only === undefined || name.startsWith(only))
  .sort((a, b) => (a === 'sim.ts' ? 1 : b === 'sim.ts' ? -1 : a.localeCompare(b)))

const ran: Ran[] = []
for (const script of scripts) {
  const args = [...(isFull(script) ? (FULL[script] ?? []) : (QUICK[script] ?? [])), '--json']
  // The simulator compares itself with this run's propagation.ts figures, not its stored reference.
  const propagationRun = ran.find((r) => r.script === 'propagation.ts' && r.json !== undefined)
  if (script === 'sim.ts' && propagationRun !== undefined) {
    const file = join(tmpdir(), `grapevine-bench-propagation-${process.pid}.json`)
    writeFileSync(file, JSON.stringify(propagationRun.json))
    args.unshift('--real', file)
    // ... with the cost table this run's sim-calibrate.ts measured on this machine, not another's.
    const calibration = ran.find((r) => r.script === 'sim-calibrate.ts' && r.status === 0 && r.json !== undefined)
    if (calibration !== undefined) {
      const costs = join(tmpdir(), `grapevine-bench-sim-calibrate-${process.pid}.json`)
      writeFileSync(costs, JSON.stringify(calibration.json))
      args.unshift('--costs', costs)
    }
  }
  const loadStart = loadavg()[0] ?? 0
  process.stderr.write(`bench: ${script} ${args.join(' ')} …\n`)
  const started = Date.now()
  // Resolved on the child's exit, not on its pipes closing: a script's own child process that
  // outlives it (a server role) must not hold the report up.
  const child = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
    const proc = spawn(process.execPath, ['--expose-gc', '--max-semi-space-size=256', '--max-old-space-size=16000', '--import', 'tsx', join('scripts/bench', script), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let stdout = ''
    proc.stdout.setEncoding('utf8')
    proc.stdout.on('data', (chunk: string) => {
      stdout += chunk
    })
    proc.on('exit', (status) => {
      // Let buffered output arrive, then stop waiting for the pipe.
      setTimeout(() => {
        proc.stdout.destroy()
        resolve({ status, stdout })
      }, 200)
    })
  })
  const lines = (child.stdout ?? '').trimEnd().split('\n')
  let json: unknown
  const last = lines[lines.length - 1] ?? ''
  if (last.startsWith('{')) {
    json = JSON.parse(last)
    lines.pop()
  }
  const seconds = (Date.now() - started) / 1000
  ran.push({ script, args: args.filter((a) => a !== '--json'), seconds, status: child.status, text: lines.join('\n'), json, loadStart })
  process.stderr.write(`bench: ${script} done in ${seconds.toFixed(0)} s (exit ${child.status})\n`)
}

const cpu = cpus()[0]?.model ?? 'unknown CPU'
const machine = `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${process.platform}`
const section: string[] = [
  START,
  '',
  `## Generated report (\`npm run bench${full ? ' -- --full' : fullOnly.length > 0 ? ` -- --full-only ${fullOnly.join(',')}` : ''}\`)`,
  '',
  `_Written by \`scripts/bench.ts\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${full ? 'full mode' : fullOnly.length > 0 ? `quick mode except ${fullOnly.join(', ')} (full)` : 'quick mode'}. Everything between the markers is regenerated; the analysis elsewhere in this file is hand-written._`,
  '',
  `**Machine.** ${machine}. Load average (1 min) at the start of each script is given with it: the machine is shared, so throughput and wall times move with it.`,
  '',
  '**Reproduce.** `npm run bench` (quick: small arguments per script, minutes) or `npm run bench -- --full` (each script\'s own defaults; the simulator at 10,000 nodes); `npm run bench -- --full-only sim` for full mode on some scripts only; `npm run bench -- --only sim` for one script. Each script also runs alone: `node --import tsx scripts/bench/<name>.ts --help`.',
  '',
  `**Not run here.** ${Object.entries(NOT_RUN)
    .map(([name, why]) => `\`${name}\`: ${why}`)
    .join('; ')}.`,
  '',
]

// The simulator against the real libp2p network on the same 16-node workload (sim.ts judges it).
const simJson = ran.find((r) => r.script === 'sim.ts')?.json as { compare16Verdicts?: Verdict[]; compare16Real?: { source: string }; compare16Costs?: { source: string } } | undefined
if (simJson?.compare16Verdicts !== undefined) {
  section.push(
    '### Simulator vs the real network, 16 nodes (same workload as `propagation.ts`)',
    '',
    `Simulator: all 16 nodes on one host with one core (the CPU model; its cost table ${simJson.compare16Costs?.source === undefined || simJson.compare16Costs.source === 'committed' ? 'the committed one, measured on another machine (src/sim/cpu-costs.ts)' : 'measured on this machine by this run\'s `sim-calibrate.ts`'}); real: ${simJson.compare16Real?.source ?? 'propagation.ts'}. Tolerance: latency percentiles within ±30 % or ±10 ms, whichever is larger; bytes within ±15 %.`,
    '',
    '| metric | libp2p (propagation.ts) | simulator | sim ÷ real | allowed | within |',
    '|---|---|---|---|---|---|',
    ...simJson.compare16Verdicts.map((v) => `| ${v.metric} | ${v.real.toFixed(1)} | ${v.sim.toFixed(1)} | ${(v.sim / v.real).toFixed(2)} | ${v.allowed} | ${v.met ? 'yes' : '**NO**'} |`),
    '',
  )
}

for (const r of ran) {
  section.push(
    `### \`${r.script}\``,
    '',
    `\`node --import tsx scripts/bench/${r.script} ${r.args.join(' ')}\` — ${r.seconds.toFixed(0)} s, load average ${r.loadStart.toFixed(2)} at start${r.status === 0 ? '' : `, **exit ${r.status}**`}`,
    '',
    '```',
    r.text.trim(),
    '```',
    '',
  )
  if (r.script === 'sim.ts') {
    const charts = readdirSync(join(root, 'docs/sim')).filter((name) => name.endsWith('.svg')).sort()
    for (const name of charts) section.push(`![${name}](sim/${name})`, '')
  }
}
section.push(END)

const doc = readFileSync(DOC, 'utf8')
const start = doc.indexOf(START)
const end = doc.indexOf(END)
const generated = section.join('\n')
const next = start >= 0 && end > start ? doc.slice(0, start) + generated + doc.slice(end + END.length) : `${doc.trimEnd()}\n\n${generated}\n`
writeFileSync(DOC, next)
process.stderr.write(`bench: rewrote docs/benchmarks.md (${ran.length} scripts)\n`)
