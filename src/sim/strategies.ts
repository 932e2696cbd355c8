/**
 * The strategies compared with ours, each a small per-node protocol over the same simulated
 * network, catalog and verdicts (they have no engine in src/: these are models, written here):
 *
 * - flood: a node pushes every new tx in full to every peer but its sender;
 * - gossipsub: a mesh of D = 8 (grafted up to 12), full push along the mesh, and every 1 s
 *   heartbeat lazy gossip: IHAVE (an `inv`) of the last 3 heartbeats' ids to 6 non-mesh peers,
 *   IWANT (`getdata`) for what is missing;
 * - rumor mongering (Demers et al. 1987): every cycle a node with hot rumors pushes them to one
 *   random peer; with feedback + counter a rumor goes cold after k pushes to peers that already
 *   had it; blind + coin, after each push it goes cold with probability 1/k;
 * - push-pull anti-entropy: every cycle a node exchanges its digest with one random peer and
 *   both sides fetch what the other has.
 */
import type { SignedTx } from '../ledger/types.ts'
import { INV_TX } from '../codec/wire.ts'
import type { Holdings, TxCatalog } from './light-node.ts'
import { DIGEST_REPLY_BYTES } from './light-node.ts'
import type { ControlMessage, SimEndpoint, SimMessage, SimNetwork } from './sim-network.ts'

export type StrategyName = 'ours' | 'flood' | 'gossipsub' | 'rumor-feedback' | 'rumor-blind' | 'push-pull'
export const STRATEGIES: readonly StrategyName[] = ['ours', 'flood', 'gossipsub', 'rumor-feedback', 'rumor-blind', 'push-pull']

export interface StrategyContext {
  network: SimNetwork
  catalog: TxCatalog
  holdings: Holdings
  random: () => number
  /** Rumor counter / coin parameter k. */
  k: number
  /** Cycle length of rumor mongering and push-pull (ms). */
  cycleMs: number
}

/** Gossipsub parameters (the libp2p defaults). */
export const MESH_D = 8
export const MESH_D_HIGH = 12
export const MESH_D_LAZY = 6
export const HEARTBEAT_MS = 1_000
export const GOSSIP_WINDOW_HEARTBEATS = 3

abstract class ModelNode implements SimEndpoint {
  /** BOUNDED: by the node's connections. */
  protected readonly peers = new Set<number>()

  constructor(
    readonly index: number,
    protected readonly ctx: StrategyContext,
  ) {}

  onConnect(peer: number): void {
    this.peers.add(peer)
  }

  onDisconnect(peer: number): void {
    this.peers.delete(peer)
  }

  protected send(to: number, message: SimMessage): void {
    this.ctx.network.send(this.index, to, message)
  }

  protected randomPeer(exclude?: Set<number>): number | undefined {
    const list = [...this.peers].filter((peer) => exclude === undefined || !exclude.has(peer))
    return list[Math.floor(this.ctx.random() * list.length)]
  }

  /** Validates (precomputed verdict) and records; true when new here. */
  protected admit(signed: SignedTx, from: number): number | undefined {
    const tx = this.ctx.catalog.indexOf.get(signed.idHex)
    if (tx === undefined || this.ctx.catalog.valid[tx] !== 1) return undefined
    return this.ctx.holdings.receive(this.index, tx, from, this.ctx.network.time.now) ? tx : undefined
  }

  protected txOf(tx: number): SignedTx {
    return this.ctx.catalog.txs[tx] as SignedTx
  }

  originate(tx: number): void {
    if (this.ctx.holdings.receive(this.index, tx, -1, this.ctx.network.time.now)) this.fresh(tx, -1)
  }

  /** A tx new to this node (from −1: originated). */
  protected abstract fresh(tx: number, from: number): void

  abstract onMessage(from: number, message: SimMessage): void

  /** Answers getdata / IWANT with the txs held (what a withholding node keeps back). */
  protected answerGetData(from: number, message: SimMessage): boolean {
    if (message.type !== 'getdata') return false
    const txs: SignedTx[] = []
    for (const item of message.items) {
      const tx = this.ctx.catalog.indexOf.get(Buffer.from(item.hash).toString('hex'))
      if (tx !== undefined && this.ctx.holdings.holds(this.index, tx)) txs.push(this.txOf(tx))
    }
    if (txs.length > 0) this.send(from, { type: 'txs', solicited: true, txs })
    return true
  }

  protected receiveTxs(from: number, message: SimMessage): number[] {
    if (message.type !== 'txs') return []
    const out: number[] = []
    for (const signed of message.txs) {
      const tx = this.admit(signed, from)
      if (tx !== undefined) {
        out.push(tx)
        this.fresh(tx, from)
      }
    }
    return out
  }
}

export class FloodNode extends ModelNode {
  protected fresh(tx: number, from: number): void {
    const txs = [this.txOf(tx)]
    for (const peer of this.peers) if (peer !== from) this.send(peer, { type: 'txs', solicited: false, txs })
  }

  onMessage(from: number, message: SimMessage): void {
    this.receiveTxs(from, message)
  }
}

export class MeshNode extends ModelNode {
  /** BOUNDED: MESH_D_HIGH. */
  private readonly mesh = new Set<number>()
  /** Ids seen per heartbeat, newest last. BOUNDED: GOSSIP_WINDOW_HEARTBEATS lists. */
  private window: number[][] = [[]]
  private started = false

  override onConnect(peer: number): void {
    super.onConnect(peer)
    if (this.mesh.size < MESH_D) this.graft(peer)
    if (!this.started) {
      this.started = true
      const time = this.ctx.network.time
      const beat = (): void => {
        this.heartbeat()
        time.schedule(HEARTBEAT_MS, beat)
      }
      time.schedule(Math.floor(this.ctx.random() * HEARTBEAT_MS), beat)
    }
  }

  override onDisconnect(peer: number): void {
    super.onDisconnect(peer)
    this.mesh.delete(peer)
  }

  private graft(peer: number): void {
    this.mesh.add(peer)
    this.send(peer, { type: 'control', kind: 'graft', bytes: 40, round: 0 })
  }

  private heartbeat(): void {
    while (this.mesh.size < MESH_D) {
      const peer = this.randomPeer(this.mesh)
      if (peer === undefined) break
      this.graft(peer)
    }
    const ids: number[] = []
    for (const list of this.window) ids.push(...list)
    if (ids.length > 0) {
      const items = ids.map((tx) => ({ kind: INV_TX, hash: this.txOf(tx).id }))
      const lazy = [...this.peers].filter((peer) => !this.mesh.has(peer))
      for (let i = 0; i < MESH_D_LAZY && lazy.length > 0; i++) {
        const [peer] = lazy.splice(Math.floor(this.ctx.random() * lazy.length), 1)
        if (peer !== undefined) this.send(peer, { type: 'inv', items })
      }
    }
    this.window.push([])
    if (this.window.length > GOSSIP_WINDOW_HEARTBEATS) this.window.shift()
  }

  protected fresh(tx: number, from: number): void {
    ;(this.window[this.window.length - 1] as number[]).push(tx)
    const txs = [this.txOf(tx)]
    for (const peer of this.mesh) if (peer !== from) this.send(peer, { type: 'txs', solicited: false, txs })
  }

  onMessage(from: number, message: SimMessage): void {
    if (message.type === 'control') {
      if (message.kind === 'graft' && !this.mesh.has(from) && this.mesh.size < MESH_D_HIGH) this.mesh.add(from)
      return
    }
    if (this.answerGetData(from, message)) return
    if (message.type === 'inv') {
      const want = message.items.filter((item) => {
        const tx = this.ctx.catalog.indexOf.get(Buffer.from(item.hash).toString('hex'))
        return tx !== undefined && !this.ctx.holdings.holds(this.index, tx)
      })
      if (want.length > 0) this.send(from, { type: 'getdata', items: want })
      return
    }
    this.receiveTxs(from, message)
  }
}

export class RumorNode extends ModelNode {
  /** Hot rumors → unnecessary pushes so far. BOUNDED: by the run's txs. */
  private readonly hot = new Map<number, number>()
  private cycling = false
  private round = 0

  constructor(
    index: number,
    ctx: StrategyContext,
    private readonly feedback: boolean,
  ) {
    super(index, ctx)
  }

  protected fresh(tx: number): void {
    this.hot.set(tx, 0)
    if (this.cycling) return
    this.cycling = true
    this.ctx.network.time.schedule(Math.floor(this.ctx.random() * this.ctx.cycleMs), () => this.cycle())
  }

  private cycle(): void {
    if (this.hot.size === 0) {
      this.cycling = false
      return
    }
    const peer = this.randomPeer()
    if (peer !== undefined) {
      const txs = [...this.hot.keys()]
      this.send(peer, { type: 'txs', solicited: false, txs: txs.map((tx) => this.txOf(tx)) })
      if (!this.feedback) {
        // Blind + coin: each rumor goes cold with probability 1/k after every push.
        for (const tx of txs) if (this.ctx.random() < 1 / this.ctx.k) this.hot.delete(tx)
      }
      this.round++
    }
    this.ctx.network.time.schedule(this.ctx.cycleMs, () => this.cycle())
  }

  onMessage(from: number, message: SimMessage): void {
    if (message.type === 'control') {
      // Feedback: the rumors the peer already had; k such pushes and a rumor goes cold.
      if (message.kind !== 'feedback') return
      for (const tx of message.txs ?? []) {
        const count = this.hot.get(tx)
        if (count === undefined) continue
        if (count + 1 >= this.ctx.k) this.hot.delete(tx)
        else this.hot.set(tx, count + 1)
      }
      return
    }
    if (message.type !== 'txs') return
    const fresh = new Set(this.receiveTxs(from, message))
    if (!this.feedback) return
    const known: number[] = []
    for (const signed of message.txs) {
      const tx = this.ctx.catalog.indexOf.get(signed.idHex)
      if (tx !== undefined && !fresh.has(tx)) known.push(tx)
    }
    this.send(from, { type: 'control', kind: 'feedback', bytes: 1 + 4 + 4 * known.length, round: 0, txs: known })
  }
}

export class PushPullNode extends ModelNode {
  private started = false

  override onConnect(peer: number): void {
    super.onConnect(peer)
    if (this.started) return
    this.started = true
    const time = this.ctx.network.time
    const loop = (): void => {
      const partner = this.randomPeer()
      if (partner !== undefined) this.send(partner, { type: 'control', kind: 'pull', bytes: DIGEST_REPLY_BYTES, round: 0 })
      time.schedule(this.ctx.cycleMs, loop)
    }
    time.schedule(Math.floor(this.ctx.random() * this.ctx.cycleMs), loop)
  }

  protected fresh(): void {}

  onMessage(from: number, message: SimMessage): void {
    if (this.answerGetData(from, message)) return
    if (message.type === 'txs') {
      this.receiveTxs(from, message)
      return
    }
    if (message.type !== 'control') return
    const { holdings, catalog } = this.ctx
    if (message.kind === 'pull') {
      // The initiator's digest arrived: send what it lacks, ask for what we lack.
      const give: number[] = []
      const want: number[] = []
      for (let tx = 0; tx < catalog.size; tx++) {
        const mine = holdings.holds(this.index, tx)
        const theirs = holdings.holds(from, tx)
        if (mine && !theirs) give.push(tx)
        else if (theirs && !mine) want.push(tx)
      }
      let bytes = DIGEST_REPLY_BYTES + 4 + 32 * want.length
      for (const tx of give) bytes += this.txOf(tx).bytes.length
      this.send(from, { type: 'control', kind: 'pull-reply', bytes, round: 0, txs: give, wants: want })
      return
    }
    if (message.kind === 'pull-reply') {
      for (const tx of message.txs ?? []) this.admit(this.txOf(tx), from)
      const wants = (message.wants ?? []).filter((tx) => holdings.holds(this.index, tx))
      if (wants.length > 0) this.send(from, { type: 'txs', solicited: true, txs: wants.map((tx) => this.txOf(tx)) })
    }
  }
}

export type ModelStrategyNode = FloodNode | MeshNode | RumorNode | PushPullNode

export function modelNode(name: Exclude<StrategyName, 'ours'>, index: number, ctx: StrategyContext): ModelStrategyNode {
  switch (name) {
    case 'flood':
      return new FloodNode(index, ctx)
    case 'gossipsub':
      return new MeshNode(index, ctx)
    case 'rumor-feedback':
      return new RumorNode(index, ctx, true)
    case 'rumor-blind':
      return new RumorNode(index, ctx, false)
    case 'push-pull':
      return new PushPullNode(index, ctx)
  }
}

export type { ControlMessage }
