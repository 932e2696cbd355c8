/**
 * The sync protocol: one request per stream, one response frame back, each bounded in size and
 * time. Client: `request()`. Server: a request from an admitted peer is size-checked, decoded and
 * answered by the node side.
 */
import type { Connection, Stream } from '@libp2p/interface'
import {
  MAX_SYNC_FRAME_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  type SyncRequest,
  type SyncResponse,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeSyncRequest,
  encodeSyncResponse,
} from '../codec/wire.ts'
import { frame, readOneFrame } from './framing.ts'
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
      let request: SyncRequest
      try {
        request = decodeSyncRequest(bytes)
      } catch (error) {
        ctx.handler().offence(id, 'SYNC_UNDECODABLE_REQUEST', (error as Error).message)
        throw error
      }
      ctx.accounting.message(session.counters, 'sync', 'in', request.type)
      const answer = ctx.handler().serveSync(id, request)
      ctx.accounting.message(undefined, 'sync', 'out', answer.type)
      const response = encodeSyncResponse(answer)
      stream.send(frame(response))
      ctx.accounting.bytes(session.counters, ctx.protocols.sync, 'out', response.length + 4)
      await stream.close()
    } catch (error) {
      stream.abort(error as Error)
    }
  }
}
