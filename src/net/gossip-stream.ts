/**
 * The gossip stream, one long-lived stream per peer and direction. Inbound: bytes → frame size
 * check → (held until admission, bounded) → decode → the node side. Outbound: message → encode →
 * the peer's batched link.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { DecodeError } from '../codec/binary.ts'
import { type GossipMessage, type InvItem, MAX_GOSSIP_FRAME_BYTES, decodeGossip, encodeGossip, gossipFrameItems } from '../codec/wire.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import { FrameReader, FrameTooLargeError } from './framing.ts'
import { FairInbox, INBOX_PAUSE_BYTES } from './inbox.ts'
import { MAX_EARLY_BYTES, MAX_EARLY_FRAMES, type PeerSession, type SessionContext, type SessionTable } from './sessions.ts'

/** Inv hashes handed to the node side per inbox pass (~3 ms of tracking). */
export const INV_ITEMS_PER_PASS = 256

export class GossipStreams {
  /** Admitted peers' frames, processed round robin in time slices (src/net/inbox.ts). */
  readonly inbox: FairInbox

  constructor(
    private readonly ctx: SessionContext,
    private readonly sessions: SessionTable,
    private readonly metrics: NodeMetrics | undefined,
  ) {
    this.inbox = new FairInbox((peerId, error) => ctx.log.error({ peer: peerId.slice(-8), err: error }, 'gossip frame handling failed'))
    sessions.onAdmitted = (session) => {
      for (const bytes of session.early.splice(0)) this.enqueue(session, bytes, undefined)
      session.earlyBytes = 0
    }
  }

  /** A peer opened its gossip stream to us. */
  accept(stream: Stream, connection: Connection): void {
    const { ctx } = this
    const session = this.sessions.sessionFor(connection.remotePeer, connection)
    const reader = new FrameReader(MAX_GOSSIP_FRAME_BYTES)
    // Paused past INBOX_PAUSE_BYTES queued, a stream still takes what the sender had in flight (at
    // most its yamux window, ≤ 16 MiB) plus one frame; beyond that libp2p resets it.
    stream.maxReadBufferLength = 16 * 1024 * 1024 + MAX_GOSSIP_FRAME_BYTES + INBOX_PAUSE_BYTES
    stream.addEventListener('close', () => this.inbox.forget(session.id))
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
          this.enqueue(session, bytes, stream)
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

  /**
   * Charged from the frame's length before a byte of it is decoded, as it arrives; a refused frame
   * is dropped. An inv is charged its hashes from the same header: a flood costs us O(its quota),
   * not O(items sent). An allowed frame waits its turn in the fair inbox.
   */
  private enqueue(session: PeerSession, bytes: Uint8Array, stream: Stream | undefined): void {
    if (!this.ctx.handler().limits.allowFrame(session.id, 'gossip', bytes.length, gossipFrameItems(bytes))) return
    this.inbox.push(session.id, bytes, stream, this.processorFor(session))
  }

  private processorFor(session: PeerSession): (bytes: Uint8Array) => void {
    return (frame) => this.onFrame(session, frame)
  }

  /**
   * Hands an inv to the node side in parts of INV_ITEMS_PER_PASS hashes, one part per inbox pass:
   * tracking a maximal inv (4,096 hashes) at once held the event loop ~50 ms.
   */
  private deliverInv(session: PeerSession, items: InvItem[], from = 0): void {
    if (this.ctx.isStopped() || !this.sessions.get(session.id)?.admitted) return
    // Graylisted while its earlier parts were tracked: the rest is dropped.
    if (from > 0 && this.ctx.handler().limits.ignores?.(session.id) === true) return
    const to = from + INV_ITEMS_PER_PASS
    this.ctx.handler().gossip(session.id, { type: 'inv', items: from === 0 && to >= items.length ? items : items.slice(from, to) })
    if (to < items.length) this.inbox.pushFront(session.id, () => this.deliverInv(session, items, to), this.processorFor(session))
  }

  private onFrame(session: PeerSession, bytes: Uint8Array): void {
    if (this.ctx.isStopped()) return
    // Queued before the peer was graylisted: dropped undecoded (its gossip is ignored anyway).
    if (this.ctx.handler().limits.ignores?.(session.id) === true) return
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
    if (message.type === 'inv') this.deliverInv(session, message.items)
    else this.ctx.handler().gossip(session.id, message)
  }

  send(session: PeerSession | undefined, message: GossipMessage): void {
    if (session?.gossipOut === undefined) return
    this.ctx.accounting.message(session.counters, 'gossip', 'out', message.type)
    if (message.type === 'inv') this.metrics?.announcements.inc({ direction: 'out' }, message.items.length)
    if (message.type === 'getdata') this.metrics?.requests.inc({ direction: 'out' }, message.items.length)
    session.gossipOut.send(encodeGossip(message))
  }
}
