/**
 * Finding peers: below the target peer count, dial the bootstrap addresses, and at most every
 * `walkIntervalMs` do a Kademlia random walk and dial what it found that speaks our gossip.
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from 'libp2p'
import type { Logger } from '../util/logger.ts'

export interface DiscoveryOptions {
  bootstrap: string[]
  targetPeers: number
  walkIntervalMs: number
  gossipProtocol: string
}

interface DhtLike {
  getClosestPeers(key: Uint8Array, options?: { signal?: AbortSignal }): AsyncIterable<unknown>
}

export class Discovery {
  private lastWalkAt = 0

  constructor(
    private readonly libp2p: Libp2p,
    private readonly options: DiscoveryOptions,
    private readonly log: Logger,
    /** Whether a peer id may be dialled now (not banned). */
    private readonly mayDial: (peerId: string) => boolean,
    private readonly random: () => number,
  ) {}

  /** One round; called periodically by the network. */
  async round(signal?: AbortSignal): Promise<void> {
    const { libp2p, options } = this
    const self = libp2p.peerId.toString()
    const connected = new Set(libp2p.getPeers().map((peer) => peer.toString()))
    if (connected.size >= options.targetPeers) return
    for (const address of options.bootstrap) {
      if (signal?.aborted === true) return
      const target = multiaddr(address)
      const peerIdText = target.getComponents().find((component) => component.name === 'p2p')?.value
      if (peerIdText !== undefined && (connected.has(peerIdText) || peerIdText === self || !this.mayDial(peerIdText))) continue
      await libp2p.dial(target, { signal: AbortSignal.timeout(5_000) }).catch((error: unknown) => {
        this.log.debug({ address, err: (error as Error).message }, 'bootstrap dial failed')
      })
    }
    // A DHT random walk at most every walkIntervalMs: enough to find peers, not a constant load.
    if (Date.now() - this.lastWalkAt < options.walkIntervalMs) return
    this.lastWalkAt = Date.now()
    const dht = (libp2p.services as { dht?: DhtLike }).dht
    if (dht === undefined || libp2p.getPeers().length === 0 || libp2p.getPeers().length >= options.targetPeers) return
    const key = new Uint8Array(32).map(() => Math.floor(this.random() * 256))
    for await (const _event of dht.getClosestPeers(key, { signal: AbortSignal.timeout(5_000) })) {
      void _event
    }
    for (const peer of await libp2p.peerStore.all()) {
      if (signal?.aborted === true || libp2p.getPeers().length >= options.targetPeers) break
      const id = peer.id.toString()
      if (id === self || libp2p.getConnections(peer.id).length > 0 || peer.addresses.length === 0 || !this.mayDial(id)) continue
      if (!peer.protocols.includes(options.gossipProtocol) && peer.protocols.length > 0) continue
      await libp2p.dial(peer.id, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined)
    }
  }
}
