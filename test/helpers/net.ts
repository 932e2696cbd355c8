/**
 * Multi-node test helpers: waiting for a condition with a deadline, starting and wiring real
 * nodes on 127.0.0.1, and a raw libp2p peer that speaks Grapevine's status and gossip protocols
 * by hand (to play a silent, lying or recording peer).
 */
import { evidenceId, voteId } from '../../src/codec/finality.ts'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import type { PeerId, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { type Libp2p, createLibp2p } from 'libp2p'
import { toHexKey } from '../../src/codec/bytes.ts'
import {
  type GossipMessage,
  MAX_GOSSIP_FRAME_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  MAX_SYNC_FRAME_BYTES,
  STATUS_BYTES,
  type StatusMessage,
  type SyncRequest,
  type SyncResponse,
  decodeGossip,
  decodeSyncRequest,
  encodeSyncResponse,
  decodeStatus,
  decodeSyncResponse,
  encodeGossip,
  encodeStatus,
  encodeSyncRequest,
} from '../../src/codec/wire.ts'
import { FrameReader, frame } from '../../src/net/framing.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import type { Genesis } from '../../src/ledger/types.ts'
import { readOneFrame } from '../../src/net/framing.ts'
import { protocolIds } from '../../src/net/network.ts'
import type { Network } from '../../src/net/network.ts'
import type { NodeServices } from '../../src/node/compose.ts'
import type { GrapevineNode } from '../../src/node/node.ts'
import { type PeerView, peerViews } from '../../src/node/rpc-backend.ts'
import { type RunNodeOptions, type RunningNode, runNode } from '../../src/node/run.ts'
import { statusOf } from '../../src/node/status.ts'
import type { PeerSet } from '../../src/peers/peer-set.ts'

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it holds; fails with `what` (and `detail()`) after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; detail?: () => unknown } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000)
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) {
      const detail = options.detail === undefined ? '' : `: ${JSON.stringify(options.detail(), (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))}`
      throw new Error(`timed out waiting for ${what}${detail}`)
    }
    await sleep(options.intervalMs ?? 20)
  }
}

/** The running node's network (tests always start nodes with networking on). */
export function net(running: RunningNode): Network {
  if (running.network === undefined) throw new Error('node started without networking')
  return running.network
}

/** The running node's engines (gossip, peer set, sync). */
export function services(running: RunningNode): NodeServices {
  if (running.services === undefined) throw new Error('node started without networking')
  return running.services
}

/** The running node's admitted peers and their scores. */
export function peerSet(running: RunningNode): PeerSet {
  return services(running).peers
}

/** What `net_peers` would answer. */
export function peerViewsOf(running: RunningNode): PeerView[] {
  const { peers, engine, sync } = services(running)
  return peerViews({ node: running.node, peers, engine, sync, network: net(running) })
}

/** How many objects the node refused with validation `code` (its metrics). */
export async function rejectedCount(running: RunningNode, code: string): Promise<number> {
  const metric = await running.metrics.rejected.get()
  return metric.values.find((value) => value.labels.code === code)?.value ?? 0
}

/** A devnet genesis whose slot 0 starts now (dev keys 0..validatorCount−1 are the validators). */
export function genesisStartingNow(validatorCount: number, options: { slotMs?: number; chainId?: string } = {}): Genesis {
  return devnetGenesis({ validatorCount, genesisTime: Date.now(), slotMs: options.slotMs ?? 400, ...(options.chainId === undefined ? {} : { chainId: options.chainId }) })
}

/** The status a node would send, optionally with some fields changed. */
export function statusLike(node: GrapevineNode, overrides: Partial<StatusMessage> = {}): StatusMessage {
  return { ...statusOf(node), mempoolSize: 0, ...overrides }
}

/** Stops every node and raw peer, even if some stop fails. */
export async function stopAll(nodes: RunningNode[], raws: RawPeer[] = []): Promise<void> {
  await Promise.allSettled([...nodes.map((node) => node.stop()), ...raws.map((raw) => raw.stop())])
}

/** Starts a node on 127.0.0.1 with an in-memory store, a free RPC port and no DHT unless asked. */
export function startNode(options: RunNodeOptions): Promise<RunningNode> {
  // Every test node shares 127.0.0.1: raise libp2p's per-host inbound limit, as the devnet does.
  return runNode({ rpcPort: 0, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false, network: { inboundConnectionThreshold: 10_000 }, ...options })
}

export function isAdmitted(network: Network, peerId: string): boolean {
  return network.session(peerId)?.admitted === true
}

/** `from` dials `to`; resolves once each has admitted the other. */
export async function connect(from: RunningNode, to: RunningNode, timeoutMs = 10_000): Promise<void> {
  const a = net(from)
  const b = net(to)
  const address = b.listenAddresses()[0]
  if (address === undefined) throw new Error('node has no listen address')
  await a.dial(address)
  await waitFor(`${a.peerId.slice(-6)} ⇄ ${b.peerId.slice(-6)} admitted`, () => isAdmitted(a, b.peerId) && isAdmitted(b, a.peerId), { timeoutMs })
}

/** Whether the node has the tx pending or in its canonical chain. */
export function hasTx(node: GrapevineNode, idHex: string): boolean {
  return node.mempool.has(idHex) || node.store.getTxLocation(Buffer.from(idHex, 'hex')) !== undefined
}

/** Whether the tx is in the node's canonical chain. */
export function isIncluded(node: GrapevineNode, idHex: string): boolean {
  return node.store.getTxLocation(Buffer.from(idHex, 'hex')) !== undefined
}

/** Every inventory hash (hex) a gossip message mentions: items, txs, block and txids. */
export function gossipHashes(message: GossipMessage): string[] {
  switch (message.type) {
    case 'inv':
    case 'getdata':
    case 'notfound':
      return message.items.map((item) => toHexKey(item.hash))
    case 'txs':
    case 'blocktxn':
      return message.txs.map((signed) => signed.idHex)
    case 'block':
      return message.block.txs.map((signed) => signed.idHex)
    case 'cmpctblock':
      return message.txids.map((id) => toHexKey(id))
    case 'getblocktxn':
      return [toHexKey(message.blockHash)]
    case 'votes':
      return message.votes.map((vote) => toHexKey(voteId(vote)))
    case 'evidence':
      return message.evidence.map((evidence) => toHexKey(evidenceId(evidence)))
  }
}

export interface RawPeerOptions {
  /** Genesis hash (hex, no prefix) whose protocol ids the peer speaks. */
  genesisHashHex: string
  /** The status it answers with (and sends when it asks). */
  status: () => StatusMessage
  /** Called for every gossip message received; the default only records. */
  onGossip?: (from: string, message: GossipMessage) => void
  /** Answers sync requests (e.g. a forged certificate); without it the protocol is not served. */
  onSync?: (from: string, request: SyncRequest) => SyncResponse
  /**
   * A loopback address (127.x.y.z) to dial from: its /16 is the peer's address group at the
   * node, so one process can play peers from many groups. It does not listen.
   */
  host?: string
  /** Do not listen at all (Sybils only dial; the node asks their status on the same connection). */
  noListen?: boolean
}

/**
 * A bare libp2p node (TCP, Noise, Yamux, identify) that answers `status` with whatever it is
 * told, records every gossip frame it receives, and sends hand-made gossip messages. It never
 * answers a getdata on its own: it is the silent or misbehaving peer of adversarial tests.
 */
export class RawPeer {
  /** Every gossip message received, in order (tests are short; unbounded on purpose). */
  readonly received: Array<{ from: string; message: GossipMessage }> = []
  statusRequests = 0
  /** Sync requests received (when `onSync` is set). Tests only: unbounded. */
  readonly syncRequests: SyncRequest[] = []
  private readonly outbound = new Map<string, Stream>()

  private constructor(
    readonly libp2p: Libp2p,
    private readonly options: RawPeerOptions,
  ) {}

  static async start(options: RawPeerOptions): Promise<RawPeer> {
    const listen = options.noListen === true || options.host !== undefined ? [] : ['/ip4/127.0.0.1/tcp/0']
    const libp2p = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen },
      // localAddress is passed through to net.connect (the type lists only a subset).
      transports: [tcp(options.host === undefined ? {} : { dialOpts: { localAddress: options.host } as Record<string, unknown> })],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify() },
    })
    const peer = new RawPeer(libp2p, options)
    const ids = protocolIds(options.genesisHashHex)
    await libp2p.handle(ids.status, (stream) => peer.serveStatus(stream))
    await libp2p.handle(ids.gossip, (stream, connection) => peer.readGossip(stream, connection.remotePeer.toString()))
    const onSync = options.onSync
    if (onSync !== undefined) {
      await libp2p.handle(ids.sync, async (stream, connection) => {
        try {
          const request = decodeSyncRequest(await readOneFrame(stream, MAX_SYNC_REQUEST_BYTES, 5_000))
          peer.syncRequests.push(request)
          stream.send(frame(encodeSyncResponse(onSync(connection.remotePeer.toString(), request))))
          await stream.close()
        } catch (error) {
          stream.abort(error as Error)
        }
      })
    }
    return peer
  }

  get peerId(): string {
    return this.libp2p.peerId.toString()
  }

  get protocols() {
    return protocolIds(this.options.genesisHashHex)
  }

  private async serveStatus(stream: Stream): Promise<void> {
    try {
      decodeStatus(await readOneFrame(stream, STATUS_BYTES, 5_000))
      this.statusRequests++
      stream.send(frame(encodeStatus(this.options.status())))
      await stream.close()
    } catch (error) {
      stream.abort(error as Error)
    }
  }

  private readGossip(stream: Stream, from: string): void {
    const reader = new FrameReader(MAX_GOSSIP_FRAME_BYTES)
    stream.addEventListener('message', (event) => {
      for (const bytes of reader.push(event.data)) {
        const message = decodeGossip(bytes)
        this.received.push({ from, message })
        this.options.onGossip?.(from, message)
      }
    })
  }

  /** Dials a node; returns its peer id. A refused host's dial is held unread (a tarpit): it fails at `timeoutMs`. */
  async dial(address: string, timeoutMs = 10_000): Promise<PeerId> {
    const connection = await this.libp2p.dial(multiaddr(address), { signal: AbortSignal.timeout(timeoutMs) })
    return connection.remotePeer
  }

  /**
   * Dials until connected, as any peer would: a fresh host may meet the node's handshake budget
   * (HANDSHAKE_BUDGET), and such a dial is held unread until it gives up (`attemptMs`).
   */
  async dialUntilConnected(address: string, totalMs = 15_000, attemptMs = 1_000): Promise<PeerId> {
    const deadline = Date.now() + totalMs
    for (;;) {
      try {
        return await this.dial(address, attemptMs)
      } catch (error) {
        if (Date.now() + attemptMs > deadline) throw error
      }
    }
  }

  /** Asks a node for its status (as a node does on connect); rejects if the node refuses. */
  async requestStatus(peer: PeerId): Promise<StatusMessage> {
    const stream = await this.libp2p.dialProtocol(peer, this.protocols.status, { signal: AbortSignal.timeout(5_000) })
    try {
      stream.send(frame(encodeStatus(this.options.status())))
      return decodeStatus(await readOneFrame(stream, STATUS_BYTES, 5_000))
    } finally {
      await stream.close().catch(() => stream.abort(new Error('close failed')))
    }
  }

  /** Sends one gossip message on this peer's own outbound gossip stream to `peer`. */
  async send(peer: PeerId, message: GossipMessage): Promise<void> {
    await this.sendRaw(peer, frame(encodeGossip(message)))
  }

  /** Whether this peer's outbound gossip stream to `peer` is open (the remote has not closed or reset it). */
  gossipStreamOpen(peer: PeerId): boolean {
    return this.outbound.get(peer.toString())?.status === 'open'
  }

  /** Writes arbitrary bytes (frames or not) on this peer's outbound gossip stream to `peer`. */
  async sendRaw(peer: PeerId, bytes: Uint8Array): Promise<void> {
    const key = peer.toString()
    let stream = this.outbound.get(key)
    if (stream === undefined || stream.status !== 'open') {
      stream = await this.libp2p.dialProtocol(peer, this.protocols.gossip, { signal: AbortSignal.timeout(5_000) })
      this.outbound.set(key, stream)
    }
    stream.send(bytes)
  }

  /** Opens a stream of `protocol` to `peer`, writes `bytes`, and returns the first frame answered (or the error). */
  async exchange(peer: PeerId, protocol: string, bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
    const stream = await this.libp2p.dialProtocol(peer, protocol, { signal: AbortSignal.timeout(5_000) })
    try {
      stream.send(bytes)
      return await readOneFrame(stream, maxBytes, 5_000)
    } finally {
      await stream.close().catch(() => stream.abort(new Error('close failed')))
    }
  }

  /** One sync request and its decoded answer (rejects on timeout or a closed stream). */
  async syncRequest(peer: PeerId, request: SyncRequest, timeoutMs = 5_000): Promise<SyncResponse> {
    const stream = await this.libp2p.dialProtocol(peer, this.protocols.sync, { signal: AbortSignal.timeout(timeoutMs) })
    try {
      stream.send(frame(encodeSyncRequest(request)))
      return decodeSyncResponse(await readOneFrame(stream, MAX_SYNC_FRAME_BYTES, timeoutMs))
    } finally {
      await stream.close().catch(() => stream.abort(new Error('close failed')))
    }
  }

  /** Streams held open on purpose (never read, never finished). BOUNDED: by the test. */
  readonly held: Stream[] = []

  /** Sends a sync request and never reads the answer: the stream is paused and kept. */
  async requestAndNeverRead(peer: PeerId, request: SyncRequest): Promise<Stream> {
    const stream = await this.libp2p.dialProtocol(peer, this.protocols.sync, { signal: AbortSignal.timeout(5_000) })
    stream.pause()
    stream.send(frame(encodeSyncRequest(request)))
    this.held.push(stream)
    return stream
  }

  /** Opens a stream of `protocol`, writes `bytes` (e.g. half a frame) and leaves it open. */
  async openAndStall(peer: PeerId, protocol: string, bytes: Uint8Array): Promise<Stream> {
    const stream = await this.libp2p.dialProtocol(peer, protocol, { signal: AbortSignal.timeout(5_000) })
    stream.send(bytes)
    this.held.push(stream)
    return stream
  }

  /** Whether any connection to `peer` is open. */
  connectedTo(peer: string): boolean {
    return this.libp2p.getConnections().some((connection) => connection.remotePeer.toString() === peer)
  }

  /** Messages received from `from` that mention `hashHex`. */
  mentions(from: string, hashHex: string): GossipMessage[] {
    return this.received.filter((entry) => entry.from === from && gossipHashes(entry.message).includes(hashHex)).map((entry) => entry.message)
  }

  async stop(): Promise<void> {
    await this.libp2p.stop()
  }
}
