/**
 * Builds the libp2p node: TCP, Noise (X25519 on node:crypto's raw-key path, noise-crypto.ts), Yamux, identify, ping and (optionally) the Kademlia DHT
 * under this network's protocol prefix. Protocol ids carry the genesis hash prefix:
 * /grapevine/<genesis-prefix>/<name>/<version>, so two networks never mix.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { ComponentLogger, Logger, PeerData, PeerId, PrivateKey } from '@libp2p/interface'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { type TCPComponents, tcp } from '@libp2p/tcp'
import { type Libp2p, type Libp2pOptions, createLibp2p } from 'libp2p'
import { Server, type Socket, isIPv4 } from 'node:net'
import { MAX_HELD_REFUSED_SOCKETS, REFUSED_SOCKET_HOLD_MS } from '../peers/address-cooldown.ts'
import { LruMap } from '../util/lru.ts'
import { noiseCrypto } from './noise-crypto.ts'

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
  /**
   * Inbound connections refused on their remote address before the handshake (hosts cooling
   * down). Asked on the raw socket (`at: 'socket'`, see `tcpRefusingEarly`); libp2p's gater asks
   * again after the upgrade starts (`at: 'upgrade'`), for a connection the socket check let by.
   */
  denyInboundAddress?: (remoteAddress: string, at: 'socket' | 'upgrade') => boolean
  /** libp2p's metrics hook; benchmarks use it to count bytes on the TCP sockets. */
  transportMetrics?: Libp2pOptions['metrics']
}

export async function buildLibp2p(options: Libp2pBuildOptions): Promise<Libp2p> {
  const libp2p = await createLibp2p({
    privateKey: options.privateKey,
    ...(libp2pDebugWanted() ? {} : { logger: QUIET_LOGGER }),
    ...(options.transportMetrics === undefined ? {} : { metrics: options.transportMetrics }),
    addresses: { listen: options.listen },
    transports: [tcpRefusingEarly(options.denyInboundAddress)],
    // X25519 keys imported as JWK, not DER: a handshake's three DHs cost ~0.5 ms, not ~3.3 (noise-crypto.ts).
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    connectionGater: {
      denyInboundConnection: (maConn) => options.denyInboundAddress?.(maConn.remoteAddr.toString(), 'upgrade') ?? false,
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
  rememberStreamProtocols(libp2p)
  return libp2p
}

/** libp2p's own debug logs are wanted: `DEBUG` names a namespace (libp2p's logger, weald, reads it). */
function libp2pDebugWanted(): boolean {
  return (process.env.DEBUG ?? '').trim() !== ''
}

const QUIET: Logger = Object.assign(() => undefined, { enabled: false, error: () => undefined, trace: () => undefined, newScope: (): Logger => QUIET })

/**
 * libp2p's logger when `DEBUG` is unset. Its default logs nothing then either, but still builds a
 * scoped logger (three `debug` instances) for every stream and connection: in a profile of the
 * 20-identity sync spam that was ~20 ms of the attack's first 500 ms on the victim's loop
 * (~4 %; within the noise of stream-cost.ts).
 * With `DEBUG=libp2p*` libp2p's own logger is used, as before.
 */
export const QUIET_LOGGER: ComponentLogger = { forComponent: () => QUIET }

/** Peers whose record the memo keeps. BOUNDED (LruMap: the least recently used go first). */
export const MAX_REMEMBERED_PROTOCOL_PEERS = 1_024
/** How long a remembered record is trusted: past it the next stream merges again (and refreshes the record's age). */
export const REMEMBERED_PROTOCOLS_MS = 10 * 60_000

/**
 * libp2p merges the protocol of every inbound stream into the peer store (connection.js,
 * `onIncomingStream`): a lock, two base32 CIDs of the peer id, a protobuf decode and encode and a
 * datastore write, for a protocol the record almost always has already. In a profile of the
 * 20-identity sync spam that was ~85 ms of the attack's first 500 ms on the victim's loop
 * (stream-cost.ts: the memo alone makes a stream 0.78× as dear). So a connected peer's record is
 * remembered as the store last announced it (`peer:update`, or the result of a merge that
 * announced nothing), and a merge that adds only protocols that record has is answered with it;
 * any other merge runs as before. An announcement always wins over a merge's own result, so a
 * record rewritten while a merge was in flight is not masked. The store is the instance libp2p's
 * connections call (components.peerStore is libp2p.peerStore); test/integration/
 * peer-store-memo.test.ts checks it.
 */
export function rememberStreamProtocols(libp2p: Libp2p): void {
  const store = libp2p.peerStore
  const merge = store.merge.bind(store)
  type Remembered = { protocols: Set<string>; peer: Awaited<ReturnType<typeof merge>>; at: number }
  const remembered = new LruMap<string, Remembered>(MAX_REMEMBERED_PROTOCOL_PEERS)
  const remember = (id: string, peer: Remembered['peer']): void => remembered.set(id, { protocols: new Set(peer.protocols), peer, at: Date.now() })
  libp2p.addEventListener('peer:update', (event) => {
    const { peer } = event.detail
    const id = peer.id.toString()
    // Only connected peers: the DHT's many updates must not push them out of the memo.
    if (remembered.has(id) || libp2p.getConnections(peer.id).length > 0) remember(id, peer)
  })
  libp2p.addEventListener('peer:disconnect', (event) => void remembered.delete(event.detail.toString()))
  store.merge = async (peerId: PeerId, data: PeerData, mergeOptions) => {
    const onlyProtocols = data.protocols !== undefined && Object.keys(data).length === 1
    if (!onlyProtocols) return merge(peerId, data, mergeOptions)
    const id = peerId.toString()
    const known = remembered.get(id)
    if (known !== undefined && Date.now() - known.at < REMEMBERED_PROTOCOLS_MS && (data.protocols ?? []).every((p) => known.protocols.has(p))) return known.peer
    if (known !== undefined) remembered.delete(id)
    const peer = await merge(peerId, data, mergeOptions)
    if (!remembered.has(id)) remember(id, peer)
    return peer
  }
}

/** A socket's remote address as the multiaddr string libp2p gives the gater (`/ip4/…/tcp/…`). */
function socketAddress(socket: Socket): string | undefined {
  const { remoteAddress, remotePort } = socket
  if (remoteAddress === undefined || remotePort === undefined) return undefined
  // As libp2p's ipPortToMultiaddr: an IPv4-mapped IPv6 address stays ip6.
  return `/${isIPv4(remoteAddress) ? 'ip4' : 'ip6'}/${remoteAddress}/tcp/${remotePort}`
}

/**
 * libp2p's TCP transport, with inbound connections from refused addresses taken in the server's
 * 'connection' event, before libp2p wraps the socket: a MultiaddrConnection, abort signals, the
 * connection manager's rate limiter and then the gater cost ~1.2 ms per refused redial, and the 20
 * identities of the attack benchmark, cut off and redialling, had 980 refused in a 10 s window:
 * ~1.4 of 7 s of the victim's core in a profile. libp2p's own 'connection' handler is wrapped, so
 * it never sees a refused socket. Node 20's net.Server has no `blockList`, hence the wrapper. The
 * server is the TCP listener's `server` field (not public API): if a version lacks it, the gater
 * still refuses (the test in test/integration/refuse-early.test.ts says which happened). A
 * refused socket is held unread and reset later (`REFUSED_SOCKET_HOLD_MS`, at most
 * `MAX_HELD_REFUSED_SOCKETS` at once; src/peers/address-cooldown.ts says why), so a redial loop
 * waits out its own dial timeout instead of being answered at once.
 */
function tcpRefusingEarly(deny: Libp2pBuildOptions['denyInboundAddress']): ReturnType<typeof tcp> {
  const factory = tcp()
  if (deny === undefined) return factory
  return (components: TCPComponents) => {
    const transport = factory(components)
    /** Refused sockets held unread until reset (the tarpit). BOUNDED: MAX_HELD_REFUSED_SOCKETS. */
    const held = new Set<Socket>()
    const hold = (socket: Socket): void => {
      if (held.size >= MAX_HELD_REFUSED_SOCKETS) {
        socket.resetAndDestroy()
        return
      }
      held.add(socket)
      socket.pause()
      // The dialler giving up (a reset) must not crash us; the socket is dropped either way.
      socket.on('error', () => socket.destroy())
      const timer = setTimeout(() => socket.resetAndDestroy(), REFUSED_SOCKET_HOLD_MS)
      timer.unref()
      socket.once('close', () => {
        clearTimeout(timer)
        held.delete(socket)
      })
    }
    const createListener = transport.createListener.bind(transport)
    transport.createListener = (listenerOptions) => {
      const listener = createListener(listenerOptions)
      const server: unknown = Reflect.get(listener, 'server')
      if (server instanceof Server) {
        // libp2p's own handler (onSocket) is called only for sockets we let by.
        const handlers = server.listeners('connection') as Array<(socket: Socket) => void>
        server.removeAllListeners('connection')
        server.on('connection', (socket: Socket) => {
          const address = socketAddress(socket)
          if (address !== undefined && deny(address, 'socket')) {
            hold(socket)
            return
          }
          for (const handler of handlers) handler.call(server, socket)
        })
        // The server closes only once every socket it accepted has: held ones go first.
        const close = listener.close.bind(listener)
        listener.close = async (...args) => {
          for (const socket of held) socket.resetAndDestroy()
          return close(...args)
        }
      }
      return listener
    }
    return transport
  }
}
