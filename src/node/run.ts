/**
 * The composition root of a node process: store + chain + mempool (the domain facade), the
 * engines (src/node/compose.ts) over the libp2p shell (src/net), JSON-RPC with /metrics, stopped
 * cleanly in reverse order. Used by `grapevine node`, the devnet's children and tests.
 */
import { performance } from 'node:perf_hooks'
import { toHex } from '../codec/bytes.ts'
import type { Keypair } from '../crypto/keys.ts'
import { generateKeypair } from '../crypto/keys.ts'
import type { GossipOptions } from '../gossip/engine.ts'
import type { PruningOptions } from '../chain/prune.ts'
import type { Genesis } from '../ledger/types.ts'
import { libp2pKeyFrom, loadOrCreateNodeKey } from '../net/identity.ts'
import { Network, type NetworkOptions } from '../net/network.ts'
import { RpcEventHub } from '../rpc/events.ts'
import { RpcServer } from '../rpc/server.ts'
import { DashboardStats, counterSum } from '../rpc/stats.ts'
import type { SyncManager, SyncManagerOptions } from '../sync/manager.ts'
import { systemRuntime } from '../util/clock.ts'
import { type Logger, createLogger } from '../util/logger.ts'
import { NodeMetrics } from '../util/metrics.ts'
import { type ComposeOptions, type NodeServices, composeNode } from './compose.ts'
import { GrapevineNode } from './node.ts'
import { rpcBackend } from './rpc-backend.ts'

export interface RunNodeOptions {
  genesis: Genesis
  /** LevelDB data directory; in-memory when omitted (tests). */
  dataDir?: string
  /** Validator key (also the libp2p identity). */
  key?: Keypair
  rpcHost?: string
  /** 0 picks a free port. */
  rpcPort?: number
  /** libp2p listen multiaddrs; networking is off when this is an empty list. */
  listen?: string[]
  bootstrap?: string[]
  gossip?: Partial<GossipOptions>
  /** Peer discovery through the Kademlia DHT (default true). */
  dht?: boolean
  /** Transport settings beyond listen/bootstrap/dht (e.g. the loopback devnet's connection threshold). */
  network?: Omit<NetworkOptions, 'listen' | 'bootstrap' | 'dht'>
  /** Anti-entropy settings (state-sync threshold, status interval, …). */
  sync?: Partial<SyncManagerOptions>
  /** Produce blocks when `key` is a validator (default true). */
  produce?: boolean
  /** Signature-verifying worker threads (default 0: in-process tests run many nodes). */
  verifyWorkers?: number
  name?: string
  log?: Logger
  /** Process metrics (CPU, memory) on /metrics; off in tests. */
  processMetrics?: boolean
  /** Browser origins allowed to open the RPC WebSocket besides same-host pages ("*": any). */
  rpcAllowedOrigins?: string[]
  /** What the store keeps (`--archive`, `--keep-bodies N`, `--keep-materialized N`); default pruned. */
  pruning?: Partial<PruningOptions>
  /** Enables the admin RPC methods (net_ban, net_unban, net_addPeer) behind this bearer token. */
  rpcAdminToken?: string
  /** Defences and connection settings of the composition (inbound slots, heartbeat, rate limits). */
  compose?: Omit<ComposeOptions, 'gossip' | 'sync'>
}

export interface RunningNode {
  node: GrapevineNode
  network: Network | undefined
  /** The engines over the network (absent when networking is off). */
  services: NodeServices | undefined
  sync: SyncManager | undefined
  metrics: NodeMetrics
  rpcUrl: string
  /** The RPC server (its `websocket` counters are read by tests). */
  rpc: RpcServer
  /** What WebSocket subscriptions and the dashboard hear from this node. */
  rpcEvents: RpcEventHub
  stop: () => Promise<void>
}

export async function runNode(options: RunNodeOptions): Promise<RunningNode> {
  const log = options.log ?? createLogger(options.name === undefined ? {} : { name: options.name })
  const metrics = new NodeMetrics()
  if (options.processMetrics === true) metrics.withProcessMetrics()
  const node = await GrapevineNode.open({
    genesis: options.genesis,
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.key === undefined ? {} : { key: options.key }),
    ...(options.produce === undefined ? {} : { produce: options.produce }),
    ...(options.verifyWorkers === undefined ? {} : { verifyWorkers: options.verifyWorkers }),
    ...(options.pruning === undefined ? {} : { pruning: options.pruning }),
    log,
  })
  let network: Network | undefined
  let services: NodeServices | undefined
  let rpc: RpcServer | undefined
  let rpcEvents: RpcEventHub | undefined
  let dashboard: DashboardStats | undefined
  try {
    const listen = options.listen ?? ['/ip4/127.0.0.1/tcp/0']
    if (listen.length > 0) {
      const identity = options.key ?? (options.dataDir === undefined ? generateKeypair() : loadOrCreateNodeKey(options.dataDir))
      network = await Network.create(
        { privateKey: await libp2pKeyFrom(identity), genesisHash: node.chain.genesisHash, log, metrics },
        {
          ...options.network,
          listen,
          // The genesis file's seeds are dialled like --bootstrap peers (once each).
          bootstrap: [...new Set([...(options.bootstrap ?? []), ...(options.genesis.seeds ?? [])])],
          ...(options.dht === undefined ? {} : { dht: options.dht }),
        },
      )
      services = composeNode(
        { node, transport: network, runtime: systemRuntime, elapsed: () => performance.now(), log, metrics },
        { ...options.compose, ...(options.gossip === undefined ? {} : { gossip: options.gossip }), ...(options.sync === undefined ? {} : { sync: options.sync }) },
      )
      await network.start(services.handler)
    }
    const backend = rpcBackend({
      node,
      ...(services === undefined ? {} : { peers: services.peers, engine: services.engine, sync: services.sync, limits: services.limits, bansChanged: services.saveBans, coolingHosts: services.coolingHosts }),
      ...(network === undefined ? {} : { network, transport: network }),
    })
    // ---- RPC events: the node's events and views → src/rpc (subscriptions, dashboard) ----
    const hub = new RpcEventHub(
      { finalizedHeight: () => node.chain.finalized.height, finalizedHash: () => toHex(node.chain.finalized.hash), syncStatus: () => backend.syncStatus?.() ?? null },
      { onListenerError: (error) => log.error({ err: error }, 'rpc event listener failed') },
    )
    rpcEvents = hub
    node.events.on('tx', (signed) => hub.txPending(signed.idHex))
    node.events.on('txDropped', (signed, reason) => hub.txDropped(signed.idHex, reason))
    node.events.on('head', (change) => hub.headChanged(change.head, change.added, change.removed))
    const peers = services?.peers
    peers?.events.on('admitted', (peer) =>
      hub.peerConnected({ peerId: peer.id, direction: peer.direction, stake: peer.stake, ...(peer.validator === undefined ? {} : { validator: peer.validator }) }),
    )
    peers?.events.on('removed', (peerId) => hub.peerDisconnected(peerId, peers.isBanned(peerId)))
    const net = network
    dashboard = new DashboardStats(hub, {
      status: () => backend.status(),
      peers: () => backend.peers?.() ?? [],
      syncStatus: () => backend.syncStatus?.() ?? null,
      pendingFees: function* () {
        for (const entry of node.mempool.entries()) yield entry.signed.tx.fee
      },
      gossipTotals: async () => ({
        duplicates: await counterSum(metrics.duplicates),
        bytesIn: await counterSum(metrics.bytes, { direction: 'in', protocol: 'gossip' }),
        bytesOut: await counterSum(metrics.bytes, { direction: 'out', protocol: 'gossip' }),
      }),
      peerRttMs: (peerId) => net?.latencyMs(peerId),
    })
    // ---- end of RPC events ----
    const server = new RpcServer(backend, {
      host: options.rpcHost ?? '127.0.0.1',
      port: options.rpcPort ?? 0,
      log: log.child({ component: 'rpc' }),
      getRoutes: new Map([['/metrics', () => metrics.text()]]),
      events: hub,
      stats: dashboard,
      ...(options.rpcAllowedOrigins === undefined ? {} : { websocket: { allowedOrigins: options.rpcAllowedOrigins } }),
      ...(options.rpcAdminToken === undefined ? {} : { adminToken: options.rpcAdminToken }),
    })
    rpc = server
    const rpcUrl = (await server.listen()).url
    const updateGauges = () => {
      metrics.headHeight.set(node.chain.head.header.height)
      metrics.mempoolSize.set(node.mempool.size)
      metrics.mempoolBytes.set(node.mempool.sizeBytes)
      metrics.finalizedHeight.set(node.chain.finalized.height)
      metrics.finalityLag.set(node.chain.head.header.height - node.chain.finalized.height)
    }
    node.events.on('head', (change) => {
      updateGauges()
      if (change.removed.length > 0) metrics.reorgs.inc()
    })
    node.events.on('tx', updateGauges)
    node.events.on('finalized', updateGauges)
    node.events.on('evidence', () => metrics.evidence.set(node.finality.evidence().length))
    node.events.on('block', () => metrics.blocksImported.inc())
    updateGauges()
    node.start()
    services?.start()
    hub.start()
    log.info({ rpc: rpcUrl, peerId: network?.peerId, listen: network?.listenAddresses() }, 'node running')
    let stopping: Promise<void> | undefined
    const stop = () => {
      stopping ??= (async () => {
        services?.stop()
        hub.stop()
        dashboard?.close()
        await rpc?.close()
        await network?.stop()
        await node.stop()
      })()
      return stopping
    }
    return { node, network, services, sync: services?.sync, metrics, rpcUrl, rpc: server, rpcEvents: hub, stop }
  } catch (error) {
    services?.stop()
    rpcEvents?.stop()
    dashboard?.close()
    await rpc?.close().catch(() => undefined)
    await network?.stop().catch(() => undefined)
    await node.stop()
    throw error
  }
}
