// The simulator's CPU cost table (src/sim/cpu-costs.ts), measured: times the real code paths a
// node runs per gossip message and prints the costs beside the committed constants.
//
//   node --import tsx scripts/bench/sim-calibrate.ts [--frames 1500] [--node-frames 3000] [--items 3000] [--runs 1] [--json]
//
// Part 1, in this process: ed25519 verify (txSignatureValid, libsodium), decodeGossip and
// encodeGossip of inv and txs frames of several sizes, a real GrapevineNode's acceptTxs of one
// fresh tx (precheck, signature, mempool add), and the real GossipEngine with 8 peers handling an
// inv (→ getdata), the solicited txs (→ relay, inv to the other 7), a getdata (→ txs) and a tick.
//
// Part 2, the transport, in two processes (this one sends, a child receives): libp2p as the node
// builds it (TCP, Noise, Yamux, identify, ping; src/net/libp2p.ts), our OutboundLink and
// FrameReader, frames of several sizes in two regimes: sporadic (one connection, a frame every
// ~1 ms) and busy (16 connections, a frame on each every ~2 ms, as a wave of gossip through 16
// nodes in one process). Each process measures its main thread's CPU time (what the simulator's
// CPU queue stands for: the event loop's work, not time the OS gave to other processes), and
// prints its event-loop busy time and whole-process CPU beside it. The sender's pacing loop
// alone, and the receiver idle, are measured and subtracted. It also counts the bytes on the
// sockets per frame: the framing overhead and the Yamux window update the simulator charges.
//
// Part 3, the node's path, in two processes: 16 real nodes in a child (GrapevineNode, src/net
// Network, composeNode's handler: the gossip stream, sessions, byte and rate checks, peer
// counters, the fair inbox, the ingress, the engine, the mempool), each admitted with one peer, a
// real node in this process that sends through Network.sendGossip: a frame to each every 8 ms
// (about propagation.ts's frame rate), per message type (a pushed new tx, an inv of 1 and of 64
// held hashes). Main-thread CPU per frame on each side, less each side's background with nothing
// sent. The committed table takes its frame and tx costs from here (the "node path" column): the
// bare transport of part 2 leaves out src/net's per-frame work and the node's handler. Part 1 also
// times the engine's tick on the node's timer (a RepeatingTask every 6 ms), not the tick alone.
//
// Part 1 times with the wall clock (median of rounds), so it is best run on a quiet machine.
import '../../src/polyfill.ts'
import { spawn } from 'node:child_process'
import type { Socket } from 'node:net'
import { loadavg } from 'node:os'
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { type GossipMessage, INV_TX, decodeGossip, encodeGossip } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { GossipEngine } from '../../src/gossip/engine.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { txSignatureValid } from '../../src/ledger/validation.ts'
import { FrameReader } from '../../src/net/framing.ts'
import { libp2pKeyFrom } from '../../src/net/identity.ts'
import { buildLibp2p, protocolIds } from '../../src/net/libp2p.ts'
import { OutboundLink } from '../../src/net/link.ts'
import type { Network } from '../../src/net/network.ts'
import { GrapevineNode } from '../../src/node/node.ts'
import { CALIBRATED_CPU_COSTS, CPU_COSTS_CALIBRATION, type CpuCosts } from '../../src/sim/cpu-costs.ts'
import { seededRandom } from '../../src/util/random.ts'
import { systemRuntime } from '../../src/util/clock.ts'
import { RepeatingTask } from '../../src/util/task.ts'
import { FRAME_OVERHEAD_BYTES, WINDOW_UPDATE_BYTES } from '../../src/sim/model.ts'
import { fmt, mainThreadCpuMs, parseOptions, printJson, printTable, round, socketCollector, startBenchNetwork } from './util.ts'

const USAGE = `usage: node --import tsx scripts/bench/sim-calibrate.ts [--frames N] [--node-frames N] [--items N] [--runs N] [--json]
  --frames N   frames per size and regime in the transport part (default 1500)
  --node-frames N  frames per message type in the node's path (default 3000)
  --items N    transactions for the in-process part (default 3000)
  --runs N     repeat everything N times and give each constant's median (default 1)
  --json       also print one JSON object as the last line`

const PROTOCOL = '/grapevine-calibrate/frames/1'
/** Payload sizes of the transport part: an inv of one item (38 B), a txs of one tx, larger frames. */
const SIZES = [38, 200, 1_000, 4_000]
/** Frame layout: f64 sender time, u8 kind, u32 phase. */
const KIND_DATA = 0
const KIND_START = 1
const KIND_END = 2
const KIND_DONE = 3

const wallNow = (): number => performance.timeOrigin + performance.now()
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface Meter {
  eluMs: number
  cpuMs: number
  /** CPU time of the main thread alone (Linux /proc; the process's where unavailable). */
  mainMs: number
  /** Garbage-collection pauses of the main thread: how many, how long in all. */
  gcs: number
  gcMs: number
}

const gc = { count: 0, ms: 0 }
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.count++
    gc.ms += entry.duration
  }
}).observe({ entryTypes: ['gc'] })


function meter(): Meter {
  const cpu = process.cpuUsage()
  return { eluMs: performance.eventLoopUtilization().active, cpuMs: (cpu.user + cpu.system) / 1000, mainMs: mainThreadCpuMs(), gcs: gc.count, gcMs: gc.ms }
}

function since(start: Meter): Meter {
  const end = meter()
  return { eluMs: end.eluMs - start.eluMs, cpuMs: end.cpuMs - start.cpuMs, mainMs: end.mainMs - start.mainMs, gcs: end.gcs - start.gcs, gcMs: end.gcMs - start.gcMs }
}

function bytesWritten(sockets: Set<Socket>): number {
  let total = 0
  for (const socket of sockets) total += socket.bytesWritten
  return total
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

/** Least squares y = a + b·x. */
function fit(points: Array<[number, number]>): { fixed: number; slope: number } {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  let sxy = 0
  let sxx = 0
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my)
    sxx += (x - mx) ** 2
  }
  const slope = sxx > 0 ? sxy / sxx : 0
  return { fixed: my - slope * mx, slope }
}

// ---------------------------------------------------------------- part 2: the receiver (child)

/** Libp2p nodes on each side: RECEIVER_NODES × SENDER_NODES connections, one socket each. */
const RECEIVER_NODES = 4
const SENDER_NODES = 4

interface ReceivedPhase {
  phase: number
  frames: number
  /** Bytes the receiver wrote back on its sockets during the phase (Yamux window updates and the like). */
  bytesWritten: number
  eluMs: number
  cpuMs: number
  mainMs: number
  gcs: number
  gcMs: number
  wallMs: number
  delayMedianMs: number
}

async function receiver(): Promise<void> {
  const phases: ReceivedPhase[] = []
  let current: { phase: number; frames: number; start: Meter; startedAt: number; delaysMs: number[]; bytesAtStart: number } | undefined
  const sockets = new Set<Socket>()
  const nodes: Array<Awaited<ReturnType<typeof buildLibp2p>>> = []
  for (let i = 0; i < RECEIVER_NODES; i++) {
    const libp2p = await buildLibp2p({ privateKey: await libp2pKeyFrom(devKeypair(6_100 + i)), protocols: protocolIds('00'.repeat(32)), listen: ['/ip4/127.0.0.1/tcp/0'], maxConnections: 100, dht: false, transportMetrics: socketCollector(sockets) })
    nodes.push(libp2p)
    await libp2p.handle(
      PROTOCOL,
      (stream) => {
        const reader = new FrameReader(1 << 20)
        stream.addEventListener('message', (event) => {
          for (const frame of reader.push(event.data)) {
            const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
            const sentAt = view.getFloat64(0)
            const kind = view.getUint8(8)
            const phase = view.getUint32(9)
            if (kind === KIND_START) current = { phase, frames: 0, start: meter(), startedAt: performance.now(), delaysMs: [], bytesAtStart: bytesWritten(sockets) }
            else if (kind === KIND_DATA && current !== undefined) {
              current.frames++
              current.delaysMs.push(wallNow() - sentAt)
            } else if (kind === KIND_END && current !== undefined) {
              const used = since(current.start)
              phases.push({ phase, frames: current.frames, bytesWritten: bytesWritten(sockets) - current.bytesAtStart, eluMs: used.eluMs, cpuMs: used.cpuMs, mainMs: used.mainMs, gcs: used.gcs, gcMs: used.gcMs, wallMs: performance.now() - current.startedAt, delayMedianMs: median(current.delaysMs) })
              current = undefined
            } else if (kind === KIND_DONE) {
              process.stdout.write(`${JSON.stringify({ phases })}\n`)
              void Promise.all(nodes.map((node) => node.stop())).then(() => process.exit(0))
            }
          }
        })
      },
      { maxInboundStreams: 16 },
    )
  }
  process.stdout.write(`${JSON.stringify({ listen: nodes.map((node) => node.getMultiaddrs()[0]?.toString()) })}\n`)
}

// ---------------------------------------------------------------- part 2: the sender (this process)

/**
 * Two regimes. Sporadic: one connection, a frame every ~1 ms (a node idle between messages wakes
 * for each). Busy: 16 connections, a burst of one frame on each every ~2 ms (the loop is busy and
 * every frame is still its own socket read and write, as in an inv wave through 16 nodes sharing
 * one process).
 */
const REGIMES = [
  { name: 'sporadic', connections: 1, intervalMs: 1 },
  { name: 'busy', connections: RECEIVER_NODES * SENDER_NODES, intervalMs: 2 },
] as const
type RegimeName = (typeof REGIMES)[number]['name']

interface TransportRow {
  regime: RegimeName
  payloadBytes: number
  senderUs: number
  receiverUs: number
  senderCpuUs: number
  receiverCpuUs: number
  /** The main thread's CPU time per frame: what the cost table takes. */
  senderMainUs: number
  receiverMainUs: number
  delayMedianMs: number
  /** Bytes on the wire per frame beyond its payload: the sender's, and what the receiver writes back. */
  senderOverheadBytes: number
  receiverBytesPerFrame: number
  /** GC pauses per 1,000 frames and their mean length (ms), each side. */
  senderGcsPerKiloFrame: number
  senderGcMeanMs: number
  receiverGcsPerKiloFrame: number
  receiverGcMeanMs: number
}

async function transport(framesPerSize: number): Promise<TransportRow[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--role', 'receiver'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const nextLine = (): Promise<string> => new Promise((resolve) => lines.once('line', resolve))
  const listen = (JSON.parse(await nextLine()) as { listen: string[] }).listen
  const senders: Array<Awaited<ReturnType<typeof buildLibp2p>>> = []
  const sockets = new Set<Socket>()
  const links: OutboundLink[] = []
  for (let i = 0; i < SENDER_NODES; i++) {
    const libp2p = await buildLibp2p({ privateKey: await libp2pKeyFrom(devKeypair(6_200 + i)), protocols: protocolIds('00'.repeat(32)), listen: ['/ip4/127.0.0.1/tcp/0'], maxConnections: 100, dht: false, transportMetrics: socketCollector(sockets) })
    senders.push(libp2p)
    for (const address of listen) links.push(new OutboundLink(await libp2p.dialProtocol(multiaddr(address), PROTOCOL), { maxQueuedBytes: 64 << 20 }))
  }
  const control = links[0] as OutboundLink
  const frameOf = (kind: number, phase: number, size: number): Uint8Array => {
    const bytes = new Uint8Array(Math.max(13, size))
    const view = new DataView(bytes.buffer)
    view.setFloat64(0, wallNow())
    view.setUint8(8, kind)
    view.setUint32(9, phase)
    return bytes
  }
  await sleep(500)
  // Per regime: the pacing loop alone (size 0), then one phase per size; a warm-up phase first.
  const plan: Array<{ regime: (typeof REGIMES)[number]; size: number; measured: boolean }> = [{ regime: REGIMES[1], size: 200, measured: false }]
  for (const regime of REGIMES) for (const size of [0, ...SIZES]) plan.push({ regime, size, measured: true })
  const sent: Array<{ eluMs: number; cpuMs: number; mainMs: number; gcs: number; gcMs: number; frames: number; rounds: number; bytes: number }> = []
  for (let phase = 0; phase < plan.length; phase++) {
    const { regime, size } = plan[phase] as (typeof plan)[number]
    const rounds = Math.max(1, Math.round(framesPerSize / regime.connections))
    control.send(frameOf(KIND_START, phase, 13))
    await sleep(50)
    const start = meter()
    const bytesAtStart = bytesWritten(sockets)
    let frames = 0
    for (let round = 0; round < rounds; round++) {
      await sleep(regime.intervalMs)
      if (size === 0) continue
      for (let c = 0; c < regime.connections; c++) {
        ;(links[c] as OutboundLink).send(frameOf(KIND_DATA, phase, size))
        frames++
      }
    }
    await sleep(20)
    const used = since(start)
    sent.push({ eluMs: used.eluMs, cpuMs: used.cpuMs, mainMs: used.mainMs, gcs: used.gcs, gcMs: used.gcMs, frames, rounds, bytes: bytesWritten(sockets) - bytesAtStart })
    await sleep(80)
    control.send(frameOf(KIND_END, phase, 13))
    await sleep(100)
  }
  control.send(frameOf(KIND_DONE, 0, 13))
  const received = JSON.parse(await nextLine()) as { phases: ReceivedPhase[] }
  for (const libp2p of senders) await libp2p.stop()
  child.kill()
  const rows: TransportRow[] = []
  for (const regime of REGIMES) {
    const phaseOf = (size: number) => plan.findIndex((p) => p.measured && p.regime === regime && p.size === size)
    const pacing = sent[phaseOf(0)] as (typeof sent)[number]
    const idle = received.phases.find((p) => p.phase === phaseOf(0))
    for (const size of SIZES) {
      const phase = phaseOf(size)
      const r = received.phases.find((p) => p.phase === phase)
      const s = sent[phase]
      if (r === undefined || s === undefined || r.frames === 0) throw new Error(`transport phase ${phase}: the receiver saw no frames`)
      // Receiver: busy time per frame, less what it does idle (libp2p's own timers) over as long a phase.
      const idleElu = idle === undefined ? 0 : (idle.eluMs / idle.wallMs) * r.wallMs
      const idleCpu = idle === undefined ? 0 : (idle.cpuMs / idle.wallMs) * r.wallMs
      const idleMain = idle === undefined ? 0 : (idle.mainMs / idle.wallMs) * r.wallMs
      rows.push({
        regime: regime.name,
        payloadBytes: size,
        senderUs: ((s.eluMs - (pacing.eluMs * s.rounds) / pacing.rounds) / s.frames) * 1000,
        receiverUs: ((r.eluMs - idleElu) / r.frames) * 1000,
        senderCpuUs: ((s.cpuMs - (pacing.cpuMs * s.rounds) / pacing.rounds) / s.frames) * 1000,
        receiverCpuUs: ((r.cpuMs - idleCpu) / r.frames) * 1000,
        senderMainUs: ((s.mainMs - (pacing.mainMs * s.rounds) / pacing.rounds) / s.frames) * 1000,
        receiverMainUs: ((r.mainMs - idleMain) / r.frames) * 1000,
        delayMedianMs: r.delayMedianMs,
        senderOverheadBytes: s.bytes / s.frames - size,
        receiverBytesPerFrame: r.bytesWritten / r.frames,
        senderGcsPerKiloFrame: (s.gcs / s.frames) * 1000,
        senderGcMeanMs: s.gcs > 0 ? s.gcMs / s.gcs : 0,
        receiverGcsPerKiloFrame: (r.gcs / r.frames) * 1000,
        receiverGcMeanMs: r.gcs > 0 ? r.gcMs / r.gcs : 0,
      })
    }
  }
  return rows
}

// ---------------------------------------------------------------- part 3: the node's path (real Network and node, two processes)

/**
 * Real nodes on both ends, as propagation.ts runs them: the child runs NODE_PATH_NODES
 * GrapevineNodes, each with its src/net Network and composeNode's handler (gossip stream, sessions,
 * rate limits and byte checks, peer counters, the fair inbox, ingress, the engine, the mempool),
 * all in one process like propagation.ts's 16; this process runs one more, admitted as the only
 * peer of each, and sends through Network.sendGossip (accounting, encodeGossip, our link).
 */
const NODE_PATH_NODES = 16
/**
 * A round sends one frame to each of the 16 nodes every 8 ms: 2,000 frames/s, about the frame rate
 * of propagation.ts (≈ 95 frames per tx at 20 tx/s: 1,900/s), and 125 frames/s per peer, under the
 * node's 200 frames/s per-peer limit (RATE_LIMITS.gossipMessages), so none is refused.
 */
const NODE_PATH_INTERVAL_MS = 8

/** The phases: nothing sent (both sides' background), then one gossip message type each. */
const NODE_PATH_PHASES = ['idle', 'txs1-new', 'inv1-held', 'inv64-held'] as const
type NodePathPhase = (typeof NODE_PATH_PHASES)[number]

interface NodeReceiverPhase {
  /** Gossip frames that reached the nodes' streams, and those decoded and handed to the node side (after the rate limits). */
  framesIn: number
  framesHandled: number
  /** Gossip frames the nodes sent meanwhile (none expected: each node's only peer is the origin). */
  framesOut: number
  /** Transactions the nodes admitted. */
  txsAdmitted: number
  mainMs: number
  wallMs: number
}

/** The child of part 3: NODE_PATH_NODES real nodes; phases are started and ended by lines on stdin. */
async function nodeReceiver(genesisTime: number, fundedCount: number): Promise<void> {
  const genesis = devnetGenesis({ validatorCount: 4, genesisTime, fundedCount })
  const nodes: GrapevineNode[] = []
  const networks: Network[] = []
  const stops: Array<() => void> = []
  let txsAdmitted = 0
  for (let i = 0; i < NODE_PATH_NODES; i++) {
    const node = await GrapevineNode.open({ genesis })
    node.events.on('tx', () => void txsAdmitted++)
    // As propagation.ts starts its nodes (no DHT, no discovery dials, anti-entropy off, 25 ms announce batches).
    const { network, services } = await startBenchNetwork(node, devKeypair(6_300 + i), { dht: false, targetPeers: 0, random: seededRandom(i + 1) }, { gossip: { announceBatchMs: 25 } })
    nodes.push(node)
    networks.push(network)
    stops.push(services.stop)
  }
  const counts = () => {
    let framesIn = 0
    let framesHandled = 0
    let framesOut = 0
    for (const network of networks) {
      for (const session of network.admittedPeers()) {
        const gossip = session.counters.protocols.get(network.protocols.gossip)
        framesIn += gossip?.messagesIn ?? 0
        framesOut += gossip?.messagesOut ?? 0
        for (const [key, count] of session.counters.messageTypes) if (key.startsWith('in:')) framesHandled += count
      }
    }
    return { framesIn, framesHandled, framesOut, txsAdmitted }
  }
  const phases: NodeReceiverPhase[] = []
  let current: { counts: ReturnType<typeof counts>; mainMs: number; startedAt: number } | undefined
  const lines = createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    if (line === 'admitted') process.stdout.write(`${JSON.stringify({ admitted: networks.map((network) => network.admittedPeers().length) })}\n`)
    else if (line === 'start') current = { counts: counts(), mainMs: mainThreadCpuMs(), startedAt: performance.now() }
    else if (line === 'end' && current !== undefined) {
      const now = counts()
      phases.push({
        framesIn: now.framesIn - current.counts.framesIn,
        framesHandled: now.framesHandled - current.counts.framesHandled,
        framesOut: now.framesOut - current.counts.framesOut,
        txsAdmitted: now.txsAdmitted - current.counts.txsAdmitted,
        mainMs: mainThreadCpuMs() - current.mainMs,
        wallMs: performance.now() - current.startedAt,
      })
      current = undefined
    } else if (line === 'done') {
      process.stdout.write(`${JSON.stringify({ phases })}\n`)
      for (const stop of stops) stop()
      void Promise.all(networks.map((network) => network.stop()))
        .then(() => Promise.all(nodes.map((node) => node.stop())))
        .then(() => process.exit(0))
    }
  })
  process.stdout.write(`${JSON.stringify({ listen: networks.map((network) => network.listenAddresses()[0]) })}\n`)
}

interface NodePathRow {
  phase: NodePathPhase
  /** The gossip message's encoded size (the frame's payload). */
  payloadBytes: number
  frames: number
  /** Main-thread CPU per frame (µs): the sending node's, less its pacing loop; the receiving nodes', less their idle background. */
  senderMainUs: number
  receiverMainUs: number
  /** Per frame handled: frames the receiving nodes sent back, and txs they admitted. */
  framesBackPerFrame: number
  txsAdmittedPerFrame: number
}

async function nodePath(framesPerPhase: number): Promise<NodePathRow[]> {
  const rounds = Math.max(8, Math.round(framesPerPhase / NODE_PATH_NODES))
  // Distinct funded senders: each round's tx is new to every node (warm-up, then measured).
  const txs: SignedTx[] = []
  for (let i = 0; i < 2 * rounds; i++) txs.push(signTransfer({ chainId: 'grapevine-devnet', from: devKeypair(1_000 + i), to: devKeypair(7).publicKey, amount: 1n, fee: 1n, nonce: 0 }))
  const genesisTime = Date.now()
  const fundedCount = 1_000 + txs.length
  const genesis = devnetGenesis({ validatorCount: 4, genesisTime, fundedCount })
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--role', 'node-receiver', String(genesisTime), String(fundedCount)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  // The child's end, however it comes (its output closed, its exit), fails the wait instead of leaving it unsettled.
  let ended: string | undefined
  const waiting = new Set<(error: Error) => void>()
  const end = (why: string): void => {
    ended ??= why
    for (const fail of waiting) fail(new Error(ended))
    waiting.clear()
  }
  lines.once('close', () => end("the nodes' process closed its output"))
  // Its exit, awaited at the end: listened for from the start, since it may come before we get there.
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      end(`the nodes' process exited (code ${code}, signal ${signal})`)
      resolve()
    }),
  )
  const nextLine = (): Promise<string> =>
    new Promise((resolve, reject) => {
      if (ended !== undefined) return reject(new Error(ended))
      waiting.add(reject)
      lines.once('line', (line) => {
        waiting.delete(reject)
        resolve(line)
      })
    })
  const tell = (line: string): void => void child.stdin.write(`${line}\n`)
  const listen = (JSON.parse(await nextLine()) as { listen: string[] }).listen
  const node = await GrapevineNode.open({ genesis })
  const { network, services } = await startBenchNetwork(node, devKeypair(6_400), { dht: false, targetPeers: 0, random: seededRandom(99) }, { gossip: { announceBatchMs: 25 } })
  for (const address of listen) await network.dial(address)
  for (let tries = 0; tries < 100; tries++) {
    tell('admitted')
    const theirs = (JSON.parse(await nextLine()) as { admitted: number[] }).admitted
    if (network.admittedPeers().length === listen.length && theirs.every((count) => count === 1)) break
    await sleep(100)
  }
  const peers = network.admittedPeers().map((session) => session.id)
  if (peers.length !== NODE_PATH_NODES) throw new Error(`node path: ${peers.length} of ${NODE_PATH_NODES} peers admitted`)
  await sleep(500)
  const item = (signed: SignedTx) => ({ kind: INV_TX, hash: signed.id })
  // The warm-up's txs (the second half): every node holds them from the warm-up on.
  const held = (round: number, offset: number): SignedTx => txs[rounds + ((round + offset) % rounds)] as SignedTx
  const messageOf = (phase: NodePathPhase, round: number, warm: boolean): GossipMessage | undefined => {
    switch (phase) {
      case 'idle':
        return undefined
      case 'txs1-new':
        // A push of one tx none of the nodes holds: decoded, verified, admitted; relayed to no one (the origin is each node's only peer).
        return { type: 'txs', solicited: false, txs: [txs[warm ? rounds + round : round] as SignedTx] }
      case 'inv1-held':
        return { type: 'inv', items: [item(held(round, 0))] }
      case 'inv64-held':
        return { type: 'inv', items: Array.from({ length: 64 }, (_, k) => item(held(round, k))) }
    }
  }
  const plan: Array<{ phase: NodePathPhase; measured: boolean }> = [
    { phase: 'txs1-new', measured: false },
    { phase: 'inv1-held', measured: false },
    ...NODE_PATH_PHASES.map((phase) => ({ phase, measured: true })),
  ]
  const sent: Array<{ mainMs: number; frames: number; rounds: number }> = []
  for (const { phase, measured } of plan) {
    tell('start')
    await sleep(50)
    const before = mainThreadCpuMs()
    let frames = 0
    for (let round = 0; round < rounds; round++) {
      await sleep(NODE_PATH_INTERVAL_MS)
      const message = messageOf(phase, round, !measured)
      if (message === undefined) continue
      for (const peer of peers) {
        network.sendGossip(peer, message)
        frames++
      }
    }
    await sleep(30)
    sent.push({ mainMs: mainThreadCpuMs() - before, frames, rounds })
    // The nodes' admissions finish off the loop (a promise per batch): let them land before the phase ends.
    await sleep(200)
    tell('end')
    await sleep(50)
  }
  tell('done')
  const received = (JSON.parse(await nextLine()) as { phases: NodeReceiverPhase[] }).phases
  services.stop()
  await network.stop()
  await node.stop()
  await exited
  const measuredFrom = plan.findIndex((step) => step.measured)
  const idleSent = sent[measuredFrom] as (typeof sent)[number]
  const idleReceived = received[measuredFrom] as NodeReceiverPhase
  const rows: NodePathRow[] = []
  for (let index = measuredFrom + 1; index < plan.length; index++) {
    const phase = (plan[index] as (typeof plan)[number]).phase
    const s = sent[index] as (typeof sent)[number]
    const r = received[index] as NodeReceiverPhase
    if (r.framesHandled === 0) throw new Error(`node path, ${phase}: the nodes handled no frames`)
    const message = messageOf(phase, 0, false) as GossipMessage
    rows.push({
      phase,
      payloadBytes: encodeGossip(message).length,
      frames: r.framesHandled,
      senderMainUs: ((s.mainMs - (idleSent.mainMs * s.rounds) / idleSent.rounds) / s.frames) * 1000,
      receiverMainUs: ((r.mainMs - (idleReceived.mainMs / idleReceived.wallMs) * r.wallMs) / r.framesHandled) * 1000,
      framesBackPerFrame: r.framesOut / r.framesHandled,
      txsAdmittedPerFrame: r.txsAdmitted / r.framesHandled,
    })
  }
  return rows
}

// ---------------------------------------------------------------- part 1: in-process code paths

/** Median over `rounds` of the mean µs per call of `op` over `count` calls. */
function timeOps(count: number, rounds: number, op: (i: number) => void): number {
  const results: number[] = []
  for (let r = 0; r < rounds; r++) {
    const start = performance.now()
    for (let i = 0; i < count; i++) op(i)
    results.push(((performance.now() - start) / count) * 1000)
  }
  return median(results)
}

interface InProcess {
  verifyUs: number
  decode: { invFixedUs: number; invItemUs: number; txsFixedUs: number; txUs: number }
  encode: { fixedUs: number; perByteUs: number }
  admissionUs: number
  admissionWithVerifyUs: number
  engine: { invUs: number; txsUs: number; getdataUs: number; tickUs: number }
  /** One engine tick as composeNode runs it: on a RepeatingTask, a real timer every 6 ms. */
  tickOnTimersUs: number
  txBytes: number
}

/** Engines ticked on timers at once, as propagation.ts's 16 nodes do, and the peers each has. */
const TICKED_ENGINES = 16
const TICKED_ENGINE_PEERS = 6

/**
 * The engine's tick as the node runs it (composeNode's tickTask: a RepeatingTask on the system
 * timers every announceBatchMs / 4 = 6 ms): 16 engines with 6 idle peers each for 2 s, the
 * process's CPU per tick less what the process spends idle over as long. The timer, the task's
 * promise and the tick itself: what a loop pays per tick, not the tick's work alone.
 */
async function tickOnTimers(): Promise<number> {
  const cpuMs = (): number => {
    const used = process.cpuUsage()
    return (used.user + used.system) / 1000
  }
  const engines = Array.from({ length: TICKED_ENGINES }, (_, e) => {
    const engine = new GossipEngine(
      {
        send: () => undefined,
        wake: () => undefined,
        hasTx: () => false,
        getTx: () => undefined,
        hasBlock: () => false,
        getBlock: () => undefined,
        deliverTxs: () => undefined,
        deliverBlock: () => undefined,
        random: seededRandom(100 + e),
      },
      { announceBatchMs: 25 },
    )
    for (let p = 0; p < TICKED_ENGINE_PEERS; p++) engine.addPeer({ id: `peer-${p}`, outbound: p % 2 === 0, stake: 0n }, systemRuntime.clock())
    return engine
  })
  const idleFrom = cpuMs()
  const idleWall = performance.now()
  await sleep(1_000)
  const idlePerMs = (cpuMs() - idleFrom) / (performance.now() - idleWall)
  let ticks = 0
  const tasks = engines.map(
    (engine) =>
      new RepeatingTask(
        () => {
          ticks++
          engine.tick(systemRuntime.clock())
        },
        6,
        (error) => {
          throw error
        },
        systemRuntime.timers,
      ),
  )
  const from = cpuMs()
  const wall = performance.now()
  for (const task of tasks) task.start()
  await sleep(2_000)
  for (const task of tasks) task.stop()
  const used = cpuMs() - from - idlePerMs * (performance.now() - wall)
  return (used / ticks) * 1000
}

async function inProcess(items: number): Promise<InProcess> {
  const txs: SignedTx[] = []
  for (let i = 0; i < items; i++) txs.push(signTransfer({ chainId: 'grapevine-devnet', from: devKeypair(1_000 + i), to: devKeypair(7).publicKey, amount: 1n, fee: 1n, nonce: 0 }))
  const txBytes = txs.reduce((sum, signed) => sum + signed.bytes.length, 0) / txs.length

  // Signature: the node's fast path (libsodium), each tx once per round.
  const verifyUs = timeOps(txs.length, 3, (i) => {
    if (!txSignatureValid(txs[i] as SignedTx)) throw new Error('invalid calibration tx')
  })

  // Decode and encode: real frames of 1 and many items.
  const item = (signed: SignedTx) => ({ kind: INV_TX, hash: signed.id })
  const frames: Record<string, { message: GossipMessage; count: number }> = {
    inv1: { message: { type: 'inv', items: [item(txs[0] as SignedTx)] }, count: 1 },
    inv64: { message: { type: 'inv', items: txs.slice(0, 64).map(item) }, count: 64 },
    txs1: { message: { type: 'txs', solicited: true, txs: txs.slice(0, 1) }, count: 1 },
    txs16: { message: { type: 'txs', solicited: true, txs: txs.slice(0, 16) }, count: 16 },
  }
  const decodeUs: Record<string, number> = {}
  const encodeUs: Record<string, number> = {}
  const sizes: Record<string, number> = {}
  for (const [name, { message }] of Object.entries(frames)) {
    const bytes = encodeGossip(message)
    sizes[name] = bytes.length
    decodeUs[name] = timeOps(20_000, 5, () => decodeGossip(bytes))
    encodeUs[name] = timeOps(20_000, 5, () => encodeGossip(message))
  }
  const invDecode = fit([[1, decodeUs.inv1 as number], [64, decodeUs.inv64 as number]])
  const txsDecode = fit([[1, decodeUs.txs1 as number], [16, decodeUs.txs16 as number]])
  const encode = fit(Object.keys(frames).map((name) => [sizes[name] as number, encodeUs[name] as number]))

  // Admission on a real node (in-memory store): precheck, signature, mempool add, the 'tx' event.
  const genesis = devnetGenesis({ validatorCount: 4, genesisTime: Date.now(), fundedCount: 1_000 + items })
  const node = await GrapevineNode.open({ genesis })
  const origin = { kind: 'peer' as const, peerId: 'calibration' }
  // Warm-up: the ingest path runs in optimised code by then, as in a node past its first txs.
  const warm = Math.min(1_000, Math.floor(items / 3))
  for (let i = 0; i < warm; i++) await node.acceptTxs([txs[i] as SignedTx], origin)
  const admitStart = performance.now()
  for (let i = warm; i < items; i++) {
    const [error] = await node.acceptTxs([txs[i] as SignedTx], origin)
    if (error !== undefined) throw error
  }
  const admissionWithVerifyUs = ((performance.now() - admitStart) / (items - warm)) * 1000
  await node.stop()

  // The gossip engine with 8 peers, as a node of propagation.ts's graph has about 6–8.
  const held = new Map<string, SignedTx>()
  let now = 1_000_000
  let sent = 0
  const engine: GossipEngine = new GossipEngine(
    {
      send: () => void sent++,
      wake: () => undefined,
      hasTx: (hex) => held.has(hex),
      getTx: (hex) => held.get(hex),
      hasBlock: () => false,
      getBlock: () => undefined,
      deliverTxs: (peerId, delivered) => {
        for (const signed of delivered) {
          held.set(signed.idHex, signed)
          engine.relayTx(signed, peerId, now)
        }
      },
      deliverBlock: () => undefined,
      random: seededRandom(1),
    },
    { announceBatchMs: 25 },
  )
  const peers = Array.from({ length: 8 }, (_, i) => `peer-${i}`)
  peers.forEach((id, i) => engine.addPeer({ id, outbound: i % 2 === 0, stake: 0n }, now))
  const steps = { inv: 0, txs: 0, getdata: 0, tick: 0 }
  const rounds = 2
  for (let r = 0; r < rounds; r++) {
    held.clear()
    for (let i = 0; i < items; i++) {
      const signed = txs[i] as SignedTx
      now += 30
      const t0 = performance.now()
      engine.onMessage('peer-0', { type: 'inv', items: [item(signed)] }, now)
      engine.flush(now)
      const t1 = performance.now()
      engine.onMessage('peer-0', { type: 'txs', solicited: true, txs: [signed] }, now)
      engine.flush(now)
      const t2 = performance.now()
      engine.onMessage('peer-1', { type: 'getdata', items: [item(signed)] }, now)
      engine.flush(now)
      const t3 = performance.now()
      engine.tick(now + 10)
      const t4 = performance.now()
      if (r === rounds - 1) {
        steps.inv += t1 - t0
        steps.txs += t2 - t1
        steps.getdata += t3 - t2
        steps.tick += t4 - t3
      }
    }
  }
  if (sent === 0) throw new Error('the engine sent nothing')
  const per = (ms: number) => (ms / items) * 1000
  return {
    verifyUs,
    decode: { invFixedUs: invDecode.fixed, invItemUs: invDecode.slope, txsFixedUs: txsDecode.fixed, txUs: txsDecode.slope },
    encode: { fixedUs: encode.fixed, perByteUs: encode.slope },
    admissionUs: admissionWithVerifyUs - verifyUs,
    admissionWithVerifyUs,
    engine: { invUs: per(steps.inv), txsUs: per(steps.txs), getdataUs: per(steps.getdata), tickUs: per(steps.tick) },
    tickOnTimersUs: await tickOnTimers(),
    txBytes,
  }
}

/** The cost table these measurements give (ms) for one transport regime, in the shape of src/sim/cpu-costs.ts. */
function derive(part1: InProcess, rows: TransportRow[]): CpuCosts {
  // A fit through noisy points can go below zero at one end: a cost is never negative.
  const positive = (value: number) => Math.max(0, value)
  const send = fit(rows.map((r) => [r.payloadBytes, r.senderMainUs]))
  const receive = fit(rows.map((r) => [r.payloadBytes, r.receiverMainUs]))
  const ms = (us: number) => round(positive(us) / 1000, 5)
  const decodeFixed = positive((part1.decode.invFixedUs + part1.decode.txsFixedUs) / 2)
  return {
    sendFrameMs: ms(send.fixed + positive(part1.encode.fixedUs)),
    sendPerByteMs: round((positive(send.slope) + positive(part1.encode.perByteUs)) / 1000, 8),
    receiveFrameMs: ms(receive.fixed + decodeFixed),
    receivePerByteMs: round(positive(receive.slope) / 1000, 8),
    invItemMs: ms(part1.decode.invItemUs + part1.engine.invUs),
    getdataItemMs: ms(part1.decode.invItemUs + part1.engine.getdataUs),
    txMs: ms(part1.decode.txUs + part1.admissionUs + part1.engine.txsUs),
    txVerifyMs: ms(part1.verifyUs),
    tickMs: ms(part1.engine.tickUs),
  }
}

/**
 * The cost table with the node's path (part 3) where it measured it: a frame's send and receive
 * and a tx's handling on the real Network and node; the per-byte receive slope from the busy
 * transport (part 2: the node path's frames are too few sizes to fit it); inv, getdata and verify
 * from part 1; the tick on its timer (part 1).
 */
function deriveNodePath(part1: InProcess, busy: TransportRow[], nodeRows: NodePathRow[]): { costs: CpuCosts; heldInvItemUs: number } {
  const positive = (value: number) => Math.max(0, value)
  const ms = (us: number) => round(positive(us) / 1000, 5)
  const row = (phase: NodePathPhase): NodePathRow => {
    const found = nodeRows.find((r) => r.phase === phase)
    if (found === undefined) throw new Error(`node path: no ${phase} phase`)
    return found
  }
  const inv1 = row('inv1-held')
  const inv64 = row('inv64-held')
  const txs1 = row('txs1-new')
  const receivePerByteUs = positive(fit(busy.map((r) => [r.payloadBytes, r.receiverMainUs])).slope)
  // Every send of the node path is Network.sendGossip: accounting, encodeGossip, our link, libp2p.
  const send = fit(nodeRows.map((r) => [r.payloadBytes, r.senderMainUs]))
  // An inv of one held hash: the whole receive path; less its bytes and the decode of its one item (the engine's look-up of a held hash stays in: < 1 µs).
  const receiveFrameUs = inv1.receiverMainUs - receivePerByteUs * inv1.payloadBytes - part1.decode.invItemUs
  // A pushed tx on a node whose only peer sent it: less the frame, its bytes and the signature; plus the engine's relay to 7 peers (part 1), which that node has no one to relay to.
  const txUs = txs1.receiverMainUs - receiveFrameUs - receivePerByteUs * txs1.payloadBytes - part1.verifyUs + part1.engine.txsUs
  const heldInvItemUs = (inv64.receiverMainUs - receiveFrameUs - receivePerByteUs * inv64.payloadBytes) / 64
  return {
    costs: {
      sendFrameMs: ms(send.fixed),
      sendPerByteMs: round(positive(send.slope) / 1000, 8),
      receiveFrameMs: ms(receiveFrameUs),
      receivePerByteMs: round(receivePerByteUs / 1000, 8),
      invItemMs: ms(part1.decode.invItemUs + part1.engine.invUs),
      getdataItemMs: ms(part1.decode.invItemUs + part1.engine.getdataUs),
      txMs: ms(txUs),
      txVerifyMs: ms(part1.verifyUs),
      tickMs: ms(part1.tickOnTimersUs),
    },
    heldInvItemUs,
  }
}

/** The columns of the cost table printed: each transport regime alone (parts 1 and 2), and the node's path (parts 1–3; the committed one). */
type TableName = RegimeName | 'node path'

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const role = argv.indexOf('--role')
  if (role !== -1) return argv[role + 1] === 'node-receiver' ? nodeReceiver(Number(argv[role + 2]), Number(argv[role + 3])) : receiver()
  const { numbers, flags } = parseOptions(USAGE, { numbers: { frames: 1_500, 'node-frames': 3_000, items: 3_000, runs: 1 }, flags: ['json'] }, argv)
  const load = loadavg()[0] ?? 0
  const runs = Math.max(1, Math.floor(numbers.runs as number))
  console.log(`sim CPU calibration (src/sim/cpu-costs.ts): the real code paths, timed on this machine; ${runs} run(s); load average (1 min) ${fmt(load, 2)}`)
  const results: Array<{ part1: InProcess; rows: TransportRow[]; nodeRows: NodePathRow[]; tables: Record<TableName, CpuCosts>; loadAverage: number }> = []
  for (let run = 1; run <= runs; run++) {
    const loadAverage = loadavg()[0] ?? 0
    const part1 = await inProcess(numbers.items as number)
    console.log(`\nRun ${run}, load average ${fmt(loadAverage, 2)}. Part 1, in this process (µs; median of rounds; ${fmt(numbers.items as number)} distinct transfers of ${fmt(part1.txBytes)} B)`)
    printTable(['code path', 'µs'], [
      ['ed25519 verify, txSignatureValid (libsodium), per tx', fmt(part1.verifyUs, 1)],
      ['decodeGossip inv: per frame / per item', `${fmt(part1.decode.invFixedUs, 2)} / ${fmt(part1.decode.invItemUs, 2)}`],
      ['decodeGossip txs: per frame / per tx (parse, txid and signing hashes)', `${fmt(part1.decode.txsFixedUs, 2)} / ${fmt(part1.decode.txUs, 2)}`],
      ['encodeGossip: per frame / per byte', `${fmt(part1.encode.fixedUs, 2)} / ${fmt(part1.encode.perByteUs, 4)}`],
      ['GrapevineNode.acceptTxs of one fresh tx (precheck, verify, mempool add, event)', fmt(part1.admissionWithVerifyUs, 1)],
      ['  the same less the verify', fmt(part1.admissionUs, 1)],
      ['GossipEngine, 8 peers: inv of 1 new tx (→ getdata)', fmt(part1.engine.invUs, 2)],
      ['GossipEngine: the solicited txs (→ relay, inv to the other 7)', fmt(part1.engine.txsUs, 2)],
      ['GossipEngine: a getdata of 1 (→ txs)', fmt(part1.engine.getdataUs, 2)],
      ['GossipEngine: one tick (8 idle peers)', fmt(part1.engine.tickUs, 2)],
      [`  one tick on the node's timer (RepeatingTask every 6 ms, ${TICKED_ENGINES} engines of ${TICKED_ENGINE_PEERS} idle peers; process CPU)`, fmt(part1.tickOnTimersUs, 2)],
    ])
    const rows = await transport(numbers.frames as number)
    console.log(`Run ${run}. Part 2, transport: libp2p TCP + Noise + Yamux, our link and framing, sender and receiver in two processes, ~${fmt(numbers.frames as number)} frames per size`)
    console.log(`  sporadic: one connection, a frame every ~1 ms; busy: ${RECEIVER_NODES * SENDER_NODES} connections, one frame on each every ~2 ms`)
    printTable(['regime', 'payload B', 'send µs (main)', 'receive µs (main)', 'send µs (loop)', 'receive µs (loop)', 'send µs (process)', 'receive µs (process)', 'one-way ms (median)', 'GCs per 1,000 frames (send / receive)', 'wire B beyond payload', 'B written back'], rows.map((r) => [r.regime, fmt(r.payloadBytes), fmt(r.senderMainUs, 1), fmt(r.receiverMainUs, 1), fmt(r.senderUs, 1), fmt(r.receiverUs, 1), fmt(r.senderCpuUs, 1), fmt(r.receiverCpuUs, 1), fmt(r.delayMedianMs, 3), `${fmt(r.senderGcsPerKiloFrame, 1)} / ${fmt(r.receiverGcsPerKiloFrame, 1)}`, fmt(r.senderOverheadBytes, 1), fmt(r.receiverBytesPerFrame, 1)]))
    console.log(`  wire B beyond payload: what the sender's sockets carried per frame less the payload (the simulator charges ${FRAME_OVERHEAD_BYTES}); B written back: by the receiver per frame it read (the simulator charges ${WINDOW_UPDATE_BYTES}, a Yamux window update)`)
    console.log('  main = the main thread\'s CPU time (what the cost table takes: the event loop\'s work, GC pauses on it included, not time the OS gave to others); loop = the event loop\'s busy time (counts descheduled time too); process = user + system time of every thread')
    const nodeRows = await nodePath(numbers['node-frames'] as number)
    console.log(`Run ${run}. Part 3, the node's path: ${NODE_PATH_NODES} real nodes in one process (GrapevineNode, src/net Network, composeNode: gossip stream, sessions, rate limits, peer counters, fair inbox, ingress, engine, mempool), each with one peer: a real node in this process sending through Network.sendGossip, one frame to each every ${NODE_PATH_INTERVAL_MS} ms`)
    printTable(['phase', 'payload B', 'frames handled', 'send µs (main)', 'receive µs (main)', 'frames sent back per frame', 'txs admitted per frame'], nodeRows.map((r) => [r.phase, fmt(r.payloadBytes), fmt(r.frames), fmt(r.senderMainUs, 1), fmt(r.receiverMainUs, 1), fmt(r.framesBackPerFrame, 3), fmt(r.txsAdmittedPerFrame, 3)]))
    console.log('  send: the sending node\'s main thread per frame, less its loop with nothing to send; receive: the receiving nodes\' main thread per frame handled, less their idle background over as long (both nodes\' timers and liveness pings)')
    const nodeTable = deriveNodePath(part1, rows.filter((r) => r.regime === 'busy'), nodeRows)
    console.log(`  a held hash in an inv costs ${fmt(nodeTable.heldInvItemUs, 2)} µs beyond the frame (inv of 64 held vs of 1); a new one is charged part 1's decode and engine work (invItemMs)`)
    const tables = {
      ...Object.fromEntries(REGIMES.map((regime) => [regime.name, derive(part1, rows.filter((r) => r.regime === regime.name))])),
      'node path': nodeTable.costs,
    } as Record<TableName, CpuCosts>
    results.push({ part1, rows, nodeRows, tables, loadAverage })
  }
  const keys = Object.keys(CALIBRATED_CPU_COSTS) as Array<keyof CpuCosts>
  const tableNames: TableName[] = [...REGIMES.map((regime) => regime.name), 'node path']
  const medians = Object.fromEntries(tableNames.map((name) => [name, Object.fromEntries(keys.map((key) => [key, median(results.map((r) => r.tables[name][key]))]))])) as unknown as Record<TableName, CpuCosts>
  const spread = (name: TableName, key: keyof CpuCosts): string => {
    const values = results.map((r) => r.tables[name][key])
    return runs === 1 ? String(values[0]) : `${median(values)} (${Math.min(...values)}–${Math.max(...values)})`
  }
  console.log(`\nThe cost table (ms): from the transport alone per regime (parts 1 and 2) and from the node's path (parts 1–3)${runs > 1 ? `, median of ${runs} runs (min–max)` : ''}, beside the committed one (${CPU_COSTS_CALIBRATION})`)
  printTable(['constant', ...REGIMES.map((regime) => `${regime.name} transport now`), 'node path now', 'committed'], keys.map((key) => [key, ...tableNames.map((name) => spread(name, key)), String(CALIBRATED_CPU_COSTS[key])]))
  console.log(`  the committed table takes the node path's column (src/sim/cpu-costs.ts says why); load average (1 min) at the end ${fmt(loadavg()[0] ?? 0, 2)}`)
  if (flags.json) printJson({ loadAverage: load, runs: results, medians, committed: CALIBRATED_CPU_COSTS, loadAverageEnd: loadavg()[0] })
}

await main()
