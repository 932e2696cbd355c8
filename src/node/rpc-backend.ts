/**
 * What JSON-RPC reads: the domain facade's queries, plus the node's networking (peer id, listen
 * addresses, `net_peers`) and anti-entropy (`sync_status`). Built once by the composition root.
 */
import type { PeerGossipCounters } from '../gossip/engine.ts'
import type { PeerWireView } from '../net/network.ts'
import type { OffenceCode } from '../peers/offences.ts'
import type { PeerSet } from '../peers/peer-set.ts'
import type { NodeStatusView, RpcBackend } from '../rpc/backend.ts'
import type { SyncManager, SyncStatusView } from '../sync/manager.ts'
import type { GossipEngine } from '../gossip/engine.ts'
import { toHex } from '../codec/bytes.ts'
import type { GrapevineNode } from './node.ts'

/** One peer in `net_peers`: the node side's view (stake, score, offences) and the wire's. */
export interface PeerView extends PeerWireView {
  peerId: string
  direction: 'inbound' | 'outbound'
  stake: string
  validator?: string
  head?: { height: number; hash: string }
  score: number
  /** Offence counts by stable code. */
  penalties: Partial<Record<OffenceCode, number>>
  gossip?: PeerGossipCounters
}

export interface NetworkInfo {
  readonly peerId: string
  listenAddresses(): string[]
  peerWire(peerId: string): PeerWireView | undefined
}

export interface RpcBackendDeps {
  node: GrapevineNode
  peers?: PeerSet
  engine?: GossipEngine
  sync?: SyncManager
  network?: NetworkInfo
}

/** A peer the transport no longer (or never) reports on: a virtual network's, or one just gone. */
const NO_WIRE: PeerWireView = { addresses: [], connectedSeconds: 0, bytesIn: 0, bytesOut: 0, protocols: {}, messages: {} }

export function peerViews(deps: RpcBackendDeps): PeerView[] {
  const { peers, engine, network } = deps
  if (peers === undefined) return []
  return peers.list().map((peer) => {
    const gossip = engine?.counters(peer.id)
    const wire = network?.peerWire(peer.id)
    return {
      peerId: peer.id,
      direction: peer.direction,
      stake: peer.stake.toString(),
      ...(peer.validator === undefined ? {} : { validator: peer.validator }),
      ...(wire ?? NO_WIRE),
      head: { height: peer.status.headHeight, hash: toHex(peer.status.headHash) },
      score: Math.round(peers.score(peer.id) * 100) / 100,
      penalties: peers.scores.reasons(peer.id),
      ...(gossip === undefined ? {} : { gossip: { ...gossip } }),
    }
  })
}

export function rpcBackend(deps: RpcBackendDeps): RpcBackend {
  const { node, peers, sync, network } = deps
  return {
    status: (): NodeStatusView => ({
      ...node.status(),
      ...(network === undefined || peers === undefined ? {} : { peerId: network.peerId, peers: peers.size, listenAddresses: network.listenAddresses() }),
    }),
    submitTx: (raw) => node.submitTx(raw),
    getTx: (txid) => node.getTx(txid),
    getAccount: (address, withProof) => node.getAccount(address, withProof),
    getHead: () => node.getHead(),
    getBlock: (ref, full) => node.getBlock(ref, full),
    getFinality: (ref) => node.getFinality(ref),
    getEvidence: () => node.getEvidence(),
    peers: (): PeerView[] => peerViews(deps),
    syncStatus: (): SyncStatusView | { phase: 'idle'; mode: 'none'; currentHeight: number } =>
      sync?.status() ?? { phase: 'idle', mode: 'none', currentHeight: node.chain.head.header.height },
  }
}
