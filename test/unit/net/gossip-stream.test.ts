// The libp2p shell's gossip stream (src/net/gossip-stream.ts) on a fake stream: frames queued in
// the fair inbox before their peer was graylisted are dropped undecoded when their turn comes.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type GossipMessage, encodeGossip } from '../../../src/codec/wire.ts'
import { frame } from '../../../src/net/framing.ts'
import { GossipStreams } from '../../../src/net/gossip-stream.ts'
import { WireAccounting } from '../../../src/net/peer-stats.ts'
import { type SessionContext, SessionTable } from '../../../src/net/sessions.ts'
import type { PeerHandler } from '../../../src/peers/transport.ts'
import { silentLogger } from '../../../src/util/logger.ts'

/** A stream that only carries inbound 'message' events. */
class FakeStream extends EventTarget {
  maxReadBufferLength = 0
  status = 'open'
  pause(): void {}
  resume(): void {}
  abort(): void {
    this.status = 'aborted'
  }
  deliver(bytes: Uint8Array): void {
    const event = new Event('message') as Event & { data: Uint8Array }
    event.data = bytes
    this.dispatchEvent(event)
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('gossip stream (libp2p shell)', () => {
  it('frames queued before the peer was graylisted are dropped undecoded; until then each is handled', async () => {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const handled: GossipMessage['type'][] = []
    let graylisted = false
    const handler = {
      identify: () => ({ stake: 0n }),
      gossip: (_peer: string, message: GossipMessage) => {
        handled.push(message.type)
        // The second frame's handling graylists its sender (as a penalty would).
        if (handled.length === 2) graylisted = true
      },
      offence: () => assert.fail('no offence: every frame is well formed'),
      limits: { allowFrame: () => true, allowSyncRequest: () => true, ignores: () => graylisted },
    } as unknown as PeerHandler
    const ctx: SessionContext = {
      libp2p: {} as Libp2p,
      protocols: { status: '/s', gossip: '/g', sync: '/y' } as unknown as SessionContext['protocols'],
      accounting: new WireAccounting(new Map(), undefined),
      log: silentLogger(),
      genesisHash: new Uint8Array(32),
      options: { maxPeers: 10, statusTimeoutMs: 1_000, maxQueuedBytesPerPeer: 1 << 20, frameDeadlineMs: 10_000, answerDeadlineMs: 10_000 },
      handler: () => handler,
      isStopped: () => false,
    }
    const sessions = new SessionTable(ctx)
    const streams = new GossipStreams(ctx, sessions, undefined)
    const stream = new FakeStream()
    const connection = { remotePeer: peerId, direction: 'inbound', remoteAddr: { toString: () => '/ip4/127.0.0.1/tcp/1' } } as unknown as Connection
    streams.accept(stream as unknown as Stream, connection)
    const session = sessions.get(peerId.toString())
    assert.ok(session !== undefined)
    session.admitted = true
    // Five frames arrive in one read: all are queued before the first is handled.
    const getdata = encodeGossip({ type: 'getdata', items: [] })
    stream.deliver(new Uint8Array(Array.from({ length: 5 }, () => [...frame(getdata)]).flat()))
    for (let i = 0; i < 5; i++) await settle()
    assert.deepEqual(handled, ['getdata', 'getdata'], 'the three frames queued behind the graylisting are not handled')
    // Dropped before decoding: only the two handled frames were decoded and counted by type.
    assert.equal(session.counters.messageTypes.get('in:getdata'), 2)
    assert.equal(session.counters.protocols.get('/g')?.messagesIn, 5, 'all five arrived')
  })
})
