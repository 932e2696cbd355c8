/**
 * What the simulated network carries: the real gossip messages, and modelled control messages
 * (anti-entropy and the other strategies' rounds) that stand for a real exchange by their size.
 * Types only, shared by the network (sim-network.ts) and its CPU model (cpu.ts, cpu-costs.ts).
 */
import type { GossipMessage } from '../codec/wire.ts'

/** The kinds of modelled (non-gossip) messages. */
export type ControlKind =
  | 'status'
  | 'status-reply'
  | 'digest'
  | 'digest-reply'
  | 'ids'
  | 'ids-reply'
  | 'get-txs'
  | 'txs-reply'
  | 'feedback'
  | 'graft'
  | 'pull'
  | 'pull-reply'

/** A modelled message: what it stands for, its size in bytes, the catalog indexes it carries. */
export interface ControlMessage {
  type: 'control'
  kind: ControlKind
  bytes: number
  /** Round number: answers to an abandoned round are ignored. */
  round: number
  txs?: number[]
  /** A second list (e.g. what the answerer lacks, for push-pull). */
  wants?: number[]
}

export type SimMessage = GossipMessage | ControlMessage
