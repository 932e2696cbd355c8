/**
 * The seam between a transport and the node side (docs/architecture.md, "One house"). The libp2p
 * shell (src/net) and the virtual network (src/sim) both implement `PeerTransport` and both call
 * a `PeerHandler`; the node side (src/node) builds the handler from the real engines, so the same
 * gossip engine, sync manager and ingress run over either.
 *
 * Data flows one way through the handler: bytes in → size check → decode (the transport) →
 * `gossip` / `serveSync` (the node side) → engines → `PeerTransport` out.
 */
import type { FrameItems, GossipMessage, ServedSyncResponse, StatusMessage, SyncRequest, SyncResponse } from '../codec/wire.ts'
import type { OffenceCode } from './offences.ts'

export type Direction = 'inbound' | 'outbound'

/** A connected peer, before or after admission. */
export interface PeerIdentity {
  id: string
  direction: Direction
  /** Validator stake behind the peer's identity (0 for everyone else). */
  stake: bigint
  /** The validator address (hex) behind the peer id, if it is one. */
  validator?: string
  /** The remote transport address (multiaddr, or a virtual address), when known. */
  remoteAddress?: string
}

/** A peer whose status proved it is on our network. */
export interface AdmittedPeer extends PeerIdentity {
  status: StatusMessage
}

export type AdmissionDecision = { admit: true } | { admit: false; reason: string }

/** The protocols whose frames are charged before decoding. */
export type LimitedProtocol = 'gossip' | 'sync' | 'status'

/**
 * Rate limits the transport asks BEFORE it decodes or serves anything (docs/protocol.md,
 * "Rate limits"): the libp2p shell and the virtual network ask the same questions. A refusal by
 * the peer's own quota is charged to it (RATE_LIMITED) by the node side; the transport only
 * drops the frame or refuses the request.
 */
export interface PeerLimits {
  /**
   * A frame of `protocol` from the peer, by the length in its header (and, for gossip, the inv
   * hashes and txs its header implies: `gossipFrameItems`): false → drop it undecoded.
   */
  allowFrame(peerId: string, protocol: LimitedProtocol, bytes: number, items?: FrameItems): boolean
  /** A decoded sync request, charged the items it asks for before any work is done: false → refuse it. */
  allowSyncRequest(peerId: string, request: SyncRequest): boolean
  /**
   * Whether the peer is ignored now (graylisted): a gossip frame it had queued before that is
   * dropped undecoded when its turn comes (a flooder cut off leaves its backlog unprocessed), and
   * a sync request it sends is reset without an answer.
   */
  ignores?(peerId: string): boolean
}

/** What a transport calls on the node side. */
export interface PeerHandler {
  /** The status this node announces in every status exchange. */
  localStatus(): StatusMessage
  /** Validator stake behind a public key (the peer id's ed25519 key). */
  identify(publicKey: Uint8Array | undefined): { stake: bigint; validator?: string }
  /** Whether a peer id may be dialled now (not banned, not ruled out). */
  mayDial(peerId: string): boolean
  /** Whether a peer id is refused as soon as it is known (banned, or at a disconnect score): asked right after encryption, before anything else. */
  refuseEarly?(peerId: string, remoteAddress?: string): boolean
  /**
   * Whether an inbound connection is refused on its remote address alone, before its handshake (a
   * host cooling down, or the node-wide handshake budgets spent). `at`: 'socket' is a connection's
   * first check and spends the budgets; 'upgrade' (libp2p's gater, for what the socket check let
   * by) only reads the cooldown.
   */
  refuseAddress?(remoteAddress: string, at: 'socket' | 'upgrade'): boolean
  /** Asked before a connection may start its handshake (bans, slots). */
  admission(peer: PeerIdentity): AdmissionDecision
  /** The status exchange succeeded: the peer may gossip and sync. */
  peerAdmitted(peer: AdmittedPeer): void
  /** The last connection to an admitted peer closed. */
  peerRemoved(peerId: string): void
  /** A peer's status message (sent to us, or its answer to ours). */
  peerStatus(peerId: string, status: StatusMessage): void
  /** One decoded gossip message from an admitted peer. */
  gossip(peerId: string, message: GossipMessage): void
  /** One decoded sync request from an admitted peer; the answer goes back on its stream (a big one may be built in slices, asynchronously). */
  serveSync(peerId: string, request: SyncRequest): ServedSyncResponse | Promise<ServedSyncResponse>
  /**
   * The answer to a served request left: `read` when the peer read it (closed its end) within the
   * deadline. Quota refunds wait for this: an answer the peer does not read keeps its charge.
   */
  answered?(peerId: string, request: SyncRequest, answer: ServedSyncResponse, read: boolean): void
  /** The transport saw an offence (undecodable bytes, oversized frame, …). */
  offence(peerId: string, code: OffenceCode, detail?: string): void
  /** Rate limits, asked before decoding and before serving. */
  limits: PeerLimits
}

/** What the node side needs from a transport. */
export interface PeerTransport {
  /** This node's own peer id. */
  readonly localPeerId: string
  /** Queues one gossip message to an admitted peer (dropped if it is gone). */
  sendGossip(peerId: string, message: GossipMessage): void
  /** One sync request and its answer; rejects on timeout, transport error or undecodable answer. */
  request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse>
  /** A fresh status round trip. */
  requestStatus(peerId: string, timeoutMs: number): Promise<StatusMessage>
  /** Closes every connection to the peer. */
  disconnect(peerId: string): void
  /**
   * Dials a peer by id: `address` if given, else whatever the transport knows or can find (the
   * libp2p shell asks the DHT, `peerRouting.findPeer`). Resolves true once connected; false
   * (never rejects) when it could not. The virtual network connects virtually, or does nothing.
   */
  dialPeer(peerId: string, address?: string): Promise<boolean>
  /** The transport's peer id for an ed25519 public key (a validator's identity), if it has one. */
  peerIdOf(publicKey: Uint8Array): string | undefined
  /** Peer ids with a live connection, admitted or not (outbound planning counts them). */
  connectedPeers(): string[]
  /** Round-trip time to the peer (ms) when the transport has measured one: eviction protects the lowest (proximity is hard to fake from afar). */
  latencyMs?(peerId: string): number | undefined
  /** Sync-protocol bytes received so far (progress displays). */
  syncBytesReceived(): number
}
