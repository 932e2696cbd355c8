/**
 * What handling a message costs a node's CPU: the one table of the simulator's CPU model
 * (src/sim/cpu.ts). Every constant is MEASURED by scripts/bench/sim-calibrate.ts, which times the
 * real code paths (libp2p TCP + Noise + Yamux with our link and framing in two processes; the
 * codec, the signature check, a real node's admission and the real gossip engine in-process) and
 * prints the table it finds beside this one. Re-run it after a change to any of those paths (or
 * on another machine) and copy its "measured now" column here.
 */
import type { ControlKind, SimMessage } from './sim-network.ts'

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
export const CPU_COSTS_CALIBRATION = 'scripts/bench/sim-calibrate.ts, PLACEHOLDER'

/** The committed table: sim-calibrate.ts's "measured now" column from the run named above. */
export const CALIBRATED_CPU_COSTS: CpuCosts = {
  sendFrameMs: 0,
  sendPerByteMs: 0,
  receiveFrameMs: 0,
  receivePerByteMs: 0,
  invItemMs: 0,
  getdataItemMs: 0,
  txMs: 0,
  txVerifyMs: 0,
  tickMs: 0,
}

/** Modelled messages whose `txs` are full transactions (elsewhere they are ids or acknowledgements). */
const TX_CARRYING: ReadonlySet<ControlKind> = new Set<ControlKind>(['txs-reply', 'pull-reply'])

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
      return frame + (TX_CARRYING.has(message.kind) ? (message.txs?.length ?? 0) * costs.txMs + newTxs * costs.txVerifyMs : 0)
    default:
      return frame
  }
}

/** A transaction submitted at a node (RPC): decoded, checked, verified and admitted. */
export function submitCostMs(costs: CpuCosts): number {
  return costs.txMs + costs.txVerifyMs
}
