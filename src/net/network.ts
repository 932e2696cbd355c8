/**
 * The thin libp2p shell: implements `PeerTransport` (src/peers/transport.ts) over libp2p and
 * calls the node side's `PeerHandler`. It composes the rooms of src/net: building libp2p,
 * sessions and admission, the gossip stream, the sync stream, discovery and per-peer counters.
 * It holds no protocol logic: every decision is the node side's.
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, Libp2pOptions } from 'libp2p'
import { toHexKey } from '../codec/bytes.ts'
import type { GossipMessage, StatusMessage, SyncRequest, SyncResponse } from '../codec/wire.ts'
import type { PeerHandler, PeerTransport } from '../peers/transport.ts'
import type { Logger } from '../util/logger.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import { RepeatingTask } from '../util/task.ts'
import { Discovery } from './discovery.ts'
import { GossipStreams } from './gossip-stream.ts'
import { type ProtocolIds, buildLibp2p, protocolIds } from './libp2p.ts'
import { DEFAULT_LIVENESS, Liveness } from './liveness.ts'
import { type ProtocolCounters, WireAccounting } from './peer-stats.ts'
import { type PeerSession, type SessionContext, SessionTable } from './sessions.ts'
import { SyncStreams } from './sync-stream.ts'

export { protocolIds } from './libp2p.ts'

export interface NetworkOptions {
  /** Multiaddrs to listen on (default: 127.0.0.1, a free port). */
  listen?: string[]
  /** Multiaddrs (with /p2p/<id>) dialed at start and whenever too few peers are connected. */
  bootstrap?: string[]
  /** Peers kept at most. */
  maxPeers?: number
  /** Below this many peers, bootstrap and DHT discovery dial more. */
  targetPeers?: number
  /** How long a peer has to answer `status`. */
  statusTimeoutMs?: number
  /** Run the Kademlia DHT for peer discovery (default true). */
  dht?: boolean
  /** Bytes queued to one peer before it is cut off as not reading. */
  maxQueuedBytesPerPeer?: number
  /** How long a peer may leave a gossip frame half-sent before FRAME_INCOMPLETE (default 10 s). */
  frameDeadlineMs?: number
  /** How long a sync answer may wait for the peer to read it before SYNC_ANSWER_UNREAD (default 10 s). */
  answerDeadlineMs?: number
  /**
   * Inbound connections per second libp2p accepts from one host (default: libp2p's own, 5/s).
   * Only a loopback devnet, where every node shares one address, raises it.
   */
  inboundConnectionThreshold?: number
  /** Randomness for DHT walks (tests pass a seeded one). */
  random?: () => number
  /** libp2p's metrics hook; benchmarks use it to count bytes on the TCP sockets. */
  transportMetrics?: Libp2pOptions['metrics']
}

export interface NetworkDeps {
  privateKey: PrivateKey
  genesisHash: Uint8Array
  log: Logger
  metrics?: NodeMetrics
}

/** What the shell knows of a peer's wire: `net_peers` adds it to the node side's view. */
export interface PeerWireView {
  addresses: string[]
  connectedSeconds: number
  bytesIn: number
  bytesOut: number
  protocols: Record<string, ProtocolCounters>
  messages: Record<string, number>
  /** Round-trip time of the node's liveness ping (ms, src/net/liveness.ts), once it has pinged (every 10 s). */
  rttMs?: number
}

export class Network implements PeerTransport {
  readonly protocols: ProtocolIds
  private readonly sessions: SessionTable
  private readonly gossip: GossipStreams
  private readonly sync: SyncStreams
  private readonly accounting: WireAccounting
  private readonly discovery: Discovery
  private readonly keeper: RepeatingTask
  /** Pings each connection once per 10 s at its own phase (libp2p's monitor, which pings all at once, is off). */
  private readonly liveness: Liveness
  private readonly log: Logger
  private handler: PeerHandler | undefined
  private stopped = false

  private constructor(
    readonly libp2p: Libp2p,
    deps: NetworkDeps,
    options: NetworkOptions,
  ) {
    this.log = deps.log.child({ component: 'net' })
    this.protocols = protocolIds(toHexKey(deps.genesisHash))
    const protocolNames = new Map(Object.entries(this.protocols).map(([name, id]) => [id, name]))
    this.accounting = new WireAccounting(protocolNames, deps.metrics)
    const ctx: SessionContext = {
      libp2p,
      protocols: this.protocols,
      accounting: this.accounting,
      log: this.log,
      genesisHash: deps.genesisHash,
      options: {
        maxPeers: options.maxPeers ?? 50,
        statusTimeoutMs: options.statusTimeoutMs ?? 5_000,
        maxQueuedBytesPerPeer: options.maxQueuedBytesPerPeer ?? 64 * 1024 * 1024,
        frameDeadlineMs: options.frameDeadlineMs ?? 10_000,
        answerDeadlineMs: options.answerDeadlineMs ?? 10_000,
      },
      handler: () => {
        if (this.handler === undefined) throw new Error('network not started')
        return this.handler
      },
      isStopped: () => this.stopped,
    }
    this.sessions = new SessionTable(ctx)
    this.gossip = new GossipStreams(ctx, this.sessions, deps.metrics)
    this.sync = new SyncStreams(ctx, this.sessions)
    this.discovery = new Discovery(
      libp2p,
      { bootstrap: options.bootstrap ?? [], targetPeers: options.targetPeers ?? 12, walkIntervalMs: 30_000, gossipProtocol: this.protocols.gossip },
      this.log,
      (peerId) => this.handler?.mayDial(peerId) ?? false,
      options.random ?? Math.random,
    )
    this.keeper = new RepeatingTask((signal) => this.discovery.round(signal), 3_000, (error) => this.log.debug({ err: error }, 'peer discovery round failed'))
    this.liveness = new Liveness(libp2p, this.log, DEFAULT_LIVENESS, options.random ?? Math.random)
  }

  /** Builds libp2p (listening, no protocol handlers yet). `start()` attaches the node side. */
  static async create(deps: NetworkDeps, options: NetworkOptions = {}): Promise<Network> {
    const protocols = protocolIds(toHexKey(deps.genesisHash))
    let network: Network | undefined
    const libp2p = await buildLibp2p({
      denyInboundPeer: (peerId, remoteAddress) => network?.handler?.refuseEarly?.(peerId, remoteAddress) ?? false,
      denyInboundAddress: (remoteAddress, at) => network?.handler?.refuseAddress?.(remoteAddress, at) ?? false,
      privateKey: deps.privateKey,
      protocols,
      listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      maxConnections: (options.maxPeers ?? 50) + 10,
      ...(options.inboundConnectionThreshold === undefined ? {} : { inboundConnectionThreshold: options.inboundConnectionThreshold }),
      dht: options.dht ?? true,
      ...(options.transportMetrics === undefined ? {} : { transportMetrics: options.transportMetrics }),
    })
    network = new Network(libp2p, deps, options)
    return network
  }

  /** Attaches the node side and starts accepting, admitting and discovering peers. */
  async start(handler: PeerHandler): Promise<void> {
    this.handler = handler
    const { libp2p, protocols } = this
    await libp2p.handle(protocols.status, (stream, connection) => this.sessions.serveStatus(stream, connection), { maxInboundStreams: 4 })
    await libp2p.handle(protocols.gossip, (stream, connection) => this.gossip.accept(stream, connection), { maxInboundStreams: 2 })
    await libp2p.handle(protocols.sync, (stream, connection) => this.sync.serve(stream, connection), { maxInboundStreams: 16 })
    libp2p.addEventListener('peer:connect', (event) => void this.sessions.onConnect(event.detail))
    libp2p.addEventListener('peer:disconnect', (event) => this.sessions.onDisconnect(event.detail))
    // Connections that opened before the handlers were attached.
    for (const peer of libp2p.getPeers()) void this.sessions.onConnect(peer)
    this.keeper.start(0)
    this.liveness.start()
    this.log.info({ peerId: this.localPeerId, listen: this.listenAddresses() }, 'network started')
  }

  get localPeerId(): string {
    return this.libp2p.peerId.toString()
  }

  /** Alias of localPeerId (status views, tests). */
  get peerId(): string {
    return this.localPeerId
  }

  listenAddresses(): string[] {
    return this.libp2p.getMultiaddrs().map((address) => address.toString())
  }

  admittedPeers(): PeerSession[] {
    return this.sessions.admitted()
  }

  session(peerId: string): PeerSession | undefined {
    return this.sessions.get(peerId)
  }

  async dial(address: string): Promise<void> {
    await this.libp2p.dial(multiaddr(address), { signal: AbortSignal.timeout(10_000) })
  }

  // ---------------------------------------------------------------- PeerTransport

  sendGossip(peerId: string, message: GossipMessage): void {
    this.gossip.send(this.sessions.get(peerId), message)
  }

  request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse> {
    return this.sync.request(peerId, request, timeoutMs)
  }

  async requestStatus(peerId: string, timeoutMs: number): Promise<StatusMessage> {
    const session = this.sessions.get(peerId)
    if (session === undefined) throw new Error('peer is not connected')
    return this.sessions.requestStatus(session, timeoutMs)
  }

  disconnect(peerId: string): void {
    const session = this.sessions.get(peerId)
    if (session !== undefined) void this.sessions.hangUp(session.peerId)
  }

  syncBytesReceived(): number {
    return this.accounting.syncBytesIn
  }

  async dialPeer(peerId: string, address?: string): Promise<boolean> {
    if (this.stopped) return false
    try {
      if (address !== undefined) {
        await this.libp2p.dial(multiaddr(address), { signal: AbortSignal.timeout(10_000) })
        return true
      }
      const id = peerIdFromString(peerId)
      const known = await this.libp2p.peerStore.get(id).then((peer) => peer.addresses.length > 0).catch(() => false)
      // Unknown address: the DHT's peer routing finds it by id (validators are found this way).
      if (!known) await this.libp2p.peerRouting.findPeer(id, { signal: AbortSignal.timeout(10_000) })
      await this.libp2p.dial(id, { signal: AbortSignal.timeout(10_000) })
      return true
    } catch (error) {
      this.log.debug({ peer: peerId.slice(-8), err: (error as Error).message }, 'dial by peer id failed')
      return false
    }
  }

  peerIdOf(publicKey: Uint8Array): string | undefined {
    try {
      return peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString()
    } catch {
      return undefined
    }
  }

  connectedPeers(): string[] {
    return this.libp2p.getPeers().map((peer) => peer.toString())
  }

  /** The lowest round-trip time the liveness pings measured on the peer's connections (each pinged every 10 s). */
  latencyMs(peerId: string): number | undefined {
    const session = this.sessions.get(peerId)
    if (session === undefined) return undefined
    const rtts = this.libp2p
      .getConnections(session.peerId)
      .map((connection) => connection.rtt)
      .filter((rtt): rtt is number => rtt !== undefined && rtt >= 0)
    return rtts.length === 0 ? undefined : Math.min(...rtts)
  }

  /** The wire side of a peer, for `net_peers`. */
  peerWire(peerId: string): PeerWireView | undefined {
    const session = this.sessions.get(peerId)
    if (session === undefined) return undefined
    const { bytesIn, bytesOut } = session.counters.totals()
    const rttMs = this.latencyMs(peerId)
    return {
      ...(rttMs === undefined ? {} : { rttMs }),
      addresses: this.libp2p.getConnections(session.peerId).map((connection) => connection.remoteAddr.toString()),
      connectedSeconds: Math.round((Date.now() - session.connectedAt) / 1000),
      bytesIn,
      bytesOut,
      protocols: Object.fromEntries(session.counters.protocols),
      messages: Object.fromEntries(session.counters.messageTypes),
    }
  }

  // ---------------------------------------------------------------- lifecycle

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.keeper.stop()
    this.liveness.stop()
    await Promise.all(this.sessions.all().map((session) => session.gossipOut?.close()))
    await this.libp2p.stop()
    this.log.info('network stopped')
  }
}
