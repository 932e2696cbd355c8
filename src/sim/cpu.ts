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
 *
 * Garbage collection (`GcCosts`, one-host only): every job costs its table cost less the GC's
 * share, and after each 1 / pausesPerWorkMs ms of work the host stops for a pause (lengths from
 * the measured distribution, in a fixed scrambled order): the same CPU in all, in lumps.
 *
 * Host stalls (`HostStallCosts`, one-host only): the machine takes the CPU away now and then (a
 * VM's vCPU descheduled, the OS running something else), whatever the host is doing — stalls
 * arrive at random in wall time (Poisson, the measured rate) with lengths drawn from the measured
 * ventiles; a job waiting or running when one begins is held back by its length. Not CPU work:
 * nothing is charged to the host.
 */
import { type CpuCosts, type GcCosts, type HostStallCosts, type PingCosts, carriesTxs, receiveCostMs, sendCostMs, submitCostMs } from './cpu-costs.ts'
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

  /** Per host: work (ms) left until its next GC pause, and pauses taken. BOUNDED: hosts. Empty without GC. */
  private readonly workToPause: Float64Array
  private readonly pausesTaken: Uint32Array
  /** GC pauses taken and their summed length (ms), over every host. */
  gcPauses = 0
  gcPauseMs = 0
  /** Per host: when its next stall begins (virtual ms; Infinity without stalls). BOUNDED: hosts. */
  private readonly nextStallAt: Float64Array
  private readonly nextStallMs: Float64Array
  /** Stalls that held a job back, and their summed length (ms), over every host. */
  stallsFelt = 0
  stallMs = 0

  constructor(
    readonly hosts: number,
    readonly cores: number,
    private readonly gc?: GcCosts,
    private readonly stalls?: { costs: HostStallCosts; random: () => number },
  ) {
    if (!(hosts >= 1 && cores >= 1 && Number.isInteger(hosts) && Number.isInteger(cores))) throw new Error(`bad CPU shape: ${hosts} hosts × ${cores} cores`)
    if (gc !== undefined && !(gc.pausesPerWorkMs > 0 && gc.pauseMs.length > 0 && gc.shareOfCpu >= 0 && gc.shareOfCpu < 1)) throw new Error('bad GC costs')
    this.freeAt = new Float64Array(hosts * cores)
    this.busyMs = new Float64Array(hosts)
    this.workToPause = new Float64Array(gc === undefined ? 0 : hosts).fill(gc === undefined ? 0 : 1 / gc.pausesPerWorkMs)
    this.pausesTaken = new Uint32Array(gc === undefined ? 0 : hosts)
    if (stalls !== undefined && !(stalls.costs.perSecond > 0 && stalls.costs.lengthMs.length > 0)) throw new Error('bad host stall costs')
    this.nextStallAt = new Float64Array(hosts).fill(Infinity)
    this.nextStallMs = new Float64Array(hosts)
    if (stalls !== undefined) for (let host = 0; host < hosts; host++) this.drawStall(host, 0)
  }

  /** The host's next stall after `from`: exponential gap at the measured rate, a length drawn from the ventiles. */
  private drawStall(host: number, from: number): void {
    const stalls = this.stalls
    if (stalls === undefined) return
    const gapMs = (-Math.log(1 - stalls.random()) / stalls.costs.perSecond) * 1000
    const lengths = stalls.costs.lengthMs
    this.nextStallAt[host] = from + gapMs
    this.nextStallMs[host] = lengths[Math.min(lengths.length - 1, Math.floor(stalls.random() * lengths.length))] as number
  }

  /** The stall under way on `host` at `at` holds work back until it ends; stalls over before `at` are passed. Returns when work can run. */
  private pastStalls(host: number, at: number): number {
    let t = at
    while ((this.nextStallAt[host] as number) <= t) {
      const begins = this.nextStallAt[host] as number
      const ends = begins + (this.nextStallMs[host] as number)
      if (ends > t) {
        this.stallsFelt++
        this.stallMs += ends - t
        t = ends
      }
      this.drawStall(host, ends)
    }
    return t
  }

  /** A job running from `start` for `work` ms: each stall that begins before it is done stops it for its length. Returns its end. */
  private throughStalls(host: number, start: number, work: number): number {
    let end = start + work
    while ((this.nextStallAt[host] as number) < end) {
      const length = this.nextStallMs[host] as number
      this.stallsFelt++
      this.stallMs += length
      end += length
      this.drawStall(host, (this.nextStallAt[host] as number) + length)
    }
    return end
  }

  /** After `workMs` of work ending at `end` on `host`: a GC pause when its work since the last one is due; returns when the host runs again. */
  private collect(host: number, workMs: number, end: number): number {
    const gc = this.gc
    if (gc === undefined) return end
    let left = (this.workToPause[host] as number) - workMs
    let resume = end
    while (left <= 0) {
      const taken = this.pausesTaken[host] as number
      // Stride 7 over 20 ventiles visits each once per 20 pauses, long and short ones interleaved.
      const pause = gc.pauseMs[(taken * 7) % gc.pauseMs.length] as number
      this.pausesTaken[host] = taken + 1
      resume += pause
      this.gcPauses++
      this.gcPauseMs += pause
      this.busyMs[host] = (this.busyMs[host] as number) + pause
      left += 1 / gc.pausesPerWorkMs
    }
    this.workToPause[host] = left
    if (resume > end) for (let c = host * this.cores; c < (host + 1) * this.cores; c++) this.freeAt[c] = Math.max(this.freeAt[c] as number, resume)
    return end
  }

  /** When a job submitted at `at` on `host` would start (its earliest-free core), without running one. */
  startAt(host: number, at: number): number {
    let free = this.freeAt[host * this.cores] as number
    for (let c = host * this.cores + 1; c < (host + 1) * this.cores; c++) free = Math.min(free, this.freeAt[c] as number)
    const start = Math.max(at, free)
    // A stall under way then holds it back too (looked at, not consumed: no job runs here).
    const stallAt = this.nextStallAt[host] as number
    return stallAt <= start && stallAt + (this.nextStallMs[host] as number) > start ? stallAt + (this.nextStallMs[host] as number) : start
  }

  /** Runs a job of `serviceMs` submitted at `submittedAt` on `host`; returns when it is done. */
  run(host: number, submittedAt: number, serviceMs: number): number {
    let core = host * this.cores
    for (let c = core + 1; c < (host + 1) * this.cores; c++) if ((this.freeAt[c] as number) < (this.freeAt[core] as number)) core = c
    // Without stalls the next one is at Infinity: both calls are the plain max and sum.
    const start = this.pastStalls(host, Math.max(submittedAt, this.freeAt[core] as number))
    const work = this.gc === undefined ? serviceMs : serviceMs * (1 - this.gc.shareOfCpu)
    const end = this.throughStalls(host, start, work)
    this.freeAt[core] = end
    this.busyMs[host] = (this.busyMs[host] as number) + work
    const wait = start - submittedAt
    this.jobs++
    this.waitMs += wait
    if (wait > this.maxWaitMs) this.maxWaitMs = wait
    // The job's own result is out at its end; a pause due now holds back what comes after it.
    return this.collect(host, work, end)
  }
}

export interface CpuModelOptions {
  placement: HostPlacement
  cores: number
  costs: CpuCosts
  /** The liveness pings: what one costs (each end pays half). */
  ping: PingCosts
  /** GC pauses (one-host placement; see the module comment); absent: none. */
  gc?: GcCosts
  /** Host stalls (one-host placement; see the module comment) and the seeded random source drawing them; absent: none. */
  stalls?: { costs: HostStallCosts; random: () => number }
}

/** What the CPU model reports at the end of a run. */
export interface CpuReport {
  placement: HostPlacement
  hosts: number
  cores: number
  jobs: number
  meanWaitMs: number
  maxWaitMs: number
  /** GC pauses modelled (one-host): how many, and their summed length (ms). */
  gcPauses: number
  gcPauseMs: number
  /** Host stalls that held work back (one-host), and by how long in all (ms). */
  stallsFelt: number
  stallMs: number
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
    this.cpus = new HostCpus(oneHost ? 1 : Math.max(1, nodes), options.cores, oneHost ? options.gc : undefined, oneHost ? options.stalls : undefined)
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
      gcPauses: this.cpus.gcPauses,
      gcPauseMs: this.cpus.gcPauseMs,
      stallsFelt: this.cpus.stallsFelt,
      stallMs: this.cpus.stallMs,
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
