/**
 * The seam between a transport and the node side (docs/architecture.md, "One house"). The libp2p
 * shell (src/net) and the virtual network (src/sim) both implement `PeerTransport` and both call
 * a `PeerHandler`; the node side (src/node) builds the handler from the real engines, so the same
 * gossip engine, sync manager and ingress run over either.
 *
 * Data flows one way through the handler: bytes in → size check → decode (the transport) →
 * `gossip` / `serveSync` (the node side) → engines → `PeerTransport` out.
 */
import type { GossipMessage, StatusMessage, SyncRequest, SyncResponse } from '../codec/wire.ts'
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

/** What a transport calls on the node side. */
export interface PeerHandler {
  /** The status this node announces in every status exchange. */
  localStatus(): StatusMessage
  /** Validator stake behind a public key (the peer id's ed25519 key). */
  identify(publicKey: Uint8Array | undefined): { stake: bigint; validator?: string }
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
  /** One decoded sync request from an admitted peer; the answer goes back on its stream. */
  serveSync(peerId: string, request: SyncRequest): SyncResponse
  /** The transport saw an offence (undecodable bytes, oversized frame, …). */
  offence(peerId: string, code: OffenceCode, detail?: string): void
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
  /** Sync-protocol bytes received so far (progress displays). */
  syncBytesReceived(): number
}
