/**
 * The node's engines wired over a transport: the gossip engine, the score table and peer set,
 * the ingress, the sync manager, and the `PeerHandler` a transport calls. Used alike by
 * `runNode` (over libp2p, src/node/run.ts) and by the virtual network (src/sim), so the same
 * composition runs on wall time and on virtual time. Plain calls, one place.
 */
import { bytesEqual, toHex, utf8 } from '../codec/bytes.ts'
import type { FrameItems, GossipMessage, SyncRequest, SyncResponse } from '../codec/wire.ts'
import { DEFAULT_GOSSIP_OPTIONS, GossipEngine, type GossipOptions } from '../gossip/engine.ts'
import { addressGroup } from '../peers/address-group.ts'
import {
  type Anchor,
  type ConnectedPeer,
  DEFAULT_INBOUND_LIMITS,
  type EvictionReason,
  type InboundLimits as InboundSlots,
  MAX_OUTBOUND_PEERS,
  admitInbound,
  headStalled,
  planOutbound,
  selectAnchors,
} from '../peers/connection-policy.ts'
import type { OffenceCode, RewardCode } from '../peers/offences.ts'
import { PeerSet } from '../peers/peer-set.ts'
import { InboundLimits, LimitCharges, type LimitDecision, type LimitName, type LimitRule, RATE_LIMITED_ANSWER, RATE_LIMITS } from '../peers/rate-limit.ts'
import { PeerScores } from '../peers/scores.ts'
import { TOLERANCES, ToleranceCounter, type TolerantCode } from '../peers/tolerance.ts'
import type { AdmissionDecision, LimitedProtocol, PeerHandler, PeerIdentity, PeerTransport } from '../peers/transport.ts'
import { SyncManager, type SyncManagerOptions } from '../sync/manager.ts'
import { ServeQueue } from '../sync/serve-queue.ts'
import { LEAVES_PER_SLICE, serveLeavesInSlices, serveSyncRequest } from '../sync/server.ts'
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
  /** Inbound slots in total and per address group (default DEFAULT_INBOUND_LIMITS: 38 and 4). */
  inbound?: Partial<InboundSlots>
  /** Outbound slots kept for validators and anchors (default MAX_OUTBOUND_PEERS). */
  maxOutbound?: number
  /** Period of the outbound heartbeat (anchors, validators, stall); 0 turns it off. Default 5 s. */
  heartbeatMs?: number
  /** The rate-limit table (default RATE_LIMITS); tests and benchmarks shrink it. */
  rateLimits?: Record<LimitName, LimitRule>
}

/** Store meta keys of the defences: bans and anchors survive a restart. */
export const BANS_META_KEY = 'peerBans'
export const ANCHORS_META_KEY = 'anchors'
/** A connection that passed admission and has not finished its handshake keeps its slot this long at most. */
const PENDING_ADMISSION_MS = 15_000

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
  start(): void
  stop(): void
}

export function composeNode(deps: ComposeDeps, options: ComposeOptions = {}): NodeServices {
  const { node, transport, runtime, metrics } = deps
  const antiEntropy = options.antiEntropy ?? true
  const log = deps.log
  const netLog = log.child({ component: 'peers' })
  const peers = new PeerSet(transport, new PeerScores(), runtime.clock)

  // ---------------------------------------------------------------- defences: scores, bans, tolerances, limits
  const now = runtime.clock
  /** Noise tolerance windows. BOUNDED: MAX_TOLERANCE_KEYS. */
  const tolerance = new ToleranceCounter()
  const limits = new InboundLimits(options.rateLimits ?? RATE_LIMITS)
  /** What each refusal costs (RATE_LIMITED, RATE_LIMIT_FLOOD). BOUNDED: MAX_LIMIT_CHARGE_KEYS; a peer's records go when it leaves. */
  const limitCharges = new LimitCharges(options.rateLimits ?? RATE_LIMITS)

  const loadJson = (key: string): unknown => {
    const bytes = node.store.getMeta(key)
    if (bytes === undefined) return undefined
    try {
      return JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown
    } catch {
      return undefined
    }
  }
  const restoredBans = peers.scores.importBans(loadJson(BANS_META_KEY), now())
  if (restoredBans > 0) netLog.info({ bans: restoredBans }, 'bans restored from the store')
  let savingBans = false
  let bansDirty = false
  /** Writes the bans (bounded: MAX_BAN_ENTRIES + MAX_ADDRESS_GROUP_BANS records) after a change; one write at a time. */
  const saveBans = (): void => {
    bansDirty = true
    if (savingBans) return
    savingBans = true
    bansDirty = false
    const records = peers.scores.exportBans(now())
    node.store
      .batch()
      .putMeta(BANS_META_KEY, utf8(JSON.stringify(records)))
      .commit()
      .catch((error: unknown) => netLog.debug({ err: error }, 'saving bans failed'))
      .finally(() => {
        savingBans = false
        if (bansDirty && !stopped) saveBans()
      })
  }
  let stopped = false

  /** `count`: events the report stands for (ignored txs in one message), counted against a tolerance; one charge at most. */
  const offence = (peerId: string, code: OffenceCode, detail?: string, count = 1): void => {
    // Noise (duplicates, unsolicited, undelivered, failed requests, ignored txs) is free up to a tolerance.
    if (code in TOLERANCES && !tolerance.note(peerId, code as TolerantCode, now(), count)) return
    const verdict = peers.offence(peerId, code, detail)
    metrics?.offences.inc({ code })
    if (verdict === 'ok' && graylisted(peerId)) park(peerId)
    netLog.debug({ peer: peerId.slice(-8), code, detail, verdict }, 'peer offence')
    if (verdict !== 'ok') {
      metrics?.disconnects.inc({ verdict })
      metrics?.evictions.inc({ reason: verdict === 'ban' ? 'SCORE_BAN' : 'SCORE_DISCONNECT' })
      netLog.info({ peer: peerId.slice(-8), code, verdict }, verdict === 'ban' ? 'banning peer' : 'disconnecting peer')
      if (verdict === 'ban') saveBans()
    }
  }
  const reward = (peerId: string, code: RewardCode): void => peers.reward(peerId, code)
  /**
   * Graylisted peers leave the gossip engine: nothing is asked of them (their announcements are
   * released to other announcers at once) and nothing is sent to them. They come back when their
   * score has decayed above the graylist (checked by the heartbeat). BOUNDED: admitted peers only.
   */
  const parked = new Set<string>()
  const park = (peerId: string): void => {
    if (parked.has(peerId) || !peers.has(peerId)) return
    parked.add(peerId)
    engine.removePeer(peerId, now())
    netLog.info({ peer: peerId.slice(-8) }, 'peer graylisted: its gossip is ignored')
  }
  const unparkRecovered = (): void => {
    for (const peerId of [...parked]) {
      const peer = peers.get(peerId)
      if (peer === undefined) parked.delete(peerId)
      else if (!graylisted(peerId)) {
        parked.delete(peerId)
        engine.addPeer({ id: peer.id, outbound: peer.direction === 'outbound', stake: peer.stake }, now())
      }
    }
  }
  const graylisted = (peerId: string): boolean => peers.scores.isGraylisted(peerId, now())

  /** Acts on a limiter's answer: counts the hit; charges the peer (`LimitCharges`) only when its own quota refused. */
  const limited = (peerId: string, decision: LimitDecision): boolean => {
    if (decision.allowed) return true
    metrics?.limitHits.inc({ limit: decision.limit, scope: decision.scope })
    if (decision.scope === 'peer') {
      const code = limitCharges.refused(peerId, decision.limit, decision.cost, now())
      if (code !== undefined) offence(peerId, code, decision.limit)
    }
    return false
  }
  const allowFrame = (peerId: string, protocol: LimitedProtocol, bytes: number, items?: FrameItems): boolean => {
    const at = now()
    // Asked even of a graylisted peer (whose frames are dropped anyway): one that keeps flooding
    // is charged past its quota and ends disconnected, so it cannot cost us more than its quota.
    const allowed =
      protocol === 'gossip'
        ? limited(peerId, limits.checkGossipFrame(peerId, bytes, at, items))
        : protocol === 'sync'
          ? limited(peerId, limits.checkSyncFrame(peerId, bytes, at))
          : limited(peerId, limits.check(peerId, 'status', 1, at))
    if (graylisted(peerId)) {
      metrics?.graylisted.inc()
      // Asking a node that ignores it for work: each sync request is charged, without the 500 ms
      // grace (it has been refused already), so a graylisted spammer is disconnected within a few.
      if (protocol === 'sync' && allowed) offence(peerId, 'RATE_LIMITED', 'sync request while graylisted')
      return false
    }
    return allowed
  }
  const allowSyncRequest = (peerId: string, request: SyncRequest): boolean => {
    if (graylisted(peerId)) {
      metrics?.graylisted.inc()
      return false
    }
    // Staked askers draw on their reserved share of the node-wide quota, unstaked ones on theirs.
    const staked = (peers.get(peerId)?.stake ?? 0n) > 0n
    return limited(peerId, limits.checkSyncRequest(peerId, request, now(), staked))
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
    // A graylisted peer's gossip is ignored: it costs us a decode, nothing more.
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

  // ---------------------------------------------------------------- connections: inbound slots, eviction
  const inboundSlots: InboundSlots = { ...DEFAULT_INBOUND_LIMITS, ...options.inbound }
  /** Connections admitted by the policy whose handshake is under way: they hold a slot. BOUNDED: expire after PENDING_ADMISSION_MS; by the transport's connection cap. */
  const pending = new Map<string, ConnectedPeer & { until: number }>()
  const connectedForPolicy = (): ConnectedPeer[] => {
    const at = now()
    for (const [id, entry] of [...pending]) if (entry.until <= at || peers.has(id)) pending.delete(id)
    const admitted: ConnectedPeer[] = peers.list().map((peer) => {
      const view: ConnectedPeer = { id: peer.id, direction: peer.direction, stake: peer.stake, addressGroup: peer.addressGroup, connectedAt: peer.admittedAt }
      if (peer.lastNovelTxAt !== undefined) view.lastNovelTxAt = peer.lastNovelTxAt
      if (peer.lastNovelBlockAt !== undefined) view.lastNovelBlockAt = peer.lastNovelBlockAt
      return view
    })
    return [...admitted, ...pending.values()]
  }
  const evict = (peerId: string, reason: EvictionReason): void => {
    metrics?.evictions.inc({ reason })
    netLog.info({ peer: peerId.slice(-8), reason }, 'evicting peer')
    pending.delete(peerId)
    transport.disconnect(peerId)
  }
  const admission = (peer: PeerIdentity): AdmissionDecision => {
    const at = now()
    const group = addressGroup(peer.remoteAddress)
    peers.scores.noteAddressGroup(peer.id, group)
    const state = peers.scores.state(peer.id, at)
    const refuse = (reason: string): AdmissionDecision => {
      metrics?.refusals.inc({ reason })
      return { admit: false, reason }
    }
    if (sync.isRuledOut(peer.id) && peer.stake <= 0n) return refuse('LOW_SCORE')
    if (peer.direction === 'outbound') {
      // We chose to dial it: only a ban or a low score stops it.
      if (state === 'banned') return refuse('BANNED')
      if (state === 'disconnect') return refuse('LOW_SCORE')
      return { admit: true }
    }
    const decision = admitInbound(
      { id: peer.id, stake: peer.stake, addressGroup: group, scoreState: state, addressGroupBanned: peers.scores.isAddressGroupBanned(group, at) },
      connectedForPolicy(),
      inboundSlots,
    )
    if (decision.action === 'refuse') return refuse(decision.reason)
    if (decision.action === 'acceptAndEvict') evict(decision.evict, decision.reason)
    if (pending.size < 1_024) pending.set(peer.id, { id: peer.id, direction: 'inbound', stake: peer.stake, addressGroup: group, connectedAt: at, until: at + PENDING_ADMISSION_MS })
    return { admit: true }
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
    // Not redialled while banned, at a low score, or ruled out as a sync source.
    mayDial: (peerId) => {
      const state = peers.scores.state(peerId, now())
      return state !== 'banned' && state !== 'disconnect' && !sync.isRuledOut(peerId)
    },
    refuseEarly: (peerId) => {
      const state = peers.scores.state(peerId, now())
      if (state !== 'banned' && state !== 'disconnect') return false
      metrics?.refusals.inc({ reason: state === 'banned' ? 'BANNED' : 'LOW_SCORE' })
      return true
    },
    admission,
    peerAdmitted: (peer) => {
      pending.delete(peer.id)
      peers.add(peer)
      engine.addPeer({ id: peer.id, outbound: peer.direction === 'outbound', stake: peer.stake }, runtime.clock())
      metrics?.peers.set(peers.size)
      // A reconnect does not reset a score: still graylisted, it stays out of the engine.
      if (graylisted(peer.id)) park(peer.id)
      if (antiEntropy) sync.onPeerAdmitted(peer.id)
    },
    peerRemoved: (peerId) => {
      pending.delete(peerId)
      parked.delete(peerId)
      limits.forget(peerId)
      limitCharges.forget(peerId)
      if (!peers.remove(peerId)) return
      engine.removePeer(peerId, runtime.clock())
      metrics?.peers.set(peers.size)
    },
    peerStatus: (peerId, status) => peers.setStatus(peerId, status),
    gossip: onGossip,
    // One or two requests collected at once (serveQueue), a big leaf range in slices with a yield
    // between them: the event loop keeps turning, and a crowd of askers waits its turn instead of
    // making every turn of the loop longer.
    serveSync: (peerId, request) => {
      // Charged its max before it ran; what it did not use goes back to the quotas.
      const refund = (answer: SyncResponse): SyncResponse => {
        limits.refundLeaves(peerId, request, answer.type === 'leaves' ? answer.leaves.length : 0, now(), (peers.get(peerId)?.stake ?? 0n) > 0n)
        return answer
      }
      const served = serveQueue.run(peerId, () =>
        request.type === 'getLeaves' && request.max > LEAVES_PER_SLICE
          ? serveLeavesInSlices(request, { chain: node.chain, mempool: node.mempool }, yieldNow).then(refund)
          : refund(serveSyncRequest(request, { chain: node.chain, mempool: node.mempool })),
      )
      if (served !== undefined) return served
      metrics?.serveBusy.inc()
      return refund({ type: 'error', message: RATE_LIMITED_ANSWER })
    },
    offence,
    limits: { allowFrame, allowSyncRequest },
  }

  // ---------------------------------------------------------------- outbound heartbeat: anchors, validators, stalls
  const maxOutbound = options.maxOutbound ?? MAX_OUTBOUND_PEERS
  const selfPeerId = transport.localPeerId
  const selfValidator = validators.find((v) => transport.peerIdOf(v.address) === selfPeerId)
  const validatorPeers = validators
    .map((v) => ({ peerId: transport.peerIdOf(v.address), stake: v.stake }))
    .filter((v): v is { peerId: string; stake: bigint } => v.peerId !== undefined && v.peerId !== selfPeerId)
  /** Anchors read at start, dialled by the first heartbeats. BOUNDED: MAX_ANCHORS. */
  let anchors: Anchor[] = parseAnchors(loadJson(ANCHORS_META_KEY))
  let savedAnchors = JSON.stringify(anchors)
  const heartbeat = async (): Promise<void> => {
    if (stopped) return
    unparkRecovered()
    const at = now()
    const schedule = node.chain.schedule
    const excluded = new Set<string>([selfPeerId])
    for (const v of validatorPeers) if (!handler.mayDial(v.peerId)) excluded.add(v.peerId)
    const stalled =
      headStalled({
        headSlot: node.chain.head.header.slot,
        currentSlot: schedule.slotAt(at),
        leaderOf: (slot) => toHex(schedule.leaderFor(slot).address),
        ...(selfValidator === undefined ? {} : { self: toHex(selfValidator.address) }),
      }) || (antiEntropy && sync.needsPeers())
    const plan = planOutbound(
      {
        validators: validatorPeers,
        connected: new Set(transport.connectedPeers()),
        outboundCount: peers.list().filter((peer) => peer.direction === 'outbound').length,
        excluded,
        anchors,
        stalled,
        random: runtime.random,
      },
      maxOutbound,
    )
    anchors = []
    await Promise.all(
      plan.dial.map(async (dial) => {
        const ok = await transport.dialPeer(dial.peerId, dial.address)
        metrics?.outboundDials.inc({ reason: dial.reason, result: ok ? 'connected' : 'failed' })
      }),
    )
    // The outbound peers in good standing now are the anchors a restart will redial first.
    const current = selectAnchors(
      peers.list().map((peer) => ({
        peerId: peer.id,
        ...(peer.remoteAddress === undefined ? {} : { address: anchorAddress(peer.remoteAddress, peer.id) }),
        direction: peer.direction,
        stake: peer.stake,
        connectedAt: peer.admittedAt,
        scoreState: peers.scores.state(peer.id, now()),
      })),
    )
    const text = JSON.stringify(current)
    if (current.length > 0 && text !== savedAnchors && !stopped) {
      savedAnchors = text
      await node.store.batch().putMeta(ANCHORS_META_KEY, utf8(text)).commit().catch(() => undefined)
    }
  }
  const heartbeatMs = options.heartbeatMs ?? 5_000
  const heartbeatTask = new RepeatingTask(heartbeat, Math.max(1, heartbeatMs), (error) => log.debug({ err: error }, 'connection heartbeat failed'), runtime.timers)

  const tickMs = Math.max(5, Math.floor((options.gossip?.announceBatchMs ?? DEFAULT_GOSSIP_OPTIONS.announceBatchMs) / 4))
  const tickTask = new RepeatingTask(() => engine.tick(runtime.clock()), tickMs, (error) => log.error({ err: error }, 'gossip tick failed'), runtime.timers)
  const pruneTask = new RepeatingTask(
    () => {
      const at = now()
      peers.scores.prune(at)
      tolerance.prune(at)
      limits.prune(at)
    },
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
    limits,
    saveBans,
    start: () => {
      tickTask.start()
      pruneTask.start()
      // The first heartbeat soon after start: anchors from before a restart are redialled first.
      if (heartbeatMs > 0) heartbeatTask.start(Math.min(heartbeatMs, 1_000))
      if (antiEntropy) sync.start()
    },
    stop: () => {
      stopped = true
      heartbeatTask.stop()
      tickTask.stop()
      pruneTask.stop()
      sync.stop()
      ingress?.stop()
    },
  }
}

/** Anchors from the store: checked record by record, at most MAX_ANCHORS kept. */
function parseAnchors(value: unknown): Anchor[] {
  if (!Array.isArray(value)) return []
  const out: Anchor[] = []
  for (const item of value.slice(0, 16) as unknown[]) {
    if (typeof item !== 'object' || item === null) continue
    const record = item as Record<string, unknown>
    if (typeof record.peerId !== 'string' || record.peerId.length === 0 || record.peerId.length > 128) continue
    const anchor: Anchor = { peerId: record.peerId }
    if (typeof record.address === 'string' && record.address.length <= 256) anchor.address = record.address
    out.push(anchor)
  }
  return out.slice(0, 4)
}

/** A dialable anchor address: the remote multiaddr with the peer id, so the dial checks who answers. */
function anchorAddress(remoteAddress: string, peerId: string): string {
  return remoteAddress.includes('/p2p/') ? remoteAddress : `${remoteAddress}/p2p/${peerId}`
}
