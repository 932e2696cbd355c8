/**
 * The node's defences, acting on the pure decisions of src/peers/: what an offence costs a peer
 * (tolerances, scores, bans that survive a restart), what it may send and ask (rate limits,
 * charged before decoding), who gets an inbound slot (admission and eviction). One instance per
 * node, built by `composeNode`; the gossip engine and the sync manager report offences here, and
 * the transport's `PeerHandler` asks it.
 */
import { utf8 } from '../codec/bytes.ts'
import type { FrameItems, SyncRequest } from '../codec/wire.ts'
import { AddressCooldowns, type HandshakeGate, MAX_VALIDATOR_HOSTS } from '../peers/address-cooldown.ts'
import { addressGroup, addressHost } from '../peers/address-group.ts'
import {
  type ConnectedPeer,
  DEFAULT_INBOUND_LIMITS,
  type EvictionReason,
  IDENTITY_REFUSALS,
  type InboundLimits as InboundSlots,
  type RefusalReason,
  admitInbound,
} from '../peers/connection-policy.ts'
import type { OffenceCode, RewardCode } from '../peers/offences.ts'
import type { PeerSet } from '../peers/peer-set.ts'
import { BusyWindows, InboundLimits, LimitCharges, type LimitDecision, type LimitName, type LimitRule, RATE_LIMITS } from '../peers/rate-limit.ts'
import { TOLERANCES, ToleranceCounter, type TolerantCode } from '../peers/tolerance.ts'
import type { AdmissionDecision, LimitedProtocol, PeerIdentity } from '../peers/transport.ts'
import type { Clock } from '../util/clock.ts'
import { LruSet } from '../util/lru.ts'
import type { Logger } from '../util/logger.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import type { GrapevineNode } from './node.ts'

/** Store meta keys of the defences: bans and anchors survive a restart. */
export const BANS_META_KEY = 'peerBans'
export const ANCHORS_META_KEY = 'anchors'
/** A connection that passed admission and has not finished its handshake keeps its slot this long at most. */
const PENDING_ADMISSION_MS = 15_000
/** Limit of connections admitted and still handshaking (each holds a slot). */
const MAX_PENDING_ADMISSIONS = 1_024
/** The refusal reason (metric label) of each way the handshake gate refuses. */
const GATE_REFUSALS: Record<Exclude<HandshakeGate, 'allow'>, RefusalReason> = { cooling: 'ADDRESS_COOLDOWN', probation: 'ADDRESS_PROBATION', budget: 'HANDSHAKE_BUDGET' }

export interface DefencesDeps {
  store: GrapevineNode['store']
  peers: PeerSet
  clock: Clock
  /** Uniform in [0, 1): spreads the hosts' cooldowns (src/peers/address-cooldown.ts). */
  random: () => number
  /** The peers' log (component "peers"). */
  log: Logger
  metrics?: NodeMetrics
  /** Hangs up on a peer (eviction). */
  disconnect(peerId: string): void
  /** A peer the sync manager has ruled out as a source (it lied about its head). */
  isRuledOut(peerId: string): boolean
  /** Round-trip time to a peer when the transport measured one (eviction protects the lowest). */
  latencyMs?(peerId: string): number | undefined
  /** A graylisted peer leaves the gossip engine; it comes back once its score has recovered. */
  leaveGossip(peerId: string): void
  rejoinGossip(peerId: string): void
}

export interface DefencesOptions {
  /** The rate-limit table (default RATE_LIMITS); tests and benchmarks shrink it. */
  rateLimits?: Record<LimitName, LimitRule>
  /** Inbound slots in total and per address group (default DEFAULT_INBOUND_LIMITS). */
  inbound?: Partial<InboundSlots>
}

export class Defences {
  /** Noise tolerance windows. BOUNDED: MAX_TOLERANCE_KEYS. */
  private readonly tolerance = new ToleranceCounter()
  /** The inbound rate limiters (net_peers shows their state). */
  readonly limits: InboundLimits
  /** What each refusal costs (RATE_LIMITED, RATE_LIMIT_FLOOD). BOUNDED: MAX_LIMIT_CHARGE_KEYS; a peer's records go when it leaves. */
  private readonly limitCharges: LimitCharges
  /** Peers told "busy" (node-wide), held to their backoff. BOUNDED: MAX_LIMITER_KEYS; a peer's entry goes when it leaves. */
  private readonly busy = new BusyWindows()
  /** Graylisted peers taken out of the gossip engine. BOUNDED: admitted peers only. */
  private readonly parked = new Set<string>()
  /** Connections admitted by the policy whose handshake is under way: they hold a slot. BOUNDED: expire after PENDING_ADMISSION_MS; MAX_PENDING_ADMISSIONS. */
  private readonly pending = new Map<string, ConnectedPeer & { until: number }>()
  private readonly inboundSlots: InboundSlots
  /** Hosts refused before their handshake for a while (net_bans shows them). BOUNDED: MAX_ADDRESS_COOLDOWNS. */
  readonly cooldowns: AddressCooldowns
  /** Hosts a validator was admitted from: never held to the handshake budgets (a validator restarting during a flood gets back in). BOUNDED: MAX_VALIDATOR_HOSTS (LRU). */
  private readonly validatorHosts = new LruSet<string>(MAX_VALIDATOR_HOSTS)
  private savingBans = false
  private bansDirty = false
  private stopped = false

  constructor(
    private readonly deps: DefencesDeps,
    options: DefencesOptions = {},
  ) {
    this.limits = new InboundLimits(options.rateLimits ?? RATE_LIMITS)
    this.limitCharges = new LimitCharges(options.rateLimits ?? RATE_LIMITS)
    this.inboundSlots = { ...DEFAULT_INBOUND_LIMITS, ...options.inbound }
    this.cooldowns = new AddressCooldowns(undefined, deps.random)
    const restored = deps.peers.scores.importBans(this.loadMeta(BANS_META_KEY), deps.clock())
    if (restored > 0) deps.log.info({ bans: restored }, 'bans restored from the store')
  }

  /** A JSON record from the store's meta (bans, anchors); undefined when absent or unreadable. */
  loadMeta(key: string): unknown {
    const bytes = this.deps.store.getMeta(key)
    if (bytes === undefined) return undefined
    try {
      return JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown
    } catch {
      return undefined
    }
  }

  /** Writes the bans (bounded: MAX_BAN_ENTRIES + MAX_ADDRESS_GROUP_BANS records) after a change; one write at a time. */
  saveBans = (): void => {
    this.bansDirty = true
    if (this.savingBans) return
    this.savingBans = true
    this.bansDirty = false
    const records = this.deps.peers.scores.exportBans(this.deps.clock())
    this.deps.store
      .batch()
      .putMeta(BANS_META_KEY, utf8(JSON.stringify(records)))
      .commit()
      .catch((error: unknown) => this.deps.log.debug({ err: error }, 'saving bans failed'))
      .finally(() => {
        this.savingBans = false
        if (this.bansDirty && !this.stopped) this.saveBans()
      })
  }

  /** `count`: events the report stands for (ignored txs in one message), counted against a tolerance (which says how many charges they make). */
  offence = (peerId: string, code: OffenceCode, detail?: string, count = 1): void => {
    const { peers, metrics, log } = this.deps
    // Noise (duplicates, unsolicited, undelivered, failed requests, ignored txs) is free up to a tolerance.
    const charges = code in TOLERANCES ? this.tolerance.note(peerId, code as TolerantCode, this.deps.clock(), count) : 1
    if (charges === 0) return
    // Read before charging: a verdict drops the peer, and its entry may be gone when that returns.
    const entry = peers.get(peerId)
    const verdict = peers.offence(peerId, code, detail, charges)
    metrics?.offences.inc({ code })
    if (verdict === 'ok' && this.graylisted(peerId)) this.park(peerId)
    log.debug({ peer: peerId.slice(-8), code, detail, charges, verdict }, 'peer offence')
    if (verdict !== 'ok') {
      metrics?.disconnects.inc({ verdict })
      metrics?.evictions.inc({ reason: verdict === 'ban' ? 'SCORE_BAN' : 'SCORE_DISCONNECT' })
      log.info({ peer: peerId.slice(-8), code, verdict }, verdict === 'ban' ? 'banning peer' : 'disconnecting peer')
      if (verdict === 'ban') this.saveBans()
      // An inbound peer hung up on is expected to redial at once: its host cools down now, so that
      // redial is refused before its handshake rather than after.
      if (entry?.direction === 'inbound') this.coolHost(entry.host, code, peerId)
    }
  }

  reward = (peerId: string, code: RewardCode): void => this.deps.peers.reward(peerId, code)

  graylisted = (peerId: string): boolean => this.deps.peers.scores.isGraylisted(peerId, this.deps.clock())

  /**
   * Graylisted peers leave the gossip engine: nothing is asked of them (their announcements are
   * released to other announcers at once) and nothing is sent to them. They come back when their
   * score has decayed above the graylist (`unparkRecovered`, on the heartbeat).
   */
  park(peerId: string): void {
    if (this.parked.has(peerId) || !this.deps.peers.has(peerId)) return
    this.parked.add(peerId)
    this.deps.leaveGossip(peerId)
    this.deps.log.info({ peer: peerId.slice(-8) }, 'peer graylisted: its gossip is ignored')
  }

  unparkRecovered(): void {
    for (const peerId of [...this.parked]) {
      if (!this.deps.peers.has(peerId)) this.parked.delete(peerId)
      else if (!this.graylisted(peerId)) {
        this.parked.delete(peerId)
        this.deps.rejoinGossip(peerId)
      }
    }
  }

  /** Acts on a limiter's answer: counts the hit; charges the peer (`LimitCharges`) only when its own quota refused. */
  private limited(peerId: string, decision: LimitDecision): boolean {
    if (decision.allowed) return true
    this.deps.metrics?.limitHits.inc({ limit: decision.limit, scope: decision.scope })
    // A node-wide quota (sync serving only) refused it: not the peer's fault, but it must back off.
    if (decision.scope === 'node') this.toldBusy(peerId)
    else {
      const code = this.limitCharges.refused(peerId, decision.limit, decision.cost, this.deps.clock())
      if (code !== undefined) this.offence(peerId, code, decision.limit)
      // Twenty spamming identities each used the busy grace (8 requests, ~2 ms of libp2p stream
      // work apiece) after flooding their own quota; a flooder's next request is not in flight.
      if (code === 'RATE_LIMIT_FLOOD') this.busy.revokeGrace(peerId)
    }
    return false
  }

  allowFrame = (peerId: string, protocol: LimitedProtocol, bytes: number, items?: FrameItems): boolean => {
    const at = this.deps.clock()
    const { limits } = this
    // Asked even of a graylisted peer (whose frames are dropped anyway): one that keeps flooding
    // is charged past its quota and ends disconnected, so it cannot cost us more than its quota.
    const allowed =
      protocol === 'gossip'
        ? this.limited(peerId, limits.checkGossipFrame(peerId, bytes, at, items))
        : protocol === 'sync'
          ? this.busy.allows(peerId, at)
            ? this.limited(peerId, limits.checkSyncFrame(peerId, bytes, at))
            : this.busyIgnored(peerId)
          : this.limited(peerId, limits.check(peerId, 'status', 1, at))
    if (this.graylisted(peerId)) {
      this.deps.metrics?.graylisted.inc()
      // Asking a node that ignores it for work: each sync request is charged, without the 500 ms
      // grace (it has been refused already), so a graylisted spammer is disconnected within a few.
      if (protocol === 'sync' && allowed) this.offence(peerId, 'RATE_LIMITED', 'sync request while graylisted')
      return false
    }
    return allowed
  }

  allowSyncRequest = (peerId: string, request: SyncRequest): boolean => {
    if (this.graylisted(peerId)) {
      this.deps.metrics?.graylisted.inc()
      return false
    }
    // Staked askers draw on their reserved share of the node-wide quota, unstaked ones on theirs.
    return this.limited(peerId, this.limits.checkSyncRequest(peerId, request, this.deps.clock(), this.staked(peerId)))
  }

  /** A sync request past the grace of a busy answer: refused, and charged each time (no honest client sends one). */
  private busyIgnored(peerId: string): false {
    this.deps.metrics?.limitHits.inc({ limit: 'syncRequests', scope: 'peer' })
    this.offence(peerId, 'SYNC_BUSY_IGNORED')
    return false
  }

  /** We answered the peer "rate limited" because the node was busy (a node-wide quota, the serve queue): it must back off (BusyWindows). */
  toldBusy = (peerId: string): void => this.busy.toldBusy(peerId, this.deps.clock())

  /** A served `getLeaves` gives back what it did not use (`InboundLimits.refundLeaves`). */
  refundLeaves(peerId: string, request: SyncRequest, served: number): void {
    this.limits.refundLeaves(peerId, request, served, this.deps.clock(), this.staked(peerId))
  }

  /** Whether an admitted peer holds stake (its requests draw on the staked class's shares). */
  staked(peerId: string): boolean {
    return (this.deps.peers.get(peerId)?.stake ?? 0n) > 0n
  }

  /** Not redialled while banned, at a low score, or ruled out as a sync source. */
  mayDial = (peerId: string): boolean => {
    const state = this.deps.peers.scores.state(peerId, this.deps.clock())
    return state !== 'banned' && state !== 'disconnect' && !this.deps.isRuledOut(peerId)
  }

  /** A banned or low-scored peer is refused as soon as its id is known, right after the encryption handshake; its host cools down. */
  refuseEarly = (peerId: string, remoteAddress?: string): boolean => {
    const state = this.deps.peers.scores.state(peerId, this.deps.clock())
    if (state !== 'banned' && state !== 'disconnect') return false
    this.refusedIdentity(state === 'banned' ? 'BANNED' : 'LOW_SCORE', remoteAddress)
    return true
  }

  /**
   * A connection is refused on its address, before the handshake it would cost, while its host
   * cools down or the node-wide handshake budget for its kind of host is spent. Trusted hosts (one
   * shared with an admitted peer in good standing, or that brought a validator) always pass.
   */
  refuseAddress = (remoteAddress: string, at: 'socket' | 'upgrade'): boolean => {
    const host = addressHost(remoteAddress)
    if (host === undefined) return false
    const trusted = this.validatorHosts.has(host) || this.sharedWithGoodPeer(host)
    const gate = this.cooldowns.beforeHandshake(host, this.deps.clock(), { trusted, spend: at === 'socket' })
    if (gate === 'allow') return false
    this.deps.metrics?.refusals.inc({ reason: GATE_REFUSALS[gate] })
    return true
  }

  /**
   * Whether an admitted peer in good standing (not graylisted) shares `host`: then the host is
   * shared — a NAT, or one machine running several nodes, as a loopback devnet does — and is not
   * cooled down for another identity's sake; that identity is still refused after its handshake.
   */
  private sharedWithGoodPeer(host: string, except?: string): boolean {
    return this.deps.peers.list().some((peer) => peer.host === host && peer.id !== except && !this.graylisted(peer.id))
  }

  /** Counts a refusal; one that says the identity is unwelcome sets its host's cooldown. */
  private refusedIdentity(reason: RefusalReason, remoteAddress: string | undefined): void {
    this.deps.metrics?.refusals.inc({ reason })
    if (IDENTITY_REFUSALS.has(reason)) this.coolHost(addressHost(remoteAddress), reason)
  }

  /** Sets `host`'s cooldown, unless a peer in good standing (other than `except`) shares it. */
  private coolHost(host: string | undefined, reason: string, except?: string): void {
    if (host === undefined || this.sharedWithGoodPeer(host, except)) return
    const ms = this.cooldowns.refused(host, this.deps.clock())
    this.deps.log.debug({ host, reason, cooldownMs: ms }, 'host cooling down')
  }

  // ---------------------------------------------------------------- connections: inbound slots, eviction

  private connectedForPolicy(): ConnectedPeer[] {
    const at = this.deps.clock()
    for (const [id, entry] of [...this.pending]) if (entry.until <= at || this.deps.peers.has(id)) this.pending.delete(id)
    const admitted: ConnectedPeer[] = this.deps.peers.list().map((peer) => {
      const view: ConnectedPeer = { id: peer.id, direction: peer.direction, stake: peer.stake, addressGroup: peer.addressGroup, connectedAt: peer.admittedAt }
      const latencyMs = this.deps.latencyMs?.(peer.id)
      if (latencyMs !== undefined) view.latencyMs = latencyMs
      if (peer.lastNovelTxAt !== undefined) view.lastNovelTxAt = peer.lastNovelTxAt
      if (peer.lastNovelBlockAt !== undefined) view.lastNovelBlockAt = peer.lastNovelBlockAt
      return view
    })
    return [...admitted, ...this.pending.values()]
  }

  private evict(peerId: string, reason: EvictionReason): void {
    this.deps.metrics?.evictions.inc({ reason })
    this.deps.log.info({ peer: peerId.slice(-8), reason }, 'evicting peer')
    this.pending.delete(peerId)
    this.deps.disconnect(peerId)
  }

  /** May this connection become an admitted peer (bans, scores, inbound slots; a staked newcomer may evict)? */
  admission = (peer: PeerIdentity): AdmissionDecision => {
    const { peers, metrics } = this.deps
    const at = this.deps.clock()
    const group = addressGroup(peer.remoteAddress)
    peers.scores.noteAddressGroup(peer.id, group)
    const state = peers.scores.state(peer.id, at)
    const refuse = (reason: RefusalReason): AdmissionDecision => {
      // Only an inbound refusal cools its host down: an outbound one is our own dial.
      if (peer.direction === 'inbound') this.refusedIdentity(reason, peer.remoteAddress)
      else metrics?.refusals.inc({ reason })
      return { admit: false, reason }
    }
    if (this.deps.isRuledOut(peer.id) && peer.stake <= 0n) return refuse('LOW_SCORE')
    if (peer.direction === 'outbound') {
      // We chose to dial it: only a ban or a low score stops it.
      if (state === 'banned') return refuse('BANNED')
      if (state === 'disconnect') return refuse('LOW_SCORE')
      return { admit: true }
    }
    const decision = admitInbound(
      { id: peer.id, stake: peer.stake, addressGroup: group, scoreState: state, addressGroupBanned: peers.scores.isAddressGroupBanned(group, at) },
      this.connectedForPolicy(),
      this.inboundSlots,
    )
    if (decision.action === 'refuse') return refuse(decision.reason)
    if (decision.action === 'acceptAndEvict') this.evict(decision.evict, decision.reason)
    if (this.pending.size < MAX_PENDING_ADMISSIONS) this.pending.set(peer.id, { id: peer.id, direction: 'inbound', stake: peer.stake, addressGroup: group, connectedAt: at, until: at + PENDING_ADMISSION_MS })
    return { admit: true }
  }

  /** The peer finished its handshake: its slot is an admitted peer's now. A validator's host is trusted from then on. */
  admitted(peer: PeerIdentity): void {
    this.pending.delete(peer.id)
    const host = addressHost(peer.remoteAddress)
    if (peer.stake > 0n && host !== undefined) this.validatorHosts.add(host)
  }

  /** The peer left: its pending slot, parking, rate-limit buckets and charge records go (its score stays). */
  removed(peerId: string): void {
    this.pending.delete(peerId)
    this.parked.delete(peerId)
    this.limits.forget(peerId)
    this.limitCharges.forget(peerId)
    this.busy.forget(peerId)
  }

  /** Drops tables' entries that no longer matter (scores near 0, refilled buckets, old tolerance windows). */
  prune(): void {
    const at = this.deps.clock()
    this.deps.peers.scores.prune(at)
    this.tolerance.prune(at)
    this.limits.prune(at)
    this.cooldowns.prune(at)
  }

  stop(): void {
    this.stopped = true
  }

  get isStopped(): boolean {
    return this.stopped
  }
}
