/**
 * What JSON-RPC reads: the domain facade's queries, plus the node's networking (peer id, listen
 * addresses, `net_peers`) and anti-entropy (`sync_status`). Built once by the composition root.
 */
import type { PeerGossipCounters } from '../gossip/engine.ts'
import type { CoolingHost } from '../peers/address-cooldown.ts'
import type { InboundLimits, LimitName } from '../peers/rate-limit.ts'
import type { BanRecord, ScoreView } from '../peers/scores.ts'
import type { PeerTransport } from '../peers/transport.ts'
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
  /** The score's parts (penalty, reward, offences and rewards by code, state, ban). */
  scoring: ScoreView
  /** Its address group (/16 for IPv4): inbound slots and address-group bans count by it. */
  addressGroup: string
  /** Tokens left per rate limit (a low number: the peer is near its quota). */
  rateLimits?: Record<LimitName, number>
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
  limits?: InboundLimits
  /** Dials for net_addPeer and hangs up for net_ban. */
  transport?: Pick<PeerTransport, 'dialPeer' | 'disconnect'>
  /** Persists the bans after an admin change. */
  bansChanged?: () => void
  /** Hosts cooling down (refused before their handshake): listed by net_bans after the bans. */
  coolingHosts?: () => CoolingHost[]
}

/** A net_bans record: a persisted ban, or a host cooling down (in memory only). */
export type BanView = BanRecord | { kind: 'hostCooldown'; host: string; untilMs: number; strikes: number }

/** A peer the transport no longer (or never) reports on: a virtual network's, or one just gone. */
const NO_WIRE: PeerWireView = { addresses: [], connectedSeconds: 0, bytesIn: 0, bytesOut: 0, protocols: {}, messages: {} }

export function peerViews(deps: RpcBackendDeps): PeerView[] {
  const { peers, engine, network, limits } = deps
  if (peers === undefined) return []
  const now = Date.now()
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
      scoring: peers.scores.view(peer.id, now),
      addressGroup: peer.addressGroup,
      ...(limits === undefined ? {} : { rateLimits: limits.state(peer.id, now) }),
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
    ...(peers === undefined
      ? {}
      : {
          bans: (): BanView[] => [
            ...peers.scores.exportBans(Date.now()),
            ...(deps.coolingHosts?.() ?? []).map((entry): BanView => ({ kind: 'hostCooldown', host: entry.host, untilMs: entry.until, strikes: entry.strikes })),
          ],
          ban: (peerId: string): boolean => {
            peers.scores.banNow(peerId, Date.now())
            deps.transport?.disconnect(peerId)
            deps.bansChanged?.()
            return true
          },
          unban: (peerId: string): boolean => {
            const lifted = peers.scores.unban(peerId)
            deps.bansChanged?.()
            return lifted
          },
        }),
    ...(deps.transport === undefined ? {} : { addPeer: (address: string) => (deps.transport as Pick<PeerTransport, 'dialPeer'>).dialPeer(address.split('/p2p/')[1] ?? '', address) }),
  }
}
