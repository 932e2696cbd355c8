/**
 * The sync protocol: one request per stream, one response frame back, each bounded in size and
 * time. Client: `request()`. Server: a request from an admitted peer is size-checked, decoded and
 * answered by the node side.
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import {
  MAX_SYNC_FRAME_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  type SyncRequest,
  type SyncResponse,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeServedResponse,
  encodeSyncRequest,
  encodeSyncResponse,
  servedResponseType,
} from '../codec/wire.ts'
import { RATE_LIMITED_ANSWER, answerDeadlineMs } from '../peers/rate-limit.ts'
import { frame, frameList, readOneFrame } from './framing.ts'
import type { SessionContext, SessionTable } from './sessions.ts'

export class SyncStreams {
  constructor(
    private readonly ctx: SessionContext,
    private readonly sessions: SessionTable,
  ) {}

  async request(peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse> {
    const { ctx } = this
    const session = this.sessions.get(peerId)
    if (session === undefined || !session.admitted) throw new Error('peer is not connected')
    const stream = await ctx.libp2p.dialProtocol(session.peerId, ctx.protocols.sync, { signal: AbortSignal.timeout(timeoutMs) })
    try {
      const payload = encodeSyncRequest(request)
      ctx.accounting.message(undefined, 'sync', 'out', request.type)
      stream.send(frame(payload))
      ctx.accounting.bytes(session.counters, ctx.protocols.sync, 'out', payload.length + 4)
      const answer = await readOneFrame(stream, MAX_SYNC_FRAME_BYTES, timeoutMs)
      ctx.accounting.bytes(session.counters, ctx.protocols.sync, 'in', answer.length + 4)
      ctx.accounting.syncBytesIn += answer.length + 4
      try {
        return decodeSyncResponse(answer)
      } catch (error) {
        ctx.handler().offence(peerId, 'SYNC_UNDECODABLE_RESPONSE', (error as Error).message)
        throw error
      }
    } finally {
      await stream.close().catch(() => stream.abort(new Error('close failed')))
    }
  }

  async serve(stream: Stream, connection: Connection): Promise<void> {
    const { ctx } = this
    const id = connection.remotePeer.toString()
    try {
      const session = await this.sessions.admittedSession(id, ctx.options.statusTimeoutMs)
      if (session === undefined) throw new Error('sync request from a peer that is not admitted')
      const bytes = await readOneFrame(stream, MAX_SYNC_REQUEST_BYTES, ctx.options.statusTimeoutMs)
      ctx.accounting.bytes(session.counters, ctx.protocols.sync, 'in', bytes.length + 4)
      const handler = ctx.handler()
      // Charged by its length before decoding, then by the items it asks for before it is served.
      if (!handler.limits.allowFrame(id, 'sync', bytes.length)) {
        // Graylisted (charged by allowFrame): reset at once — no answer, no deadline to keep.
        if (handler.limits.ignores?.(id) === true) stream.abort(new Error('peer ignored'))
        else await this.refuse(stream, id, RATE_LIMITED_ANSWER)
        return
      }
      let request: SyncRequest
      try {
        request = decodeSyncRequest(bytes)
      } catch (error) {
        ctx.handler().offence(id, 'SYNC_UNDECODABLE_REQUEST', (error as Error).message)
        throw error
      }
      ctx.accounting.message(session.counters, 'sync', 'in', request.type)
      if (!handler.limits.allowSyncRequest(id, request)) {
        await this.refuse(stream, id, RATE_LIMITED_ANSWER)
        return
      }
      const answer = await handler.serveSync(id, request)
      ctx.accounting.message(undefined, 'sync', 'out', servedResponseType(answer))
      const response = encodeServedResponse(answer)
      ctx.accounting.bytes(session.counters, ctx.protocols.sync, 'out', response.length + 4)
      // The answer leaves; a peer that does not read it within the deadline (by its size) loses it and its stream.
      const deadlineMs = answerDeadlineMs(response.length, ctx.options.answerDeadlineMs)
      const read = await this.sendWithin(stream, frameList(response), deadlineMs)
      handler.answered?.(id, request, answer, read)
      if (!read) {
        handler.offence(id, 'SYNC_ANSWER_UNREAD', `${response.length} bytes unread after ${deadlineMs} ms`)
        stream.abort(new Error('sync answer not read'))
      }
    } catch (error) {
      stream.abort(error as Error)
    }
  }

  /** A refusal (rate limit): a short `error` answer, bounded in time like any answer, and charged like one when left unread. */
  private async refuse(stream: Stream, peerId: string, message: string): Promise<void> {
    const bytes = frame(encodeSyncResponse({ type: 'error', message }))
    const deadlineMs = answerDeadlineMs(bytes.length, this.ctx.options.answerDeadlineMs)
    const read = await this.sendWithin(stream, bytes, deadlineMs)
    if (!read) {
      this.ctx.handler().offence(peerId, 'SYNC_ANSWER_UNREAD', `a refusal unread after ${deadlineMs} ms`)
      stream.abort(new Error('refusal not read'))
    }
  }

  /**
   * Sends `bytes`, closes our end and waits for the peer to close its end (it has read the
   * answer); false when that did not happen within `deadlineMs` (the peer is not reading).
   */
  private async sendWithin(stream: Stream, bytes: Uint8Array | Uint8ArrayList, deadlineMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), deadlineMs)
    })
    try {
      const done = (async () => {
        if (!stream.send(bytes)) {
          await new Promise<void>((resolve) => {
            const finish = () => {
              stream.removeEventListener('drain', finish)
              stream.removeEventListener('close', finish)
              resolve()
            }
            stream.addEventListener('drain', finish)
            stream.addEventListener('close', finish)
          })
        }
        await stream.close()
        // An honest client closes its end once it has read the answer; until then the answer may
        // still sit in our buffers (flow control), so the deadline runs until both ends are closed.
        if (stream.status !== 'closed') {
          await new Promise<void>((resolve) => stream.addEventListener('close', () => resolve(), { once: true }))
        }
        return true as const
      })()
      return await Promise.race([done, deadline])
    } finally {
      clearTimeout(timer)
    }
  }
}
