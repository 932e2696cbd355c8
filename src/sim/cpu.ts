/**
 * The simulator's CPU model: nodes are placed on hosts, and each host has a FIFO CPU queue served
 * by `cores` cores on virtual time. A job (sending a message, handling a delivered one, an engine
 * tick, a submitted tx) occupies the earliest-free core of its host for its service time from the
 * cost table (src/sim/cpu-costs.ts); what it produces happens when the core is done with it.
 *
 * Placements: 'per-node' gives every node its own host (a network of machines; the default);
 * 'one-host' puts every node on one host, as propagation.ts runs 16 libp2p nodes in one Node.js
 * process whose single event loop all their handlers share (cores 1).
 *
 * The queue is a reservation: a job submitted at t starts at max(t, the core's free time) and the
 * core is free again at its end, so jobs submitted in time order are served in that order. No
 * event of its own: the network schedules the handler at the end time it is given.
 */
import { type CpuCosts, type PingCosts, carriesTxs, receiveCostMs, sendCostMs, submitCostMs } from './cpu-costs.ts'
import type { SimMessage } from './sim-message.ts'

export type HostPlacement = 'per-node' | 'one-host'

/** Hosts' CPUs: one FIFO queue per host, `cores` servers each. */
export class HostCpus {
  /** When each core is next free (virtual ms), host-major. BOUNDED: hosts × cores. */
  private readonly freeAt: Float64Array
  /** CPU time charged per host (ms). */
  readonly busyMs: Float64Array
  /** Jobs run, and their summed wait in the queue (ms), over every host. */
  jobs = 0
  waitMs = 0
  maxWaitMs = 0

  constructor(
    readonly hosts: number,
    readonly cores: number,
  ) {
    if (!(hosts >= 1 && cores >= 1 && Number.isInteger(hosts) && Number.isInteger(cores))) throw new Error(`bad CPU shape: ${hosts} hosts × ${cores} cores`)
    this.freeAt = new Float64Array(hosts * cores)
    this.busyMs = new Float64Array(hosts)
  }

  /** When a job submitted at `at` on `host` would start (its earliest-free core), without running one. */
  startAt(host: number, at: number): number {
    let free = this.freeAt[host * this.cores] as number
    for (let c = host * this.cores + 1; c < (host + 1) * this.cores; c++) free = Math.min(free, this.freeAt[c] as number)
    return Math.max(at, free)
  }

  /** Runs a job of `serviceMs` submitted at `submittedAt` on `host`; returns when it is done. */
  run(host: number, submittedAt: number, serviceMs: number): number {
    let core = host * this.cores
    for (let c = core + 1; c < (host + 1) * this.cores; c++) if ((this.freeAt[c] as number) < (this.freeAt[core] as number)) core = c
    const start = Math.max(submittedAt, this.freeAt[core] as number)
    const end = start + serviceMs
    this.freeAt[core] = end
    this.busyMs[host] = (this.busyMs[host] as number) + serviceMs
    const wait = start - submittedAt
    this.jobs++
    this.waitMs += wait
    if (wait > this.maxWaitMs) this.maxWaitMs = wait
    return end
  }
}

export interface CpuModelOptions {
  placement: HostPlacement
  cores: number
  costs: CpuCosts
  /** The liveness pings: what one costs (each end pays half). */
  ping: PingCosts
}

/** What the CPU model reports at the end of a run. */
export interface CpuReport {
  placement: HostPlacement
  hosts: number
  cores: number
  jobs: number
  meanWaitMs: number
  maxWaitMs: number
  /** The busiest host's CPU time ÷ (cores × the run's virtual time). */
  busiestUtilisation: number
}

/** Nodes on hosts, with the cost table: what the simulator's network and nodes charge. */
export class CpuModel {
  readonly cpus: HostCpus
  private readonly hostOf: (node: number) => number

  constructor(
    nodes: number,
    readonly options: CpuModelOptions,
    /** How many of the txs a message carries `node` does not hold yet (only those pay for a signature). */
    private readonly newTxs: (node: number, message: SimMessage) => number = carriedTxs,
  ) {
    const oneHost = options.placement === 'one-host'
    this.cpus = new HostCpus(oneHost ? 1 : Math.max(1, nodes), options.cores)
    this.hostOf = oneHost ? () => 0 : (node) => node
  }

  /** When `from`'s host has a message of `wireBytes` off its CPU (encoded, encrypted, written). */
  send(from: number, wireBytes: number, now: number): number {
    return this.cpus.run(this.hostOf(from), now, sendCostMs(this.options.costs, wireBytes))
  }

  /** When `to`'s host has handled a message that arrived at `arrivedAt`. */
  receive(to: number, message: SimMessage, wireBytes: number, arrivedAt: number): number {
    return this.cpus.run(this.hostOf(to), arrivedAt, receiveCostMs(this.options.costs, message, wireBytes, this.newTxs(to, message)))
  }

  /**
   * A timer's engine tick on `node`, due at `now`: a busy loop holds a timer back until the work
   * queued ahead of it is done, so the tick is a job in the FIFO; returns when it has run.
   */
  tick(node: number, now: number): number {
    return this.cpus.run(this.hostOf(node), now, this.options.costs.tickMs)
  }

  /** When a zero-delay timer set at `now` on `node` (the engine's wake → flush) gets the loop: after the work queued ahead of it. */
  timerAt(node: number, now: number): number {
    return this.cpus.startAt(this.hostOf(node), now)
  }

  /**
   * One end of a liveness ping on `node` (its half of the measured cost: the stream's
   * open, multistream-select, 32 bytes, close): occupies the host, produces nothing the engine sees.
   */
  pingEnd(node: number, now: number): number {
    return this.cpus.run(this.hostOf(node), now, this.options.ping.cpuMs / 2)
  }

  /** When a tx submitted at `node` (RPC) is decoded, verified and admitted. */
  submit(node: number, now: number): number {
    return this.cpus.run(this.hostOf(node), now, submitCostMs(this.options.costs))
  }

  report(virtualMs: number): CpuReport {
    let busiest = 0
    for (let host = 0; host < this.cpus.hosts; host++) busiest = Math.max(busiest, this.cpus.busyMs[host] as number)
    return {
      placement: this.options.placement,
      hosts: this.cpus.hosts,
      cores: this.cpus.cores,
      jobs: this.cpus.jobs,
      meanWaitMs: this.cpus.jobs > 0 ? this.cpus.waitMs / this.cpus.jobs : 0,
      maxWaitMs: this.cpus.maxWaitMs,
      busiestUtilisation: virtualMs > 0 ? busiest / (this.cpus.cores * virtualMs) : 0,
    }
  }
}

/** Every tx a message carries (full txs, or catalog indexes in a modelled reply that carries txs). */
export function carriedTxs(_node: number, message: SimMessage): number {
  if (message.type === 'txs') return message.txs.length
  if (message.type === 'control' && carriesTxs(message.kind)) return message.txs?.length ?? 0
  return 0
}
