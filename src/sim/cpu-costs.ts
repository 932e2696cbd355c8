/**
 * What handling a message costs a node's CPU: the one table of the simulator's CPU model
 * (src/sim/cpu.ts). Every constant is MEASURED by scripts/bench/sim-calibrate.ts, which times the
 * real code paths (libp2p TCP + Noise + Yamux with our link and framing in two processes; the
 * codec, the signature check, a real node's admission and the real gossip engine in-process) and
 * prints the table it finds beside this one. Re-run it after a change to any of those paths (or
 * on another machine) and copy its "measured now" column here.
 */
import type { ControlKind, SimMessage } from './sim-message.ts'

export interface CpuCosts {
  /** Sending one frame: encode, our link's turn, Yamux header, Noise encrypt, the socket write. */
  sendFrameMs: number
  /** Sending, per byte on the wire (encode copy, encryption). */
  sendPerByteMs: number
  /** Receiving one frame: socket read, Noise decrypt, Yamux, the stream event, framing, decode of the header. */
  receiveFrameMs: number
  /** Receiving, per byte on the wire (decryption, copies). */
  receivePerByteMs: number
  /** Per item of a received inv or notfound: decode, the engine's want bookkeeping and request. */
  invItemMs: number
  /** Per item of a received getdata: decode, the engine's lookup and answer. */
  getdataItemMs: number
  /** Per tx received or submitted: decode (txid and signing hashes), precheck, mempool add, relay. */
  txMs: number
  /** Per tx not held yet: the ed25519 check (a held one is refused before its signature). */
  txVerifyMs: number
  /** One engine tick (timeouts, retries, the announce flush) with a handful of idle peers. */
  tickMs: number
}

/** When, where and how the committed table was measured (printed with every run). */
export const CPU_COSTS_CALIBRATION =
  'scripts/bench/sim-calibrate.ts --runs 3 on 2026-11-27 20:51 UTC (2-core AMD EPYC VM, Node 20.20, load average 2.9-3.7 from other work: main-thread CPU time is used, which descheduling does not inflate); busy-regime transport, median of 3 runs'

/**
 * The committed table: sim-calibrate.ts's "busy now" column from the run named above (medians;
 * the run's min–max in brackets). Busy, not sporadic: in propagation.ts's one process a tx's
 * gossip is a wave of frames on many sockets handled back to back, as in the busy regime (16
 * connections); a frame that arrives alone, one per turn of the loop, costs about 2.2× as much
 * (sporadic: send 0.224 ms, receive 0.212 ms), so a node handling its messages one at a time is
 * charged too little here.
 */
export const CALIBRATED_CPU_COSTS: CpuCosts = {
  /** libp2p send path per frame (our link's turn, Yamux, Noise, the write) + encodeGossip's fixed part (0.081–0.112). */
  sendFrameMs: 0.09205,
  /** Fitted over 38–4,000 B payloads: encryption and copies (0.0000137–0.0000257). */
  sendPerByteMs: 0.00001491,
  /** libp2p receive path per frame (read, Noise, Yamux and its window update, our FrameReader) + decodeGossip's fixed part (0.091–0.108). */
  receiveFrameMs: 0.10085,
  /** Fitted over 38–4,000 B payloads: decryption and copies (0.0000055–0.0000154). */
  receivePerByteMs: 0.00000662,
  /** decodeGossip per inv item + GossipEngine.onMessage(inv of one new tx) with its getdata (0.0024–0.0073). */
  invItemMs: 0.00411,
  /** decodeGossip per item + GossipEngine answering a getdata of one held tx (0.0016–0.0027). */
  getdataItemMs: 0.00186,
  /** decodeGossip per tx (txid and signing hashes) + GrapevineNode.acceptTxs less its verify (account lookup, mempool add) + the engine's relay (0.143–0.177). */
  txMs: 0.14512,
  /** txSignatureValid, libsodium ed25519 verify (0.074–0.084). */
  txVerifyMs: 0.07495,
  /** GossipEngine.tick with 8 idle peers (0.0004–0.0033). */
  tickMs: 0.00147,
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
