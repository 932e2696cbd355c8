/**
 * Refusals on the raw socket (src/net/libp2p.ts, `tcpRefusingEarly`): a connection from a refused
 * address is reset in the TCP server's 'connection' event, before libp2p wraps it, so libp2p's
 * gater is never asked about it; an allowed address goes on through libp2p as before (asked on
 * the socket, then by the gater). Real libp2p on loopback hosts of their own.
 */
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from 'libp2p'
import { buildLibp2p, protocolIds } from '../../src/net/libp2p.ts'
import { MAX_HELD_REFUSED_SOCKETS } from '../../src/peers/address-cooldown.ts'
import { RawPeer } from '../helpers/net.ts'

const GENESIS_HEX = '00'.repeat(32)

/** A libp2p node listening on loopback that refuses inbound addresses by `deny`. */
async function listener(deny: NonNullable<Parameters<typeof buildLibp2p>[0]['denyInboundAddress']>): Promise<Libp2p> {
  return buildLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    protocols: protocolIds(GENESIS_HEX),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    maxConnections: 10,
    inboundConnectionThreshold: 1_000,
    dht: false,
    denyInboundAddress: deny,
  })
}

describe('inbound connections refused on the raw socket', { timeout: 30_000 }, () => {
  const started: Array<Libp2p | RawPeer> = []
  after(async () => {
    await Promise.allSettled(started.map((node) => node.stop()))
  })

  it('a refused host is refused before libp2p sees it (the gater is never asked); another host gets in as before', async () => {
    const asked: Array<{ host: string; at: 'socket' | 'upgrade' }> = []
    const refusedHost = '127.77.0.1'
    const server = await listener((remoteAddress, at) => {
      const host = remoteAddress.split('/')[2] ?? ''
      asked.push({ host, at })
      return host === refusedHost
    })
    started.push(server)
    await server.start()
    const address = `${server.getMultiaddrs()[0]?.toString()}`

    const refused = await RawPeer.start({ genesisHashHex: GENESIS_HEX, status: () => { throw new Error('unused') }, host: refusedHost })
    started.push(refused)
    for (let i = 0; i < 3; i++) await assert.rejects(refused.dial(address, 300), 'the refused host cannot connect')
    const fromRefused = asked.filter((entry) => entry.host === refusedHost)
    assert.equal(fromRefused.length, 3, JSON.stringify(asked))
    assert.ok(fromRefused.every((entry) => entry.at === 'socket'), `refused on the socket, never by the gater: ${JSON.stringify(fromRefused)}`)
    assert.equal(server.getConnections().length, 0)

    const allowed = await RawPeer.start({ genesisHashHex: GENESIS_HEX, status: () => { throw new Error('unused') }, host: '127.78.0.1' })
    started.push(allowed)
    const peerId = await allowed.dial(address)
    assert.equal(peerId.toString(), server.peerId.toString())
    assert.deepEqual(
      asked.filter((entry) => entry.host === '127.78.0.1').map((entry) => entry.at),
      ['socket', 'upgrade'],
      'an allowed host is asked on the socket, then by the gater, and connects',
    )
  })

  it('refused sockets are held unread until reset, at most MAX_HELD_REFUSED_SOCKETS at once; stopping resets the held ones', async () => {
    const refusedHost = '127.79.0.1'
    const server = await listener((remoteAddress) => remoteAddress.split('/')[2] === refusedHost)
    await server.start()
    const port = Number(server.getMultiaddrs()[0]?.toString().split('/')[4])
    /** A plain TCP socket from the refused host, and when it ended (closed or reset) if it did. */
    const open = async (): Promise<{ socket: Socket; ended: () => boolean }> => {
      const socket = connect({ host: '127.0.0.1', port, localAddress: refusedHost })
      let ended = false
      socket.on('error', () => undefined)
      socket.on('close', () => (ended = true))
      // A socket reset at once may end before its 'connect' event.
      await new Promise<void>((resolve) => {
        socket.once('connect', resolve)
        socket.once('close', () => resolve())
      })
      // What a dialler sends first; a held socket never answers it.
      socket.write('\x13/multistream/1.0.0\n')
      return { socket, ended: () => ended }
    }
    try {
      const held = []
      for (let i = 0; i < MAX_HELD_REFUSED_SOCKETS; i++) held.push(await open())
      const extra = await open()
      await new Promise((resolve) => setTimeout(resolve, 500))
      assert.equal(extra.ended(), true, 'one past the cap is reset at once')
      assert.equal(held.filter((entry) => entry.ended()).length, 0, 'the held ones stay open, unanswered')
      assert.equal(held.every((entry) => entry.socket.bytesRead === 0), true, 'and are never answered')
      await server.stop()
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal(held.filter((entry) => !entry.ended()).length, 0, 'stopping the node resets the held sockets')
    } finally {
      await Promise.resolve(server.stop()).catch(() => undefined)
    }
  })
})
