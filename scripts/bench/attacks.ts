/**
 * Attack benchmark: a 3-validator devnet on loopback (real libp2p, one process), node 0 the
 * victim. For each attack, honest transactions are sent through node 1 while the attack runs;
 * printed: honest delivery ratio (every node has the tx within 10 s), p50/p99 propagation latency
 * against the baseline, the victim's share of its leader slots that land on the chain, the time
 * until every attacker is cut off (graylisted, disconnected or banned), and the process's peak RSS
 * and CPU of the devnet's process (the three nodes share it: the figures bound the victim's), and the
 * longest the event loop of that process was held up while the honest txs were measured. The
 * attackers run in a process of their own (scripts/bench/attacker.ts), so their CPU is not
 * counted and does not slow the victim down (on this 2-core machine they still compete for
 * cores). An attack starts once every attacker is admitted; it runs while the honest txs are
 * measured, and on until every attacker is cut off or WINDOW_MS (12 s, past the longest answer
 * deadline) have passed. The victim runs libp2p's default inbound connection threshold, as a real
 * node does (the other nodes raise it: they all share 127.0.0.1). The churn attack (fresh
 * identities from 20 hosts, each connecting and hanging up, the next dialling) has no standing
 * identity to cut off: its "cut off" is "-", and what it shows is what the churn costs the victim.
 *
 * On a machine of two or more cores with `taskset`, the devnet's process is pinned to core 0 and the
 * attackers' to core 1 (`--no-pin` leaves both free): an attacker runs on its own machine, and the
 * cores its own work takes from ours on a shared machine are not what the victim's defences
 * control — what its requests cost the victim is. The baseline runs pinned the same way.
 *
 * Every round of every attack runs in a fresh child process of this script (`--round`), the
 * devnet and its measurement there, as a real node carries no other node's garbage: in one process
 * the bench carried the heap of every devnet before it (up to 30 a run), and a major GC of that
 * heap (704 ms at ~730 MB of RSS, traced) set the p99 of about one round in five to ten. Peak RSS
 * is then the round's own process's (its warm-up devnet's leftovers included). Each round's
 * process first runs a throwaway devnet (`warmUp`, the same attack if any), so that the window
 * measures compiled code, as on a node that has run a while; `--cold` skips that.
 *
 * `--oracle-cutoff` bans every attacker at its first sync stream, told who they are: the lower bound
 * of what a sync attack costs on this stack, whatever the policy (see `cutOffAtFirstSyncStream`).
 *
 *   node --import tsx scripts/bench/attacks.ts [--txs 200] [--interval-ms 50] [--only 'inv flood'] [--repeat 3] [--no-pin] [--cold] [--oracle-cutoff]
 */
import '../../src/polyfill.ts'
import { execFileSync, fork } from 'node:child_process'
import { cpus, loadavg } from 'node:os'
import { type PerformanceEntry, PerformanceObserver, monitorEventLoopDelay, performance, constants as perfConstants } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { toHexKey } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { transfer } from '../../test/helpers/chain.ts'
import { type Devnet, blocksBy, cutOff, startDevnet } from '../../test/helpers/attack.ts'
import { hasTx, isAdmitted, net, sleep, statusLike, stopAll, waitFor } from '../../test/helpers/net.ts'
import { type AttackKind, type AttackerArgs, encodeView } from './attacker.ts'

const TXS = Number(process.argv.includes('--txs') ? process.argv[process.argv.indexOf('--txs') + 1] : 200)
/** Honest transfers are sent one per this many ms: 200 × 50 ms = a 10 s window, so "p99" is a percentile (the third slowest), not the one slowest. */
const INTERVAL_MS = Number(process.argv.includes('--interval-ms') ? process.argv[process.argv.indexOf('--interval-ms') + 1] : 50)
/** `--repeat N`: run every selected attack N times, in rounds, and print the medians too. */
const REPEAT = Math.max(1, Number(process.argv.includes('--repeat') ? process.argv[process.argv.indexOf('--repeat') + 1] : 1))
/** `--only <substring>`: run the baseline and the attacks whose name contains it (profiling one attack). */
const ONLY = process.argv.includes('--only') ? (process.argv[process.argv.indexOf('--only') + 1] ?? '') : undefined
/**
 * The devnet's age (ms after it is up) at which every round's measured window opens: above the
 * slowest attacker start-up seen (its process admitted by ~5 s of the devnet's age, the 1 s settle
 * included), so a baseline round and an attack round measure the same stretch of the devnet's
 * life. Before, attack windows opened 2–4 s later than the baseline's and alone held the first
 * prune (height 32; ~140 ms of three nodes' trie walks in one process), which set their p99
 * (7–8 s into the attack; a CPU profile of the window showed `mark` in src/chain/prune.ts).
 */
const WINDOW_AGE_MS = 7_000
/** Least attack window when an attacker is not yet cut off: above the 10 s maximal answer deadline. */
const WINDOW_MS = 12_000
/** Whether the devnet and the attackers run on cores of their own (see the header). */
const PIN = !process.argv.includes('--no-pin') && cpus().length >= 2 && pinTo(process.pid, '0')

/** Pins every thread of `pid` to `cpus` (taskset's list syntax); false when that is not possible here. */
function pinTo(pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
/**
 * `--oracle-cutoff`: a bound, not a defence. The victim is told who the attackers are and bans each
 * at its first sync stream (`cutOffAtFirstSyncStream`), so the round measures what the attack costs
 * when no policy could cut it off sooner: libp2p's own work for the streams and connections that
 * reach the victim before then, and the bans and hang-ups themselves.
 */
const ORACLE_CUTOFF = process.argv.includes('--oracle-cutoff')

/**
 * Bans each of `attackers` at the first sync stream it opens, before any of the node's code reads
 * it: a libp2p middleware on the victim's sync protocol (it runs after protocol negotiation and
 * libp2p's peer store update, where the node's handler would). The ban is a fatal offence, the
 * same score, ban and hang-up path as a real cut-off; SYNC_FORGED_STATE stands in for a code the
 * node has no reason to have.
 */
function cutOffAtFirstSyncStream(victim: RunningNode, attackers: string[]): void {
  const known = new Set(attackers)
  const handler = victim.services?.handler
  const network = net(victim)
  network.libp2p.use(network.protocols.sync, (stream, connection, next) => {
    const id = connection.remotePeer.toString()
    if (!known.has(id)) return next(stream, connection)
    handler?.offence(id, 'SYNC_FORGED_STATE', 'oracle cut-off (bench)')
    // Thrown, libp2p aborts the stream.
    throw new Error('oracle cut-off')
  })
}

interface Attack {
  name: string
  /** What the attacker process does (scripts/bench/attacker.ts), and with how many identities. */
  attacker?: { kind: AttackKind; count: number }
}

/** A running attacker process: its peer ids (admitted by the victim), then `go` and `stop`. */
interface Attackers {
  peerIds: string[]
  go(): void
  /** Stops them; resolves with the attacker process's CPU % while it attacked. */
  stop(): Promise<number | undefined>
}

/**
 * Spawns the attackers in their own process (scripts/bench/attacker.ts) and waits until the victim
 * has admitted every one; they attack on `go`. Keeps them told of the victim's head (status and
 * state root) every 250 ms.
 */
async function spawnAttackers(devnet: Devnet, kind: AttackKind, count: number): Promise<Attackers> {
  const victim = devnet.victim
  const view = () => encodeView(statusLike(victim.node), victim.node.chain.head.header.stateRoot)
  const args: AttackerArgs = {
    kind,
    count,
    victimAddress: net(victim).listenAddresses()[0] as string,
    genesisHashHex: toHexKey(victim.node.chain.genesisHash),
    chainId: victim.node.genesis.chainId,
    ...view(),
  }
  const child = fork(fileURLToPath(new URL('./attacker.ts', import.meta.url)), [JSON.stringify(args)], {
    execArgv: ['--import', 'tsx', '--import', './test/setup.ts'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  if (PIN && child.pid !== undefined) pinTo(child.pid, '1')
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const peerIds = await new Promise<string[]>((resolve, reject) => {
    child.once('message', (message: { peers?: string[] }) => resolve(message.peers ?? []))
    child.once('exit', (code) => reject(new Error(`attacker process exited (${code}) before dialling`)))
  })
  await waitFor('the attackers admitted', () => peerIds.every((id) => isAdmitted(net(victim), id)), { timeoutMs: 20_000 })
  if (ORACLE_CUTOFF) cutOffAtFirstSyncStream(victim, peerIds)
  const ticker = setInterval(() => child.connected && child.send(view()), 250)
  return {
    peerIds,
    go: () => child.send({ go: true }),
    stop: async () => {
      clearInterval(ticker)
      let cpuPercent: number | undefined
      child.on('message', (message: { cpuPercent?: number }) => {
        if (message.cpuPercent !== undefined) cpuPercent = message.cpuPercent
      })
      if (child.connected) child.send({ stop: true })
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(killer)
      return cpuPercent
    },
  }
}

const ATTACKS: Attack[] = [
  { name: 'baseline (no attack)' },
  { name: 'inv flood, getdata never answered (1 peer)', attacker: { kind: 'inv', count: 1 } },
  { name: 'sync-request spam, getLeaves 65,536 (1 peer)', attacker: { kind: 'sync', count: 1 } },
  { name: 'sync-request spam, getLeaves 65,536 (20 peers)', attacker: { kind: 'sync', count: 20 } },
  { name: 'ask and never read (4 peers)', attacker: { kind: 'unread', count: 4 } },
  { name: 'unfunded valid-signature txs + duplicates (1 peer)', attacker: { kind: 'unfunded', count: 1 } },
  { name: 'fresh identities, connect and hang up (20 hosts)', attacker: { kind: 'churn', count: 20 } },
]

/** perf_hooks' GC kinds (NODE_PERFORMANCE_GC_*), by their value. */
const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
}

/** Nearest-rank percentile: the smallest value with at least p % of the values at or below it. */
function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

/** One round of one attack: its table row and every delivered transfer's latency (for the pooled figures). */
interface RoundResult {
  row: Record<string, string | number>
  latencies: number[]
}

/**
 * The devnet every round measures, and its warm-up runs first: 3 validators, 8,000 funded accounts,
 * 400 ms slots. The victim keeps libp2p's default inbound connection threshold (5 per second per
 * host), as a real node does; the loopback devnet raises it for every node only because honest
 * nodes all share 127.0.0.1 (each attacker here dials from its own 127.x.0.1).
 */
const startBenchDevnet = (): Promise<Devnet> => startDevnet(3, { fundedCount: 8_000, slotMs: 400, victim: { network: {} } })

/** `--cold`: no warm-up devnet before the measured one (see `warmUp`). */
const COLD = process.argv.includes('--cold')
/** How long the warm-up devnet runs: every round's process is this much older when its window opens. */
const WARM_UP_MS = 8_000

/**
 * Runs a throwaway devnet for WARM_UP_MS in this (fresh) process before the measured one, under
 * `attack` if it has attackers (until they are cut off, at most 3 s), so that the code the round
 * drives (the node's paths, and the refusals, offences and disconnects the attack causes) is
 * compiled before the measured window: a node that has run a while has met such peers before. A
 * baseline round warms up the same length of time, without attackers, so that every round's
 * window opens in a process of the same age. Without it (`--cold`) the round measures a
 * process's first seconds: code not yet optimized, V8's compiler threads on the devnet's one
 * pinned core with the main thread.
 */
async function warmUp(attack: Attack): Promise<void> {
  if (COLD) return
  const began = Date.now()
  const devnet = await startBenchDevnet()
  try {
    await sleep(1_000)
    if (attack.attacker !== undefined) {
      const spawned = await spawnAttackers(devnet, attack.attacker.kind, attack.attacker.count)
      spawned.go()
      const started = Date.now()
      while (Date.now() - started < 3_000 && !spawned.peerIds.every((id) => cutOff(devnet.victim, id))) await sleep(50)
      await spawned.stop()
    }
    await sleep(Math.max(0, began + WARM_UP_MS - Date.now()))
  } finally {
    await stopAll(devnet.nodes)
  }
}

async function run(attack: Attack, sender: number): Promise<RoundResult> {
  await warmUp(attack)
  const devnet = await startBenchDevnet()
  const devnetUpAt = Date.now()
  try {
    const victim = devnet.victim
    const via = devnet.nodes[1] as RunningNode
    await sleep(1_000)
    const rssAtStart = process.memoryUsage().rss
    let peakRss = rssAtStart
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100)
    const cpuBefore = process.cpuUsage()
    const wallBefore = Date.now()
    const startHeight = via.node.chain.head.header.height
    const startSlot = victim.node.chain.schedule.slotAt(Date.now())
    const spawned = attack.attacker === undefined ? undefined : await spawnAttackers(devnet, attack.attacker.kind, attack.attacker.count)
    const attackers = spawned?.peerIds ?? []
    // Every round's window opens at the same age of its devnet (WINDOW_AGE_MS), with or without an
    // attacker process to start first: the devnet's own periodic work (the first prune, at height
    // 32) then falls in every round's window alike, not only in those that waited for attackers.
    const waitMs = devnetUpAt + WINDOW_AGE_MS - Date.now()
    if (waitMs > 0) await sleep(waitMs)
    else process.stderr.write(`note: ${attack.name}: the attackers took until ${WINDOW_AGE_MS - waitMs} ms of the devnet's age (window age ${WINDOW_AGE_MS} ms)\n`)
    // The clock starts when the admitted attackers start attacking.
    const started = Date.now()
    spawned?.go()
    let cutOffMs: number | undefined
    const watch = setInterval(() => {
      if (cutOffMs === undefined && attackers.length > 0 && attackers.every((id) => cutOff(victim, id))) cutOffMs = Date.now() - started
    }, 20)
    // ATTACK_TRACE: the process's CPU use per 100 ms over the first 3 s of the attack (what the attack's start costs).
    const cpuTimeline: number[] = []
    let lastCpu = process.cpuUsage()
    const cpuSampler = process.env.ATTACK_TRACE
      ? setInterval(() => {
          const now = process.cpuUsage()
          if (cpuTimeline.length < 30) cpuTimeline.push(Math.round((now.user + now.system - lastCpu.user - lastCpu.system) / 1000))
          lastCpu = now
        }, 100)
      : undefined
    // ATTACK_TRACE: GC pauses of 5 ms or more (offset from the attack's start : duration : kind).
    const gcPauses: string[] = []
    const gcObserver = process.env.ATTACK_TRACE
      ? new PerformanceObserver((list) => {
          for (const entry of list.getEntries()) {
            if (entry.duration >= 5) gcPauses.push(`${Math.round(performance.timeOrigin + entry.startTime - started)}:${Math.round(entry.duration)}:${GC_KINDS[(entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0] ?? '?'}`)
          }
        })
      : undefined
    gcObserver?.observe({ entryTypes: ['gc'] })
    const loopLag = monitorEventLoopDelay({ resolution: 5 })
    loopLag.enable()
    const latencies: number[] = []
    const trace: string[] = []
    let delivered = 0
    await Promise.all(
      Array.from({ length: TXS }, async (_, i) => {
        await sleep(i * INTERVAL_MS)
        const signed = transfer(sender, devKeypair(7_777).publicKey, 1n, i, 1n, via.node.genesis.chainId)
        const sentAt = Date.now()
        await via.node.submitTx(signed.bytes).catch(() => undefined)
        while (Date.now() - sentAt < 10_000) {
          if (devnet.nodes.every((node) => hasTx(node.node, signed.idHex))) {
            delivered++
            latencies.push(Date.now() - sentAt)
            if (process.env.ATTACK_TRACE) trace.push(`${sentAt - started}:${Date.now() - sentAt}`)
            return
          }
          await sleep(5)
        }
      }),
    )
    loopLag.disable()
    if (process.env.ATTACK_TRACE) {
      clearInterval(cpuSampler)
      gcObserver?.disconnect()
      process.stderr.write(`window opened at ${started} (epoch ms), ${process.hrtime.bigint() / 1000n - BigInt(Date.now() - started) * 1000n} µs of hrtime (the clock of a --cpu-prof profile)\ntrace ${attack.name}: ${trace.join(' ')}\ncpu ms per 100 ms: ${cpuTimeline.join(' ')}\ngc pauses ≥ 5 ms (at:ms:kind): ${gcPauses.join(' ')}\n`)
      // What the victim did about it: sync messages by kind, limit hits, offences, refusals, busy answers.
      const counts = async (metric: { get(): Promise<{ values: Array<{ labels: Record<string, string | number | undefined>; value: number }> }> }) =>
        (await metric.get()).values.filter((v) => v.value > 0).map((v) => `${Object.values(v.labels).join('/')}=${v.value}`).join(' ')
      const m = victim.metrics
      process.stderr.write(`victim: messages ${await counts(m.messages)}\n  limit hits ${await counts(m.limitHits)}\n  offences ${await counts(m.offences)}\n  refusals ${await counts(m.refusals)}\n  busy ${await counts(m.serveBusy)}\n`)
    }
    await sleep(1_500)
    // The window covers the longest answer deadline (10 s) with margin: the attack runs until every
    // attacker is cut off or WINDOW_MS have passed since it started, so a cut-off by deadline shows.
    while (attackers.length > 0 && cutOffMs === undefined && Date.now() - started < WINDOW_MS) await sleep(50)
    const endSlot = victim.node.chain.schedule.slotAt(Date.now()) - 2
    let led = 0
    const victimAddress = Buffer.from(devKeypair(0).publicKey).toString('hex')
    for (let slot = startSlot + 1; slot <= endSlot; slot++) if (Buffer.from(victim.node.chain.schedule.leaderFor(slot).address).toString('hex') === victimAddress) led++
    const landed = blocksBy(via, 0, startHeight)
    clearInterval(watch)
    clearInterval(sampler)
    const cpu = process.cpuUsage(cpuBefore)
    const wall = Date.now() - wallBefore
    const attackerCpu = await spawned?.stop()
    const row = {
      attack: attack.name,
      delivery: `${((100 * delivered) / TXS).toFixed(1)}%`,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      victimSlotsLanded: `${landed}/${led}`,
      cutOffMs: attackers.length === 0 ? '-' : (cutOffMs ?? 'not cut off'),
      peakRssMiB: Math.round(peakRss / (1024 * 1024)),
      // What the attack window added to the devnet's own (each round has a process of its own).
      rssGrowthMiB: Math.round((peakRss - rssAtStart) / (1024 * 1024)),
      loopLagMaxMs: Math.round(loopLag.max / 1e6),
      cpuPercent: Math.round((100 * (cpu.user + cpu.system)) / 1000 / wall),
      attackerCpuPercent: attackerCpu ?? '-',
    }
    return { row, latencies }
  } finally {
    await stopAll(devnet.nodes)
  }
}

/** `--round INDEX SENDER` (internal): run ATTACKS[INDEX] once in this process, send the result to the parent, exit. */
const ROUND = process.argv.includes('--round') ? process.argv.slice(process.argv.indexOf('--round') + 1, process.argv.indexOf('--round') + 3).map(Number) : undefined
if (ROUND !== undefined) {
  const [index, sender] = ROUND as [number, number]
  const result = await run(ATTACKS[index] as Attack, sender)
  // Exit once the result is sent; nothing below runs in a round's process.
  await new Promise<never>(() => process.send?.(result, () => process.exit(0)))
}

/** Runs one round of `attack` in a fresh child process (see the header): this run's flags, pinned like this one. */
async function runInChild(attack: Attack, sender: number): Promise<RoundResult> {
  const child = fork(fileURLToPath(import.meta.url), [...process.argv.slice(2), '--round', String(ATTACKS.indexOf(attack)), String(sender)], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  if (PIN && child.pid !== undefined) pinTo(child.pid, '0')
  return new Promise<RoundResult>((resolve, reject) => {
    let result: RoundResult | undefined
    child.once('message', (message: RoundResult) => (result = message))
    child.once('exit', (code) => (result === undefined ? reject(new Error(`${attack.name}: the round's process exited (${code}) without a result`)) : resolve(result)))
  })
}

/**
 * Every delivered transfer's latency per attack, all rounds together (`--repeat`): one round's p99
 * is its third-slowest transfer of 200, so a single pause moves it; over N rounds the pooled p99
 * is the (2N)th-slowest of 200 N, steadier, and compared with the baseline's pooled the same way.
 * BOUNDED: one entry per attack.
 */
const pooled = new Map<string, number[]>()

const load = () => loadavg().map((value) => value.toFixed(2)).join(' ')
process.stdout.write(`load average at start: ${load()} (${cpus().length} cores; ${PIN ? 'devnet pinned to core 0, attackers to core 1' : 'not pinned'})\n`)
if (ORACLE_CUTOFF) process.stdout.write('--oracle-cutoff: every attacker is banned at its first sync stream, the victim told who they are (a bound, not a defence)\n')
const selected = ATTACKS.filter((attack) => ONLY === undefined || attack === ATTACKS[0] || attack.name.includes(ONLY))
/** Rounds of every selected attack (the baseline first in each), so load drift spreads over all of them. */
const rounds: Array<Array<Record<string, string | number>>> = []
let sender = 50
for (let round = 0; round < REPEAT; round++) {
  const rows: Array<Record<string, string | number>> = []
  for (const attack of selected) {
    const { row, latencies } = await runInChild(attack, sender++)
    rows.push(row)
    pooled.set(attack.name, [...(pooled.get(attack.name) ?? []), ...latencies])
    process.stdout.write(`${JSON.stringify({ round: round + 1, ...rows[rows.length - 1] })}\n`)
  }
  rounds.push(rows)
}
const header = '| attack | delivery | p50 ms | p99 ms | p99 vs baseline | victim slots landed | cut off (ms) | peak RSS MiB | CPU % | attacker CPU % | loop lag max ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n'
for (const [round, rows] of rounds.entries()) {
  const baseline = rows[0]?.p99Ms as number
  process.stdout.write(`\n${REPEAT > 1 ? `round ${round + 1}\n` : ''}${header}`)
  for (const row of rows) {
    const ratio = typeof row.p99Ms === 'number' && baseline > 0 ? `${(row.p99Ms / baseline).toFixed(2)}×` : '-'
    process.stdout.write(`| ${row.attack} | ${row.delivery} | ${row.p50Ms} | ${row.p99Ms} | ${ratio} | ${row.victimSlotsLanded} | ${row.cutOffMs} | ${row.peakRssMiB} | ${row.cpuPercent} | ${row.attackerCpuPercent} | ${row.loopLagMaxMs} |\n`)
  }
}
if (REPEAT > 1) {
  // Medians over the rounds: one round's p99 is its third-slowest tx, and a single GC pause or
  // descheduling moves it (baselines ranged 11–64 ms on this machine).
  const median = (values: number[]) => percentile(values, 50)
  const numbers = (index: number, key: string) => rounds.map((rows) => rows[index]?.[key]).filter((value): value is number => typeof value === 'number')
  const baseline = median(numbers(0, 'p99Ms'))
  // Paired: each round's p99 against the baseline round run just before it (the same round), so
  // the machine's drift between rounds (its speed moves by a third within half an hour) cancels.
  const roundRatios = (index: number) =>
    rounds.flatMap((rows) => {
      const own = rows[index]?.p99Ms
      const base = rows[0]?.p99Ms
      return typeof own === 'number' && typeof base === 'number' && base > 0 ? [own / base] : []
    })
  process.stdout.write(`\nmedian of ${REPEAT} rounds (range in brackets)\n| attack | worst delivery | p50 ms | p99 ms | p99 vs median baseline | p99 vs its round's baseline: median (rounds within 1.5×) | cut off (ms) | RSS growth MiB (max) | loop lag max ms |\n|---|---|---|---|---|---|---|---|---|\n`)
  for (const [index, attack] of selected.entries()) {
    const p99 = numbers(index, 'p99Ms')
    const ratios = roundRatios(index)
    const paired = `${median(ratios).toFixed(2)}× (${ratios.filter((ratio) => ratio <= 1.5).length}/${ratios.length})`
    const cut = numbers(index, 'cutOffMs')
    const worstDelivery = rounds.map((rows) => String(rows[index]?.delivery ?? '-')).sort()[0]
    process.stdout.write(
      `| ${attack.name} | ${worstDelivery} | ${median(numbers(index, 'p50Ms'))} | ${median(p99)} (${Math.min(...p99)}–${Math.max(...p99)}) | ${(median(p99) / baseline).toFixed(2)}× | ${paired} | ${cut.length > 0 ? `${median(cut)} (${Math.min(...cut)}–${Math.max(...cut)})` : '-'} | ${Math.max(...numbers(index, 'rssGrowthMiB'))} | ${median(numbers(index, 'loopLagMaxMs'))} |\n`,
    )
  }
}
if (REPEAT > 1) {
  const all = (name: string) => pooled.get(name) ?? []
  const baseline = percentile(all(selected[0]?.name ?? ''), 99)
  process.stdout.write(`\nall ${REPEAT} rounds pooled (every delivered transfer of every round together)\n| attack | transfers | p50 ms | p90 ms | p99 ms | p99 vs pooled baseline |\n|---|---|---|---|---|---|\n`)
  for (const attack of selected) {
    const latencies = all(attack.name)
    const p99 = percentile(latencies, 99)
    process.stdout.write(`| ${attack.name} | ${latencies.length} | ${percentile(latencies, 50)} | ${percentile(latencies, 90)} | ${p99} | ${baseline > 0 ? (p99 / baseline).toFixed(2) : '-'}× |\n`)
  }
}
process.stdout.write(`load average at end: ${load()}\n`)
process.exit(0)
