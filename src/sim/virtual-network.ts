/**
 * A virtual network: every node's `PeerTransport` is a `VirtualTransport`, links carry a latency,
 * and delivery is an event on virtual time. Messages travel as bytes (encoded, size-checked,
 * decoded on arrival), so the node side sees exactly what the libp2p shell would hand it.
 *
 * Every delivery is folded into a running SHA-256 (time, from, to, bytes): two runs with the same
 * seed produce the same trace hash; a change in event order changes it.
 */
import { createHash } from 'node:crypto'
import { DecodeError } from '../codec/binary.ts'
import {
  type GossipMessage,
  MAX_GOSSIP_FRAME_BYTES,
  MAX_SYNC_FRAME_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  type ServedSyncResponse,
  type StatusMessage,
  type SyncRequest,
  type SyncResponse,
  decodeGossip,
  decodeStatus,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeGossip,
  encodeServedResponse,
  encodeStatus,
  encodeSyncRequest,
  encodeSyncResponse,
  gossipFrameItems,
} from '../codec/wire.ts'
import { bytesEqual } from '../codec/bytes.ts'
import { RATE_LIMITED_ANSWER } from '../peers/rate-limit.ts'
import type { PeerHandler, PeerIdentity, PeerTransport } from '../peers/transport.ts'
import type { VirtualTime } from './virtual-time.ts'

export interface VirtualNetworkOptions {
  /** One-way latency of a link unless `connect` names another. */
  defaultLatencyMs: number
}

interface Link {
  latencyMs: number
  /** Both ends admitted each other. */
  up: boolean
}

interface Endpoint {
  transport: VirtualTransport
  /** The node's validator public key (its identity), if any. */
  publicKey: Uint8Array | undefined
}

const pairKey = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`)

export class VirtualNetwork {
  /** BOUNDED: by the nodes the caller adds. */
  private readonly endpoints = new Map<string, Endpoint>()
  /** BOUNDED: by the pairs the caller connects (at most nodes²). */
  private readonly links = new Map<string, Link>()
  /** BOUNDED: by the pairs the caller blocks (a partition), at most nodes². */
  private readonly blocked = new Set<string>()
  private readonly trace = createHash('sha256')
  /** Deliveries so far, by kind. */
  readonly delivered = { gossip: 0, syncRequests: 0, syncResponses: 0, status: 0, bytes: 0 }

  constructor(
    readonly time: VirtualTime,
    private readonly options: VirtualNetworkOptions,
  ) {}

  /** A node's transport; `attach` it to the node side's handler before connecting it. */
  addNode(peerId: string, publicKey?: Uint8Array): VirtualTransport {
    if (this.endpoints.has(peerId)) throw new Error(`node ${peerId} exists`)
    const transport = new VirtualTransport(peerId, this)
    this.endpoints.set(peerId, { transport, publicKey })
    return transport
  }

  transport(peerId: string): VirtualTransport | undefined {
    return this.endpoints.get(peerId)?.transport
  }

  /** The trace hash so far (hex). */
  traceHash(): string {
    return this.trace.copy().digest('hex')
  }

  /** Record one delivery in the trace. */
  private record(kind: number, from: string, to: string, bytes: Uint8Array): void {
    const header = Buffer.alloc(9)
    header.writeUInt8(kind, 0)
    header.writeDoubleBE(this.time.now, 1)
    this.trace.update(header)
    this.trace.update(from)
    this.trace.update(to)
    this.trace.update(bytes)
    this.delivered.bytes += bytes.length
  }

  linkBetween(a: string, b: string): Link | undefined {
    return this.links.get(pairKey(a, b))
  }

  isConnected(a: string, b: string): boolean {
    return this.links.get(pairKey(a, b))?.up === true
  }

  /**
   * `from` dials `to`: both sides' admission is asked, statuses cross the link, and each side
   * admits the other one latency later. Resolves at once; admission happens on virtual time.
   */
  connect(from: string, to: string, latencyMs = this.options.defaultLatencyMs): void {
    const a = this.endpoints.get(from)
    const b = this.endpoints.get(to)
    if (a === undefined || b === undefined || from === to) throw new Error(`cannot connect ${from} to ${to}`)
    const key = pairKey(from, to)
    if (this.links.has(key) || this.blocked.has(key)) return
    const link: Link = { latencyMs, up: false }
    this.links.set(key, link)
    const aSide = a.transport.identityOf(to, 'outbound', b.publicKey)
    const bSide = b.transport.identityOf(from, 'inbound', a.publicKey)
    if (!a.transport.handler.admission(aSide).admit || !b.transport.handler.admission(bSide).admit) {
      this.links.delete(key)
      return
    }
    // Statuses leave both ends now and arrive one latency later.
    const aStatus = encodeStatus(a.transport.handler.localStatus())
    const bStatus = encodeStatus(b.transport.handler.localStatus())
    this.time.schedule(latencyMs, () => {
      if (this.links.get(key) !== link) return
      this.record(0, from, to, aStatus)
      this.record(0, to, from, bStatus)
      this.delivered.status += 2
      const theirsAtA = decodeStatus(bStatus)
      const theirsAtB = decodeStatus(aStatus)
      const genesisA = a.transport.handler.localStatus().genesisHash
      if (!bytesEqual(theirsAtA.genesisHash, genesisA) || !bytesEqual(theirsAtB.genesisHash, genesisA)) {
        this.links.delete(key)
        return
      }
      link.up = true
      a.transport.admit({ ...aSide, status: theirsAtA })
      b.transport.admit({ ...bSide, status: theirsAtB })
    })
  }

  /** A partition between two nodes: their link is cut and no dial gets through until `unblock`. */
  block(a: string, b: string): void {
    this.blocked.add(pairKey(a, b))
    this.disconnect(a, b)
  }

  unblock(a: string, b: string): void {
    this.blocked.delete(pairKey(a, b))
  }

  /** Cuts the link between two nodes at once (both sides see the peer removed). */
  disconnect(a: string, b: string): void {
    const key = pairKey(a, b)
    const link = this.links.get(key)
    if (link === undefined) return
    this.links.delete(key)
    if (!link.up) return
    this.endpoints.get(a)?.transport.remove(b)
    this.endpoints.get(b)?.transport.remove(a)
  }

  /** Every current link as [a, b] pairs. */
  linkPairs(): Array<[string, string]> {
    return [...this.links.keys()].map((key) => key.split('|') as [string, string])
  }

  /** Delivers `bytes` from → to after the link's latency, if the link is still up then. */
  send(from: string, to: string, kind: number, bytes: Uint8Array, deliver: (bytes: Uint8Array) => void): boolean {
    const key = pairKey(from, to)
    const link = this.links.get(key)
    if (link === undefined || !link.up) return false
    this.time.schedule(link.latencyMs, () => {
      if (this.links.get(key) !== link) return
      this.record(kind, from, to, bytes)
      deliver(bytes)
    })
    return true
  }

  endpoint(peerId: string): VirtualTransport | undefined {
    return this.endpoints.get(peerId)?.transport
  }

  /** The node whose identity is `publicKey`, if it is on this network. */
  peerIdOf(publicKey: Uint8Array): string | undefined {
    for (const [peerId, endpoint] of this.endpoints) if (endpoint.publicKey !== undefined && bytesEqual(endpoint.publicKey, publicKey)) return peerId
    return undefined
  }

  /** Peers with a link to `peerId` (up or handshaking). */
  linkedTo(peerId: string): string[] {
    const out: string[] = []
    for (const key of this.links.keys()) {
      const [a, b] = key.split('|') as [string, string]
      if (a === peerId) out.push(b)
      else if (b === peerId) out.push(a)
    }
    return out
  }
}

const KIND_GOSSIP = 1
const KIND_SYNC_REQUEST = 2
const KIND_SYNC_RESPONSE = 3
const KIND_STATUS = 4

/** One node's end of the virtual network; implements the same interface as the libp2p shell. */
export class VirtualTransport implements PeerTransport {
  private attached: PeerHandler | undefined
  /** BOUNDED: by the node's links. */
  private readonly admitted = new Set<string>()
  private syncBytesIn = 0

  constructor(
    readonly localPeerId: string,
    private readonly network: VirtualNetwork,
  ) {}

  attach(handler: PeerHandler): void {
    this.attached = handler
  }

  get handler(): PeerHandler {
    if (this.attached === undefined) throw new Error(`node ${this.localPeerId} has no handler attached`)
    return this.attached
  }

  identityOf(peerId: string, direction: 'inbound' | 'outbound', publicKey: Uint8Array | undefined): PeerIdentity {
    return { id: peerId, direction, ...this.handler.identify(publicKey), remoteAddress: `/sim/${peerId}` }
  }

  admit(peer: Parameters<PeerHandler['peerAdmitted']>[0]): void {
    this.admitted.add(peer.id)
    this.handler.peerAdmitted(peer)
  }

  remove(peerId: string): void {
    if (!this.admitted.delete(peerId)) return
    this.handler.peerRemoved(peerId)
  }

  isAdmitted(peerId: string): boolean {
    return this.admitted.has(peerId)
  }

  peers(): string[] {
    return [...this.admitted]
  }

  sendGossip(peerId: string, message: GossipMessage): void {
    if (!this.admitted.has(peerId)) return
    const bytes = encodeGossip(message)
    const from = this.localPeerId
    this.network.send(from, peerId, KIND_GOSSIP, bytes, (arrived) => {
      const receiver = this.network.endpoint(peerId)
      if (receiver === undefined || !receiver.isAdmitted(from)) return
      receiver.receiveGossip(from, arrived)
    })
  }

  /** Bytes → size check → rate limit → decode → the node side, as the libp2p gossip stream does. */
  private receiveGossip(from: string, bytes: Uint8Array): void {
    this.network.delivered.gossip++
    if (bytes.length > MAX_GOSSIP_FRAME_BYTES) {
      this.handler.offence(from, 'FRAME_TOO_LARGE')
      return
    }
    if (!this.handler.limits.allowFrame(from, 'gossip', bytes.length, gossipFrameItems(bytes))) return
    let message: GossipMessage
    try {
      message = decodeGossip(bytes)
    } catch (error) {
      if (error instanceof DecodeError) {
        this.handler.offence(from, 'GOSSIP_UNDECODABLE', error.message)
        return
      }
      throw error
    }
    this.handler.gossip(from, message)
  }

  request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse> {
    return new Promise((resolve, reject) => {
      if (!this.admitted.has(peerId)) {
        reject(new Error('peer is not connected'))
        return
      }
      let settled = false
      const timer = this.network.time.schedule(timeoutMs, () => {
        if (settled) return
        settled = true
        reject(new Error(`no answer within ${timeoutMs} ms`))
      })
      const from = this.localPeerId
      const finish = (outcome: () => void) => {
        if (settled) return
        settled = true
        timer.cancel()
        outcome()
      }
      const sent = this.network.send(from, peerId, KIND_SYNC_REQUEST, encodeSyncRequest(request), (arrived) => {
        const server = this.network.endpoint(peerId)
        if (server === undefined || !server.isAdmitted(from)) return
        const served = server.serve(from, arrived)
        // A big answer is built in slices (a promise); a small one at once, as before.
        if (served instanceof Promise) void served.then((answer) => respond(answer))
        else respond(served)
      })
      const respond = (answer: Uint8Array | undefined): void => {
        if (answer === undefined) return
        this.network.send(peerId, from, KIND_SYNC_RESPONSE, answer, (bytes) => {
          this.network.delivered.syncResponses++
          this.syncBytesIn += bytes.length + 4
          if (bytes.length > MAX_SYNC_FRAME_BYTES) {
            finish(() => reject(new Error('answer too large')))
            return
          }
          let response: SyncResponse
          try {
            response = decodeSyncResponse(bytes)
          } catch (error) {
            this.handler.offence(peerId, 'SYNC_UNDECODABLE_RESPONSE', (error as Error).message)
            finish(() => reject(error as Error))
            return
          }
          finish(() => resolve(response))
        })
      }
      if (!sent) finish(() => reject(new Error('peer is not connected')))
    })
  }

  /** A sync request arrived: size check, decode, answer (encoded), as the libp2p sync stream does. */
  private serve(from: string, bytes: Uint8Array): Uint8Array | undefined | Promise<Uint8Array> {
    this.network.delivered.syncRequests++
    if (bytes.length > MAX_SYNC_REQUEST_BYTES) {
      this.handler.offence(from, 'FRAME_TOO_LARGE')
      return undefined
    }
    // Refused; a graylisted asker gets no answer at all (the libp2p shell resets its stream).
    if (!this.handler.limits.allowFrame(from, 'sync', bytes.length)) return this.handler.limits.ignores?.(from) === true ? undefined : encodeSyncResponse({ type: 'error', message: RATE_LIMITED_ANSWER })
    let request: SyncRequest
    try {
      request = decodeSyncRequest(bytes)
    } catch (error) {
      this.handler.offence(from, 'SYNC_UNDECODABLE_REQUEST', (error as Error).message)
      return undefined
    }
    if (!this.handler.limits.allowSyncRequest(from, request)) return encodeSyncResponse({ type: 'error', message: RATE_LIMITED_ANSWER })
    // A virtual peer reads what it is sent: the answer counts as read as soon as it leaves.
    const sent = (answer: ServedSyncResponse): Uint8Array => {
      this.handler.answered?.(from, request, answer, true)
      return encodeServedResponse(answer)
    }
    const answer = this.handler.serveSync(from, request)
    return answer instanceof Promise ? answer.then(sent) : sent(answer)
  }

  requestStatus(peerId: string, timeoutMs: number): Promise<StatusMessage> {
    return new Promise((resolve, reject) => {
      let settled = false
      const timer = this.network.time.schedule(timeoutMs, () => {
        if (!settled) {
          settled = true
          reject(new Error(`no status within ${timeoutMs} ms`))
        }
      })
      const from = this.localPeerId
      const ours = encodeStatus(this.handler.localStatus())
      const sent = this.network.send(from, peerId, KIND_STATUS, ours, (arrived) => {
        const other = this.network.endpoint(peerId)
        if (other === undefined) return
        other.handler.peerStatus(from, decodeStatus(arrived))
        const theirs = encodeStatus(other.handler.localStatus())
        this.network.send(peerId, from, KIND_STATUS, theirs, (answer) => {
          if (settled) return
          settled = true
          timer.cancel()
          this.network.delivered.status++
          resolve(decodeStatus(answer))
        })
      })
      if (!sent) {
        settled = true
        timer.cancel()
        reject(new Error('peer is not connected'))
      }
    })
  }

  disconnect(peerId: string): void {
    this.network.disconnect(this.localPeerId, peerId)
  }

  /** A virtual dial: a link to the node with that id, if it exists (the address is ignored). */
  async dialPeer(peerId: string): Promise<boolean> {
    if (this.network.endpoint(peerId) === undefined || peerId === this.localPeerId) return false
    if (!this.handler.mayDial(peerId)) return false
    this.network.connect(this.localPeerId, peerId)
    return true
  }

  peerIdOf(publicKey: Uint8Array): string | undefined {
    return this.network.peerIdOf(publicKey)
  }

  connectedPeers(): string[] {
    return this.network.linkedTo(this.localPeerId)
  }

  /** A link's round trip: twice its one-way latency. */
  latencyMs(peerId: string): number | undefined {
    const link = this.network.linkBetween(this.localPeerId, peerId)
    return link === undefined ? undefined : 2 * link.latencyMs
  }

  syncBytesReceived(): number {
    return this.syncBytesIn
  }
}
