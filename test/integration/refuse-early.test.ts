/**
 * Refusals on the raw socket (src/net/libp2p.ts, `tcpRefusingEarly`): a connection from a refused
 * address is reset in the TCP server's 'connection' event, before libp2p wraps it, so libp2p's
 * gater is never asked about it; an allowed address goes on through libp2p as before (asked on
 * the socket, then by the gater). Real libp2p on loopback hosts of their own.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from 'libp2p'
import { buildLibp2p, protocolIds } from '../../src/net/libp2p.ts'
import { RawPeer } from '../helpers/net.ts'

const GENESIS_HEX = '00'.repeat(32)

describe('inbound connections refused on the raw socket', { timeout: 30_000 }, () => {
  const started: Array<Libp2p | RawPeer> = []
  after(async () => {
    await Promise.allSettled(started.map((node) => node.stop()))
  })

  it('a refused host is reset before libp2p sees it (the gater is never asked); another host gets in as before', async () => {
    const asked: Array<{ host: string; at: 'socket' | 'upgrade' }> = []
    const refusedHost = '127.77.0.1'
    const server = await buildLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      protocols: protocolIds(GENESIS_HEX),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      maxConnections: 10,
      inboundConnectionThreshold: 1_000,
      dht: false,
      denyInboundAddress: (remoteAddress, at) => {
        const host = remoteAddress.split('/')[2] ?? ''
        asked.push({ host, at })
        return host === refusedHost
      },
    })
    started.push(server)
    await server.start()
    const address = `${server.getMultiaddrs()[0]?.toString()}`

    const refused = await RawPeer.start({ genesisHashHex: GENESIS_HEX, status: () => { throw new Error('unused') }, host: refusedHost })
    started.push(refused)
    for (let i = 0; i < 3; i++) await assert.rejects(refused.dial(address), 'the refused host cannot connect')
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
})
