/**
 * N complete nodes in one process on a virtual network: each is the real node composition
 * (GrapevineNode on an in-memory store, the real gossip engine, sync manager, ingress and block
 * producer via src/node/compose.ts) with virtual time and a seeded random source per node.
 * Same seed, same run: identical event order, identical trace hash, identical final state.
 */
import { toHex, toHexKey } from '../codec/bytes.ts'
import { type Keypair, devKeypair } from '../crypto/keys.ts'
import type { GossipOptions } from '../gossip/engine.ts'
import type { Genesis } from '../ledger/types.ts'
import { type NodeServices, composeNode } from '../node/compose.ts'
import { GrapevineNode } from '../node/node.ts'
import type { SyncManagerOptions } from '../sync/manager.ts'
import { type Logger, silentLogger } from '../util/logger.ts'
import { seededRandom } from '../util/random.ts'
import { VirtualNetwork, type VirtualTransport } from './virtual-network.ts'
import { VirtualTime } from './virtual-time.ts'

export interface SimNode {
  /** The node's peer id on the virtual network. */
  id: string
  index: number
  node: GrapevineNode
  services: NodeServices
  transport: VirtualTransport
  key: Keypair | undefined
}

/** A partition in force: the links it cut and the pairs it blocks. */
export interface Partition {
  cut: Array<[string, string]>
  blocked: Array<[string, string]>
  length: number
}

export interface ClusterOptions {
  genesis: Genesis
  seed: number
  /** One-way link latency (ms). */
  latencyMs?: number
  gossip?: Partial<GossipOptions>
  sync?: Partial<SyncManagerOptions>
  log?: Logger
}

/** Settings that keep a simulated node's timer load low without changing its protocol. */
export const SIM_GOSSIP: Partial<GossipOptions> = { announceBatchMs: 100 }

export class SimCluster {
  readonly time: VirtualTime
  readonly network: VirtualNetwork
  /** BOUNDED: by the nodes the caller adds. */
  readonly nodes: SimNode[] = []
  private readonly random: () => number

  constructor(readonly options: ClusterOptions) {
    this.time = new VirtualTime(options.genesis.genesisTime)
    this.network = new VirtualNetwork(this.time, { defaultLatencyMs: options.latencyMs ?? 20 })
    this.random = seededRandom(options.seed)
  }

  /** The cluster's seeded random source (topology, workload). */
  rand(): number {
    return this.random()
  }

  /** Adds a node: validator `validatorIndex` (a devnet key) or, without it, a full node. */
  async addNode(options: { validatorIndex?: number; produce?: boolean; sync?: Partial<SyncManagerOptions> } = {}): Promise<SimNode> {
    const index = this.nodes.length
    const key = options.validatorIndex === undefined ? undefined : devKeypair(options.validatorIndex)
    const id = key === undefined ? `full-${index}` : toHex(key.publicKey).slice(2, 18)
    const log = (this.options.log ?? silentLogger()).child({ node: id })
    const node = await GrapevineNode.open({
      genesis: this.options.genesis,
      clock: this.time.clock,
      timers: this.time.timers,
      log,
      ...(key === undefined ? {} : { key }),
      ...(options.produce === undefined ? {} : { produce: options.produce }),
    })
    const transport = this.network.addNode(id, key?.publicKey)
    const services = composeNode(
      {
        node,
        transport,
        runtime: { clock: this.time.clock, timers: this.time.timers, random: seededRandom((this.options.seed * 7919 + index * 104729) >>> 0) },
        elapsed: this.time.clock,
        log,
      },
      { gossip: { ...SIM_GOSSIP, ...this.options.gossip }, sync: { ...this.options.sync, ...options.sync } },
    )
    transport.attach(services.handler)
    node.start()
    services.start()
    const simNode: SimNode = { id, index, node, services, transport, key }
    this.nodes.push(simNode)
    return simNode
  }

  /** Connects every node to `degree` others chosen with the cluster's seeded random source. */
  connectRandom(degree: number, among: SimNode[] = this.nodes): void {
    for (const node of among) {
      const others = among.filter((other) => other !== node)
      for (let picked = 0; picked < degree && others.length > 0; picked++) {
        const [other] = others.splice(Math.floor(this.random() * others.length), 1)
        if (other !== undefined) this.network.connect(node.id, other.id)
      }
    }
  }

  connect(a: SimNode, b: SimNode, latencyMs?: number): void {
    this.network.connect(a.id, b.id, latencyMs)
  }

  /**
   * Partitions the two groups: every link between them is cut and no dial across gets through
   * (the outbound heartbeat keeps trying) until `heal`. Returns the links that were cut.
   */
  partition(left: SimNode[], right: SimNode[]): Partition {
    const rightIds = new Set(right.map((node) => node.id))
    const leftIds = new Set(left.map((node) => node.id))
    const cut: Array<[string, string]> = []
    for (const [a, b] of this.network.linkPairs()) {
      if ((leftIds.has(a) && rightIds.has(b)) || (leftIds.has(b) && rightIds.has(a))) cut.push([a, b])
    }
    const blocked: Array<[string, string]> = []
    for (const a of leftIds) for (const b of rightIds) blocked.push([a, b])
    for (const [a, b] of blocked) this.network.block(a, b)
    return { cut, blocked, length: cut.length }
  }

  /** Lifts a partition and restores the links it cut. */
  heal(partition: Partition): void {
    for (const [a, b] of partition.blocked) this.network.unblock(a, b)
    for (const [a, b] of partition.cut) this.network.connect(a, b)
  }

  /** Head (height, hash hex, state root hex) of each node. */
  heads(): Array<{ height: number; hash: string; stateRoot: string }> {
    return this.nodes.map(({ node }) => ({
      height: node.chain.head.header.height,
      hash: toHexKey(node.chain.head.hash),
      stateRoot: toHexKey(node.chain.head.header.stateRoot),
    }))
  }

  async stop(): Promise<void> {
    for (const { services, node } of this.nodes) {
      services.stop()
      await node.stop()
    }
  }
}
