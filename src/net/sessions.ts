/**
 * Sessions and admission: one session per connected peer id. A connection becomes an admitted
 * peer only after the node side allows it (bans, slots) and a `status` exchange proves the peer
 * is on this network; then its outbound gossip stream is opened and the node side is told.
 * Frames that arrive before admission wait in a buffer bounded in frames and bytes.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { Libp2p } from 'libp2p'
import { bytesEqual, toHex } from '../codec/bytes.ts'
import { STATUS_BYTES, type StatusMessage, decodeStatus, encodeStatus } from '../codec/wire.ts'
import type { PeerHandler, PeerIdentity } from '../peers/transport.ts'
import type { Logger } from '../util/logger.ts'
import { frame, readOneFrame } from './framing.ts'
import { peerPublicKey } from './identity.ts'
import type { ProtocolIds } from './libp2p.ts'
import { OutboundLink } from './link.ts'
import { PeerCounters, type WireAccounting } from './peer-stats.ts'

/** Frames held for a peer before its admission. */
export const MAX_EARLY_FRAMES = 256
/** Bytes held for a peer before its admission: a peer cannot park more than this with us. */
export const MAX_EARLY_BYTES = 1024 * 1024

export interface PeerSession extends PeerIdentity {
  peerId: PeerId
  connectedAt: number
  admitted: boolean
  /** Our status exchange with it is in progress. */
  handshaking: boolean
  status?: StatusMessage
  gossipOut?: OutboundLink
  /** BOUNDED: MAX_EARLY_FRAMES and MAX_EARLY_BYTES. Frames that arrived before admission. */
  early: Uint8Array[]
  earlyBytes: number
  counters: PeerCounters
}

export interface SessionOptions {
  maxPeers: number
  statusTimeoutMs: number
  maxQueuedBytesPerPeer: number
  /** A gossip frame left half-sent this long is FRAME_INCOMPLETE. */
  frameDeadlineMs: number
  /** A sync answer the peer has not read this long is SYNC_ANSWER_UNREAD. */
  answerDeadlineMs: number
}

export interface SessionContext {
  libp2p: Libp2p
  protocols: ProtocolIds
  accounting: WireAccounting
  log: Logger
  genesisHash: Uint8Array
  options: SessionOptions
  handler(): PeerHandler
  isStopped(): boolean
}

export class SessionTable {
  /** BOUNDED: by maxPeers (further connections are closed before a session is made). */
  private readonly sessions = new Map<string, PeerSession>()

  constructor(private readonly ctx: SessionContext) {}

  get(peerId: string): PeerSession | undefined {
    return this.sessions.get(peerId)
  }

  all(): PeerSession[] {
    return [...this.sessions.values()]
  }

  admitted(): PeerSession[] {
    return this.all().filter((session) => session.admitted)
  }

  /** The session of a connected peer, made on first sight. */
  sessionFor(peerId: PeerId, connection: Connection | undefined): PeerSession {
    const id = peerId.toString()
    let session = this.sessions.get(id)
    if (session === undefined) {
      const libp2p = this.ctx.libp2p
      const open = connection ?? libp2p.getConnections(peerId)[0]
      session = {
        id,
        peerId,
        direction: open?.direction ?? 'inbound',
        ...this.ctx.handler().identify(peerPublicKey(peerId)),
        ...(open === undefined ? {} : { remoteAddress: open.remoteAddr.toString() }),
        connectedAt: Date.now(),
        admitted: false,
        handshaking: false,
        early: [],
        earlyBytes: 0,
        counters: new PeerCounters(),
      }
      this.sessions.set(id, session)
    }
    return session
  }

  /** A connection opened: ask the node side, exchange status, open gossip, admit. */
  async onConnect(peerId: PeerId): Promise<void> {
    const { ctx } = this
    if (ctx.isStopped()) return
    const id = peerId.toString()
    // A session may already exist (an inbound stream was handled first); admit it unless done or under way.
    const existing = this.sessions.get(id)
    if (existing !== undefined && (existing.admitted || existing.handshaking)) return
    const session = this.sessionFor(peerId, undefined)
    // A hard cap on sessions, but stake gets through to admission, which may evict for it.
    if (existing === undefined && this.sessions.size > ctx.options.maxPeers && session.stake <= 0n) {
      ctx.log.debug({ peer: id.slice(-8) }, 'peer limit reached, closing connection')
      this.sessions.delete(id)
      await this.hangUp(peerId)
      return
    }
    const decision = ctx.handler().admission(session)
    if (!decision.admit) {
      ctx.log.debug({ peer: id.slice(-8), reason: decision.reason }, 'refusing peer')
      this.sessions.delete(id)
      await this.hangUp(peerId)
      return
    }
    session.handshaking = true
    try {
      const theirs = await this.requestStatus(session, ctx.options.statusTimeoutMs)
      if (!bytesEqual(theirs.genesisHash, ctx.genesisHash)) {
        ctx.log.warn({ peer: id.slice(-8), theirGenesis: toHex(theirs.genesisHash) }, 'refusing peer on another network')
        this.sessions.delete(id)
        await this.hangUp(peerId)
        return
      }
      const stream = await ctx.libp2p.dialProtocol(peerId, ctx.protocols.gossip, { signal: AbortSignal.timeout(ctx.options.statusTimeoutMs) })
      session.gossipOut = new OutboundLink(stream, {
        maxQueuedBytes: ctx.options.maxQueuedBytesPerPeer,
        onSent: (bytes) => ctx.accounting.bytes(session.counters, ctx.protocols.gossip, 'out', bytes + 4),
      })
      if (!this.sessions.has(id) || ctx.isStopped()) return
      session.admitted = true
      ctx.log.info({ peer: id.slice(-8), direction: session.direction, stake: session.stake.toString(), height: theirs.headHeight }, 'peer admitted')
      ctx.handler().peerAdmitted({
        id,
        direction: session.direction,
        stake: session.stake,
        ...(session.validator === undefined ? {} : { validator: session.validator }),
        ...(session.remoteAddress === undefined ? {} : { remoteAddress: session.remoteAddress }),
        status: theirs,
      })
      this.onAdmitted?.(session)
    } catch (error) {
      const message = (error as Error).message
      const refused = /protocol selection failed|not supported|UnsupportedProtocol/i.test(message + (error as Error).name)
      ctx.log.info({ peer: id.slice(-8), reason: refused ? 'not on this network (status protocol not supported)' : message }, 'peer refused')
      this.sessions.delete(id)
      await this.hangUp(peerId)
    } finally {
      session.handshaking = false
    }
  }

  /** Called once a session is admitted (the gossip stream replays its early frames). */
  onAdmitted: ((session: PeerSession) => void) | undefined

  /** The last connection of a peer closed: forget the session, tell the node side if it was admitted. */
  onDisconnect(peerId: PeerId): void {
    const id = peerId.toString()
    const session = this.sessions.get(id)
    if (session === undefined) return
    // Another connection to the same peer may still be open.
    if (this.ctx.libp2p.getConnections(peerId).length > 0) return
    this.sessions.delete(id)
    if (session.admitted) {
      this.ctx.handler().peerRemoved(id)
      this.ctx.log.info({ peer: id.slice(-8) }, 'peer disconnected')
    }
  }

  async requestStatus(session: PeerSession, timeoutMs: number): Promise<StatusMessage> {
    const { ctx } = this
    const stream = await ctx.libp2p.dialProtocol(session.peerId, ctx.protocols.status, { signal: AbortSignal.timeout(timeoutMs) })
    try {
      stream.send(frame(encodeStatus(ctx.handler().localStatus())))
      const answer = await readOneFrame(stream, STATUS_BYTES, timeoutMs)
      ctx.accounting.bytes(session.counters, ctx.protocols.status, 'out', STATUS_BYTES + 4)
      ctx.accounting.bytes(session.counters, ctx.protocols.status, 'in', answer.length + 4)
      const status = decodeStatus(answer)
      session.status = status
      return status
    } finally {
      await stream.close().catch(() => stream.abort(new Error('close failed')))
    }
  }

  /** Answers a peer's status with ours (a peer on another network is refused). */
  async serveStatus(stream: Stream, connection: Connection): Promise<void> {
    const { ctx } = this
    try {
      const request = await readOneFrame(stream, STATUS_BYTES, ctx.options.statusTimeoutMs)
      if (!ctx.handler().limits.allowFrame(connection.remotePeer.toString(), 'status', request.length)) throw new Error('status rate limited')
      const theirs = decodeStatus(request)
      const session = this.sessionFor(connection.remotePeer, connection)
      session.status = theirs
      ctx.accounting.bytes(session.counters, ctx.protocols.status, 'in', request.length + 4)
      stream.send(frame(encodeStatus(ctx.handler().localStatus())))
      ctx.accounting.bytes(session.counters, ctx.protocols.status, 'out', STATUS_BYTES + 4)
      await stream.close()
      if (!bytesEqual(theirs.genesisHash, ctx.genesisHash)) {
        ctx.log.warn({ peer: session.id.slice(-8) }, 'refusing peer on another network')
        await this.hangUp(connection.remotePeer)
        return
      }
      if (session.admitted) ctx.handler().peerStatus(session.id, theirs)
    } catch (error) {
      stream.abort(error as Error)
    }
  }

  /** Waits (bounded) for a peer to be admitted: a peer may ask a moment before we admit it. */
  async admittedSession(peerId: string, timeoutMs: number): Promise<PeerSession | undefined> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const session = this.sessions.get(peerId)
      if (session?.admitted === true) return session
      if (this.ctx.isStopped() || Date.now() > deadline) return undefined
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /**
   * Drops every connection to the peer at once (an abort: its sockets are reset). libp2p's
   * `hangUp` closes gracefully instead: a Yamux GoAway, a FIN and a wait on every stream, each
   * frame encrypted and written on its own; for the 20 identities of the sync-spam benchmark, cut
   * off together, that was ~20 ms of their first 500 ms on the victim's loop (stream-cost.ts:
   * a dropped connection costs about half as much aborted). We never owe a peer we drop the
   * rest of a stream: it was refused, evicted or cut off. An abort closes the connection (and
   * removes the peer) synchronously, so it runs a microtask later, after the caller's synchronous
   * work, as libp2p's `hangUp` did: code that charged an offence never finds its peer gone
   * halfway through.
   */
  async hangUp(peerId: PeerId): Promise<void> {
    await Promise.resolve()
    for (const connection of this.ctx.libp2p.getConnections(peerId)) connection.abort(new Error('disconnected by this node'))
  }
}
