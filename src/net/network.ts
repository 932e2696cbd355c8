/**
 * The libp2p adapter: builds the libp2p node (TCP, Noise, Yamux, identify, ping, Kademlia DHT),
 * admits peers after a `status` exchange that proves they are on this network, and moves bytes
 * between streams and the sans-IO engines (gossip here; sync plugs in through `PeerHooks`).
 *
 * Protocol ids carry the genesis hash prefix: /grapevine/<genesis-prefix>/<name>/<version>.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { type Libp2p, type Libp2pOptions, createLibp2p } from 'libp2p'
import { DecodeError } from '../codec/binary.ts'
import { bytesEqual, toHex, toHexKey } from '../codec/bytes.ts'
import {
  type GossipMessage,
  MAX_GOSSIP_FRAME_BYTES,
  MAX_SYNC_FRAME_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  STATUS_BYTES,
  type StatusMessage,
  type SyncRequest,
  type SyncResponse,
  decodeGossip,
  decodeStatus,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeGossip,
  encodeStatus,
  encodeSyncRequest,
  encodeSyncResponse,
} from '../codec/wire.ts'
import { OrphanPool } from '../chain/orphans.ts'
import { DEFAULT_GOSSIP_OPTIONS, GossipEngine, type GossipOptions } from '../gossip/engine.ts'
import { BlockError } from '../ledger/errors.ts'
import type { Block, SignedTx } from '../ledger/types.ts'
import type { Logger } from '../node/logger.ts'
import type { NodeMetrics } from '../node/metrics.ts'
import type { GrapevineNode } from '../node/node.ts'
import { type PenaltyLevel, PeerScores } from '../peers/scores.ts'
import { serveSyncRequest } from '../sync/server.ts'
import type { SyncNetwork } from '../sync/manager.ts'
import { RepeatingTask } from '../util/task.ts'
import { FrameReader, FrameTooLargeError, frame } from './framing.ts'
import { peerPublicKey } from './identity.ts'
import { OutboundLink } from './link.ts'

export interface NetworkOptions {
  /** Multiaddrs to listen on (default: 127.0.0.1, a free port). */
  listen?: string[]
  /** Multiaddrs (with /p2p/<id>) dialed at start and whenever too few peers are connected. */
  bootstrap?: string[]
  /** Peers kept at most. */
  maxPeers?: number
  /** Below this many peers, bootstrap and DHT discovery dial more. */
  targetPeers?: number
  gossip?: Partial<GossipOptions>
  /** How long a peer has to answer `status`. */
  statusTimeoutMs?: number
  /** Run the Kademlia DHT for peer discovery (default true). */
  dht?: boolean
  /** Bytes queued to one peer before it is cut off as not reading. */
  maxQueuedBytesPerPeer?: number
  /** Deterministic randomness for tests. */
  random?: () => number
  /** libp2p's metrics hook; benchmarks use it to count bytes on the TCP sockets. */
  transportMetrics?: Libp2pOptions['metrics']
}

export interface NetworkDeps {
  node: GrapevineNode
  privateKey: PrivateKey
  log: Logger
  metrics?: NodeMetrics
}

/** Hooks for engines living next to gossip (anti-entropy): called on admission and removal. */
export interface PeerHooks {
  onPeerAdmitted(session: PeerSession): void
  onPeerRemoved(peerId: string): void
}

interface ProtocolCounters {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

export interface PeerSession {
  id: string
  peerId: PeerId
  direction: 'inbound' | 'outbound'
  stake: bigint
  /** The validator address behind the peer id, if it is one. */
  validator?: string
  connectedAt: number
  status?: StatusMessage
  admitted: boolean
  /** Our status exchange with it is in progress. */
  handshaking: boolean
  gossipOut?: OutboundLink
  /** Frames that arrived before admission; bounded by MAX_EARLY_FRAMES. */
  early: Uint8Array[]
  counters: Map<string, ProtocolCounters>
  /** Wire message counts by type, both directions. */
  messageTypes: Map<string, number>
}

export interface PeerView {
  peerId: string
  direction: 'inbound' | 'outbound'
  stake: string
  validator?: string
  addresses: string[]
  connectedSeconds: number
  bytesIn: number
  bytesOut: number
  head?: { height: number; hash: string }
  score: number
  penalties: Record<string, number>
  protocols: Record<string, ProtocolCounters>
  messages: Record<string, number>
  gossip?: Record<string, number>
}

const MAX_EARLY_FRAMES = 1_024
/**
 * With a sync manager attached, a gossiped orphan further than this above our head is left to it
 * (verified headers first, state sync when far behind) instead of chasing its ancestors one
 * getdata at a time, which would replay history from genesis next to a state sync.
 */
const MAX_ORPHAN_CHASE_BLOCKS = 8

/** The status a node announces: network, head, (finalized: genesis until finality exists), state root, mempool digest. */
export function statusOf(node: GrapevineNode): StatusMessage {
  const head = node.chain.head
  return {
    genesisHash: node.chain.genesisHash,
    headHeight: head.header.height,
    headHash: head.hash,
    finalizedHeight: 0,
    finalizedHash: node.chain.genesisBlock,
    stateRoot: head.header.stateRoot,
    mempoolDigest: node.mempoolDigest(),
    mempoolSize: node.mempool.size,
  }
}

export function protocolIds(genesisHashHex: string) {
  const prefix = `/grapevine/${genesisHashHex.slice(0, 16)}`
  return {
    status: `${prefix}/status/1`,
    gossip: `${prefix}/gossip/1`,
    sync: `${prefix}/sync/1`,
    kad: `${prefix}/kad/1.0.0`,
  }
}

export class Network implements SyncNetwork {
  readonly engine: GossipEngine
  readonly scores = new PeerScores()
  private syncBytesIn = 0
  readonly protocols: ReturnType<typeof protocolIds>
  /** Protocol id → its short name (the metrics label). */
  private readonly protocolNames: Map<string, string>
  /** Bounded by maxPeers (extra connections are closed). */
  private readonly sessions = new Map<string, PeerSession>()
  private readonly orphans = new OrphanPool(256)
  private readonly hooks: PeerHooks[] = []
  private readonly tickTask: RepeatingTask
  private readonly keeper: RepeatingTask
  private readonly log: Logger
  private readonly random: () => number
  private wakeScheduled = false
  private lastWalkAt = 0
  private stopped = false
  private unsubscribe: Array<() => void> = []

  private constructor(
    readonly libp2p: Libp2p,
    private readonly deps: NetworkDeps,
    private readonly options: Required<Omit<NetworkOptions, 'gossip' | 'random' | 'transportMetrics'>> & { gossip: Partial<GossipOptions> },
    random: () => number,
  ) {
    this.log = deps.log.child({ component: 'net' })
    this.random = random
    this.protocols = protocolIds(toHexKey(deps.node.chain.genesisHash))
    this.protocolNames = new Map(Object.entries(this.protocols).map(([name, id]) => [id, name]))
    const node = deps.node
    this.engine = new GossipEngine(
      {
        send: (peerId, message) => this.sendGossip(peerId, message),
        wake: () => this.scheduleWake(),
        hasTx: (idHex) => node.mempool.has(idHex) || node.store.getTxLocation(Buffer.from(idHex, 'hex')) !== undefined,
        getTx: (idHex) => node.mempool.get(idHex),
        hasBlock: (hashHex) => node.chain.hasBlock(Buffer.from(hashHex, 'hex')) || this.orphans.has(hashHex),
        getBlock: (hashHex) => node.chain.getBlock(Buffer.from(hashHex, 'hex')),
        deliverTxs: (peerId, txs) => this.onPeerTxs(peerId, txs),
        deliverBlock: (peerId, block) => void this.onPeerBlock(peerId, block, performance.now()),
        random: this.random,
      },
      options.gossip,
    )
    this.engine.setTotalStake(node.chain.schedule.totalStake)
    const tickMs = Math.max(5, Math.floor((options.gossip.announceBatchMs ?? DEFAULT_GOSSIP_OPTIONS.announceBatchMs) / 4))
    this.tickTask = new RepeatingTask(() => this.engine.tick(node.clock()), tickMs, (error) => this.log.error({ err: error }, 'gossip tick failed'))
    this.keeper = new RepeatingTask(() => this.keepConnected(), 3_000, (error) => this.log.debug({ err: error }, 'peer discovery round failed'))
  }

  static async start(deps: NetworkDeps, options: NetworkOptions = {}): Promise<Network> {
    const genesisHex = toHexKey(deps.node.chain.genesisHash)
    const ids = protocolIds(genesisHex)
    const useDht = options.dht ?? true
    const libp2p = await createLibp2p({
      privateKey: deps.privateKey,
      ...(options.transportMetrics === undefined ? {} : { metrics: options.transportMetrics }),
      addresses: { listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: {
        maxConnections: (options.maxPeers ?? 50) + 10,
        // Loopback devnets dial many times from one IP; the default (5/s) resets them.
        inboundConnectionThreshold: 10_000,
        maxIncomingPendingConnections: 100,
        dialTimeout: 10_000,
      },
      services: {
        identify: identify(),
        ping: ping(),
        ...(useDht ? { dht: kadDHT({ protocol: ids.kad, clientMode: false, peerInfoMapper: passthroughMapper, allowQueryWithZeroPeers: true }) } : {}),
      },
    })
    const network = new Network(
      libp2p,
      deps,
      {
        listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: options.bootstrap ?? [],
        maxPeers: options.maxPeers ?? 50,
        targetPeers: options.targetPeers ?? 12,
        statusTimeoutMs: options.statusTimeoutMs ?? 5_000,
        dht: useDht,
        maxQueuedBytesPerPeer: options.maxQueuedBytesPerPeer ?? 64 * 1024 * 1024,
        gossip: options.gossip ?? {},
      },
      options.random ?? Math.random,
    )
    await network.init()
    return network
  }

  private async init(): Promise<void> {
    const { libp2p, protocols } = this
    await libp2p.handle(protocols.status, (stream, connection) => this.serveStatus(stream, connection), { maxInboundStreams: 4 })
    await libp2p.handle(protocols.gossip, (stream, connection) => this.acceptGossip(stream, connection), { maxInboundStreams: 2 })
    await libp2p.handle(protocols.sync, (stream, connection) => this.serveSync(stream, connection), { maxInboundStreams: 16 })
    libp2p.addEventListener('peer:connect', (event) => void this.onConnect(event.detail))
    libp2p.addEventListener('peer:disconnect', (event) => this.onDisconnect(event.detail))
    const node = this.deps.node
    this.unsubscribe.push(
      node.events.on('tx', (signed, origin) => this.engine.relayTx(signed, origin.kind === 'peer' ? origin.peerId : undefined, node.clock())),
      node.events.on('block', (block, hash, origin) => {
        // Blocks fetched by catch-up are history, not news: they are not announced.
        if (origin.kind !== 'sync') this.engine.relayBlock(block, hash, origin.kind === 'peer' ? origin.peerId : undefined, node.clock())
        void this.importOrphansOf(hash)
      }),
    )
    this.tickTask.start()
    this.keeper.start(0)
    this.log.info({ peerId: libp2p.peerId.toString(), listen: this.listenAddresses() }, 'network started')
  }

  /** Registers an engine that wants to know when peers come and go. */
  addHooks(hooks: PeerHooks): void {
    this.hooks.push(hooks)
    for (const session of this.sessions.values()) if (session.admitted) hooks.onPeerAdmitted(session)
  }

  get peerId(): string {
    return this.libp2p.peerId.toString()
  }

  listenAddresses(): string[] {
    return this.libp2p.getMultiaddrs().map((address) => address.toString())
  }

  admittedPeers(): PeerSession[] {
    return [...this.sessions.values()].filter((session) => session.admitted)
  }

  session(peerId: string): PeerSession | undefined {
    return this.sessions.get(peerId)
  }

  async dial(address: string): Promise<void> {
    await this.libp2p.dial(multiaddr(address), { signal: AbortSignal.timeout(10_000) })
  }

  async disconnect(peerId: string): Promise<void> {
    const session = this.sessions.get(peerId)
    if (session !== undefined) await this.libp2p.hangUp(session.peerId).catch(() => undefined)
  }

  // ---------------------------------------------------------------- admission

  private stakeOf(peerId: PeerId): { stake: bigint; validator?: string } {
    const key = peerPublicKey(peerId)
    if (key === undefined) return { stake: 0n }
    const validator = this.deps.node.genesis.validators.find((v) => bytesEqual(v.address, key))
    return validator === undefined ? { stake: 0n } : { stake: validator.stake, validator: toHex(validator.address) }
  }

  private sessionFor(peerId: PeerId, connection: Connection | undefined): PeerSession {
    const id = peerId.toString()
    let session = this.sessions.get(id)
    if (session === undefined) {
      const { stake, validator } = this.stakeOf(peerId)
      session = {
        id,
        peerId,
        direction: connection?.direction ?? this.libp2p.getConnections(peerId)[0]?.direction ?? 'inbound',
        stake,
        ...(validator === undefined ? {} : { validator }),
        connectedAt: Date.now(),
        admitted: false,
        handshaking: false,
        early: [],
        counters: new Map(),
        messageTypes: new Map(),
      }
      this.sessions.set(id, session)
    }
    return session
  }

  private async onConnect(peerId: PeerId): Promise<void> {
    if (this.stopped) return
    const id = peerId.toString()
    // A session may already exist (an inbound stream was handled first); admit it unless done or under way.
    const existing = this.sessions.get(id)
    if (existing !== undefined && (existing.admitted || existing.handshaking)) return
    if (this.scores.isBanned(id, Date.now())) {
      this.log.debug({ peer: id.slice(-8) }, 'refusing banned peer')
      await this.libp2p.hangUp(peerId).catch(() => undefined)
      return
    }
    if (existing === undefined && this.sessions.size >= this.options.maxPeers) {
      this.log.debug({ peer: id }, 'peer limit reached, closing connection')
      await this.libp2p.hangUp(peerId).catch(() => undefined)
      return
    }
    const session = this.sessionFor(peerId, undefined)
    session.handshaking = true
    try {
      const theirs = await this.requestStatus(peerId)
      if (!bytesEqual(theirs.genesisHash, this.deps.node.chain.genesisHash)) {
        this.log.warn({ peer: id, theirGenesis: toHex(theirs.genesisHash) }, 'refusing peer on another network')
        await this.libp2p.hangUp(peerId).catch(() => undefined)
        return
      }
      session.status = theirs
      const stream = await this.libp2p.dialProtocol(peerId, this.protocols.gossip, { signal: AbortSignal.timeout(this.options.statusTimeoutMs) })
      session.gossipOut = new OutboundLink(stream, {
        maxQueuedBytes: this.options.maxQueuedBytesPerPeer,
        onSent: (bytes) => this.count(session, this.protocols.gossip, 'out', bytes + 4),
      })
      if (!this.sessions.has(id) || this.stopped) return
      session.admitted = true
      this.engine.addPeer({ id, outbound: session.direction === 'outbound', stake: session.stake }, this.deps.node.clock())
      this.deps.metrics?.peers.set(this.admittedPeers().length)
      this.log.info({ peer: id.slice(-8), direction: session.direction, stake: session.stake.toString(), height: theirs.headHeight }, 'peer admitted')
      for (const frameBytes of session.early.splice(0)) this.onGossipFrame(session, frameBytes)
      for (const hooks of this.hooks) hooks.onPeerAdmitted(session)
      if (this.hooks.length === 0) this.catchUpFrom(session)
    } catch (error) {
      const message = (error as Error).message
      const refused = /protocol selection failed|not supported|UnsupportedProtocol/i.test(message + (error as Error).name)
      this.log.info({ peer: id.slice(-8), reason: refused ? 'not on this network (status protocol not supported)' : message }, 'peer refused')
      this.sessions.delete(id)
      await this.libp2p.hangUp(peerId).catch(() => undefined)
    } finally {
      session.handshaking = false
    }
  }

  private onDisconnect(peerId: PeerId): void {
    const id = peerId.toString()
    const session = this.sessions.get(id)
    if (session === undefined) return
    // Another connection to the same peer may still be open.
    if (this.libp2p.getConnections(peerId).length > 0) return
    this.sessions.delete(id)
    if (session.admitted) {
      this.engine.removePeer(id, this.deps.node.clock())
      for (const hooks of this.hooks) hooks.onPeerRemoved(id)
      this.deps.metrics?.peers.set(this.admittedPeers().length)
      this.log.info({ peer: id.slice(-8) }, 'peer disconnected')
    }
  }

  private async requestStatus(peerId: PeerId): Promise<StatusMessage> {
    const stream = await this.libp2p.dialProtocol(peerId, this.protocols.status, { signal: AbortSignal.timeout(this.options.statusTimeoutMs) })
    try {
      stream.send(frame(encodeStatus(statusOf(this.deps.node))))
      const answer = await readOneFrame(stream, STATUS_BYTES, this.options.statusTimeoutMs)
      const session = this.sessions.get(peerId.toString())
      if (session !== undefined) {
        this.count(session, this.protocols.status, 'out', STATUS_BYTES + 4)
        this.count(session, this.protocols.status, 'in', answer.length + 4)
      }
      return decodeStatus(answer)
    } finally {
      await stream.close().catch(() => stream.abort(new Error('close failed')))
    }
  }

  private async serveStatus(stream: Stream, connection: Connection): Promise<void> {
    try {
      const request = await readOneFrame(stream, STATUS_BYTES, this.options.statusTimeoutMs)
      const theirs = decodeStatus(request)
      const session = this.sessionFor(connection.remotePeer, connection)
      session.status = theirs
      this.count(session, this.protocols.status, 'in', request.length + 4)
      stream.send(frame(encodeStatus(statusOf(this.deps.node))))
      this.count(session, this.protocols.status, 'out', STATUS_BYTES + 4)
      await stream.close()
      if (!bytesEqual(theirs.genesisHash, this.deps.node.chain.genesisHash)) {
        this.log.warn({ peer: session.id.slice(-8) }, 'refusing peer on another network')
        await this.libp2p.hangUp(connection.remotePeer).catch(() => undefined)
      }
    } catch (error) {
      stream.abort(error as Error)
    }
  }

  private async admittedSession(peerId: string, timeoutMs: number): Promise<PeerSession | undefined> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const session = this.sessions.get(peerId)
      if (session?.admitted === true) return session
      if (this.stopped || Date.now() > deadline) return undefined
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** A peer's status, refreshed by a new status round trip (and kept on its session). */
  async refreshStatus(peerId: string): Promise<StatusMessage | undefined> {
    const session = this.sessions.get(peerId)
    if (session === undefined) return undefined
    const status = await this.requestStatus(session.peerId)
    session.status = status
    return status
  }

  // ---------------------------------------------------------------- gossip streams

  private acceptGossip(stream: Stream, connection: Connection): void {
    const session = this.sessionFor(connection.remotePeer, connection)
    const reader = new FrameReader(MAX_GOSSIP_FRAME_BYTES)
    stream.addEventListener('message', (event) => {
      let frames: Uint8Array[]
      try {
        frames = reader.push(event.data)
      } catch (error) {
        if (error instanceof FrameTooLargeError) this.penalise(session.id, 'high', 'frame too large')
        stream.abort(error as Error)
        return
      }
      for (const frameBytes of frames) {
        this.count(session, this.protocols.gossip, 'in', frameBytes.length + 4)
        if (!session.admitted) {
          if (session.early.length < MAX_EARLY_FRAMES) session.early.push(frameBytes)
          continue
        }
        this.onGossipFrame(session, frameBytes)
      }
    })
  }

  private onGossipFrame(session: PeerSession, bytes: Uint8Array): void {
    let message: GossipMessage
    try {
      message = decodeGossip(bytes)
    } catch (error) {
      if (error instanceof DecodeError) {
        this.penalise(session.id, 'high', 'undecodable gossip message')
        return
      }
      throw error
    }
    this.countType(session, `in:${message.type}`)
    this.deps.metrics?.messages.inc({ direction: 'in', protocol: 'gossip', type: message.type })
    if (message.type === 'inv') this.deps.metrics?.announcements.inc({ direction: 'in' }, message.items.length)
    if (message.type === 'getdata') this.deps.metrics?.requests.inc({ direction: 'in' }, message.items.length)
    const totals = this.engine.deliveryTotals()
    const duplicates = totals.duplicates
    const unsolicited = totals.unsolicited
    this.engine.onMessage(session.id, message, this.deps.node.clock())
    if (totals.duplicates > duplicates) this.deps.metrics?.duplicates.inc(totals.duplicates - duplicates)
    if (totals.unsolicited > unsolicited) this.deps.metrics?.unsolicited.inc(totals.unsolicited - unsolicited)
  }

  private sendGossip(peerId: string, message: GossipMessage): void {
    const session = this.sessions.get(peerId)
    if (session?.gossipOut === undefined) return
    this.countType(session, `out:${message.type}`)
    this.deps.metrics?.messages.inc({ direction: 'out', protocol: 'gossip', type: message.type })
    if (message.type === 'inv') this.deps.metrics?.announcements.inc({ direction: 'out' }, message.items.length)
    if (message.type === 'getdata') this.deps.metrics?.requests.inc({ direction: 'out' }, message.items.length)
    session.gossipOut.send(encodeGossip(message))
  }

  private scheduleWake(): void {
    if (this.wakeScheduled) return
    this.wakeScheduled = true
    setImmediate(() => {
      this.wakeScheduled = false
      if (!this.stopped) this.engine.flush(this.deps.node.clock())
    })
  }

  // ---------------------------------------------------------------- deliveries

  /** A peer's transactions: checked as one batch (signatures in parallel), relayed on acceptance. */
  private onPeerTxs(peerId: string, txs: SignedTx[]): void {
    const started = performance.now()
    this.deps.node.acceptTxs(txs, { kind: 'peer', peerId }).then(
      (errors) => {
        const seconds = (performance.now() - started) / 1000
        let fault: string | undefined
        for (const error of errors) {
          if (error === undefined) {
            this.deps.metrics?.relayLatency.observe({ kind: 'tx' }, seconds)
            continue
          }
          this.deps.metrics?.rejected.inc({ code: error.code })
          if (error.action === 'reject') fault ??= error.code
        }
        // One penalty per message: a batch of bad transactions is one offence.
        if (fault !== undefined) this.penalise(peerId, 'high', fault)
      },
      (error: unknown) => this.log.error({ err: error }, 'transaction ingest failed'),
    )
  }

  private async onPeerBlock(peerId: string, block: Block, arrivedAt: number): Promise<void> {
    const node = this.deps.node
    try {
      await node.importBlock(block, { kind: 'peer', peerId })
      this.deps.metrics?.relayLatency.observe({ kind: 'block' }, (performance.now() - arrivedAt) / 1000)
    } catch (error) {
      if (!(error instanceof BlockError)) {
        this.log.error({ err: error }, 'block import failed')
        return
      }
      if (error.code === 'BLOCK_UNKNOWN_PARENT') {
        const orphan = this.orphans.add(block, peerId)
        // Kept either way: it is imported as soon as its parent is (by sync or gossip).
        if (this.hooks.length > 0 && block.header.height > node.chain.head.header.height + MAX_ORPHAN_CHASE_BLOCKS) return
        this.engine.requestFrom(peerId, this.orphans.missingAncestor(orphan), node.clock())
        return
      }
      if (error.code === 'BLOCK_ALREADY_KNOWN') return
      this.deps.metrics?.rejected.inc({ code: error.code })
      if (error.action === 'reject') this.penalise(peerId, 'fatal', error.code)
      this.log.info({ peer: peerId.slice(-8), code: error.code, reason: error.message }, 'block refused')
    }
  }

  /** A block joined the tree: its waiting children can be imported now. */
  private async importOrphansOf(hash: Uint8Array): Promise<void> {
    for (const orphan of this.orphans.takeChildren(hash)) {
      await this.onPeerBlock(orphan.from, orphan.block, performance.now())
    }
  }

  /** A peer ahead of us: fetch its head; the orphan pool walks back to what we have. */
  private catchUpFrom(session: PeerSession): void {
    const theirs = session.status
    const head = this.deps.node.chain.head
    if (theirs === undefined || theirs.headHeight <= head.header.height) return
    if (this.deps.node.chain.hasBlock(theirs.headHash)) return
    this.engine.requestFrom(session.id, theirs.headHash, this.deps.node.clock())
  }

  // ---------------------------------------------------------------- accounting

  private count(session: PeerSession, protocol: string, direction: 'in' | 'out', bytes: number): void {
    let counters = session.counters.get(protocol)
    if (counters === undefined) {
      counters = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
      session.counters.set(protocol, counters)
    }
    if (direction === 'in') {
      counters.messagesIn++
      counters.bytesIn += bytes
    } else {
      counters.messagesOut++
      counters.bytesOut += bytes
    }
    this.deps.metrics?.bytes.inc({ direction, protocol: this.protocolNames.get(protocol) ?? protocol }, bytes)
  }

  private countType(session: PeerSession, key: string): void {
    session.messageTypes.set(key, (session.messageTypes.get(key) ?? 0) + 1)
  }

  /** Scores misbehaviour (src/peers/scores.ts); disconnects or bans past the thresholds. */
  penalise(peerId: string, level: PenaltyLevel, reason: string): void {
    const session = this.sessions.get(peerId)
    if (session !== undefined) this.countType(session, `penalty:${reason}`)
    const verdict = this.scores.penalise(peerId, level, reason, Date.now())
    this.log.debug({ peer: peerId.slice(-8), level, reason, verdict }, 'peer misbehaved')
    if (verdict !== 'ok' && session !== undefined) {
      this.log.info({ peer: peerId.slice(-8), reason, verdict }, verdict === 'ban' ? 'banning peer' : 'disconnecting peer')
      void this.libp2p.hangUp(session.peerId).catch(() => undefined)
    }
  }

  selectionFactor(peerId: string): number {
    return this.scores.selectionFactor(peerId, Date.now())
  }

  syncPeers(): Array<{ id: string; stake: bigint; status: StatusMessage | undefined }> {
    return this.admittedPeers().map((session) => ({ id: session.id, stake: session.stake, status: session.status }))
  }

  syncBytesReceived(): number {
    return this.syncBytesIn
  }

  // ---------------------------------------------------------------- sync protocol

  /** One request per stream: request frame out, one response frame back, bounded in size and time. */
  async request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse> {
    const session = this.sessions.get(peerId)
    if (session === undefined || !session.admitted) throw new Error('peer is not connected')
    const stream = await this.libp2p.dialProtocol(session.peerId, this.protocols.sync, { signal: AbortSignal.timeout(timeoutMs) })
    try {
      const payload = encodeSyncRequest(request)
      this.deps.metrics?.messages.inc({ direction: 'out', protocol: 'sync', type: request.type })
      stream.send(frame(payload))
      this.count(session, this.protocols.sync, 'out', payload.length + 4)
      const answer = await readOneFrame(stream, MAX_SYNC_FRAME_BYTES, timeoutMs)
      this.count(session, this.protocols.sync, 'in', answer.length + 4)
      this.syncBytesIn += answer.length + 4
      try {
        return decodeSyncResponse(answer)
      } catch (error) {
        this.penalise(peerId, 'high', 'undecodable sync response')
        throw error
      }
    } finally {
      await stream.close().catch(() => stream.abort(new Error('close failed')))
    }
  }

  private async serveSync(stream: Stream, connection: Connection): Promise<void> {
    const id = connection.remotePeer.toString()
    try {
      // A peer may ask as soon as it admitted us, a moment before we admit it: wait for that.
      const session = await this.admittedSession(id, this.options.statusTimeoutMs)
      if (session === undefined) throw new Error('sync request from a peer that is not admitted')
      const bytes = await readOneFrame(stream, MAX_SYNC_REQUEST_BYTES, this.options.statusTimeoutMs)
      this.count(session, this.protocols.sync, 'in', bytes.length + 4)
      let request: SyncRequest
      try {
        request = decodeSyncRequest(bytes)
      } catch (error) {
        this.penalise(id, 'high', 'undecodable sync request')
        throw error
      }
      this.countType(session, `in:${request.type}`)
      this.deps.metrics?.messages.inc({ direction: 'in', protocol: 'sync', type: request.type })
      const answer = serveSyncRequest(request, { chain: this.deps.node.chain, mempool: this.deps.node.mempool })
      this.deps.metrics?.messages.inc({ direction: 'out', protocol: 'sync', type: answer.type })
      const response = encodeSyncResponse(answer)
      stream.send(frame(response))
      this.count(session, this.protocols.sync, 'out', response.length + 4)
      await stream.close()
    } catch (error) {
      stream.abort(error as Error)
    }
  }

  /** Bytes counted for a peer on all protocols. */
  peerBytes(peerId: string): { bytesIn: number; bytesOut: number } {
    const session = this.sessions.get(peerId)
    let bytesIn = 0
    let bytesOut = 0
    for (const counters of session?.counters.values() ?? []) {
      bytesIn += counters.bytesIn
      bytesOut += counters.bytesOut
    }
    return { bytesIn, bytesOut }
  }

  peerViews(): PeerView[] {
    const now = Date.now()
    return this.admittedPeers().map((session) => {
      const { bytesIn, bytesOut } = this.peerBytes(session.id)
      const gossip = this.engine.counters(session.id)
      return {
        peerId: session.id,
        direction: session.direction,
        stake: session.stake.toString(),
        ...(session.validator === undefined ? {} : { validator: session.validator }),
        addresses: this.libp2p.getConnections(session.peerId).map((connection) => connection.remoteAddr.toString()),
        connectedSeconds: Math.round((now - session.connectedAt) / 1000),
        bytesIn,
        bytesOut,
        ...(session.status === undefined ? {} : { head: { height: session.status.headHeight, hash: toHex(session.status.headHash) } }),
        score: Math.round(this.scores.score(session.id, now) * 100) / 100,
        penalties: this.scores.reasons(session.id),
        protocols: Object.fromEntries(session.counters),
        messages: Object.fromEntries(session.messageTypes),
        ...(gossip === undefined ? {} : { gossip: { ...gossip } }),
      }
    })
  }

  // ---------------------------------------------------------------- discovery

  private async keepConnected(): Promise<void> {
    if (this.stopped) return
    this.scores.prune(Date.now())
    const connected = new Set(this.libp2p.getPeers().map((peer) => peer.toString()))
    if (connected.size >= this.options.targetPeers) return
    for (const address of this.options.bootstrap) {
      const target = multiaddr(address)
      const peerIdText = target.getComponents().find((component) => component.name === 'p2p')?.value
      if (peerIdText !== undefined && (connected.has(peerIdText) || peerIdText === this.peerId || this.scores.isBanned(peerIdText, Date.now()))) continue
      await this.libp2p.dial(target, { signal: AbortSignal.timeout(5_000) }).catch((error: unknown) => {
        this.log.debug({ address, err: (error as Error).message }, 'bootstrap dial failed')
      })
    }
    // A DHT random walk at most every 30 s: enough to find peers, not a constant load.
    if (Date.now() - this.lastWalkAt < 30_000) return
    this.lastWalkAt = Date.now()
    const dht = (this.libp2p.services as { dht?: { getClosestPeers(key: Uint8Array, options?: { signal?: AbortSignal }): AsyncIterable<unknown> } }).dht
    if (dht === undefined || this.libp2p.getPeers().length === 0 || this.libp2p.getPeers().length >= this.options.targetPeers) return
    // A random walk: peers found while looking up a random key are dialed.
    const key = new Uint8Array(32).map(() => Math.floor(this.random() * 256))
    for await (const _event of dht.getClosestPeers(key, { signal: AbortSignal.timeout(5_000) })) {
      void _event
    }
    const known = await this.libp2p.peerStore.all()
    for (const peer of known) {
      if (this.libp2p.getPeers().length >= this.options.targetPeers) break
      const id = peer.id.toString()
      if (id === this.peerId || this.libp2p.getConnections(peer.id).length > 0 || peer.addresses.length === 0) continue
      if (!peer.protocols.includes(this.protocols.gossip) && peer.protocols.length > 0) continue
      await this.libp2p.dial(peer.id, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined)
    }
  }

  // ---------------------------------------------------------------- lifecycle

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.tickTask.stop()
    this.keeper.stop()
    for (const unsubscribe of this.unsubscribe) unsubscribe()
    await Promise.all([...this.sessions.values()].map((session) => session.gossipOut?.close()))
    await this.libp2p.stop()
    this.log.info('network stopped')
  }
}

/** Reads exactly one frame from a request/response stream, bounded in size and time. */
export function readOneFrame(stream: Stream, maxBytes: number, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader(maxBytes)
    const cleanup = () => {
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no answer within ${timeoutMs} ms`))
    }, timeoutMs)
    const onMessage = (event: { data: Parameters<FrameReader['push']>[0] }) => {
      try {
        const frames = reader.push(event.data)
        if (frames.length > 0) {
          cleanup()
          resolve(frames[0] as Uint8Array)
        }
      } catch (error) {
        cleanup()
        reject(error as Error)
      }
    }
    const onClose = () => {
      cleanup()
      reject(new Error('stream closed before an answer'))
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
  })
}


