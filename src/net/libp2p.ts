/**
 * Builds the libp2p node: TCP, Noise, Yamux, identify, ping and (optionally) the Kademlia DHT
 * under this network's protocol prefix. Protocol ids carry the genesis hash prefix:
 * /grapevine/<genesis-prefix>/<name>/<version>, so two networks never mix.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { type Libp2p, type Libp2pOptions, createLibp2p } from 'libp2p'

export type ProtocolIds = ReturnType<typeof protocolIds>

export function protocolIds(genesisHashHex: string) {
  const prefix = `/grapevine/${genesisHashHex.slice(0, 16)}`
  return {
    status: `${prefix}/status/1`,
    gossip: `${prefix}/gossip/1`,
    sync: `${prefix}/sync/1`,
    kad: `${prefix}/kad/1.0.0`,
  }
}

export interface Libp2pBuildOptions {
  privateKey: PrivateKey
  protocols: ProtocolIds
  listen: string[]
  /** Connections kept at most (admitted peers plus handshakes in progress). */
  maxConnections: number
  /**
   * Inbound connections accepted per second from one host. libp2p's default (5/s) is right for a
   * real node; a loopback devnet, where every peer shares 127.0.0.1, raises it (devnet option).
   */
  inboundConnectionThreshold?: number
  dht: boolean
  /**
   * Peer ids refused right after the encryption handshake (banned, or at a disconnect score),
   * before the muxer, identify and the status exchange: a cut-off peer that redials costs us a
   * handshake, not a whole connection.
   */
  denyInboundPeer?: (peerId: string, remoteAddress: string) => boolean
  /** Inbound connections refused on their remote address before the handshake (hosts cooling down). */
  denyInboundAddress?: (remoteAddress: string) => boolean
  /** libp2p's metrics hook; benchmarks use it to count bytes on the TCP sockets. */
  transportMetrics?: Libp2pOptions['metrics']
}

export function buildLibp2p(options: Libp2pBuildOptions): Promise<Libp2p> {
  return createLibp2p({
    privateKey: options.privateKey,
    ...(options.transportMetrics === undefined ? {} : { metrics: options.transportMetrics }),
    addresses: { listen: options.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      denyInboundConnection: (maConn) => options.denyInboundAddress?.(maConn.remoteAddr.toString()) ?? false,
      denyInboundEncryptedConnection: (peerId, maConn) => options.denyInboundPeer?.(peerId.toString(), maConn.remoteAddr.toString()) ?? false,
    },
    // Off: it pings every connection at once every 10 s (a burst on the event loop); Liveness
    // (liveness.ts) pings each connection at a phase of its own instead.
    connectionMonitor: { enabled: false },
    connectionManager: {
      maxConnections: options.maxConnections,
      ...(options.inboundConnectionThreshold === undefined ? {} : { inboundConnectionThreshold: options.inboundConnectionThreshold }),
      maxIncomingPendingConnections: 100,
      dialTimeout: 10_000,
    },
    services: {
      identify: identify(),
      ping: ping(),
      ...(options.dht
        ? { dht: kadDHT({ protocol: options.protocols.kad, clientMode: false, peerInfoMapper: passthroughMapper, allowQueryWithZeroPeers: true }) }
        : {}),
    },
  })
}
