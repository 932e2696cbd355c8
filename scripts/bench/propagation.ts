// Transaction propagation: Grapevine rumor gossip vs @libp2p/gossipsub 17 on the same workload.
//
//   node --import tsx scripts/bench/propagation.ts [--nodes 16] [--degree 4] [--rate 20]
//        [--seconds 20] [--warmup 100] [--seed 1] [--announce-ms 25] [--json]
//        [--phase grapevine --trace FILE]
//
// N nodes on 127.0.0.1 in one process, each dialing `degree` random others (the same graph for
// both systems). Pre-signed transfers are injected at random nodes at `rate` tx/s, on one
// schedule of absolute due times: first `warmup` txs that are not measured (a fresh process runs
// its first second or two of gossip at ~1.5× the CPU per frame while the JIT warms up: measured
// with --trace, docs/benchmarks.md), then `rate × seconds` measured ones. For each measured tx:
// the time until every node has it (validated: signature checked, like a mempool admit), bytes
// written on all TCP sockets per tx per node, and duplicate full deliveries per tx per node.
// Each system runs in its own child process so neither inherits the other's heap.
import '../../src/polyfill.ts'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { type PerformanceEntry, PerformanceObserver, monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, TopicValidatorResult } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { checkTx, decodeTxInput } from '../../src/ledger/validation.ts'
import type { GossipEngine } from '../../src/gossip/engine.ts'
import { libp2pKeyFrom } from '../../src/net/identity.ts'
import type { Network } from '../../src/net/network.ts'
import { GrapevineNode } from '../../src/node/node.ts'
import { seededRandom as seeded } from '../../src/util/random.ts'
import { mainThreadCpuMs, propagationTopology, socketCollector, startBenchNetwork } from './util.ts'

interface Args {
  nodes: number
  degree: number
  rate: number
  seconds: number
  seed: number
  announceMs: number
  json: boolean
  phase: 'grapevine' | 'gossipsub' | undefined
  /** Transactions injected first, at the same rate, and not measured (JIT warm-up of the paths a fresh process has not run yet). */
  warmup: number
  /** Write the grapevine phase's timeline (per-tx times, GC pauses, event-loop lag) to this file. */
  trace: string | undefined
}

function parseArgs(argv: string[]): Args {
  const args: Args = { nodes: 16, degree: 4, rate: 20, seconds: 20, seed: 1, announceMs: 25, warmup: 100, json: false, phase: undefined, trace: undefined }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = argv[i + 1]
    if (flag === '--json') args.json = true
    else if (flag === '--phase') args.phase = value as Args['phase']
    else if (flag === '--trace') args.trace = value
    else if (flag === '--nodes') args.nodes = Number(value)
    else if (flag === '--degree') args.degree = Number(value)
    else if (flag === '--rate') args.rate = Number(value)
    else if (flag === '--seconds') args.seconds = Number(value)
    else if (flag === '--seed') args.seed = Number(value)
    else if (flag === '--announce-ms') args.announceMs = Number(value)
    else if (flag === '--warmup') args.warmup = Number(value)
    else continue
    if (flag !== '--json') i++
  }
  return args
}


function bytesWritten(sockets: Set<Socket>): number {
  let total = 0
  for (const socket of sockets) total += socket.bytesWritten
  return total
}

interface PhaseResult {
  system: string
  nodes: number
  edges: number
  txs: number
  complete: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  bytesPerTxPerNode: number
  duplicatesPerTxPerNode: number
  /** Grapevine: when each node's libp2p started, ms before (negative) the first measured injection: its connection monitor pings every connection 10 s later and every 10 s after (the simulator's comparison models that). */
  libp2pStartedMs?: number[]
  /** Grapevine: the main thread's CPU time (/proc) from the first measured injection until every tx arrived everywhere, per measured tx (ms). */
  mainThreadCpuPerTxMs?: number
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

const TOPIC = 'grapevine-bench-txs'
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms))

interface Workload {
  args: Args
  edges: Array<[number, number]>
  txs: SignedTx[]
  origins: number[]
  /** Injected before `txs`, at the same rate, not measured. */
  warmupTxs: SignedTx[]
  warmupOrigins: number[]
}

function buildWorkload(args: Args): Workload {
  const count = Math.round(args.rate * args.seconds)
  // The graph and the origins, drawn as the simulator's comparison (scripts/bench/sim.ts) draws them.
  const { edges, origins } = propagationTopology(args.nodes, args.degree, count, args.seed)
  const transfer = (i: number) => signTransfer({ chainId: 'grapevine-devnet', from: devKeypair(1000 + i), to: devKeypair(7).publicKey, amount: 1n, fee: 1n, nonce: 0 })
  const txs: SignedTx[] = []
  for (let i = 0; i < count; i++) txs.push(transfer(i))
  // Warm-up: other senders, origins from another seeded draw (the measured origins stay the simulator's).
  const warmupTxs: SignedTx[] = []
  const warmupOrigins: number[] = []
  const random = seeded(args.seed * 7_919 + 13)
  for (let i = 0; i < args.warmup; i++) {
    warmupTxs.push(transfer(count + i))
    warmupOrigins.push(Math.floor(random() * args.nodes))
  }
  return { args, edges, txs, origins, warmupTxs, warmupOrigins }
}

/**
 * Injects the warm-up txs and then the measured ones at the configured rate, on one schedule of
 * absolute due times, and waits for propagation to settle; returns per-tx all-node latency of the
 * measured txs. `onMeasured` is called just before the first measured injection.
 */
async function drive(
  workload: Workload,
  inject: (node: number, tx: SignedTx) => void,
  arrivals: Map<string, number[]>,
  onMeasured: () => void,
  trace?: PropagationTrace,
): Promise<{ latencies: number[]; complete: number }> {
  const { args, txs, origins, warmupTxs, warmupOrigins } = workload
  const injectedAt = new Map<string, number>()
  const dueAt = new Map<string, number>()
  const intervalMs = 1000 / args.rate
  const warmupStart = performance.now()
  for (let i = 0; i < warmupTxs.length; i++) {
    const wait = warmupStart + i * intervalMs - performance.now()
    if (wait > 1) await sleep(wait)
    inject(warmupOrigins[i] as number, warmupTxs[i] as SignedTx)
  }
  const start = warmupStart + warmupTxs.length * intervalMs
  const wait = start - performance.now()
  if (wait > 1) await sleep(wait)
  onMeasured()
  for (let i = 0; i < txs.length; i++) {
    const due = start + i * intervalMs
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    const tx = txs[i] as SignedTx
    dueAt.set(tx.idHex, due)
    injectedAt.set(tx.idHex, performance.now())
    inject(origins[i] as number, tx)
  }
  const deadline = performance.now() + 10_000
  while (performance.now() < deadline) {
    let done = 0
    for (const tx of txs) if ((arrivals.get(tx.idHex)?.length ?? 0) >= args.nodes) done++
    if (done === txs.length) break
    await sleep(100)
  }
  const latencies: number[] = []
  let complete = 0
  for (const tx of txs) {
    const times = arrivals.get(tx.idHex) ?? []
    if (times.length < args.nodes) continue
    complete++
    latencies.push(Math.max(...times) - (injectedAt.get(tx.idHex) as number))
  }
  latencies.sort((a, b) => a - b)
  if (trace !== undefined) {
    txs.forEach((tx, index) => {
      trace.txs.push({
        index,
        origin: origins[index] as number,
        dueMs: dueAt.get(tx.idHex) as number,
        injectedMs: injectedAt.get(tx.idHex) as number,
        arrivalsMs: [...(arrivals.get(tx.idHex) ?? [])].sort((a, b) => a - b),
      })
    })
  }
  return { latencies, complete }
}

/**
 * The grapevine phase's timeline (--trace FILE), to find where the slow txs lose their time: each
 * tx's due, injection and arrival times, every GC pause (PerformanceObserver 'gc'), and the
 * event loop's lag sampled by a 1 ms timer (how late it fired: the loop was busy that long),
 * all on performance.now()'s clock.
 */
interface PropagationTrace {
  txs: Array<{ index: number; origin: number; dueMs: number; injectedMs: number; arrivalsMs: number[] }>
  gc: Array<{ startMs: number; durationMs: number; kind: number }>
  /** [when a 1 ms timer was due, how many ms late it fired] */
  lag: Array<[number, number]>
  /** every 50 ms: [end of the window, event-loop utilisation, process CPU ms (all threads), wanted + in flight over the engines, duplicates so far, bytes written so far, main thread's CPU ms so far (/proc, 10 ms ticks)] */
  windows: Array<[number, number, number, number, number, number, number]>
  /** monitorEventLoopDelay over the injection and settling, ms */
  loopDelay: { minMs: number; meanMs: number; p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number }
  /** when each node's libp2p had started (its connection monitor pings every connection 10 s later, and every 10 s after) */
  nodeStartedMs: number[]
  /** V8 heap before and after the measured part, bytes */
  heapUsedBefore: number
  heapUsedAfter: number
  /** main-thread CPU time over the measured part (process.threadCpuUsage is not in Node 20: user+system of the process), ms */
  cpuMs: number
  wallMs: number
}


/** Starts the recorders of a PropagationTrace; the returned stop() fills and returns it. */
function startTrace(probe: () => [number, number, number]): { trace: PropagationTrace; stop: () => PropagationTrace } {
  const trace: PropagationTrace = {
    txs: [],
    gc: [],
    lag: [],
    windows: [],
    nodeStartedMs: [],
    loopDelay: { minMs: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 },
    heapUsedBefore: process.memoryUsage().heapUsed,
    heapUsedAfter: 0,
    cpuMs: 0,
    wallMs: 0,
  }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail
      trace.gc.push({ startMs: entry.startTime, durationMs: entry.duration, kind: detail?.kind ?? 0 })
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  let running = true
  let due = performance.now() + 1
  const sample = () => {
    const firedAt = performance.now()
    trace.lag.push([due, firedAt - due])
    if (!running) return
    due = firedAt + 1
    setTimeout(sample, 1)
  }
  setTimeout(sample, 1)
  let elu = performance.eventLoopUtilization()
  let cpu = process.cpuUsage()
  const windows = setInterval(() => {
    const eluNow = performance.eventLoopUtilization()
    const cpuNow = process.cpuUsage()
    trace.windows.push([performance.now(), performance.eventLoopUtilization(eluNow, elu).utilization, (cpuNow.user - cpu.user + cpuNow.system - cpu.system) / 1000, ...probe(), mainThreadCpuMs()])
    elu = eluNow
    cpu = cpuNow
  }, 50)
  const cpuBefore = process.cpuUsage()
  const wallBefore = performance.now()
  return {
    trace,
    stop: () => {
      running = false
      clearInterval(windows)
      histogram.disable()
      observer.disconnect()
      const ms = (ns: number) => ns / 1e6
      trace.loopDelay = {
        minMs: ms(histogram.min),
        meanMs: ms(histogram.mean),
        p50Ms: ms(histogram.percentile(50)),
        p90Ms: ms(histogram.percentile(90)),
        p99Ms: ms(histogram.percentile(99)),
        maxMs: ms(histogram.max),
      }
      const cpu = process.cpuUsage(cpuBefore)
      trace.cpuMs = (cpu.user + cpu.system) / 1000
      trace.wallMs = performance.now() - wallBefore
      trace.heapUsedAfter = process.memoryUsage().heapUsed
      return trace
    },
  }
}

async function runGrapevine(workload: Workload): Promise<PhaseResult> {
  const { args, edges, txs } = workload
  const genesis = devnetGenesis({ validatorCount: 4, genesisTime: Date.now(), fundedCount: 1000 + txs.length + workload.warmupTxs.length })
  const sockets = new Set<Socket>()
  const arrivals = new Map<string, number[]>()
  const nodes: GrapevineNode[] = []
  const networks: Network[] = []
  const engines: GossipEngine[] = []
  const stops: Array<() => void> = []
  const nodeStartedMs: number[] = []
  for (let i = 0; i < args.nodes; i++) {
    // Not validators: no blocks, so every tx stays pending and propagation alone is measured.
    const node = await GrapevineNode.open({ genesis })
    node.events.on('tx', (signed) => {
      const list = arrivals.get(signed.idHex) ?? []
      list.push(performance.now())
      arrivals.set(signed.idHex, list)
    })
    const { network, services } = await startBenchNetwork(
      node,
      devKeypair(5000 + i),
      { dht: false, targetPeers: 0, random: seeded(args.seed + i), transportMetrics: socketCollector(sockets) },
      { gossip: { announceBatchMs: args.announceMs } },
    )
    nodeStartedMs.push(performance.now())
    nodes.push(node)
    networks.push(network)
    engines.push(services.engine)
    stops.push(services.stop)
  }
  await Promise.all(edges.map(([a, b]) => (networks[a] as Network).dial((networks[b] as Network).listenAddresses()[0] as string)))
  const expected = new Map<number, number>()
  for (const [a, b] of edges) {
    expected.set(a, (expected.get(a) ?? 0) + 1)
    expected.set(b, (expected.get(b) ?? 0) + 1)
  }
  for (let tries = 0; tries < 100 && networks.some((n, i) => n.admittedPeers().length < (expected.get(i) ?? 0)); tries++) await sleep(100)
  await sleep(500)
  let bytesBefore = 0
  let duplicatesBefore = 0
  let measuredAt = 0
  let cpuBefore = 0
  const totalDuplicates = () => engines.reduce((sum, engine) => sum + engine.stats().duplicates, 0)
  const probe = (): [number, number, number] => {
    let waiting = 0
    let duplicates = 0
    for (const engine of engines) {
      const stats = engine.stats()
      waiting += stats.wanted + stats.inFlight
      duplicates += stats.duplicates
    }
    return [waiting, duplicates, bytesWritten(sockets)]
  }
  const tracing = args.trace === undefined ? undefined : startTrace(probe)
  tracing?.trace.nodeStartedMs.push(...nodeStartedMs)
  const onMeasured = () => {
    bytesBefore = bytesWritten(sockets)
    duplicatesBefore = totalDuplicates()
    measuredAt = performance.now()
    cpuBefore = mainThreadCpuMs()
  }
  const { latencies, complete } = await drive(workload, (node, tx) => void (nodes[node] as GrapevineNode).submitTx(tx.bytes), arrivals, onMeasured, tracing?.trace)
  const bytes = bytesWritten(sockets) - bytesBefore
  const cpuPerTx = (mainThreadCpuMs() - cpuBefore) / txs.length
  if (tracing !== undefined && args.trace !== undefined) writeFileSync(args.trace, JSON.stringify(tracing.stop()))
  const duplicates = totalDuplicates() - duplicatesBefore
  for (const stop of stops) stop()
  for (const network of networks) await network.stop()
  for (const node of nodes) await node.stop()
  return { ...summarize('grapevine', workload, latencies, complete, bytes, duplicates), libp2pStartedMs: nodeStartedMs.map((at) => Math.round(at - measuredAt)), mainThreadCpuPerTxMs: cpuPerTx }
}

function summarize(system: string, workload: Workload, latencies: number[], complete: number, bytes: number, duplicates: number): PhaseResult {
  const perTxNode = workload.txs.length * workload.args.nodes
  return {
    system,
    nodes: workload.args.nodes,
    edges: workload.edges.length,
    txs: workload.txs.length,
    complete,
    p50Ms: percentile(latencies, 50),
    p90Ms: percentile(latencies, 90),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1] ?? Number.NaN,
    bytesPerTxPerNode: bytes / perTxNode,
    duplicatesPerTxPerNode: duplicates / perTxNode,
  }
}

async function createGossipsubNode(index: number, sockets: Set<Socket>, register: ReturnType<typeof gossipsubCounters>['register']) {
  return createLibp2p({
    privateKey: await libp2pKeyFrom(devKeypair(5000 + index)),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 10_000 },
    metrics: socketCollector(sockets),
    // Default gossipsub options (mesh D = 6), with a counter hook to read duplicates.
    services: { identify: identify(), ping: ping(), pubsub: gossipsub({ metricsRegister: register as never, metricsTopicStrToLabel: new Map([[TOPIC, TOPIC]]) }) },
  })
}

/** A counting stand-in for gossipsub's metrics register: only the duplicate counter is read. */
function gossipsubCounters() {
  const values = new Map<string, number>()
  const register = {
    gauge(config: { name: string }) {
      return {
        inc: (labelsOrValue?: unknown, value?: number) => {
          const amount = typeof labelsOrValue === 'number' ? labelsOrValue : (value ?? 1)
          values.set(config.name, (values.get(config.name) ?? 0) + amount)
        },
        set: () => undefined,
        addCollect: () => undefined,
      }
    },
    histogram() {
      return { startTimer: () => () => undefined, observe: () => undefined, reset: () => undefined }
    },
    avgMinMax() {
      return { set: () => undefined }
    },
  }
  return { register, values }
}

async function runGossipsub(workload: Workload): Promise<PhaseResult> {
  const { args, edges } = workload
  const topic = TOPIC
  const sockets = new Set<Socket>()
  const arrivals = new Map<string, number[]>()
  const counters: Array<ReturnType<typeof gossipsubCounters>> = []
  const rules = { chainId: 'grapevine-devnet', limits: devnetGenesis({ validatorCount: 1, genesisTime: 0 }).limits }
  const nodes: Array<{ node: Awaited<ReturnType<typeof createGossipsubNode>>; record: (idHex: string) => void }> = []
  for (let i = 0; i < args.nodes; i++) {
    const metrics = gossipsubCounters()
    counters.push(metrics)
    const node = await createGossipsubNode(i, sockets, metrics.register)
    const seen = new Set<string>()
    const record = (idHex: string) => {
      if (seen.has(idHex)) return
      seen.add(idHex)
      const list = arrivals.get(idHex) ?? []
      list.push(performance.now())
      arrivals.set(idHex, list)
    }
    // The same admission work as a Grapevine node: decode, stateless rules and the signature.
    node.services.pubsub.topicValidators.set(topic, (_peer, message) => {
      try {
        const signed = decodeTxInput(message.data, rules)
        checkTx(signed, rules)
        record(signed.idHex)
        return TopicValidatorResult.Accept
      } catch {
        return TopicValidatorResult.Reject
      }
    })
    node.services.pubsub.subscribe(topic)
    nodes.push({ node, record })
  }
  await Promise.all(edges.map(([a, b]) => nodes[a]!.node.dial(multiaddr(nodes[b]!.node.getMultiaddrs()[0]!.toString()))))
  // Let the meshes form (heartbeat is 1 s).
  await sleep(4_000)
  let bytesBefore = 0
  let duplicatesBefore = 0
  const totalDuplicates = () => counters.reduce((sum, c) => sum + (c.values.get('gossipsub_pre_validation_duplicate_total') ?? 0), 0)
  const { latencies, complete } = await drive(
    workload,
    (index, tx) => {
      const entry = nodes[index]!
      entry.record(tx.idHex)
      void entry.node.services.pubsub.publish(topic, tx.bytes).catch(() => undefined)
    },
    arrivals,
    () => {
      bytesBefore = bytesWritten(sockets)
      duplicatesBefore = totalDuplicates()
    },
  )
  const bytes = bytesWritten(sockets) - bytesBefore
  const duplicates = totalDuplicates() - duplicatesBefore
  for (const { node } of nodes) await node.stop()
  return summarize('gossipsub', workload, latencies, complete, bytes, duplicates)
}

function format(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  if (args.phase !== undefined) {
    const workload = buildWorkload(args)
    const result = args.phase === 'grapevine' ? await runGrapevine(workload) : await runGossipsub(workload)
    process.stdout.write(JSON.stringify(result) + '\n')
    process.exit(0)
  }
  const self = fileURLToPath(import.meta.url)
  const passThrough = process.argv.slice(2).filter((arg) => arg !== '--json')
  const results: PhaseResult[] = []
  for (const phase of ['grapevine', 'gossipsub'] as const) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', self, ...passThrough, '--phase', phase], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
    const line = child.stdout.trim().split('\n').pop() ?? ''
    if (child.status !== 0 || !line.startsWith('{')) {
      process.stderr.write(`${phase} phase failed:\n${child.stderr}\n`)
      process.exit(1)
    }
    results.push(JSON.parse(line) as PhaseResult)
  }
  const [ours, theirs] = results as [PhaseResult, PhaseResult]
  const ratio = (a: number, b: number) => a / b
  const rows: Array<[string, string, string, string, string]> = [
    ['metric', 'grapevine', 'gossipsub', 'ratio', 'target'],
    ['txs reaching all nodes', `${ours.complete}/${ours.txs}`, `${theirs.complete}/${theirs.txs}`, '', ''],
    ['all-nodes latency p50 (ms)', format(ours.p50Ms), format(theirs.p50Ms), format(ratio(ours.p50Ms, theirs.p50Ms), 2), ''],
    ['all-nodes latency p90 (ms)', format(ours.p90Ms), format(theirs.p90Ms), format(ratio(ours.p90Ms, theirs.p90Ms), 2), ''],
    ['all-nodes latency p99 (ms)', format(ours.p99Ms), format(theirs.p99Ms), format(ratio(ours.p99Ms, theirs.p99Ms), 2), '<= 1.25'],
    ['all-nodes latency max (ms)', format(ours.maxMs), format(theirs.maxMs), '', ''],
    ['bytes per tx per node', format(ours.bytesPerTxPerNode, 0), format(theirs.bytesPerTxPerNode, 0), format(ratio(ours.bytesPerTxPerNode, theirs.bytesPerTxPerNode), 2), '<= 0.5'],
    ['duplicate full deliveries per tx per node', format(ours.duplicatesPerTxPerNode, 3), format(theirs.duplicatesPerTxPerNode, 3), '', '<= 0.2 (grapevine)'],
  ]
  process.stdout.write(`propagation: ${args.nodes} nodes, ~${ours.edges} links (each dials ${args.degree}), ${ours.txs} txs at ${args.rate} tx/s, announce batch ${args.announceMs} ms\n`)
  for (const row of rows) process.stdout.write(`${row[0].padEnd(44)}${row[1].padStart(12)}${row[2].padStart(12)}${row[3].padStart(8)}   ${row[4]}\n`)
  if (args.json) process.stdout.write(JSON.stringify({ grapevine: ours, gossipsub: theirs }) + '\n')
}

await main()
