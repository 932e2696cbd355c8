/**
 * The node's engines wired over a transport: the gossip engine, the score table and peer set,
 * the ingress, the sync manager, and the `PeerHandler` a transport calls. Used alike by
 * `runNode` (over libp2p, src/node/run.ts) and by the virtual network (src/sim), so the same
 * composition runs on wall time and on virtual time. Plain calls, one place.
 */
import { bytesEqual, toHex } from '../codec/bytes.ts'
import type { GossipMessage } from '../codec/wire.ts'
import { DEFAULT_GOSSIP_OPTIONS, GossipEngine, type GossipOptions } from '../gossip/engine.ts'
import type { OffenceCode } from '../peers/offences.ts'
import { PeerSet } from '../peers/peer-set.ts'
import { PeerScores } from '../peers/scores.ts'
import type { PeerHandler, PeerTransport } from '../peers/transport.ts'
import { SyncManager, type SyncManagerOptions } from '../sync/manager.ts'
import { serveSyncRequest } from '../sync/server.ts'
import type { Clock, Runtime } from '../util/clock.ts'
import type { Logger } from '../util/logger.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import { RepeatingTask } from '../util/task.ts'
import { Ingress } from './ingress.ts'
import type { GrapevineNode } from './node.ts'
import { statusOf } from './status.ts'

export interface ComposeOptions {
  gossip?: Partial<GossipOptions>
  sync?: Partial<SyncManagerOptions>
  /**
   * Anti-entropy on (default). Off, the sync manager neither runs rounds nor catches up on
   * admission: benchmarks that measure rumor alone, or drive the sync engines by hand, use it.
   */
  antiEntropy?: boolean
}

export interface ComposeDeps {
  node: GrapevineNode
  transport: PeerTransport
  runtime: Runtime
  /** High-resolution time for latency metrics (performance.now, or virtual time). */
  elapsed: Clock
  log: Logger
  metrics?: NodeMetrics
}

export interface NodeServices {
  engine: GossipEngine
  peers: PeerSet
  ingress: Ingress
  sync: SyncManager
  /** What the transport calls. */
  handler: PeerHandler
  start(): void
  stop(): void
}

export function composeNode(deps: ComposeDeps, options: ComposeOptions = {}): NodeServices {
  const { node, transport, runtime, metrics } = deps
  const antiEntropy = options.antiEntropy ?? true
  const log = deps.log
  const netLog = log.child({ component: 'peers' })
  const peers = new PeerSet(transport, new PeerScores(), runtime.clock)

  const offence = (peerId: string, code: OffenceCode, detail?: string): void => {
    const verdict = peers.offence(peerId, code, detail)
    metrics?.offences.inc({ code })
    netLog.debug({ peer: peerId.slice(-8), code, detail, verdict }, 'peer offence')
    if (verdict !== 'ok') {
      metrics?.disconnects.inc({ verdict })
      netLog.info({ peer: peerId.slice(-8), code, verdict }, verdict === 'ban' ? 'banning peer' : 'disconnecting peer')
    }
  }

  let wakeScheduled = false
  let ingress: Ingress | undefined
  const engine = new GossipEngine(
    {
      send: (peerId, message) => transport.sendGossip(peerId, message),
      wake: () => {
        if (wakeScheduled) return
        wakeScheduled = true
        runtime.timers.schedule(0, () => {
          wakeScheduled = false
          engine.flush(runtime.clock())
        })
      },
      hasTx: (idHex) => node.mempool.has(idHex) || node.store.getTxLocation(Buffer.from(idHex, 'hex')) !== undefined,
      getTx: (idHex) => node.mempool.get(idHex),
      hasBlock: (hashHex) => ingress?.hasBlock(hashHex) ?? false,
      getBlock: (hashHex) => node.chain.getBlock(Buffer.from(hashHex, 'hex')),
      deliverTxs: (peerId, txs) => ingress?.deliverTxs(peerId, txs),
      deliverBlock: (peerId, block) => void ingress?.deliverBlock(peerId, block),
      random: runtime.random,
      // ---- finality: votes and evidence (src/node/finality.ts checks them, ingress relays)
      hasVote: (idHex) => node.finality.hasVote(idHex),
      getVote: (idHex) => node.finality.getVote(idHex),
      deliverVotes: (peerId, votes) => ingress?.deliverVotes(peerId, votes),
      hasEvidence: (idHex) => node.finality.hasEvidence(idHex),
      getEvidence: (idHex) => node.finality.getEvidence(idHex),
      deliverEvidence: (peerId, evidence) => ingress?.deliverEvidence(peerId, evidence),
    },
    options.gossip,
  )
  engine.setTotalStake(node.chain.schedule.totalStake)
  ingress = new Ingress({ node, engine, offence, elapsed: deps.elapsed, log, ...(metrics === undefined ? {} : { metrics }) })

  const sync = new SyncManager(
    { node, peers: { list: () => peers.list(), refreshStatus: (id, ms) => peers.refreshStatus(id, ms), offence, selectionFactor: (id) => peers.selectionFactor(id) }, transport, runtime, log },
    options.sync,
  )

  const onGossip = (peerId: string, message: GossipMessage): void => {
    const totals = engine.deliveryTotals()
    const duplicates = totals.duplicates
    const unsolicited = totals.unsolicited
    engine.onMessage(peerId, message, runtime.clock())
    if (totals.duplicates > duplicates) metrics?.duplicates.inc(totals.duplicates - duplicates)
    if (totals.unsolicited > unsolicited) metrics?.unsolicited.inc(totals.unsolicited - unsolicited)
  }

  const validators = node.genesis.validators
  const handler: PeerHandler = {
    localStatus: () => statusOf(node),
    identify: (publicKey) => {
      const validator = publicKey === undefined ? undefined : validators.find((v) => bytesEqual(v.address, publicKey))
      return validator === undefined ? { stake: 0n } : { stake: validator.stake, validator: toHex(validator.address) }
    },
    mayDial: (peerId) => !peers.isBanned(peerId),
    admission: (peer) => (peers.isBanned(peer.id) ? { admit: false, reason: 'banned' } : { admit: true }),
    peerAdmitted: (peer) => {
      peers.add(peer)
      engine.addPeer({ id: peer.id, outbound: peer.direction === 'outbound', stake: peer.stake }, runtime.clock())
      metrics?.peers.set(peers.size)
      if (antiEntropy) sync.onPeerAdmitted(peer.id)
    },
    peerRemoved: (peerId) => {
      if (!peers.remove(peerId)) return
      engine.removePeer(peerId, runtime.clock())
      metrics?.peers.set(peers.size)
    },
    peerStatus: (peerId, status) => peers.setStatus(peerId, status),
    gossip: onGossip,
    serveSync: (_peerId, request) => serveSyncRequest(request, { chain: node.chain, mempool: node.mempool }),
    offence,
  }

  const tickMs = Math.max(5, Math.floor((options.gossip?.announceBatchMs ?? DEFAULT_GOSSIP_OPTIONS.announceBatchMs) / 4))
  const tickTask = new RepeatingTask(() => engine.tick(runtime.clock()), tickMs, (error) => log.error({ err: error }, 'gossip tick failed'), runtime.timers)
  const pruneTask = new RepeatingTask(() => peers.scores.prune(runtime.clock()), 60_000, (error) => log.error({ err: error }, 'score pruning failed'), runtime.timers)

  return {
    engine,
    peers,
    ingress,
    sync,
    handler,
    start: () => {
      tickTask.start()
      pruneTask.start()
      if (antiEntropy) sync.start()
    },
    stop: () => {
      tickTask.stop()
      pruneTask.stop()
      sync.stop()
      ingress?.stop()
    },
  }
}
