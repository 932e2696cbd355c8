/**
 * Light simulated nodes: the real `GossipEngine`, `PeerSet` + `PeerScores` and `Ingress` per
 * node, over a domain reduced to what transaction propagation needs.
 *
 * What is replaced, and how (the run's output repeats this):
 * - the mempool and chain: a shared catalog of the run's transactions plus one byte per
 *   (node, tx) saying whether the node holds it; no blocks, no trie, no state;
 * - signature and validity checks: a verdict precomputed once per transaction (real ed25519
 *   verify at setup); `acceptTxs` looks the verdict up;
 * - anti-entropy: the SyncManager's round (one stake- and score-weighted peer every
 *   `statusIntervalMs`, status round trip, then mempool reconciliation: 256-bucket digest, ids of
 *   the differing buckets, the missing txs) as modelled messages of the same sizes, on the same
 *   network; a failed status round is the same `STATUS_FAILED` offence on the real scores.
 */
import { type StatusMessage, encodeStatus } from '../codec/wire.ts'
import { GossipEngine, type GossipOptions } from '../gossip/engine.ts'
import { TxError } from '../ledger/errors.ts'
import type { SignedTx } from '../ledger/types.ts'
import { BUCKET_SUMMARY_BYTES, DIGEST_BUCKETS } from '../mempool/digest.ts'
import type { IngressNode } from '../node/ingress.ts'
import { Ingress } from '../node/ingress.ts'
import type { NodeEvents, Origin } from '../node/node.ts'
import { PeerSet } from '../peers/peer-set.ts'
import { PeerScores } from '../peers/scores.ts'
import { pickPeer } from '../peers/selection.ts'
import type { PeerTransport } from '../peers/transport.ts'
import { TypedEmitter } from '../util/events.ts'
import { silentLogger } from '../util/logger.ts'
import type { ControlMessage, SimEndpoint, SimMessage, SimNetwork } from './sim-network.ts'

/** The run's transactions: shared by every node (objects, ids, verdicts). */
export class TxCatalog {
  /** BOUNDED: the run's transactions. */
  readonly indexOf = new Map<string, number>()
  readonly bucket: Uint8Array
  constructor(
    readonly txs: readonly SignedTx[],
    /** 1 = valid (verified once at setup), 0 = invalid. */
    readonly valid: Uint8Array,
  ) {
    txs.forEach((signed, index) => this.indexOf.set(signed.idHex, index))
    this.bucket = Uint8Array.from(txs, (signed) => signed.id[0] as number)
  }
  get size(): number {
    return this.txs.length
  }
}

/** Who holds what, when it arrived, after how many hops. Flat arrays: node × tx. */
export class Holdings {
  readonly has: Uint8Array
  readonly arrivalMs: Float32Array
  readonly hops: Uint8Array
  /** Injection time per tx (virtual ms since start), NaN until injected. */
  readonly injectedAt: Float64Array
  readonly origin: Int32Array

  constructor(
    readonly nodes: number,
    readonly txs: number,
    private readonly startMs: number,
  ) {
    this.has = new Uint8Array(nodes * txs)
    this.arrivalMs = new Float32Array(nodes * txs).fill(Number.NaN)
    this.hops = new Uint8Array(nodes * txs)
    this.injectedAt = new Float64Array(txs).fill(Number.NaN)
    this.origin = new Int32Array(txs).fill(-1)
  }

  /** A tx submitted at `node` at `now`: latency counts from here, however long its admission takes. */
  submitted(tx: number, now: number): void {
    if (Number.isNaN(this.injectedAt[tx] as number)) this.injectedAt[tx] = now - this.startMs
  }

  holds(node: number, tx: number): boolean {
    return this.has[node * this.txs + tx] === 1
  }

  /** Records a first receipt; false if the node already held it. `from` -1: originated here. */
  receive(node: number, tx: number, from: number, now: number): boolean {
    const slot = node * this.txs + tx
    if (this.has[slot] === 1) return false
    this.has[slot] = 1
    this.arrivalMs[slot] = now - this.startMs
    if (from < 0) {
      // Submitted earlier (CPU model: admission took time) or now.
      if (Number.isNaN(this.injectedAt[tx] as number)) this.injectedAt[tx] = now - this.startMs
      this.origin[tx] = node
      this.hops[slot] = 0
    } else {
      this.hops[slot] = Math.min(255, (this.hops[from * this.txs + tx] as number) + 1)
    }
    return true
  }
}

const NO_BLOCKS = { hasBlock: (): boolean => false, head: { header: { height: 0 } }, isBelowFinality: (): boolean => false }

/** The node side the `Ingress` talks to: holds a byte per tx, verdicts from the catalog. */
export class LightNode implements IngressNode {
  readonly events = new TypedEmitter<NodeEvents>()
  readonly chain = NO_BLOCKS

  constructor(
    readonly index: number,
    private readonly catalog: TxCatalog,
    private readonly holdings: Holdings,
    private readonly indexOfPeer: (peerId: string) => number,
    readonly clock: () => number,
  ) {}

  acceptTxs(txs: readonly SignedTx[], origin: Origin): Promise<Array<TxError | undefined>> {
    const from = origin.kind === 'local' ? -1 : this.indexOfPeer(origin.peerId)
    const out = txs.map((signed) => this.acceptOne(signed, from, origin))
    return Promise.resolve(out)
  }

  /** Synchronous admission (what acceptTxs does per tx). */
  acceptOne(signed: SignedTx, from: number, origin: Origin): TxError | undefined {
    const tx = this.catalog.indexOf.get(signed.idHex)
    // Precomputed verdict: the signature was checked once at setup.
    if (tx === undefined || this.catalog.valid[tx] !== 1) return new TxError('TX_BAD_SIGNATURE', 'invalid signature (precomputed verdict)')
    if (!this.holdings.receive(this.index, tx, from, this.clock())) return new TxError('TX_ALREADY_KNOWN', 'already pending', 'ignore')
    this.events.emit('tx', signed, origin)
    return undefined
  }

  importBlock(): Promise<never> {
    return Promise.reject(new Error('light simulated nodes hold no chain'))
  }
}

/** A status message's encoded size (the anti-entropy round trip's cost). */
const SAMPLE_STATUS: StatusMessage = {
  genesisHash: new Uint8Array(32),
  headHeight: 0,
  headHash: new Uint8Array(32),
  finalizedHeight: 0,
  finalizedHash: new Uint8Array(32),
  stateRoot: new Uint8Array(32),
  mempoolDigest: new Uint8Array(32),
  mempoolSize: 0,
}
export const STATUS_BYTES = encodeStatus(SAMPLE_STATUS).length
/** getMempoolDigest request / its answer (256 bucket summaries). */
export const DIGEST_REQUEST_BYTES = 1
export const DIGEST_REPLY_BYTES = 1 + DIGEST_BUCKETS * BUCKET_SUMMARY_BYTES
/** How long a status round trip may take (as in the SyncManager). */
const STATUS_TIMEOUT_MS = 5_000

export interface OursContext {
  network: SimNetwork
  catalog: TxCatalog
  holdings: Holdings
  ids: readonly string[]
  indexOfPeer: (peerId: string) => number
  stakes: readonly bigint[]
  totalStake: bigint
  gossip: Partial<GossipOptions>
  /** 0 turns anti-entropy off. */
  statusIntervalMs: number
  /** A node ticks its engine while it saw activity this recently (then sleeps until the next). */
  idleAfterMs: number
  tickMs: number
  random: () => number
  /** Called when a node lost a peer (rotation: the simulator may dial a replacement). */
  onPeerLost: (node: number) => void
}

const ADMITTED_STATUS = SAMPLE_STATUS

/** One node running our strategy: engine, peer set and scores, ingress, anti-entropy. */
export class OursNode implements SimEndpoint {
  readonly engine: GossipEngine
  readonly peers: PeerSet
  readonly light: LightNode
  readonly ingress: Ingress
  private wakeScheduled = false
  private lastActivity = Number.NEGATIVE_INFINITY
  private ticking = false
  private round = 0
  private pending: { round: number; peer: number; step?: string } | undefined
  private aeStarted = false

  constructor(
    readonly index: number,
    private readonly ctx: OursContext,
    random: () => number,
  ) {
    const { network, catalog, holdings } = ctx
    const time = network.time
    const clock = time.clock
    this.light = new LightNode(index, catalog, holdings, ctx.indexOfPeer, clock)
    const transport: PeerTransport = {
      localPeerId: ctx.ids[index] as string,
      sendGossip: (peerId, message) => network.send(index, ctx.indexOfPeer(peerId), message),
      request: () => Promise.reject(new Error('light nodes do not serve sync requests')),
      requestStatus: () => Promise.reject(new Error('status goes through the modelled round')),
      disconnect: (peerId) => network.disconnect(index, ctx.indexOfPeer(peerId)),
      // The simulator's topology is fixed by the run (no outbound heartbeat here).
      dialPeer: () => Promise.resolve(false),
      peerIdOf: () => undefined,
      connectedPeers: () => [],
      syncBytesReceived: () => 0,
    }
    this.peers = new PeerSet(transport, new PeerScores(), clock)
    this.engine = new GossipEngine(
      {
        send: (peerId, message) => {
          this.activity()
          network.send(index, ctx.indexOfPeer(peerId), message)
        },
        wake: () => {
          if (this.wakeScheduled) return
          this.wakeScheduled = true
          // A setImmediate in the node (Timers.schedule(0)): it runs when the loop has got through the work queued ahead of it.
          const cpu = network.options.cpu
          const at = cpu === undefined ? time.now : network.roundUp(cpu.timerAt(index, time.now))
          time.schedule(at - time.now, () => {
            this.wakeScheduled = false
            this.engine.flush(clock())
          })
        },
        hasTx: (idHex) => {
          const tx = catalog.indexOf.get(idHex)
          return tx !== undefined && holdings.holds(index, tx)
        },
        getTx: (idHex) => {
          const tx = catalog.indexOf.get(idHex)
          return tx !== undefined && holdings.holds(index, tx) ? catalog.txs[tx] : undefined
        },
        hasBlock: () => false,
        getBlock: () => undefined,
        deliverTxs: (peerId, txs) => this.ingress.deliverTxs(peerId, txs),
        deliverBlock: () => undefined,
        random,
      },
      ctx.gossip,
    )
    this.engine.setTotalStake(ctx.totalStake)
    const offence = (peerId: string, code: Parameters<PeerSet['offence']>[1], detail?: string): void => {
      this.peers.offence(peerId, code, detail)
    }
    this.ingress = new Ingress({ node: this.light, engine: this.engine, offence, elapsed: clock, log: silentLogger() })
  }

  /** Keeps the engine ticking (timeouts, retries, batch windows) while there is activity. */
  private activity(): void {
    const time = this.ctx.network.time
    this.lastActivity = time.now
    if (this.ticking) return
    this.ticking = true
    time.schedule(this.ctx.tickMs, () => this.tick())
  }

  /** The tick timer is due: with a CPU model it runs when the host's queue gets to it (held back by a busy loop). */
  private tick(): void {
    const network = this.ctx.network
    const cpu = network.options.cpu
    if (cpu === undefined) return this.runTick()
    const now = network.time.now
    const ranAt = network.roundUp(cpu.tick(this.index, now))
    if (ranAt <= now) return this.runTick()
    network.time.schedule(ranAt - now, () => this.runTick())
  }

  /** As the node's RepeatingTask: the next tick is due a full interval after this one ran. */
  private runTick(): void {
    const time = this.ctx.network.time
    this.engine.tick(time.now)
    if (time.now - this.lastActivity < this.ctx.idleAfterMs) time.schedule(this.ctx.tickMs, () => this.tick())
    else this.ticking = false
  }

  /** A transaction submitted here (RPC path): admitted, pushed to √peers, announced to the rest. */
  originate(tx: number): void {
    this.activity()
    const network = this.ctx.network
    const cpu = network.options.cpu
    const admit = (): void => void this.light.acceptOne(this.ctx.catalog.txs[tx] as SignedTx, -1, { kind: 'local' })
    if (cpu === undefined) return admit()
    // RPC submission: decoded, verified and admitted on this node's host before it is relayed.
    const now = network.time.now
    this.ctx.holdings.submitted(tx, now)
    const admitted = network.roundUp(cpu.submit(this.index, now))
    network.time.schedule(admitted - now, () => {
      if (network.isOnline(this.index)) admit()
    })
  }

  /** Pushes arbitrary (e.g. invalid) transactions to every peer, as an attacker would. */
  spam(tx: number): void {
    const signed = this.ctx.catalog.txs[tx] as SignedTx
    for (const peer of this.ctx.network.neighbours(this.index)) this.ctx.network.send(this.index, peer, { type: 'txs', solicited: false, txs: [signed] })
  }

  startAntiEntropy(): void {
    if (this.ctx.statusIntervalMs <= 0 || this.aeStarted) return
    this.aeStarted = true
    const time = this.ctx.network.time
    const loop = (): void => {
      this.antiEntropyRound()
      time.schedule(this.ctx.statusIntervalMs, loop)
    }
    time.schedule(Math.floor(this.ctx.random() * this.ctx.statusIntervalMs), loop)
  }

  private antiEntropyRound(): void {
    const network = this.ctx.network
    if (!network.isOnline(this.index)) return
    const totalStake = this.ctx.totalStake
    const peer = pickPeer(this.peers.list(), totalStake, { stake: (p) => p.stake, factor: (p) => this.peers.selectionFactor(p.id) }, this.ctx.random)
    if (peer === undefined) return
    const peerIndex = this.ctx.indexOfPeer(peer.id)
    const round = ++this.round
    this.pending = { round, peer: peerIndex }
    network.send(this.index, peerIndex, control('status', STATUS_BYTES, round))
    network.time.schedule(STATUS_TIMEOUT_MS, () => {
      if (this.pending?.round === round && this.pending.step === undefined) {
        this.pending = undefined
        this.peers.offence(peer.id, 'STATUS_FAILED', 'no status within 5000 ms')
      }
    })
  }

  onConnect(peer: number, outbound: boolean): void {
    const id = this.ctx.ids[peer] as string
    const stake = this.ctx.stakes[peer] as bigint
    this.peers.add({ id, direction: outbound ? 'outbound' : 'inbound', stake, status: ADMITTED_STATUS })
    this.engine.addPeer({ id, outbound, stake }, this.ctx.network.time.now)
  }

  onDisconnect(peer: number): void {
    const id = this.ctx.ids[peer] as string
    if (!this.peers.remove(id)) return
    this.engine.removePeer(id, this.ctx.network.time.now)
    this.ctx.onPeerLost(this.index)
  }

  onMessage(from: number, message: SimMessage): void {
    this.activity()
    if (message.type === 'control') return this.onControl(from, message)
    this.engine.onMessage(this.ctx.ids[from] as string, message, this.ctx.network.time.now)
  }

  /** Anti-entropy, both roles: answering a peer's round, and driving our own. */
  private onControl(from: number, message: ControlMessage): void {
    const { network, holdings, catalog } = this.ctx
    const me = this.index
    const reply = (kind: ControlMessage['kind'], bytes: number, txs?: number[]): void =>
      network.send(me, from, { type: 'control', kind, bytes, round: message.round, ...(txs === undefined ? {} : { txs }) })
    switch (message.kind) {
      case 'status':
        return reply('status-reply', STATUS_BYTES)
      case 'digest':
        return reply('digest-reply', DIGEST_REPLY_BYTES)
      case 'ids': {
        const buckets = new Uint8Array(256)
        for (const b of message.txs ?? []) buckets[b] = 1
        const ids: number[] = []
        for (let tx = 0; tx < catalog.size; tx++) if (buckets[catalog.bucket[tx] as number] === 1 && holdings.holds(me, tx)) ids.push(tx)
        return reply('ids-reply', 1 + 4 + 32 * ids.length, ids)
      }
      case 'get-txs': {
        const txs = (message.txs ?? []).filter((tx) => holdings.holds(me, tx))
        let bytes = 1 + 4
        for (const tx of txs) bytes += (catalog.txs[tx] as SignedTx).bytes.length
        return reply('txs-reply', bytes, txs)
      }
      default:
        break
    }
    // Answers to our own round.
    const pending = this.pending
    if (pending === undefined || pending.round !== message.round || pending.peer !== from) return
    const ask = (kind: ControlMessage['kind'], bytes: number, txs?: number[]): void => {
      pending.step = kind
      network.send(me, from, { type: 'control', kind, bytes, round: pending.round, ...(txs === undefined ? {} : { txs }) })
    }
    switch (message.kind) {
      case 'status-reply': {
        // The status carries the peer's mempool digest root: equal sets, nothing to do.
        if (sameHoldings(holdings, catalog, me, from)) {
          this.pending = undefined
          return
        }
        return ask('digest', DIGEST_REQUEST_BYTES)
      }
      case 'digest-reply': {
        const buckets = differingBuckets(holdings, catalog, me, from)
        if (buckets.length === 0) {
          this.pending = undefined
          return
        }
        return ask('ids', 1 + 4 + 2 * buckets.length, buckets)
      }
      case 'ids-reply': {
        const missing = (message.txs ?? []).filter((tx) => !holdings.holds(me, tx))
        if (missing.length === 0) {
          this.pending = undefined
          return
        }
        return ask('get-txs', 1 + 4 + 32 * missing.length, missing)
      }
      case 'txs-reply': {
        this.pending = undefined
        const signed = (message.txs ?? []).map((tx) => catalog.txs[tx] as SignedTx)
        if (signed.length > 0) void this.light.acceptTxs(signed, { kind: 'peer', peerId: this.ctx.ids[from] as string })
        return
      }
      default:
        return
    }
  }
}

function control(kind: ControlMessage['kind'], bytes: number, round: number): ControlMessage {
  return { type: 'control', kind, bytes, round }
}

function sameHoldings(holdings: Holdings, catalog: TxCatalog, a: number, b: number): boolean {
  for (let tx = 0; tx < catalog.size; tx++) if (holdings.holds(a, tx) !== holdings.holds(b, tx)) return false
  return true
}

function differingBuckets(holdings: Holdings, catalog: TxCatalog, a: number, b: number): number[] {
  const differ = new Uint8Array(256)
  for (let tx = 0; tx < catalog.size; tx++) if (holdings.holds(a, tx) !== holdings.holds(b, tx)) differ[catalog.bucket[tx] as number] = 1
  const out: number[] = []
  for (let bucket = 0; bucket < 256; bucket++) if (differ[bucket] === 1) out.push(bucket)
  return out
}
