/**
 * What handling a message costs a node's CPU: the one table of the simulator's CPU model
 * (src/sim/cpu.ts). Every constant is MEASURED by scripts/bench/sim-calibrate.ts, which times the
 * real code paths (real nodes on both ends of libp2p TCP + Noise + Yamux in two processes, through
 * src/net's Network and the node's handler; the bare transport; the codec, the signature check,
 * the real gossip engine and its tick on the node's timer in-process) and prints the table it
 * finds beside this one. Re-run it after a change to any of those paths (or on another machine)
 * and copy its "node path now" column here.
 */
import type { ControlKind, SimMessage } from './sim-message.ts'

export interface CpuCosts {
  /** Sending one frame: Network.sendGossip (accounting, encode), our link's turn, Yamux, Noise encrypt, the socket write, the window update read back. */
  sendFrameMs: number
  /** Sending, per byte on the wire (encode copy, encryption). */
  sendPerByteMs: number
  /** Receiving one frame: socket read, Noise, Yamux and its window update, src/net's gossip stream (framing, byte and rate checks, peer counters, the fair inbox), decode, the handler. */
  receiveFrameMs: number
  /** Receiving, per byte on the wire (decryption, copies). */
  receivePerByteMs: number
  /** Per item of a received inv or notfound: decode, the engine's want bookkeeping and request. */
  invItemMs: number
  /** Per item of a received getdata: decode, the engine's lookup and answer. */
  getdataItemMs: number
  /** Per tx received or submitted: decode (txid and signing hashes), the ingress, precheck, mempool add, relay. */
  txMs: number
  /** Per tx not held yet: the ed25519 check (a held one is refused before its signature). */
  txVerifyMs: number
  /** One engine tick as the node runs it: its timer, the repeating task, the tick (timeouts, retries, the announce flush). */
  tickMs: number
}

/**
 * A cost table measured elsewhere — `sim-calibrate.ts --json`'s last line (its `medians["node
 * path"]`) or a bare table — checked key by key against `CpuCosts`: every constant present, a
 * finite number ≥ 0. The table is the machine's: a comparison with a real run is fair only with
 * the costs of the machine that real run ran on.
 */
export function parseCpuCosts(value: unknown): CpuCosts {
  const record = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined)
  const table = record(record(record(value)?.medians)?.['node path']) ?? record(value)
  if (table === undefined) throw new Error('a cost table is an object (sim-calibrate.ts --json output, or its "node path" table)')
  const costs: Record<string, number> = {}
  for (const key of Object.keys(CALIBRATED_CPU_COSTS)) {
    const cost = table[key]
    if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) throw new Error(`cost table: ${key} is ${JSON.stringify(cost)}, not a finite number >= 0`)
    costs[key] = cost
  }
  return costs as unknown as CpuCosts
}

/** When, where and how the committed table was measured (printed with every run). */
export const CPU_COSTS_CALIBRATION =
  'scripts/bench/sim-calibrate.ts --runs 3 on 2026-11-28 01:45 UTC (2-core AMD EPYC VM, Node 20.20, load average 2.0-2.9 with other work running: main-thread CPU time is used, which descheduling does not inflate); the node path (real Network and node at both ends, part 3), median of 3 runs'

/**
 * The committed table: sim-calibrate.ts's "node path now" column from the run named above
 * (medians; the run's min–max in brackets). Frames are timed end to end on real nodes: 16
 * GrapevineNodes in one process (as propagation.ts runs them), each admitted with one peer, a real
 * node in another process sending through Network.sendGossip, a frame to each every 8 ms (2,000
 * frames/s, about propagation.ts's rate; under the per-peer rate limit). Until 2026-11-28 the
 * table took the bare transport (libp2p with our link and a FrameReader, busy regime: send 0.092,
 * receive 0.101 ms), which left out src/net's per-frame work and the node's handler, and the tick
 * without its timer (1.5 µs): the simulator then charged 1/1.38 of the real run's CPU per tx.
 */
export const CALIBRATED_CPU_COSTS: CpuCosts = {
  /** Fitted over the node path's three frames (38, 178, 2,117 B): Network.sendGossip through the socket (0.133–0.153). */
  sendFrameMs: 0.14241,
  /** Fitted over the same three frames: encode, encryption and copies (0.0000128–0.0000480; few sizes, so a wide spread). */
  sendPerByteMs: 0.00001922,
  /** An inv of one held hash on the real nodes, less its bytes and the decode of its item (0.159–0.204). */
  receiveFrameMs: 0.16298,
  /** The bare transport's slope over 38–4,000 B payloads, busy regime (the node path has too few sizes to fit it) (0.0000027–0.0000059). */
  receivePerByteMs: 0.00000455,
  /** decodeGossip per inv item + GossipEngine.onMessage(inv of one new tx) with its getdata (0.0038–0.0049). */
  invItemMs: 0.00411,
  /** decodeGossip per item + GossipEngine answering a getdata of one held tx (0.0008–0.0029). */
  getdataItemMs: 0.00112,
  /** A pushed new tx on the real nodes, less the frame, its bytes and the verify, plus the engine's relay to 7 peers (in-process) (0.023–0.076). */
  txMs: 0.06271,
  /** txSignatureValid, libsodium ed25519 verify (0.085–0.096). */
  txVerifyMs: 0.09277,
  /** GossipEngine.tick on a RepeatingTask every 6 ms, 16 engines at once, process CPU less idle (0–0.016: the idle baseline is noisy). */
  tickMs: 0.01234,
}

/** Modelled messages whose `txs` are full transactions (elsewhere they are ids, buckets or acknowledgements). */
const TX_CARRYING: ReadonlySet<ControlKind> = new Set<ControlKind>(['txs-reply', 'pull-reply'])

export function carriesTxs(kind: ControlKind): boolean {
  return TX_CARRYING.has(kind)
}

/** CPU time to send a message of `wireBytes` (framing included). */
export function sendCostMs(costs: CpuCosts, wireBytes: number): number {
  return costs.sendFrameMs + wireBytes * costs.sendPerByteMs
}

/**
 * CPU time to receive and handle a message of `wireBytes`; `newTxs` of its transactions are not
 * held yet (only those pay for a signature check, as in the node's ingest).
 */
export function receiveCostMs(costs: CpuCosts, message: SimMessage, wireBytes: number, newTxs: number): number {
  const frame = costs.receiveFrameMs + wireBytes * costs.receivePerByteMs
  switch (message.type) {
    case 'inv':
    case 'notfound':
      return frame + message.items.length * costs.invItemMs
    case 'getdata':
      return frame + message.items.length * costs.getdataItemMs
    case 'txs':
      return frame + message.txs.length * costs.txMs + newTxs * costs.txVerifyMs
    case 'control':
      // Modelled messages: those carrying full transactions pay for them like a txs message.
      return frame + (carriesTxs(message.kind) ? (message.txs?.length ?? 0) * costs.txMs + newTxs * costs.txVerifyMs : 0)
    default:
      return frame
  }
}

/** A transaction submitted at a node (RPC): decoded, checked, verified and admitted. */
export function submitCostMs(costs: CpuCosts): number {
  return costs.txMs + costs.txVerifyMs
}

/**
 * One liveness ping (src/net/liveness.ts; the same exchange libp2p's connection monitor makes): a
 * new Yamux stream, multistream-select of /ipfs/ping/1.0.0, 32 bytes each way, the stream closed.
 * Each connection is pinged once every `intervalMs`. Measured by scripts/bench/sim-calibrate-ping.ts.
 */
export interface PingCosts {
  /** DEFAULT_LIVENESS.intervalMs (src/net/liveness.ts). */
  intervalMs: number
  /** Main-thread CPU of one ping, both ends together (each end is charged half). */
  cpuMs: number
  /** Bytes written on the sockets per ping, both directions together (each direction half). */
  wireBytes: number
}

/** When and how the ping costs were measured (printed with every run). */
export const PING_CALIBRATION = 'scripts/bench/sim-calibrate-ping.ts (8 nodes, 40 rounds of 56 pings at once) on 2026-11-27 22:58 UTC, load average 1.3-1.5, median of 3 runs'

export const CALIBRATED_PING: PingCosts = {
  intervalMs: 10_000,
  /** 1.902 / 1.906 / 1.955 ms in the three runs: ≈ 19 gossip frames' worth per ping. */
  cpuMs: 1.906,
  /** 517.1 B in every run: ≈ 10 Noise messages (Yamux open and close, multistream-select, 32 B each way, window updates). */
  wireBytes: 517,
}

/**
 * V8's garbage collector as pauses: the table's costs are main-thread CPU and include the GC's
 * share as an average; the process really stops for a pause every so much work. Modelled on a
 * host that runs many nodes in one process ('one-host', propagation.ts's 16 nodes), whose heap
 * the pauses below were measured on; a host per node has a heap ~1/16 the size and is left
 * without pauses. Measured by scripts/bench/sim-tail.ts on a propagation.ts --trace.
 */
export interface GcCosts {
  /** Pauses per ms of the host's other work (allocation goes with work). */
  pausesPerWorkMs: number
  /** Pause lengths (ms): the measured pauses' ventiles, used in a fixed scrambled order. */
  pauseMs: readonly number[]
  /** GC's share of the measured main-thread CPU: taken off every job, so the total stays the table's. */
  shareOfCpu: number
}

/** When and how the GC pauses were measured (printed with every run that models them). */
export const GC_CALIBRATION =
  'scripts/bench/sim-tail.ts on two propagation.ts --phase grapevine --trace runs, 2026-11-28 04:47 UTC, quiet machine (load 0.8-1.0; each measured 20 s: 101 scavenges, no major GC, in 14.5 and 13.8 s of main-thread CPU). The 02:02 calibration (median 6.8 ms) was taken while other work ran: a scavenge\'s wall time grows when its threads are descheduled; the code of then gives 2.1 ms on the quiet machine too'

export const CALIBRATED_GC: GcCosts = {
  /** One pause per ~138 ms of work (0.00708 and 0.00743 in the two runs). */
  pausesPerWorkMs: 0.00725,
  /** Median 2.1 ms, longest ventile 3.5 ms: scavenges of a 16-node heap (ventiles averaged over the two runs). */
  pauseMs: [1.54, 1.67, 1.73, 1.78, 1.81, 1.9, 1.95, 1.98, 2.02, 2.08, 2.13, 2.16, 2.23, 2.33, 2.38, 2.46, 2.61, 2.81, 3.04, 3.51],
  /** 1.6 % of the main thread's CPU. */
  shareOfCpu: 0.016,
}

/**
 * The machine taking the CPU away from a busy process, whatever it is doing: a VM's vCPU
 * descheduled by its hypervisor (/proc/stat's `steal`), the OS running something else on the
 * core. The real network's tail rides on these (propagation.ts's 16 nodes share one process on
 * this VM); no profile of the node shows them. Modelled on a 'one-host' placement (the machine
 * the real runs were measured on); a host per node stands for machines of its own and is left
 * without. Measured by scripts/bench/host-stalls.ts (a busy probe on a quiet machine).
 */
export interface HostStallCosts {
  /** Stalls per second of wall time (Poisson arrivals). */
  perSecond: number
  /** Stall lengths (ms): the measured stalls' ventiles, drawn at random. */
  lengthMs: readonly number[]
}

/** When and how the host stalls were measured (printed with every run that models them). */
export const HOST_STALL_CALIBRATION =
  'scripts/bench/host-stalls.ts, both cores spun at once (a busy run uses both), 40 s each after 12 s of warm-up, quiet machine, 2026-11-28 04:41 UTC: 236 stalls over 1 ms (2.0 and 3.9 a second), 0.6–0.85 % of the time, steal 0.53 %'

export const CALIBRATED_HOST_STALLS: HostStallCosts = {
  /** Pooled over both cores. */
  perSecond: 2.95,
  /** Median 1.6 ms, longest ventile 10.1 ms (longest stall 16 ms). */
  lengthMs: [1.02, 1.08, 1.17, 1.26, 1.32, 1.36, 1.42, 1.5, 1.53, 1.59, 1.73, 1.86, 2.02, 2.19, 2.39, 2.88, 3.85, 4.33, 6.24, 10.09],
}
