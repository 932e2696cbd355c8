// Transaction propagation: Grapevine rumor gossip vs @libp2p/gossipsub 17 on the same workload.
//
//   node --import tsx scripts/bench/propagation.ts [--nodes 16] [--degree 4] [--rate 20]
//        [--seconds 20] [--seed 1] [--announce-ms 25] [--json]
//
// N nodes on 127.0.0.1 in one process, each dialing `degree` random others (the same graph for
// both systems). Pre-signed transfers are injected at random nodes at `rate` tx/s. For each tx:
// the time until every node has it (validated: signature checked, like a mempool admit), bytes
// written on all TCP sockets per tx per node, and duplicate full deliveries per tx per node.
// Each system runs in its own child process so neither inherits the other's heap.
import '../../src/polyfill.ts'
import { spawnSync } from 'node:child_process'
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
import { propagationTopology, socketCollector, startBenchNetwork } from './util.ts'

interface Args {
  nodes: number
  degree: number
  rate: number
  seconds: number
  seed: number
  announceMs: number
  json: boolean
  phase: 'grapevine' | 'gossipsub' | undefined
}

function parseArgs(argv: string[]): Args {
  const args: Args = { nodes: 16, degree: 4, rate: 20, seconds: 20, seed: 1, announceMs: 25, json: false, phase: undefined }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = argv[i + 1]
    if (flag === '--json') args.json = true
    else if (flag === '--phase') args.phase = value as Args['phase']
    else if (flag === '--nodes') args.nodes = Number(value)
    else if (flag === '--degree') args.degree = Number(value)
    else if (flag === '--rate') args.rate = Number(value)
    else if (flag === '--seconds') args.seconds = Number(value)
    else if (flag === '--seed') args.seed = Number(value)
    else if (flag === '--announce-ms') args.announceMs = Number(value)
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
}

function buildWorkload(args: Args): Workload {
  const count = Math.round(args.rate * args.seconds)
  // The graph and the origins, drawn as the simulator's comparison (scripts/bench/sim.ts) draws them.
  const { edges, origins } = propagationTopology(args.nodes, args.degree, count, args.seed)
  const txs: SignedTx[] = []
  for (let i = 0; i < count; i++) {
    txs.push(signTransfer({ chainId: 'grapevine-devnet', from: devKeypair(1000 + i), to: devKeypair(7).publicKey, amount: 1n, fee: 1n, nonce: 0 }))
  }
  return { args, edges, txs, origins }
}

/** Injects at the configured rate and waits for propagation to settle; returns per-tx all-node latency. */
async function drive(
  workload: Workload,
  inject: (node: number, tx: SignedTx) => void,
  arrivals: Map<string, number[]>,
): Promise<{ latencies: number[]; complete: number }> {
  const { args, txs, origins } = workload
  const injectedAt = new Map<string, number>()
  const intervalMs = 1000 / args.rate
  const start = performance.now()
  for (let i = 0; i < txs.length; i++) {
    const due = start + i * intervalMs
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    const tx = txs[i] as SignedTx
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
  return { latencies, complete }
}

async function runGrapevine(workload: Workload): Promise<PhaseResult> {
  const { args, edges, txs } = workload
  const genesis = devnetGenesis({ validatorCount: 4, genesisTime: Date.now(), fundedCount: 1000 + txs.length })
  const sockets = new Set<Socket>()
  const arrivals = new Map<string, number[]>()
  const nodes: GrapevineNode[] = []
  const networks: Network[] = []
  const engines: GossipEngine[] = []
  const stops: Array<() => void> = []
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
  const bytesBefore = bytesWritten(sockets)
  const { latencies, complete } = await drive(workload, (node, tx) => void (nodes[node] as GrapevineNode).submitTx(tx.bytes), arrivals)
  const bytes = bytesWritten(sockets) - bytesBefore
  const duplicates = engines.reduce((sum, engine) => sum + engine.stats().duplicates, 0)
  for (const stop of stops) stop()
  for (const network of networks) await network.stop()
  for (const node of nodes) await node.stop()
  return summarize('grapevine', workload, latencies, complete, bytes, duplicates)
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
  const bytesBefore = bytesWritten(sockets)
  const { latencies, complete } = await drive(
    workload,
    (index, tx) => {
      const entry = nodes[index]!
      entry.record(tx.idHex)
      void entry.node.services.pubsub.publish(topic, tx.bytes).catch(() => undefined)
    },
    arrivals,
  )
  const bytes = bytesWritten(sockets) - bytesBefore
  const duplicates = counters.reduce((sum, c) => sum + (c.values.get('gossipsub_pre_validation_duplicate_total') ?? 0), 0)
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
