/**
 * The simulator's network: nodes by index, directed link state, and one event per delivered
 * message on virtual time. What a message goes through, in order:
 *
 * 1. the sender's behaviour (an adversary may drop or hold back what it sends);
 * 2. the sender's uplink: a message occupies it for (size + framing) × 8 / bandwidth, so a busy
 *    node's messages queue behind each other;
 * 3. loss: dropped with the configured probability (its bytes were still sent);
 * 4. the link: base delay from the region matrix (or a fixed one) plus jitter, never overtaking
 *    an earlier message on the same link (FIFO, as on one TCP stream), rounded up to the time
 *    resolution (so events share timestamps and promise chains settle once per timestamp);
 * 5. delivery, if the link still exists, both ends are online and no partition separates them.
 *
 * With a CPU model (src/sim/cpu.ts) a message also costs CPU: the sender's host encodes and
 * writes it before it takes the uplink (step 2 starts when that is done), and the receiver's
 * host reads, decodes and handles it after it arrives: the node's handler runs when the host's
 * FIFO queue has got through it (rounded up to the time resolution, never ahead of an earlier
 * message to the same node).
 *
 * Messages travel as objects; their sizes are the exact encoded sizes (`gossipSize`), plus
 * FRAME_OVERHEAD_BYTES per frame; the receiver of each sends WINDOW_UPDATE_BYTES back (counted in
 * its bytes sent, not as a message). Control messages (anti-entropy and the comparison strategies)
 * carry catalog indexes and the byte size of the protocol message they stand for.
 */
import { FRAME_OVERHEAD_BYTES, type LatencyModel, WINDOW_UPDATE_BYTES, baseDelayMs, gossipSize } from './model.ts'
import type { CpuModel } from './cpu.ts'
import type { SimMessage } from './sim-message.ts'
import type { VirtualTime } from './virtual-time.ts'

export type { ControlKind, ControlMessage, SimMessage } from './sim-message.ts'

/** What the network calls on a node. */
export interface SimEndpoint {
  onConnect(peer: number, outbound: boolean): void
  onDisconnect(peer: number): void
  onMessage(from: number, message: SimMessage): void
}

/** How a node treats what it sends (adversaries). */
export const BEHAVIOUR_HONEST = 0
/** Sends nothing at all (still holds its connections: a silent black hole). */
export const BEHAVIOUR_DROP = 1
/** Everything it sends leaves `adversaryDelayMs` late. */
export const BEHAVIOUR_DELAY = 2
/** Announces, but never answers a request (no solicited txs, no notfound, no sync answers). */
export const BEHAVIOUR_WITHHOLD = 3

interface DirectedLink {
  baseMs: number
  /** Arrival time of the last message on this link (FIFO). */
  tail: number
}

export interface SimNetworkOptions {
  latency: LatencyModel
  /** Probability that a message is lost. */
  lossRate: number
  /** Arrival times are rounded up to a multiple of this (ms); 0 keeps them exact. */
  resolutionMs: number
  /** Extra delay of BEHAVIOUR_DELAY senders. */
  adversaryDelayMs: number
  random: () => number
  /** What sending and handling cost the nodes' hosts; undefined: CPU is free (the network alone). */
  cpu?: CpuModel
}

export interface TrafficTotals {
  messages: number
  bytes: number
  lost: number
  /** Dropped by adversary behaviour, a partition, an offline end or a vanished link. */
  undelivered: number
}

export class SimNetwork {
  /** BOUNDED: by the nodes the caller adds. */
  private readonly endpoints: SimEndpoint[] = []
  /** Outgoing links per node. BOUNDED: by each node's connections. */
  private readonly links: Array<Map<number, DirectedLink>> = []
  private readonly regions: number[] = []
  private readonly uplinkBitsPerMs: number[] = []
  private readonly uplinkFreeAt: number[] = []
  private readonly online: boolean[] = []
  readonly behaviour: number[] = []
  /** Partition group per node (messages between different groups are lost); undefined: none. */
  private groups: Int32Array | undefined
  /** Bytes sent / received per node, framing included. */
  bytesSent = new Float64Array(0)
  bytesReceived = new Float64Array(0)
  /** Per node: handlers waiting on its host's CPU (a later message must not overtake them). */
  private handling = new Int32Array(0)
  readonly totals: TrafficTotals = { messages: 0, bytes: 0, lost: 0, undelivered: 0 }
  /** Called on every delivery to a node flagged in `observed` (spies). */
  onObservedDelivery: ((from: number, to: number, message: SimMessage) => void) | undefined
  observed = new Uint8Array(0)

  constructor(
    readonly time: VirtualTime,
    readonly options: SimNetworkOptions,
  ) {}

  get size(): number {
    return this.endpoints.length
  }

  /** Adds a node in `region` with an uplink of `uplinkMbps`; returns its index. */
  addNode(endpoint: SimEndpoint, region: number, uplinkMbps: number): number {
    const index = this.endpoints.length
    this.endpoints.push(endpoint)
    this.links.push(new Map())
    this.regions.push(region)
    this.uplinkBitsPerMs.push(uplinkMbps * 1_000)
    this.uplinkFreeAt.push(0)
    this.online.push(true)
    this.behaviour.push(BEHAVIOUR_HONEST)
    return index
  }

  /** Sizes the per-node arrays once every node is added. */
  seal(): void {
    const n = this.endpoints.length
    this.bytesSent = new Float64Array(n)
    this.bytesReceived = new Float64Array(n)
    this.handling = new Int32Array(n)
    this.observed = new Uint8Array(n)
  }

  setEndpoint(index: number, endpoint: SimEndpoint): void {
    this.endpoints[index] = endpoint
  }

  region(index: number): number {
    return this.regions[index] as number
  }

  isOnline(index: number): boolean {
    return this.online[index] === true
  }

  isConnected(a: number, b: number): boolean {
    return this.links[a]?.has(b) === true
  }

  neighbours(index: number): number[] {
    return [...(this.links[index] as Map<number, DirectedLink>).keys()]
  }

  degree(index: number): number {
    return (this.links[index] as Map<number, DirectedLink>).size
  }

  /** `from` dials `to`; both ends see the connection at once. False if already linked or not possible. */
  connect(from: number, to: number): boolean {
    if (from === to || !this.isOnline(from) || !this.isOnline(to) || this.isConnected(from, to)) return false
    const baseMs = baseDelayMs(this.options.latency, this.region(from), this.region(to))
    ;(this.links[from] as Map<number, DirectedLink>).set(to, { baseMs, tail: 0 })
    ;(this.links[to] as Map<number, DirectedLink>).set(from, { baseMs, tail: 0 })
    ;(this.endpoints[from] as SimEndpoint).onConnect(to, true)
    ;(this.endpoints[to] as SimEndpoint).onConnect(from, false)
    return true
  }

  disconnect(a: number, b: number): void {
    if (!(this.links[a] as Map<number, DirectedLink>).delete(b)) return
    ;(this.links[b] as Map<number, DirectedLink>).delete(a)
    ;(this.endpoints[a] as SimEndpoint).onDisconnect(b)
    ;(this.endpoints[b] as SimEndpoint).onDisconnect(a)
  }

  /** Churn: a node leaves (every link closes) or comes back (its caller dials peers). */
  setOnline(index: number, online: boolean): void {
    if (this.online[index] === online) return
    if (!online) for (const peer of this.neighbours(index)) this.disconnect(index, peer)
    this.online[index] = online
  }

  /** Cuts the network into groups (messages across groups are lost); `undefined` heals it. */
  setPartition(groups: Int32Array | undefined): void {
    this.groups = groups
  }

  private separated(a: number, b: number): boolean {
    return this.groups !== undefined && this.groups[a] !== this.groups[b]
  }

  /** Sends one message; it arrives (or not) on virtual time. */
  send(from: number, to: number, message: SimMessage): void {
    const behaviour = this.behaviour[from] as number
    if (behaviour === BEHAVIOUR_DROP) return
    if (behaviour === BEHAVIOUR_WITHHOLD && isAnswer(message)) return
    const link = (this.links[from] as Map<number, DirectedLink>).get(to)
    if (link === undefined) return
    const bytes = (message.type === 'control' ? message.bytes : gossipSize(message)) + FRAME_OVERHEAD_BYTES
    const now = this.time.now
    const cpu = this.options.cpu
    const written = cpu === undefined ? now : cpu.send(from, bytes, now)
    const start = Math.max(written, this.uplinkFreeAt[from] as number) + (behaviour === BEHAVIOUR_DELAY ? this.options.adversaryDelayMs : 0)
    const departs = start + (bytes * 8) / (this.uplinkBitsPerMs[from] as number)
    this.uplinkFreeAt[from] = behaviour === BEHAVIOUR_DELAY ? departs - this.options.adversaryDelayMs : departs
    this.bytesSent[from] = (this.bytesSent[from] as number) + bytes
    this.totals.messages++
    this.totals.bytes += bytes
    const random = this.options.random
    if (this.options.lossRate > 0 && random() < this.options.lossRate) {
      this.totals.lost++
      return
    }
    let arrives = departs + link.baseMs * (1 + this.options.latency.jitter * random())
    if (arrives < link.tail) arrives = link.tail
    // The exact arrival (the receiver's CPU can start on it then); the event is at the rounded time.
    const arrivedAt = arrives
    arrives = this.roundUp(arrives)
    link.tail = arrives
    this.time.schedule(arrives - now, () => this.deliver(from, to, link, message, bytes, arrivedAt))
  }

  /**
   * A liveness ping (src/net/liveness.ts): `from` pings `to` over their connection (a new stream,
   * multistream-select, 32 bytes each way, the stream closed). Each end's host pays half of the
   * measured CPU (the pinger now, the pinged when the ping arrives) and each direction carries
   * half of the measured bytes. Nothing reaches the engines. Lost like any message across a
   * partition or a closed link; not held back by adversary behaviour (libp2p answers it).
   */
  ping(from: number, to: number, wireBytes: number): void {
    const link = (this.links[from] as Map<number, DirectedLink>).get(to)
    if (link === undefined || !this.isOnline(from) || this.separated(from, to)) return
    const half = wireBytes / 2
    this.bytesSent[from] = (this.bytesSent[from] as number) + half
    this.bytesSent[to] = (this.bytesSent[to] as number) + half
    this.totals.bytes += wireBytes
    const cpu = this.options.cpu
    if (cpu === undefined) return
    const now = this.time.now
    const sentAt = cpu.pingEnd(from, now)
    const arrives = this.roundUp(sentAt + link.baseMs)
    this.time.schedule(Math.max(0, arrives - now), () => {
      if (this.isOnline(to) && this.isConnected(to, from)) cpu.pingEnd(to, this.time.now)
    })
  }

  /** Rounds a time up to the resolution (events share timestamps; promise chains settle once per timestamp). */
  roundUp(at: number): number {
    const resolution = this.options.resolutionMs
    // The small allowance keeps a sum of float costs that lands on a boundary from jumping a whole step.
    return resolution > 0 ? Math.ceil(at / resolution - 1e-9) * resolution : at
  }

  private deliver(from: number, to: number, link: DirectedLink, message: SimMessage, bytes: number, arrivedAt: number): void {
    if ((this.links[from] as Map<number, DirectedLink>).get(to) !== link || !this.isOnline(to) || this.separated(from, to)) {
      this.totals.undelivered++
      return
    }
    this.bytesReceived[to] = (this.bytesReceived[to] as number) + bytes
    // The receiver's Yamux answers the frame with a window update (bytes only: it carries no news).
    this.bytesSent[to] = (this.bytesSent[to] as number) + WINDOW_UPDATE_BYTES
    this.totals.bytes += WINDOW_UPDATE_BYTES
    if (this.observed[to] === 1) this.onObservedDelivery?.(from, to, message)
    const cpu = this.options.cpu
    if (cpu === undefined) {
      ;(this.endpoints[to] as SimEndpoint).onMessage(from, message)
      return
    }
    const handledAt = this.roundUp(cpu.receive(to, message, bytes, arrivedAt))
    const now = this.time.now
    // Done within this timestamp and nothing queued ahead of it for this node: handled now (no event).
    if (handledAt <= now && this.handling[to] === 0) {
      ;(this.endpoints[to] as SimEndpoint).onMessage(from, message)
      return
    }
    this.handling[to] = (this.handling[to] as number) + 1
    this.time.schedule(Math.max(0, handledAt - now), () => {
      this.handling[to] = (this.handling[to] as number) - 1
      if (this.isOnline(to)) (this.endpoints[to] as SimEndpoint).onMessage(from, message)
    })
  }
}

/** Answers to someone's request: what a withholding node keeps back. */
function isAnswer(message: SimMessage): boolean {
  switch (message.type) {
    case 'txs':
      return message.solicited
    case 'notfound':
      return true
    case 'control':
      return message.kind.endsWith('-reply')
    default:
      return false
  }
}
