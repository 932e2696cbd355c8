/**
 * The peer store's protocol memo (src/net/libp2p.ts, `rememberStreamProtocols`): libp2p merges the
 * protocol of every inbound stream into the peer store; with the memo only the first stream of a
 * protocol (and the first after anything changed the peer's record) reaches the store. Real libp2p
 * (TCP, Noise, Yamux) on loopback; the store's own `merge` is counted beneath the memo.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { PeerData, PeerId, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { type Libp2p, createLibp2p } from 'libp2p'
import { rememberStreamProtocols } from '../../src/net/libp2p.ts'

const PROTOCOL = '/memo-test/echo/1'
const OTHER = '/memo-test/other/1'

async function node(): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
  })
}

/**
 * Counts the merges that reach the store (beneath the memo), by peer and protocol list; `after`,
 * when set, runs once a merge has written and before the memo sees its result.
 */
function countMerges(libp2p: Libp2p): { calls: Array<{ peer: string; data: PeerData }>; after?: () => Promise<void> } {
  const counted: { calls: Array<{ peer: string; data: PeerData }>; after?: () => Promise<void> } = { calls: [] }
  const store = libp2p.peerStore
  const merge = store.merge.bind(store)
  store.merge = async (peerId: PeerId, data: PeerData, options) => {
    counted.calls.push({ peer: peerId.toString(), data })
    const peer = await merge(peerId, data, options)
    const after = counted.after
    counted.after = undefined
    await after?.()
    return peer
  }
  return counted
}

describe('peer store protocol memo', { timeout: 30_000 }, () => {
  const started: Libp2p[] = []
  after(async () => {
    await Promise.allSettled(started.map((n) => n.stop()))
  })

  it('only the first inbound stream of a protocol merges it into the peer store; a record change makes the next one merge again', async () => {
    const server = await node()
    const client = await node()
    started.push(server, client)
    const counted = countMerges(server)
    const merges = counted.calls
    rememberStreamProtocols(server)
    let handled = 0
    const handler = async (stream: Stream): Promise<void> => {
      handled++
      await stream.close()
    }
    await server.handle(PROTOCOL, handler)
    await server.handle(OTHER, handler)
    const address = server.getMultiaddrs()[0]
    assert.ok(address !== undefined)
    const clientId = client.peerId.toString()
    const streamMerges = (protocol: string) => merges.filter((m) => m.peer === clientId && Object.keys(m.data).length === 1 && m.data.protocols?.includes(protocol)).length

    const open = async (protocol: string): Promise<void> => {
      const before = handled
      const stream = await client.dialProtocol(address, protocol)
      const deadline = Date.now() + 5_000
      while (handled === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
      assert.equal(handled, before + 1, 'the server handled the stream')
      await stream.close().catch(() => undefined)
    }

    for (let i = 0; i < 5; i++) await open(PROTOCOL)
    assert.equal(streamMerges(PROTOCOL), 1, 'five streams, one merge into the store')
    assert.ok((await server.peerStore.get(client.peerId)).protocols.includes(PROTOCOL), 'the store has the protocol')

    await open(OTHER)
    await open(OTHER)
    assert.equal(streamMerges(OTHER), 1, 'a protocol the memo has not seen merges once')

    // Something else rewrites the record (identify does, with the peer's own list): the memo is
    // forgotten, and the next stream puts the protocol back.
    await server.peerStore.patch(client.peerId, { protocols: [] })
    await open(PROTOCOL)
    assert.equal(streamMerges(PROTOCOL), 2, 'after a peer:update the next stream merges again')
    assert.ok((await server.peerStore.get(client.peerId)).protocols.includes(PROTOCOL), 'and the store has the protocol again')

    // Merges that carry more than protocols always reach the store.
    await server.peerStore.merge(client.peerId, { protocols: [PROTOCOL], tags: { kept: { value: 1 } } })
    assert.equal(merges.filter((m) => m.peer === clientId && m.data.tags !== undefined).length, 1)

    // A rewrite that lands while a stream's merge is in flight (after its write, before the memo
    // sees its result) wins: the memo does not keep the merge's older record.
    await server.peerStore.patch(client.peerId, { protocols: [] })
    counted.after = async () => {
      await server.peerStore.patch(client.peerId, { protocols: [] })
    }
    await open(OTHER)
    assert.equal(streamMerges(OTHER), 2, 'the stream after the rewrite merges')
    assert.equal((await server.peerStore.get(client.peerId)).protocols.includes(OTHER), false, 'the rewrite took the protocol away')
    await open(OTHER)
    assert.equal(streamMerges(OTHER), 3, 'so the next stream merges it again')
    assert.ok((await server.peerStore.get(client.peerId)).protocols.includes(OTHER), 'and the store has it again')
  })
})
