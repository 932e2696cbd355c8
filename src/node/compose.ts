/**
 * The node's engines wired over a transport: the gossip engine, the score table and peer set,
 * the ingress, the sync manager, and the `PeerHandler` a transport calls. Used alike by
 * `runNode` (over libp2p, src/node/run.ts) and by the virtual network (src/sim), so the same
 * composition runs on wall time and on virtual time. Plain calls, one place.
 */
import { bytesEqual, toHex } from '../codec/bytes.ts'
import { type GossipMessage, servedLeafCount, servedResponseType } from '../codec/wire.ts'
import { DEFAULT_GOSSIP_OPTIONS, GossipEngine, type GossipOptions } from '../gossip/engine.ts'
import type { CoolingHost } from '../peers/address-cooldown.ts'
import { type InboundLimits as InboundSlots, MAX_OUTBOUND_PEERS } from '../peers/connection-policy.ts'
import { PeerSet } from '../peers/peer-set.ts'
import { type InboundLimits, type LimitName, type LimitRule, RATE_LIMITED_ANSWER } from '../peers/rate-limit.ts'
import { PeerScores } from '../peers/scores.ts'
import type { PeerHandler, PeerTransport } from '../peers/transport.ts'
import { SyncManager, type SyncManagerOptions } from '../sync/manager.ts'
import { ServeQueue } from '../sync/serve-queue.ts'
import { LEAVES_PER_SLICE, leavesToServe, serveLeavesInSlices, serveSyncRequest } from '../sync/server.ts'
import type { Clock, Runtime } from '../util/clock.ts'
import type { Logger } from '../util/logger.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import { RepeatingTask } from '../util/task.ts'
import { Defences } from './defences.ts'
import { Ingress } from './ingress.ts'
import type { GrapevineNode } from './node.ts'
import { OutboundHeartbeat } from './outbound.ts'
import { statusOf } from './status.ts'

export interface ComposeOptions {
  gossip?: Partial<GossipOptions>
  sync?: Partial<SyncManagerOptions>
  /**
   * Anti-entropy on (default). Off, the sync manager neither runs rounds nor catches up on
   * admission: benchmarks that measure rumor alone, or drive the sync engines by hand, use it.
   */
  antiEntropy?: boolean
  /** Inbound slots in total and per address group (default DEFAULT_INBOUND_LIMITS: 38 and 4). */
  inbound?: Partial<InboundSlots>
  /** Outbound slots kept for validators and anchors (default MAX_OUTBOUND_PEERS). */
  maxOutbound?: number
  /** Period of the outbound heartbeat (anchors, validators, stall); 0 turns it off. Default 5 s. */
  heartbeatMs?: number
  /** The rate-limit table (default RATE_LIMITS); tests and benchmarks shrink it. */
  rateLimits?: Record<LimitName, LimitRule>
}

export { ANCHORS_META_KEY, BANS_META_KEY } from './defences.ts'

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
  /** The inbound rate limiters (net_peers shows their state). */
  limits: InboundLimits
  /** Persists the bans (after an admin ban or unban). */
  saveBans(): void
  /** Hosts refused before their handshake now (AddressCooldowns; net_bans lists them). */
  coolingHosts(): CoolingHost[]
  start(): void
  stop(): void
}

export function composeNode(deps: ComposeDeps, options: ComposeOptions = {}): NodeServices {
  const { node, transport, runtime, metrics } = deps
  const antiEntropy = options.antiEntropy ?? true
  const log = deps.log
  const netLog = log.child({ component: 'peers' })
  const peers = new PeerSet(transport, new PeerScores(), runtime.clock)

  // ---------------------------------------------------------------- defences: scores, bans, tolerances, limits, slots
  const now = runtime.clock
  const defences: Defences = new Defences(
    {
      store: node.store,
      peers,
      clock: now,
      random: runtime.random,
      log: netLog,
      ...(metrics === undefined ? {} : { metrics }),
      disconnect: (peerId) => transport.disconnect(peerId),
      latencyMs: (peerId) => transport.latencyMs?.(peerId),
      isRuledOut: (peerId) => sync.isRuledOut(peerId),
      leaveGossip: (peerId) => engine.removePeer(peerId, now()),
      rejoinGossip: (peerId) => {
        const peer = peers.get(peerId)
        if (peer !== undefined) engine.addPeer({ id: peer.id, outbound: peer.direction === 'outbound', stake: peer.stake }, now())
      },
    },
    { ...(options.rateLimits === undefined ? {} : { rateLimits: options.rateLimits }), ...(options.inbound === undefined ? {} : { inbound: options.inbound }) },
  )
  const { offence, reward, graylisted } = defences

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
      offence,
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
  ingress = new Ingress({ node, engine, offence, reward, elapsed: deps.elapsed, log, ...(metrics === undefined ? {} : { metrics }) })

  const sync = new SyncManager(
    {
      node,
      peers: {
        list: () => peers.list(),
        refreshStatus: (id, ms) => peers.refreshStatus(id, ms),
        offence,
        reward,
        disconnect: (id) => transport.disconnect(id),
        selectionFactor: (id) => peers.selectionFactor(id),
      },
      transport,
      runtime,
      log,
    },
    options.sync,
  )

  const onGossip = (peerId: string, message: GossipMessage): void => {
    // A graylisted peer's gossip is ignored: new frames are refused before decoding (allowFrame),
    // queued ones dropped undecoded (ignores); this catches what the simulator delivers.
    if (graylisted(peerId)) {
      metrics?.graylisted.inc()
      return
    }
    const totals = engine.deliveryTotals()
    const duplicates = totals.duplicates
    const unsolicited = totals.unsolicited
    engine.onMessage(peerId, message, runtime.clock())
    if (totals.duplicates > duplicates) metrics?.duplicates.inc(totals.duplicates - duplicates)
    if (totals.unsolicited > unsolicited) metrics?.unsolicited.inc(totals.unsolicited - unsolicited)
  }

  /** Lets timers and I/O run (a zero-delay timer on the injected runtime). */
  const yieldNow = (): Promise<void> => new Promise((resolve) => void runtime.timers.schedule(0, resolve))
  const serveQueue = new ServeQueue()
  const validators = node.genesis.validators
  const handler: PeerHandler = {
    localStatus: () => statusOf(node),
    identify: (publicKey) => {
      const validator = publicKey === undefined ? undefined : validators.find((v) => bytesEqual(v.address, publicKey))
      return validator === undefined ? { stake: 0n } : { stake: validator.stake, validator: toHex(validator.address) }
    },
    mayDial: defences.mayDial,
    refuseEarly: defences.refuseEarly,
    refuseAddress: defences.refuseAddress,
    admission: defences.admission,
    peerAdmitted: (peer) => {
      defences.admitted(peer)
      peers.add(peer)
      engine.addPeer({ id: peer.id, outbound: peer.direction === 'outbound', stake: peer.stake }, runtime.clock())
      // Our own recent votes, which rumor gave only to the peers we had when we signed them.
      engine.pushVotesTo(peer.id, node.finality.ownVotesAboveFinalized())
      metrics?.peers.set(peers.size)
      // A reconnect does not reset a score: still graylisted, it stays out of the engine.
      if (graylisted(peer.id)) defences.park(peer.id)
      if (antiEntropy) sync.onPeerAdmitted(peer.id)
    },
    peerRemoved: (peerId) => {
      defences.removed(peerId)
      if (!peers.remove(peerId)) return
      engine.removePeer(peerId, runtime.clock())
      metrics?.peers.set(peers.size)
    },
    peerStatus: (peerId, status) => peers.setStatus(peerId, status),
    gossip: onGossip,
    // A big leaf range is collected in slices with a yield between them, one range at a time
    // (serveQueue): the event loop keeps turning, and a crowd of askers waits its turn instead of
    // making every turn of the loop longer. Every other request is one task bounded by its
    // request's caps, answered at once: it must not wait behind a range that takes many turns
    // (headers queued behind leaf pages left joiners' block sync to give up under load).
    serveSync: (peerId, request) => {
      const serving = { chain: node.chain, mempool: node.mempool }
      if (!(request.type === 'getLeaves' && request.max > LEAVES_PER_SLICE)) return serveSyncRequest(request, serving)
      // Cut off (graylisted, gone) while waiting or being served: no more slices for it.
      const stillWanted = () => peers.has(peerId) && !graylisted(peerId)
      const page = leavesToServe(request, defences.staked(peerId))
      const served = serveQueue.run(peerId, () => serveLeavesInSlices(page, serving, yieldNow, stillWanted))
      if (served !== undefined) return served
      metrics?.serveBusy.inc()
      defences.toldBusy(peerId)
      return { type: 'error', message: RATE_LIMITED_ANSWER }
    },
    // Charged its max before it ran; what it did not use (all of it for a busy or error answer)
    // goes back to the quotas once the peer has read the answer. One it leaves unread keeps its
    // whole charge, so a peer that asks and never reads has at most its quota's worth of answers
    // built for it.
    answered: (peerId, request, answer, read) => {
      if (!read) return
      // A page built is refunded against the page we chose to build (leavesToServe): what a
      // zero-stake asker asked beyond MAX_UNSTAKED_LEAVES_PER_ANSWER stays charged, so a spammer
      // asking 65,536 cannot win most of its charge back and have the next page built at once.
      const basis = request.type === 'getLeaves' && servedResponseType(answer) === 'leaves' ? leavesToServe(request, defences.staked(peerId)) : request
      defences.refundLeaves(peerId, basis, servedLeafCount(answer))
    },
    offence,
    limits: { allowFrame: defences.allowFrame, allowSyncRequest: defences.allowSyncRequest, ignores: graylisted },
  }

  // ---------------------------------------------------------------- outbound heartbeat: anchors, validators, stalls
  const outbound = new OutboundHeartbeat(
    { node, transport, peers, defences, runtime, ...(metrics === undefined ? {} : { metrics }), needsPeers: () => antiEntropy && sync.needsPeers() },
    options.maxOutbound ?? MAX_OUTBOUND_PEERS,
  )
  const heartbeatMs = options.heartbeatMs ?? 5_000
  const heartbeatTask = new RepeatingTask(outbound.beat, Math.max(1, heartbeatMs), (error) => log.debug({ err: error }, 'connection heartbeat failed'), runtime.timers)

  const tickMs = Math.max(5, Math.floor((options.gossip?.announceBatchMs ?? DEFAULT_GOSSIP_OPTIONS.announceBatchMs) / 4))
  const tickTask = new RepeatingTask(() => engine.tick(runtime.clock()), tickMs, (error) => log.error({ err: error }, 'gossip tick failed'), runtime.timers)
  const pruneTask = new RepeatingTask(
    () => defences.prune(),
    60_000,
    (error) => log.error({ err: error }, 'score pruning failed'),
    runtime.timers,
  )

  return {
    engine,
    peers,
    ingress,
    sync,
    handler,
    limits: defences.limits,
    saveBans: defences.saveBans,
    coolingHosts: () => defences.cooldowns.list(runtime.clock()),
    start: () => {
      tickTask.start()
      pruneTask.start()
      // The first heartbeat soon after start: anchors from before a restart are redialled first.
      if (heartbeatMs > 0) heartbeatTask.start(Math.min(heartbeatMs, 1_000))
      if (antiEntropy) sync.start()
    },
    stop: () => {
      defences.stop()
      heartbeatTask.stop()
      tickTask.stop()
      pruneTask.stop()
      sync.stop()
      ingress?.stop()
    },
  }
}
