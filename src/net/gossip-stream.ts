/**
 * The gossip stream, one long-lived stream per peer and direction. Inbound: bytes → frame size
 * check → (held until admission, bounded) → decode → the node side. Outbound: message → encode →
 * the peer's batched link.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { DecodeError } from '../codec/binary.ts'
import { type GossipMessage, MAX_GOSSIP_FRAME_BYTES, decodeGossip, encodeGossip, invItemsInFrame } from '../codec/wire.ts'
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
    // A frame left half-sent holds up to a maximal frame of our memory: it has a deadline.
    let partialTimer: ReturnType<typeof setTimeout> | undefined
    const clearPartial = () => {
      if (partialTimer !== undefined) clearTimeout(partialTimer)
      partialTimer = undefined
    }
    stream.addEventListener('close', clearPartial)
    stream.addEventListener('message', (event) => {
      let frames: Uint8Array[]
      try {
        frames = reader.push(event.data)
      } catch (error) {
        clearPartial()
        if (error instanceof FrameTooLargeError) ctx.handler().offence(session.id, 'FRAME_TOO_LARGE', (error as Error).message)
        stream.abort(error as Error)
        return
      }
      // The deadline runs from the first byte of a frame; a completed frame restarts it.
      if (reader.buffered === 0 || frames.length > 0) clearPartial()
      if (reader.buffered > 0 && partialTimer === undefined) {
        partialTimer = setTimeout(() => {
          partialTimer = undefined
          if (reader.buffered === 0 || stream.status !== 'open') return
          ctx.handler().offence(session.id, 'FRAME_INCOMPLETE', `${reader.buffered} bytes of a frame left for ${ctx.options.frameDeadlineMs} ms`)
          stream.abort(new Error('gossip frame left incomplete'))
        }, ctx.options.frameDeadlineMs)
        partialTimer.unref?.()
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
    // Charged from the frame's length before a byte of it is decoded; a refused frame is dropped.
    // An inv is charged its hashes from the same header: a flood costs us O(its quota), not O(items sent).
    if (!this.ctx.handler().limits.allowFrame(session.id, 'gossip', bytes.length, invItemsInFrame(bytes))) return
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
