/**
 * The discrete-event simulator: builds a network of light nodes (src/sim/light-node.ts) or
 * comparison strategies (src/sim/strategies.ts) on one virtual clock, injects a workload of real
 * signed transfers, applies adversaries, Sybils, churn, loss and partitions, and measures
 * delivery, latency, hops, bytes, memory and origin privacy.
 */
import { devKeypair } from '../crypto/keys.ts'
import { signTransfer } from '../ledger/transfer.ts'
import type { SignedTx } from '../ledger/types.ts'
import { decodeSignedTx } from '../codec/objects.ts'
import { txSignatureValid } from '../ledger/validation.ts'
import { INV_TX } from '../codec/wire.ts'
import { seededRandom } from '../util/random.ts'
import { type CpuReport, CpuModel, type HostPlacement } from './cpu.ts'
import {
  CALIBRATED_CPU_COSTS,
  CALIBRATED_GC,
  CALIBRATED_HOST_STALLS,
  CALIBRATED_PING,
  CPU_COSTS_CALIBRATION,
  type CpuCosts,
  GC_CALIBRATION,
  type GcCosts,
  HOST_STALL_CALIBRATION,
  type HostStallCosts,
  PING_CALIBRATION,
  type PingCosts,
  carriesTxs,
} from './cpu-costs.ts'
import { Holdings, OursNode, TxCatalog } from './light-node.ts'
import { REGIONS, paretoStakes, pickRegion, topShare } from './model.ts'
import { BEHAVIOUR_DELAY, BEHAVIOUR_DROP, BEHAVIOUR_HONEST, BEHAVIOUR_WITHHOLD, type SimEndpoint, type SimMessage, SimNetwork } from './sim-network.ts'
import { type ModelStrategyNode, type StrategyName, modelNode } from './strategies.ts'
import { VirtualTime } from './virtual-time.ts'

export type AdversaryKind = 'drop' | 'delay' | 'withhold' | 'invalid'

export interface SimOptions {
  nodes: number
  txs: number
  /** Injection rate (tx/s of virtual time). */
  rate: number
  strategy: StrategyName
  seed: number
  /** Outbound connections each node dials (degree ≈ 2 × this). */
  degree: number
  /** Share of nodes that are adversaries, and what they do. */
  adversary: number
  adversaryKind: AdversaryKind
  adversaryDelayMs: number
  /** Extra zero-stake nodes that drop everything, each dialing `sybilDegree` honest nodes. */
  sybils: number
  sybilDegree: number
  /** Share of honest nodes that are (honest-behaving) spies. */
  spies: number
  lossRate: number
  /** Fixed one-way link delay (ms) instead of the region matrix. */
  fixedLatencyMs?: number
  jitter: number
  uplinkMbps: number
  announceBatchMs: number
  /** Anti-entropy round interval for ours (0: off). */
  statusIntervalMs: number
  /** Share of honest nodes leaving per second (churn); they come back after `churnDownMs`. */
  churnPerSecond: number
  churnDownMs: number
  /** 50/50 partition from `partitionAtMs` for `partitionMs` (0: none). */
  partitionAtMs: number
  partitionMs: number
  /** Rumor parameter k and cycle (ms) for the Demers strategies and push-pull. */
  k: number
  cycleMs: number
  /** Virtual time allowed after the last injection. */
  tailLimitMs: number
  resolutionMs: number
  /** Connection topology: random dials, or random dials plus a ring (propagation.ts's graph). */
  ring: boolean
  /** The engine's per-peer inventory memory (default 50,000 in the node; smaller here for memory). */
  knownInventoryPerPeer: number
  /** How often an active light node ticks its engine (ms); 0: announceBatchMs / 4, as composeNode does. */
  tickMs: number
  /**
   * CPU model (src/sim/cpu.ts): 'per-node' gives each node its own host; 'one-host' puts every
   * node on one host (propagation.ts's single process); 'off' makes CPU free (network only).
   */
  hosts: HostPlacement | 'off'
  /** Cores per host (1: one Node.js event loop). */
  cores: number
  /** The CPU cost table; default the committed calibration (src/sim/cpu-costs.ts). */
  cpuCosts?: CpuCosts
  /** Where `cpuCosts` was measured (printed with the run); default "a table given by the caller". */
  cpuCostsSource?: string
  /**
   * The node's connection liveness (src/net/liveness.ts, on in every real node; libp2p's own
   * monitor is off): every `ping.intervalMs` each node pings each connection once, at a phase of
   * its own, at the measured cost (src/sim/cpu-costs.ts). false: off.
   */
  connectionMonitor: boolean
  /** What a ping costs; default the committed calibration. */
  pingCosts?: PingCosts
  /** GC pauses on a one-host placement (src/sim/cpu-costs.ts GcCosts); default the committed calibration; 'off': none. */
  gcCosts?: GcCosts | 'off'
  /** Host stalls on a one-host placement (src/sim/cpu-costs.ts HostStallCosts); default the committed calibration; 'off': none. */
  hostStalls?: HostStallCosts | 'off'
  /**
   * When each node's libp2p started, ms relative to the first injection (negative: before); each
   * of its connections is pinged first at its phase within the interval after that, then every
   * `intervalMs`. Default: every node at
   * the moment the run connects them (1 s before the first injection). propagation.ts reports
   * its nodes' (they start one after another, 14–20 s before the measured injections).
   */
  libp2pStartedMs?: readonly number[]
  /** Validator stake: Pareto-distributed, or none (every node 0, as propagation.ts's non-validators). */
  stake: 'pareto' | 'none'
  /** Explicit links [dialer, dialed] instead of random dials (propagation.ts's graph); `degree` and `ring` are then unused. */
  edges?: ReadonlyArray<readonly [number, number]>
  /** The origin node of each tx instead of random honest ones (propagation.ts's draw). */
  origins?: readonly number[]
}

export const DEFAULT_SIM_OPTIONS: SimOptions = {
  nodes: 1_000,
  txs: 100,
  rate: 100,
  strategy: 'ours',
  seed: 1,
  degree: 4,
  adversary: 0,
  adversaryKind: 'drop',
  adversaryDelayMs: 1_000,
  sybils: 0,
  sybilDegree: 8,
  spies: 0,
  lossRate: 0,
  jitter: 0.1,
  uplinkMbps: 50,
  announceBatchMs: 100,
  statusIntervalMs: 2_000,
  churnPerSecond: 0,
  churnDownMs: 5_000,
  partitionAtMs: 0,
  partitionMs: 0,
  k: 2,
  cycleMs: 200,
  tailLimitMs: 60_000,
  resolutionMs: 1,
  ring: false,
  knownInventoryPerPeer: 128,
  tickMs: 0,
  hosts: 'per-node',
  cores: 1,
  connectionMonitor: true,
  stake: 'pareto',
}

export interface SimProgress {
  virtualMs: number
  wallMs: number
  /** Share of (honest node, injected tx) pairs delivered so far. */
  delivered: number
  injected: number
  events: number
}

export interface Percentiles {
  p50: number
  p90: number
  p99: number
  max: number
}

export interface SimResult {
  options: SimOptions
  /** What the simulator replaced for speed, stated exactly. */
  substitutions: string[]
  nodes: { honest: number; adversaries: number; sybils: number; spies: number; validators: number; top1PercentStake: number; regions: Record<string, number> }
  /** Honest nodes (online at the end) × valid txs delivered. */
  delivery: { share: number; txsReachingAll: number; txs: number; honestNodes: number }
  /** Per tx: time from injection until every honest node had it (ms), over the txs that got there. */
  allNodesLatencyMs: Percentiles
  /** Per (honest node, tx): time from injection to arrival (ms). */
  nodeLatencyMs: Percentiles
  /** Time until the last honest delivery after the last injection (the tail). */
  tailMs: number
  hops: { p50: number; p99: number; max: number; histogram: number[]; bound: number }
  /** Bytes sent by honest nodes (framing included) / (honest nodes × txs). */
  bytesPerNodePerTx: number
  bytesByKind: { total: number; messages: number; lost: number; undelivered: number }
  /** Share of (honest node, tx) pairs delivered within t ms of injection: [t, share]. */
  deliveryCurve: Array<[number, number]>
  /** After a partition heals: [ms since heal, share delivered]. */
  healCurve?: Array<[number, number]>
  healConvergedMs?: number
  spies?: { count: number; precision: number; guessed: number }
  virtualMs: number
  wallMs: number
  /** CPU time of this process (user + system) during the run: the machine's share it actually got. */
  cpuMs: number
  events: number
  settles: number
  /**
   * bytesPerNode: heap the nodes took when built (engine, peer set, scores, ingress, links);
   * heapPerNodeAtEnd: heap growth over the whole run per node (inventories, queues) plus the
   * run's flat arrays (6 bytes per node × tx); rssPerNode: peak RSS ÷ nodes (everything).
   */
  memory: { bytesPerNode: number; heapPerNodeAtEnd: number; rssPerNode: number; heapUsedBytes: number; peakRssBytes: number }
  /** The CPU model's queueing (absent when hosts is 'off'). */
  cpu?: CpuReport
}

/** Signed transfers for the workload (real ed25519 signatures; many senders, sequential nonces). */
export function buildWorkload(count: number, invalid: number, seed: number): { txs: SignedTx[]; valid: Uint8Array } {
  const senders = Math.max(1, Math.min(256, count))
  const keys = Array.from({ length: senders }, (_, i) => devKeypair(10_000 + i))
  const to = devKeypair(9_999).publicKey
  const nonces = new Array<number>(senders).fill(0)
  const txs: SignedTx[] = []
  for (let i = 0; i < count; i++) {
    const sender = i % senders
    const nonce = nonces[sender] ?? 0
    nonces[sender] = nonce + 1
    txs.push(signTransfer({ chainId: 'grapevine-sim', from: keys[sender] as (typeof keys)[number] & object, to, amount: BigInt(1 + seed), fee: 1_000n, nonce }))
  }
  for (let i = 0; i < invalid; i++) {
    // A real transfer with one signature byte flipped: decodes, fails verification.
    const base = txs[i % Math.max(1, count)] ?? signTransfer({ chainId: 'grapevine-sim', from: devKeypair(10_000), to, amount: 1n, fee: 1_000n, nonce: 0 })
    const bytes = new Uint8Array(base.bytes)
    bytes[bytes.length - 1 - (i % 32)] = (bytes[bytes.length - 1 - (i % 32)] as number) ^ (1 + (i >> 5))
    txs.push(decodeSignedTx(bytes))
  }
  // The precomputed verdict: each signature verified once, for real.
  const valid = Uint8Array.from(txs, (signed) => (txSignatureValid(signed) ? 1 : 0))
  return { txs, valid }
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN }
  const sorted = Float64Array.from(values).sort()
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] as number }
}

/** Heap in use, after a full collection when the process runs with --expose-gc (npm run sim does). */
const heapUsed = (): number => {
  ;(globalThis as { gc?: () => void }).gc?.()
  return process.memoryUsage().heapUsed
}

export async function runSim(partial: Partial<SimOptions>, onProgress?: (progress: SimProgress) => void): Promise<SimResult> {
  const options: SimOptions = { ...DEFAULT_SIM_OPTIONS, ...partial }
  const wallStart = performance.now()
  const cpuStart = process.cpuUsage()
  const rng = seededRandom(options.seed)
  const invalidCount = options.adversaryKind === 'invalid' && options.adversary > 0 ? 64 : 0
  const { txs, valid } = buildWorkload(options.txs, invalidCount, options.seed)
  const catalog = new TxCatalog(txs, valid)
  const total = options.nodes + options.sybils
  const START = 1_000_000
  const time = new VirtualTime(START, { settle: 'timestamp' })
  const holdings = new Holdings(total, catalog.size, START)
  const cpuCosts = options.cpuCosts ?? CALIBRATED_CPU_COSTS
  const pingCosts = options.pingCosts ?? CALIBRATED_PING
  // A tx a node already holds is refused before its signature is checked (the ingest's order).
  const newTxs = (node: number, message: SimMessage): number => {
    let count = 0
    if (message.type === 'txs') {
      for (const signed of message.txs) {
        const tx = catalog.indexOf.get(signed.idHex)
        if (tx === undefined || !holdings.holds(node, tx)) count++
      }
    } else if (message.type === 'control' && carriesTxs(message.kind)) {
      for (const tx of message.txs ?? []) if (!holdings.holds(node, tx)) count++
    }
    return count
  }
  const gcCosts = options.gcCosts === 'off' ? undefined : (options.gcCosts ?? CALIBRATED_GC)
  const stallCosts = options.hostStalls === 'off' ? undefined : (options.hostStalls ?? CALIBRATED_HOST_STALLS)
  const cpu =
    options.hosts === 'off'
      ? undefined
      : new CpuModel(
          total,
          {
            placement: options.hosts,
            cores: options.cores,
            costs: cpuCosts,
            ping: pingCosts,
            ...(gcCosts === undefined ? {} : { gc: gcCosts }),
            ...(stallCosts === undefined ? {} : { stalls: { costs: stallCosts, random: seededRandom((options.seed * 2_654_435_761 + 17) >>> 0) } }),
          },
          newTxs,
        )
  const network = new SimNetwork(time, {
    latency: { ...(options.fixedLatencyMs === undefined ? {} : { fixedMs: options.fixedLatencyMs }), jitter: options.jitter },
    lossRate: options.lossRate,
    resolutionMs: options.resolutionMs,
    adversaryDelayMs: options.adversaryDelayMs,
    random: seededRandom(options.seed * 31 + 7),
    ...(cpu === undefined ? {} : { cpu }),
  })

  // Roles: adversaries and spies among the first `nodes`, Sybils after them.
  const order = Array.from({ length: options.nodes }, (_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    ;[order[i], order[j]] = [order[j] as number, order[i] as number]
  }
  const adversaryCount = Math.round(options.adversary * options.nodes)
  const isAdversary = new Uint8Array(total)
  const isSpy = new Uint8Array(total)
  order.slice(0, adversaryCount).forEach((i) => (isAdversary[i] = 1))
  const spyCount = Math.round(options.spies * (options.nodes - adversaryCount))
  order.slice(adversaryCount, adversaryCount + spyCount).forEach((i) => (isSpy[i] = 1))
  for (let i = options.nodes; i < total; i++) isAdversary[i] = 1
  const honestList = order.filter((i) => isAdversary[i] === 0)
  const origins = honestList.filter((i) => isSpy[i] === 0)

  const stakes: bigint[] = paretoStakes(options.nodes, rng).map((stake) => (options.stake === 'none' ? 0n : stake))
  for (let i = 0; i < options.sybils; i++) stakes.push(0n)
  const totalStake = stakes.reduce((sum, s) => sum + s, 0n)
  const ids = Array.from({ length: total }, (_, i) => `n${i}`)
  /** BOUNDED: one entry per simulated node. */
  const indexOf = new Map<string, number>()
  ids.forEach((id, i) => indexOf.set(id, i))
  const indexOfPeer = (peerId: string): number => indexOf.get(peerId) ?? -1

  const tickMs = options.tickMs > 0 ? options.tickMs : Math.max(5, Math.floor(options.announceBatchMs / 4))
  const heapBefore = heapUsed()
  const ours: Array<OursNode | undefined> = []
  const models: Array<ModelStrategyNode | undefined> = []
  const redialPending = new Uint8Array(total)
  const dialRandom = (node: number, count: number): void => {
    for (let tries = 0; count > 0 && tries < count * 10; tries++) {
      const other = Math.floor(rng() * options.nodes)
      const banned = ours[node]?.peers.isBanned(ids[other] as string) ?? false
      if (!banned && network.connect(node, other)) count--
    }
  }
  const onPeerLost = (node: number): void => {
    if (isAdversary[node] === 1 || redialPending[node] === 1 || !network.isOnline(node)) return
    redialPending[node] = 1
    time.schedule(1_000, () => {
      redialPending[node] = 0
      if (network.isOnline(node) && network.degree(node) < options.degree) dialRandom(node, options.degree - network.degree(node))
    })
  }
  const strategyCtx = { network, catalog, holdings, random: seededRandom(options.seed * 131 + 3), k: options.k, cycleMs: options.cycleMs }
  const silent: SimEndpoint = { onConnect: () => {}, onDisconnect: () => {}, onMessage: () => {} }
  for (let i = 0; i < total; i++) {
    const region = pickRegion(rng)
    const dropper = isAdversary[i] === 1 && (i >= options.nodes || options.adversaryKind === 'drop')
    let endpoint: SimEndpoint
    if (dropper) endpoint = silent
    else if (options.strategy === 'ours') {
      const node = new OursNode(
        i,
        {
          network,
          catalog,
          holdings,
          ids,
          indexOfPeer,
          stakes,
          totalStake,
          gossip: { announceBatchMs: options.announceBatchMs, knownInventoryPerPeer: options.knownInventoryPerPeer },
          statusIntervalMs: options.statusIntervalMs,
          idleAfterMs: 2_000 + 4 * options.announceBatchMs,
          tickMs,
          random: seededRandom((options.seed * 7919 + i * 104729) >>> 0),
          onPeerLost,
        },
        seededRandom((options.seed * 6151 + i * 7907) >>> 0),
      )
      ours[i] = node
      endpoint = node
    } else {
      const node = modelNode(options.strategy, i, strategyCtx)
      models[i] = node
      endpoint = node
    }
    network.addNode(endpoint, region, options.uplinkMbps)
  }
  network.seal()
  for (let i = 0; i < total; i++) {
    if (isAdversary[i] !== 1) continue
    if (i >= options.nodes || options.adversaryKind === 'drop') network.behaviour[i] = BEHAVIOUR_DROP
    else if (options.adversaryKind === 'delay') network.behaviour[i] = BEHAVIOUR_DELAY
    else if (options.adversaryKind === 'withhold') network.behaviour[i] = BEHAVIOUR_WITHHOLD
    else network.behaviour[i] = BEHAVIOUR_HONEST
  }

  // Topology: the given links, or every node dials `degree` random others (plus a ring when asked); Sybils dial honest nodes.
  if (options.edges !== undefined) {
    for (const [a, b] of options.edges) network.connect(a, b)
  } else {
    for (let i = 0; i < options.nodes; i++) {
      dialRandom(i, options.degree)
      if (options.ring) network.connect(i, (i + 1) % options.nodes)
    }
  }
  for (let i = options.nodes; i < total; i++) {
    for (let c = 0; c < options.sybilDegree; c++) network.connect(i, honestList[Math.floor(rng() * honestList.length)] as number)
  }
  for (const node of ours) node?.startAntiEntropy()
  const heapAfter = heapUsed()

  // Spies: the first peer that told a spy about a tx (inv or the tx itself).
  /** BOUNDED: one entry per tx of the run. */
  const spyFirst = new Map<number, { at: number; from: number }>()
  if (spyCount > 0) {
    for (let i = 0; i < total; i++) if (isSpy[i] === 1) network.observed[i] = 1
    network.onObservedDelivery = (from: number, _to: number, message: SimMessage) => {
      const seen = (tx: number | undefined): void => {
        if (tx === undefined || spyFirst.has(tx)) return
        spyFirst.set(tx, { at: time.now, from })
      }
      if (message.type === 'txs') {
        for (const signed of message.txs) seen(catalog.indexOf.get(signed.idHex))
      } else if (message.type === 'inv') {
        for (const item of message.items) if (item.kind === INV_TX) seen(catalog.indexOf.get(Buffer.from(item.hash).toString('hex')))
      } else if (message.type === 'control' && message.kind === 'pull-reply') {
        for (const tx of message.txs ?? []) seen(tx)
      }
    }
  }

  // Workload: valid txs at `rate` from random honest non-spy origins; invalid ones spammed by adversaries.
  const injectStart = START + 1_000
  const interval = 1_000 / options.rate
  for (let tx = 0; tx < options.txs; tx++) {
    const origin = options.origins?.[tx] ?? (origins[Math.floor(rng() * origins.length)] as number)
    time.schedule(injectStart + tx * interval - START, () => {
      if (!network.isOnline(origin)) return
      const node = ours[origin] ?? models[origin]
      node?.originate(tx)
    })
  }
  if (invalidCount > 0) {
    const spammers = order.slice(0, adversaryCount)
    for (let j = 0; j < invalidCount; j++) {
      time.schedule(injectStart + (j * options.txs * interval) / invalidCount - START, () => {
        for (const s of spammers) ours[s]?.spam(options.txs + j)
      })
    }
  }
  const lastInjection = injectStart + Math.max(0, options.txs - 1) * interval

  // The node's liveness pings (src/net/liveness.ts; libp2p's own monitor is off): each node pings
  // each connection once per intervalMs, at a phase of its own within the interval.
  if (options.connectionMonitor && pingCosts.intervalMs > 0) {
    const phaseRandom = seededRandom(options.seed * 977 + 11)
    /** `node:peer` → its phase. BOUNDED: one per pair of nodes ever linked. */
    const phases = new Map<string, number>()
    const pingRound = (node: number): void => {
      if (network.isOnline(node)) {
        for (const peer of network.neighbours(node)) {
          const key = `${node}:${peer}`
          let phase = phases.get(key)
          if (phase === undefined) {
            phase = phaseRandom() * pingCosts.intervalMs
            phases.set(key, phase)
          }
          time.schedule(phase, () => {
            if (network.isOnline(node) && network.isConnected(node, peer)) network.ping(node, peer, pingCosts.wireBytes)
          })
        }
      }
      time.schedule(pingCosts.intervalMs, () => pingRound(node))
    }
    // A connection's first ping falls at its phase within the first interval after the node started.
    for (let i = 0; i < total; i++) {
      let first = injectStart + (options.libp2pStartedMs?.[i] ?? START - injectStart)
      while (first < START) first += pingCosts.intervalMs
      time.schedule(first - START, () => pingRound(i))
    }
  }

  // Churn: each second a share of honest nodes leaves and comes back `churnDownMs` later.
  if (options.churnPerSecond > 0) {
    const churnEnd = lastInjection
    for (let at = injectStart; at < churnEnd; at += 1_000) {
      time.schedule(at - START, () => {
        for (const i of honestList) {
          if (i === undefined || !network.isOnline(i) || rng() >= options.churnPerSecond) continue
          network.setOnline(i, false)
          time.schedule(options.churnDownMs, () => {
            network.setOnline(i, true)
            dialRandom(i, options.degree)
          })
        }
      })
    }
  }

  let healAt: number | undefined
  if (options.partitionMs > 0) {
    const groups = new Int32Array(total)
    for (let i = 0; i < total; i++) groups[i] = rng() < 0.5 ? 0 : 1
    time.schedule(options.partitionAtMs, () => network.setPartition(groups))
    healAt = START + options.partitionAtMs + options.partitionMs
    time.schedule(healAt - START, () => network.setPartition(undefined))
  }

  const honestTarget = (): number[] => honestList.filter((i) => network.isOnline(i))
  const validTxs = options.txs
  let deliveredPairs = 0
  const countDelivered = (): number => {
    let count = 0
    const T = catalog.size
    for (const i of honestList) {
      const base = i * T
      for (let tx = 0; tx < validTxs; tx++) count += holdings.has[base + tx] as number
    }
    return count
  }
  let peakRss = process.memoryUsage().rss
  const progressStepMs = 500
  const deadline = lastInjection + options.tailLimitMs
  const healCurve: Array<[number, number]> = []
  let healConvergedMs: number | undefined
  for (;;) {
    const next = Math.min(deadline, time.now + progressStepMs)
    await time.runUntil(next)
    deliveredPairs = countDelivered()
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
    const target = honestTarget()
    const complete = time.now > lastInjection && target.every((i) => {
      const base = i * catalog.size
      for (let tx = 0; tx < validTxs; tx++) if (holdings.has[base + tx] !== 1) return false
      return true
    })
    if (healAt !== undefined && time.now >= healAt) {
      const share = deliveredPairs / (honestList.length * validTxs)
      healCurve.push([time.now - healAt, share])
      if (complete && healConvergedMs === undefined) healConvergedMs = time.now - healAt
    }
    onProgress?.({ virtualMs: time.now - START, wallMs: performance.now() - wallStart, delivered: deliveredPairs / (honestList.length * validTxs), injected: Math.min(validTxs, Math.floor((time.now - injectStart) / interval) + 1), events: time.eventsRun })
    if (complete || time.now >= deadline) break
  }
  const endMs = time.now

  // ---- measurements over honest nodes online at the end
  const target = honestTarget()
  const T = catalog.size
  let reachedAll = 0
  const allNodes: number[] = []
  const perNode: number[] = []
  const hopHistogram: number[] = []
  const hopValues: number[] = []
  let lastArrival = 0
  let delivered = 0
  for (let tx = 0; tx < validTxs; tx++) {
    const injected = holdings.injectedAt[tx] as number
    if (Number.isNaN(injected)) continue
    let worst = 0
    let all = true
    for (const i of target) {
      const slot = i * T + tx
      if (holdings.has[slot] !== 1) {
        all = false
        continue
      }
      delivered++
      const delay = (holdings.arrivalMs[slot] as number) - injected
      perNode.push(delay)
      worst = Math.max(worst, delay)
      lastArrival = Math.max(lastArrival, holdings.arrivalMs[slot] as number)
      const hops = holdings.hops[slot] as number
      hopHistogram[hops] = (hopHistogram[hops] ?? 0) + 1
      hopValues.push(hops)
    }
    if (all) {
      reachedAll++
      allNodes.push(worst)
    }
  }
  for (let h = 0; h < hopHistogram.length; h++) hopHistogram[h] ??= 0
  const hopP = percentiles(hopValues)
  const nodeLatency = percentiles(perNode)
  const sortedDelays = Float64Array.from(perNode).sort()
  const pairs = target.length * validTxs
  const curve: Array<[number, number]> = []
  const maxDelay = sortedDelays.length > 0 ? (sortedDelays[sortedDelays.length - 1] as number) : 0
  for (let step = 0; step <= 100; step++) {
    const t = (maxDelay * step) / 100
    let lo = 0
    let hi = sortedDelays.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((sortedDelays[mid] as number) <= t) lo = mid + 1
      else hi = mid
    }
    curve.push([Math.round(t), pairs > 0 ? lo / pairs : 0])
  }
  let honestBytes = 0
  for (const i of honestList) honestBytes += network.bytesSent[i] as number

  let spies: SimResult['spies']
  if (spyCount > 0) {
    let correct = 0
    let guessed = 0
    for (let tx = 0; tx < validTxs; tx++) {
      const first = spyFirst.get(tx)
      if (first === undefined) continue
      guessed++
      if (first.from === holdings.origin[tx]) correct++
    }
    spies = { count: spyCount, precision: guessed > 0 ? correct / validTxs : 0, guessed }
  }
  const regions: Record<string, number> = {}
  for (let i = 0; i < total; i++) {
    const name = REGIONS[network.region(i)] as string
    regions[name] = (regions[name] ?? 0) + 1
  }
  const substitutions =
    options.strategy === 'ours'
      ? [
          'engines: the real GossipEngine (src/gossip/engine.ts), PeerSet + PeerScores (src/peers) and Ingress (src/node/ingress.ts) per node',
          `signature checks: a verdict precomputed once per tx (real ed25519 verify at setup), looked up on admission${cpu === undefined ? '' : '; the time a check takes is charged to the CPU model (below)'}`,
          'mempool and chain: one byte per (node, tx) over a shared catalog of the run\'s txs; no blocks, no trie, no state',
          'anti-entropy: the SyncManager round (weighted peer every statusIntervalMs, status, 256-bucket digest, ids, missing txs) modelled as messages of the protocol\'s sizes on the same network; a failed status is the real STATUS_FAILED offence',
          'wire: messages travel as objects; sizes are the exact encodings (gossipSize) + 34 B framing (u32 length, Yamux header, Noise length + tag), and the receiver writes a 30 B Yamux window update back per frame (both measured by sim-calibrate.ts); no status handshake on connect',
          `engine options: announceBatchMs ${options.announceBatchMs}, knownInventoryPerPeer ${options.knownInventoryPerPeer} (default 50,000; memory), engine ticked every ${tickMs} ms while a node saw activity in the last ${2_000 + 4 * options.announceBatchMs} ms`,
          `peer rotation: a node that lost a peer dials a random replacement after 1 s (stands in for the connection policy)`,
          ...cpuSubstitutions(options, cpuCosts),
          ...pingSubstitutions(options, pingCosts),
        ]
      : [
          `strategy ${options.strategy}: a model in src/sim/strategies.ts (no engine in src/), over the same network, catalog and verdicts`,
          'signature checks: a verdict precomputed once per tx; messages as objects with exact encoded sizes + 34 B framing',
          ...cpuSubstitutions(options, cpuCosts),
        ]
  return {
    options,
    substitutions,
    nodes: {
      honest: honestList.length,
      adversaries: adversaryCount,
      sybils: options.sybils,
      spies: spyCount,
      validators: options.nodes,
      top1PercentStake: topShare(stakes.slice(0, options.nodes), 0.01),
      regions,
    },
    delivery: { share: pairs > 0 ? delivered / pairs : 0, txsReachingAll: reachedAll, txs: validTxs, honestNodes: target.length },
    allNodesLatencyMs: percentiles(allNodes),
    nodeLatencyMs: nodeLatency,
    tailMs: Math.max(0, lastArrival - (lastInjection - START)),
    hops: { p50: hopP.p50, p99: hopP.p99, max: hopP.max, histogram: hopHistogram, bound: Math.log2(options.nodes) + 3 },
    bytesPerNodePerTx: honestBytes / (honestList.length * validTxs),
    bytesByKind: { total: network.totals.bytes, messages: network.totals.messages, lost: network.totals.lost, undelivered: network.totals.undelivered },
    deliveryCurve: curve,
    ...(healAt === undefined ? {} : { healCurve, ...(healConvergedMs === undefined ? {} : { healConvergedMs }) }),
    ...(spies === undefined ? {} : { spies }),
    virtualMs: endMs - START,
    wallMs: performance.now() - wallStart,
    cpuMs: (() => {
      const cpu = process.cpuUsage(cpuStart)
      return (cpu.user + cpu.system) / 1000
    })(),
    events: time.eventsRun,
    settles: time.settles,
    ...(cpu === undefined ? {} : { cpu: cpu.report(endMs - START) }),
    memory: {
      bytesPerNode: Math.max(0, heapAfter - heapBefore) / total,
      heapPerNodeAtEnd: (Math.max(0, heapUsed() - heapBefore) + holdings.has.byteLength + holdings.arrivalMs.byteLength + holdings.hops.byteLength) / total,
      rssPerNode: peakRss / total,
      heapUsedBytes: heapUsed(),
      peakRssBytes: peakRss,
    },
  }
}

/** What the run's output says about the liveness pings. */
function pingSubstitutions(options: SimOptions, ping: PingCosts): string[] {
  if (!options.connectionMonitor || ping.intervalMs <= 0) return ['connection liveness pings: off']
  const started = options.libp2pStartedMs === undefined ? 'from when the run connects them' : `from each node's given start (${Math.min(...options.libp2pStartedMs)} to ${Math.max(...options.libp2pStartedMs)} ms from the first injection)`
  return [
    `connection liveness (src/net/liveness.ts): every node pings each connection once every ${ping.intervalMs / 1_000} s at a phase of its own, ${started}; a ping costs ${ping.cpuMs} ms of CPU (half at each end) and ${ping.wireBytes} B (half each way), ${options.pingCosts === undefined ? `measured by ${PING_CALIBRATION}` : 'given by the caller'}`,
  ]
}

/** A measured distribution of lengths as "min–max ms, median m". */
function lengthsText(lengthsMs: readonly number[]): string {
  const sorted = [...lengthsMs].sort((a, b) => a - b)
  return `${sorted[0]?.toFixed(1)}–${sorted[sorted.length - 1]?.toFixed(1)} ms, median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)}`
}

/** What the run's output says about GC pauses (modelled on a one-host placement only). */
function gcSubstitutions(options: SimOptions): string[] {
  if (options.hosts !== 'one-host') return []
  if (options.gcCosts === 'off') return ['GC pauses: off (only as averaged into the measured costs)']
  const gc = options.gcCosts ?? CALIBRATED_GC
  return [
    `GC pauses: the host stops for a pause after every ${(1 / gc.pausesPerWorkMs).toFixed(0)} ms of work (${lengthsText(gc.pauseMs)}); every job costs ${(100 * gc.shareOfCpu).toFixed(1)} % less, so the CPU in all is the table's; ${options.gcCosts === undefined ? `measured by ${GC_CALIBRATION}` : 'given by the caller'}`,
  ]
}

/** What the run's output says about host stalls (modelled on a one-host placement only). */
function stallSubstitutions(options: SimOptions): string[] {
  if (options.hosts !== 'one-host') return []
  if (options.hostStalls === 'off') return ['host stalls: off (the machine never takes the CPU away)']
  const stalls = options.hostStalls ?? CALIBRATED_HOST_STALLS
  return [
    `host stalls: the machine takes the CPU away ${stalls.perSecond.toFixed(2)} times a second at random (${lengthsText(stalls.lengthMs)}), whatever the host is doing; ${options.hostStalls === undefined ? `measured by ${HOST_STALL_CALIBRATION}` : 'given by the caller'}`,
  ]
}

/** What the run's output says about CPU: modelled how, with which costs, and what is left out. */
function cpuSubstitutions(options: SimOptions, costs: CpuCosts): string[] {
  if (options.hosts === 'off') return ['CPU: not modelled (hosts off): sending and handling are free, so latency is the network and the protocol only']
  const us = (ms: number): string => `${(ms * 1000).toFixed(1)} µs`
  const where = options.hosts === 'one-host' ? `every node on ONE host with ${options.cores} core(s) (one process, as propagation.ts runs its nodes)` : `one host per node, ${options.cores} core(s) each`
  return [
    `CPU: ${where}; a FIFO queue per host on virtual time. A message costs its sender ${us(costs.sendFrameMs)} + ${(costs.sendPerByteMs * 1e6).toFixed(1)} ns/B before it leaves, and its receiver ${us(costs.receiveFrameMs)} + ${(costs.receivePerByteMs * 1e6).toFixed(1)} ns/B plus per item (inv ${us(costs.invItemMs)}, getdata ${us(costs.getdataItemMs)}, tx ${us(costs.txMs)} + ${us(costs.txVerifyMs)} signature if not held) before the engine sees it; a submitted tx ${us(costs.txMs + costs.txVerifyMs)}; an engine tick ${us(costs.tickMs)}; timers held back by a busy host (an engine tick and the engine's wake → flush run when the work queued ahead of them is done)`,
    `CPU costs: ${options.cpuCosts === undefined ? `src/sim/cpu-costs.ts, measured by ${CPU_COSTS_CALIBRATION}` : (options.cpuCostsSource ?? 'a table given by the caller')}; left out: ${options.hosts === 'one-host' ? '' : 'GC pauses as pauses (a host per node: only as averaged into the measured costs), '}frames coalesced into one socket read, JIT warm-up (the costs are a warm process's), the cost of a loop turn apart from the frames it handles (measured at one burst of 16 frames per 8 ms, so a more spread or more bunched load pays more or less per frame)`,
    ...gcSubstitutions(options),
    ...stallSubstitutions(options),
  ]
}
