/**
 * The gossip stream, one long-lived stream per peer and direction. Inbound: bytes → frame size
 * check → (held until admission, bounded) → decode → the node side. Outbound: message → encode →
 * the peer's batched link.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { DecodeError } from '../codec/binary.ts'
import { type GossipMessage, MAX_GOSSIP_FRAME_BYTES, decodeGossip, encodeGossip } from '../codec/wire.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import { FrameReader, FrameTooLargeError } from './framing.ts'
import { MAX_EARLY_BYTES, MAX_EARLY_FRAMES, type PeerSession, type SessionContext, type SessionTable } from './sessions.ts'

export class GossipStreams {
  constructor(
    private readonly ctx: SessionContext,
    private readonly sessions: SessionTable,
    private readonly metrics: NodeMetrics | undefined,
  ) {
    sessions.onAdmitted = (session) => {
      for (const bytes of session.early.splice(0)) this.onFrame(session, bytes)
      session.earlyBytes = 0
    }
  }

  /** A peer opened its gossip stream to us. */
  accept(stream: Stream, connection: Connection): void {
    const { ctx } = this
    const session = this.sessions.sessionFor(connection.remotePeer, connection)
    const reader = new FrameReader(MAX_GOSSIP_FRAME_BYTES)
    stream.addEventListener('message', (event) => {
      let frames: Uint8Array[]
      try {
        frames = reader.push(event.data)
      } catch (error) {
        if (error instanceof FrameTooLargeError) ctx.handler().offence(session.id, 'FRAME_TOO_LARGE', (error as Error).message)
        stream.abort(error as Error)
        return
      }
      for (const bytes of frames) {
        ctx.accounting.bytes(session.counters, ctx.protocols.gossip, 'in', bytes.length + 4)
        if (session.admitted) {
          this.onFrame(session, bytes)
          continue
        }
        if (session.early.length >= MAX_EARLY_FRAMES || session.earlyBytes + bytes.length > MAX_EARLY_BYTES) {
          ctx.handler().offence(session.id, 'EARLY_FRAMES_OVERFLOW', `${session.early.length} frames, ${session.earlyBytes} bytes before admission`)
          stream.abort(new Error('too much gossip before admission'))
          return
        }
        session.early.push(bytes)
        session.earlyBytes += bytes.length
      }
    })
  }

  private onFrame(session: PeerSession, bytes: Uint8Array): void {
    let message: GossipMessage
    try {
      message = decodeGossip(bytes)
    } catch (error) {
      if (error instanceof DecodeError) {
        this.ctx.handler().offence(session.id, 'GOSSIP_UNDECODABLE', error.message)
        return
      }
      throw error
    }
    this.ctx.accounting.message(session.counters, 'gossip', 'in', message.type)
    if (message.type === 'inv') this.metrics?.announcements.inc({ direction: 'in' }, message.items.length)
    if (message.type === 'getdata') this.metrics?.requests.inc({ direction: 'in' }, message.items.length)
    this.ctx.handler().gossip(session.id, message)
  }

  send(session: PeerSession | undefined, message: GossipMessage): void {
    if (session?.gossipOut === undefined) return
    this.ctx.accounting.message(session.counters, 'gossip', 'out', message.type)
    if (message.type === 'inv') this.metrics?.announcements.inc({ direction: 'out' }, message.items.length)
    if (message.type === 'getdata') this.metrics?.requests.inc({ direction: 'out' }, message.items.length)
    session.gossipOut.send(encodeGossip(message))
  }
}
