/**
 * Rumor gossip (docs/protocol.md, "Rumor gossip"), sans-IO: messages and a clock in, sends out
 * through `GossipHost`. The libp2p adapter (src/net/) and tests drive it; it never touches a
 * socket or a timer.
 *
 * - A transaction this node originates is pushed in full to about √peers peers (stake-weighted)
 *   and announced (`inv`) to the rest; a relayed one is only announced, so a node receives a
 *   full copy about once. A new block goes out as a compact block (header + txids) to √peers
 *   peers and as `inv` to the rest.
 * - Announcements to a peer are batched: one goes out at once on an idle link, the rest ride
 *   together at most every `announceBatchMs`.
 * - Each peer's known inventory is tracked (bounded), so nothing is announced or pushed twice on
 *   a link, and never back to where it came from.
 * - A missing object is requested from ONE announcer at a time (outbound, then staked peers
 *   first); on timeout or `notfound` the next announcer is asked. In-flight requests per peer
 *   are bounded.
 * - Duplicate and unsolicited deliveries are counted per peer, and reported with the other
 *   gossip offences (an announcement not delivered, an invalid compact block, an inv flood)
 *   through `GossipHost.offence`: the node side owns the score table and the tolerances.
 * - Per-peer caps (Bitcoin Core's txrequest): announcements tracked per peer
 *   (`maxTrackedAnnouncementsPerPeer`) and requests in flight to it (`maxInFlightPerPeer`); the
 *   retry of wants left unrequested is bounded per tick (`maxRetriesPerTick`).
 * - Finality votes (inventory kind 4) spread like transactions: this validator's own are pushed to
 *   √peers and announced to the rest, relayed ones only announced, batched into `votes` messages.
 *   Equivocation evidence (kind 5) is announced once per link. The node checks both before it
 *   relays them (src/node/finality.ts).
 */
import { bytesEqual, toHexKey } from '../codec/bytes.ts'
import { evidenceId, voteId } from '../codec/finality.ts'
import { headerHash } from '../codec/objects.ts'
import {
  type GossipMessage,
  INV_BLOCK,
  INV_COMPACT_BLOCK,
  INV_EVIDENCE,
  INV_TX,
  INV_VOTE,
  type InvItem,
  MAX_EVIDENCE_PER_MESSAGE,
  MAX_GETDATA_ITEMS,
  MAX_INV_ITEMS,
  MAX_TXS_PER_MESSAGE,
  MAX_VOTES_PER_MESSAGE,
} from '../codec/wire.ts'
import type { Block, Evidence, Header, SignedTx, Vote } from '../ledger/types.ts'
import type { OffenceCode } from '../peers/offences.ts'
import { MAX_REQUESTS_IN_FLIGHT_PER_PEER, MAX_TRACKED_ANNOUNCEMENTS_PER_PEER, PACING_MARGIN, type Quota, RATE_LIMITS, RateLimiterGCRA, pacedQuota } from '../peers/rate-limit.ts'
import { UNSTAKED_CLASS_SHARE, pushFanout, samplePeers } from '../peers/selection.ts'
import { LruMap, LruSet } from '../util/lru.ts'

export interface GossipOptions {
  /** Least time between two `inv` frames to one peer; announcements wait at most this long. */
  announceBatchMs: number
  /** How long an announcer has to answer a getdata before the next one is asked. */
  requestTimeoutMs: number
  /** Objects requested from one peer and not yet delivered. */
  maxInFlightPerPeer: number
  /** Announcers remembered per missing object. */
  maxAnnouncersPerItem: number
  /** Missing objects tracked at once. */
  maxWanted: number
  /** Inventory remembered per peer (what it has, or was sent). */
  knownInventoryPerPeer: number
  /** Compact blocks awaiting their missing transactions, per peer. */
  maxPendingCompactPerPeer: number
  /** Announcements tracked per peer (wanted, not yet fetched or given up); past it, ANNOUNCEMENTS_OVERFLOW. */
  maxTrackedAnnouncementsPerPeer: number
  /** Wants left unrequested (every announcer busy) retried per tick: bounds the tick's work under an inv flood. */
  maxRetriesPerTick: number
  /**
   * What we send one peer, kept within its published per-peer quotas (src/peers/rate-limit.ts,
   * with PACING_MARGIN): txs pushed (gossipTxItems) and hashes announced (gossipInvItems).
   * Pushes and announcements past the budget wait for later flushes.
   * A node handed 10,000 txs at once pushed them all to a peer, whose limit charged it
   * RATE_LIMIT_FLOOD — an honest sender penalised.
   */
  outboundTxItems: Quota
  outboundInvItems: Quota
  /**
   * Frames to one peer (its gossipMessages quota, with the margin). Answers, compact blocks and
   * votes go out at once and count; our requests, pushes and announcements wait when the budget
   * is spent, and batch up meanwhile: single-tx RPC calls at a thousand a second made a push
   * frame each.
   */
  outboundMessages: Quota
  /**
   * A request unanswered this long is also made of the next announcer, and so on every
   * `hedgeAfterMs` while announcers are left: an announcer that withholds (or answers just before
   * `requestTimeoutMs`) would otherwise hold the object up that long for each one asked.
   */
  hedgeAfterMs: number
  /** Announcements waiting per peer (paced); past it the newest are not announced (the peer reconciles them). */
  maxQueuedInvPerPeer: number
  /** Pushes waiting per peer (paced); past it the newest are not pushed (the peer reconciles them). */
  maxQueuedPushesPerPeer: number
}

/** Blocks whose delivered copy awaits its import verdict, remembered with their other announcers: a few slots' worth. */
export const MAX_BLOCKS_AWAITING_VERDICT = 64
/** Hedges pending: one per want with a request out and another announcer to ask; they go when the want does. */
export const MAX_PENDING_HEDGES = 4_096

export const DEFAULT_GOSSIP_OPTIONS: GossipOptions = {
  announceBatchMs: 25,
  requestTimeoutMs: 2_000,
  // An honest getdata is answered within a round trip; a quarter of the timeout leaves a slow or loaded link room.
  hedgeAfterMs: 500,
  maxInFlightPerPeer: MAX_REQUESTS_IN_FLIGHT_PER_PEER,
  maxAnnouncersPerItem: 8,
  maxWanted: 100_000,
  knownInventoryPerPeer: 50_000,
  maxPendingCompactPerPeer: 4,
  maxTrackedAnnouncementsPerPeer: MAX_TRACKED_ANNOUNCEMENTS_PER_PEER,
  maxRetriesPerTick: 256,
  outboundTxItems: pacedQuota(RATE_LIMITS.gossipTxItems.perPeer, PACING_MARGIN),
  outboundInvItems: pacedQuota(RATE_LIMITS.gossipInvItems.perPeer, PACING_MARGIN),
  outboundMessages: pacedQuota(RATE_LIMITS.gossipMessages.perPeer, PACING_MARGIN),
  maxQueuedInvPerPeer: 65_536,
  maxQueuedPushesPerPeer: 65_536,
}

export interface GossipPeerInfo {
  id: string
  /** We dialed it: preferred for requests (harder for an attacker to control). */
  outbound: boolean
  /** Validator stake of the peer's identity (0 for non-validators). */
  stake: bigint
}

/** What the engine needs from the node and the transport. */
export interface GossipHost {
  send(peerId: string, message: GossipMessage): void
  /** Asks for `flush()` to be called soon (the adapter uses setImmediate). */
  wake(): void
  /** Whether the tx is pending or already in the chain. */
  hasTx(idHex: string): boolean
  /** A pending tx, to answer getdata and to rebuild compact blocks. */
  getTx(idHex: string): SignedTx | undefined
  hasBlock(hashHex: string): boolean
  getBlock(hashHex: string): Block | undefined
  /** Fresh transactions from a peer: the node validates them and calls `relayTx` for the accepted ones. */
  deliverTxs(peerId: string, txs: SignedTx[]): void
  /** A fresh block from a peer: the node imports it and calls `relayBlock` on success. */
  deliverBlock(peerId: string, block: Block): void
  random(): number
  // ---- finality: optional, so a host without votes (a bare test host) still drives the engine
  /** Whether the vote was seen (accepted or refused): not fetched again. */
  hasVote?(idHex: string): boolean
  getVote?(idHex: string): Vote | undefined
  /** Fresh votes from a peer: the node checks them and calls `relayVotes` for the accepted ones. */
  deliverVotes?(peerId: string, votes: Vote[]): void
  hasEvidence?(idHex: string): boolean
  getEvidence?(idHex: string): Evidence | undefined
  /** Evidence from a peer: the node checks it and calls `relayEvidence` for what is new. */
  deliverEvidence?(peerId: string, evidence: Evidence[]): void
  /**
   * A peer committed a gossip offence. Reported once per message (not per item), raw: the node
   * side applies the noise tolerances and the score table.
   */
  offence?(peerId: string, code: GossipOffence, detail?: string): void
}

/** The offences the gossip engine reports. */
export type GossipOffence = Extract<OffenceCode, 'GOSSIP_UNSOLICITED' | 'GOSSIP_DUPLICATE' | 'GOSSIP_NOT_DELIVERED' | 'COMPACT_BLOCK_INVALID' | 'ANNOUNCEMENTS_OVERFLOW'>

export interface PeerGossipCounters {
  txsReceived: number
  blocksReceived: number
  votesReceived: number
  /** Full objects received that this node already had. */
  duplicates: number
  /** Responses nobody asked for (solicited flag without a request, stray notfound/blocktxn). */
  unsolicited: number
  /** Malformed-but-decodable content (compact block whose txids disagree with its header). */
  invalid: number
  announcementsReceived: number
  announcementsSent: number
  requestsSent: number
  requestsReceived: number
  requestTimeouts: number
  notFoundReceived: number
  pushesSent: number
  /** Announcements ignored because the peer already had maxTrackedAnnouncementsPerPeer tracked. */
  announcementsDropped: number
}

function emptyCounters(): PeerGossipCounters {
  return {
    txsReceived: 0,
    blocksReceived: 0,
    votesReceived: 0,
    duplicates: 0,
    unsolicited: 0,
    invalid: 0,
    announcementsReceived: 0,
    announcementsSent: 0,
    requestsSent: 0,
    requestsReceived: 0,
    requestTimeouts: 0,
    notFoundReceived: 0,
    pushesSent: 0,
    announcementsDropped: 0,
  }
}

interface PendingCompact {
  header: Header
  txids: Uint8Array[]
  txs: Array<SignedTx | undefined>
  missing: number[]
}

interface PeerState {
  info: GossipPeerInfo
  /** Bounded by knownInventoryPerPeer. */
  known: LruSet<string>
  /** Bounded: flushed at MAX_INV_ITEMS or when the batch window ends. */
  invQueue: InvItem[]
  lastInvFlushAt: number
  /** Bounded: flushed on every wake. */
  pushTxs: SignedTx[]
  pushCompact: Array<{ header: Header; txids: Uint8Array[] }>
  /** Bounded: flushed on every wake. */
  pushVotes: Vote[]
  getdataQueue: InvItem[]
  /** Bounded by maxInFlightPerPeer: hash hex → deadline. */
  inFlight: Map<string, number>
  /** Bounded by maxPendingCompactPerPeer. */
  pendingCompact: Map<string, PendingCompact>
  /** Wants this peer announced and was not yet asked for or released from. BOUNDED: maxTrackedAnnouncementsPerPeer. */
  tracked: Set<string>
  counters: PeerGossipCounters
}

interface Want {
  kind: number
  hash: Uint8Array
  hex: string
  /** Bounded by maxAnnouncersPerItem. */
  announcers: string[]
  tried: Set<string>
  requestedFrom: string | undefined
  /** When the request to `requestedFrom` went out. */
  requestedAt: number
  /** Created by a zero-stake announcer: counts against that class's share of maxWanted. */
  unstaked: boolean
}

export interface GossipStats {
  peers: number
  wanted: number
  /** Wants waiting for an announcer with a free request slot. */
  unrequested: number
  /** Announcements tracked, summed over peers. */
  tracked: number
  inFlight: number
  duplicates: number
  unsolicited: number
  txsReceived: number
  blocksReceived: number
}

export class GossipEngine {
  readonly options: GossipOptions
  /** Bounded by the connection manager's peer limit. */
  private readonly peers = new Map<string, PeerState>()
  /** Bounded by maxWanted. */
  private readonly wanted = new Map<string, Want>()
  /**
   * Wants created by zero-stake announcers, at most UNSTAKED_CLASS_SHARE of maxWanted: identities
   * are free, and twenty that each announce their tracked allowance and never deliver would
   * otherwise fill the wanted set, and every later announcement (a validator's too) would be
   * dropped until their requests had timed out, ~100 s.
   */
  private unstakedWants = 0
  /**
   * Blocks delivered and being imported, with their other announcers not yet asked: if the copy
   * is refused or never completed (`blockCopyFailed`) they are asked in turn, as if it had never
   * come. BOUNDED: MAX_BLOCKS_AWAITING_VERDICT (LruMap: the least recently set go first).
   */
  private readonly awaitingVerdict = new LruMap<string, { hash: Uint8Array; announcers: string[] }>(MAX_BLOCKS_AWAITING_VERDICT)
  /** Wants whose next announcer is asked too at `at` if `from` has not answered by then (`hedgeAfterMs`). BOUNDED: MAX_PENDING_HEDGES; an entry goes with its want. */
  private readonly hedges = new Map<string, { at: number; from: string }>()
  /** Wants with no request out (every announcer busy or timed out); retried on tick. Subset of `wanted`. */
  private readonly unrequested = new Set<string>()
  /** Request deadlines in send order (timeouts are constant, so this is deadline order). Lazily pruned. */
  private timeouts: Array<{ deadline: number; peerId: string; hex: string }> = []
  private timeoutHead = 0
  private totalStake = 0n
  private readonly totals = { duplicates: 0, unsolicited: 0, txsReceived: 0, blocksReceived: 0 }
  /** Our sending budgets per peer (outboundTxItems, outboundInvItems). BOUNDED: MAX_LIMITER_KEYS peers; a peer's entry goes when it leaves. */
  private readonly txBudget: RateLimiterGCRA
  private readonly invBudget: RateLimiterGCRA
  private readonly messageBudget: RateLimiterGCRA

  constructor(
    private readonly host: GossipHost,
    options: Partial<GossipOptions> = {},
  ) {
    this.options = { ...DEFAULT_GOSSIP_OPTIONS, ...options }
    this.txBudget = new RateLimiterGCRA(this.options.outboundTxItems)
    this.invBudget = new RateLimiterGCRA(this.options.outboundInvItems)
    this.messageBudget = new RateLimiterGCRA(this.options.outboundMessages)
  }

  /** Every frame to a peer goes out here: it counts against the peer's message quota. */
  private send(peer: PeerState, message: GossipMessage, now: number): void {
    this.messageBudget.charge(peer.info.id, 1, now)
    this.host.send(peer.info.id, message)
  }

  /**
   * Sends `items` in frames of `per` while the peer's message budget lasts; returns what is left
   * (kept queued for a later flush).
   */
  private sendFramed<T>(peer: PeerState, items: T[], per: number, frame: (chunk: T[]) => GossipMessage, now: number): T[] {
    let sent = 0
    while (sent < items.length && this.messageBudget.available(peer.info.id, now) > 0) {
      this.send(peer, frame(items.slice(sent, sent + per)), now)
      sent += per
    }
    return sent >= items.length ? [] : items.slice(sent)
  }

  /** Total validator stake, for weights. */
  setTotalStake(totalStake: bigint): void {
    this.totalStake = totalStake
  }

  // ---------------------------------------------------------------- peers

  addPeer(info: GossipPeerInfo, now: number): void {
    if (this.peers.has(info.id)) return
    this.peers.set(info.id, {
      info,
      known: new LruSet(this.options.knownInventoryPerPeer),
      invQueue: [],
      lastInvFlushAt: now - this.options.announceBatchMs,
      pushTxs: [],
      pushCompact: [],
      pushVotes: [],
      getdataQueue: [],
      inFlight: new Map(),
      pendingCompact: new Map(),
      tracked: new Set(),
      counters: emptyCounters(),
    })
  }

  removePeer(peerId: string, now: number): void {
    const peer = this.peers.get(peerId)
    if (peer === undefined) return
    this.peers.delete(peerId)
    this.txBudget.forget(peerId)
    this.invBudget.forget(peerId)
    this.messageBudget.forget(peerId)
    // Whatever it was asked for goes to the next announcer.
    for (const hex of peer.inFlight.keys()) {
      const want = this.wanted.get(hex)
      if (want !== undefined && want.requestedFrom === peerId) {
        want.requestedFrom = undefined
        want.tried.add(peerId)
        this.request(want, now)
      }
    }
  }

  private report(peer: PeerState, code: GossipOffence, detail?: string): void {
    this.host.offence?.(peer.info.id, code, detail)
  }

  counters(peerId: string): PeerGossipCounters | undefined {
    return this.peers.get(peerId)?.counters
  }

  hasPeer(peerId: string): boolean {
    return this.peers.has(peerId)
  }

  /** Running totals of deliveries (cheap: the adapter reads them after every message). */
  deliveryTotals(): Readonly<{ duplicates: number; unsolicited: number; txsReceived: number; blocksReceived: number }> {
    return this.totals
  }

  stats(): GossipStats {
    let inFlight = 0
    let tracked = 0
    for (const peer of this.peers.values()) {
      inFlight += peer.inFlight.size
      tracked += peer.tracked.size
    }
    return { peers: this.peers.size, wanted: this.wanted.size, unrequested: this.unrequested.size, tracked, inFlight, ...this.totals }
  }

  /** Whether `peerId` is known to have the object (used by tests and by anti-entropy). */
  peerKnows(peerId: string, hashHex: string): boolean {
    return this.peers.get(peerId)?.known.has(hashHex) ?? false
  }

  // ---------------------------------------------------------------- publishing

  /**
   * A transaction entered the mempool. Originated here (`from` undefined): push to √peers and
   * announce to the rest. Relayed: announce only, never back to its sender.
   */
  relayTx(signed: SignedTx, from: string | undefined, now: number): void {
    const pushed = this.spread(signed.idHex, { kind: INV_TX, hash: signed.id }, from, from === undefined, (peer) => peer.pushTxs.push(signed), now)
    if (pushed) this.host.wake()
  }

  /**
   * The one relay rule: every peer that does not know `hex` (never its sender) learns of it —
   * in full through `push` for a √peers stake-weighted sample when `pushSome`, by `inv` for the
   * rest. Returns whether anything was pushed (the caller wakes the flush).
   */
  private spread(hex: string, item: InvItem, from: string | undefined, pushSome: boolean, push: (peer: PeerState) => void, now: number): boolean {
    this.forget(hex)
    const targets = this.eligible(hex, from)
    const pushTo = pushSome ? new Set(this.choosePush(targets)) : new Set<PeerState>()
    for (const peer of targets) {
      peer.known.add(hex)
      if (pushTo.has(peer)) {
        push(peer)
        peer.counters.pushesSent++
      } else {
        this.queueInv(peer, item, now)
      }
    }
    return pushTo.size > 0
  }

  /** A block was imported: compact block to √peers, announcement to the rest. */
  relayBlock(block: Block, hash: Uint8Array, from: string | undefined, now: number): void {
    this.awaitingVerdict.delete(toHexKey(hash))
    const txids = block.txs.map((signed) => signed.id)
    const pushed = this.spread(toHexKey(hash), { kind: INV_BLOCK, hash }, from, true, (peer) => peer.pushCompact.push({ header: block.header, txids }), now)
    if (pushed) this.host.wake()
  }

  // ---------------------------------------------------------------- finality (votes, evidence)

  /**
   * Votes entered the pool. Originated here (`from` undefined, this validator's own): pushed to
   * √peers and announced to the rest. Relayed: announced only, never back to the sender.
   */
  relayVotes(votes: readonly Vote[], from: string | undefined, now: number): void {
    let pushed = false
    for (const vote of votes) {
      const id = voteId(vote)
      if (this.spread(toHexKey(id), { kind: INV_VOTE, hash: id }, from, from === undefined, (peer) => peer.pushVotes.push(vote), now)) pushed = true
    }
    if (pushed) this.host.wake()
  }

  /**
   * A peer just admitted gets this validator's own votes above the finalized height: rumor only
   * spreads what is new, and a vote signed before the validator had any peer would reach nobody
   * (two validators that each voted alone before meeting can end on two chains, one finalized).
   */
  pushVotesTo(peerId: string, votes: readonly Vote[]): void {
    const peer = this.peers.get(peerId)
    if (peer === undefined) return
    let pushed = false
    for (const vote of votes) {
      const hex = toHexKey(voteId(vote))
      if (peer.known.has(hex)) continue
      peer.known.add(hex)
      peer.pushVotes.push(vote)
      pushed = true
    }
    if (pushed) this.host.wake()
  }

  /** New equivocation evidence: announced to every peer that does not know it (so once per link). */
  relayEvidence(evidence: Evidence, from: string | undefined, now: number): void {
    const id = evidenceId(evidence)
    const hex = toHexKey(id)
    this.forget(hex)
    for (const peer of this.eligible(hex, from)) {
      peer.known.add(hex)
      this.queueInv(peer, { kind: INV_EVIDENCE, hash: id }, now)
    }
  }

  private onVotes(peer: PeerState, votes: Vote[], solicited: boolean): void {
    const fresh: Vote[] = []
    for (const vote of votes) {
      const hex = toHexKey(voteId(vote))
      const requested = this.settle(peer, hex)
      if (solicited && !requested) {
        peer.counters.unsolicited++
        this.totals.unsolicited++
      }
      peer.counters.votesReceived++
      if (this.host.hasVote?.(hex) === true) {
        peer.counters.duplicates++
        this.totals.duplicates++
        continue
      }
      fresh.push(vote)
    }
    if (fresh.length > 0) this.host.deliverVotes?.(peer.info.id, fresh)
  }

  private onEvidence(peer: PeerState, items: Evidence[], solicited: boolean): void {
    const fresh: Evidence[] = []
    for (const evidence of items) {
      const hex = toHexKey(evidenceId(evidence))
      const requested = this.settle(peer, hex)
      if (solicited && !requested) {
        peer.counters.unsolicited++
        this.totals.unsolicited++
      }
      if (this.host.hasEvidence?.(hex) === true) continue
      fresh.push(evidence)
    }
    if (fresh.length > 0) this.host.deliverEvidence?.(peer.info.id, fresh)
  }

  /** Whether the host already has an announced item of a finality kind (votes, evidence). */
  private hasFinalityItem(kind: number, hex: string): boolean {
    if (kind === INV_VOTE) return this.host.hasVote === undefined || this.host.hasVote(hex)
    return this.host.hasEvidence === undefined || this.host.hasEvidence(hex)
  }

  // ---------------------------------------------------------------- end of finality

  private eligible(hex: string, from: string | undefined): PeerState[] {
    const out: PeerState[] = []
    for (const peer of this.peers.values()) {
      if (peer.info.id === from) {
        peer.known.add(hex)
        continue
      }
      if (!peer.known.has(hex)) out.push(peer)
    }
    return out
  }

  private choosePush(targets: PeerState[]): PeerState[] {
    const count = pushFanout(this.peers.size)
    // Class-capped: however many zero-stake peers there are, they get at most a third of each slot.
    return samplePeers(targets, count, this.totalStake, { stake: (peer) => peer.info.stake }, this.host.random)
  }

  private queueInv(peer: PeerState, item: InvItem, now: number): void {
    // Paced announcements back up behind a slow budget; past the cap the peer reconciles the rest.
    if (peer.invQueue.length >= this.options.maxQueuedInvPerPeer) return
    peer.invQueue.push(item)
    peer.counters.announcementsSent++
    // Idle link: the announcement leaves at once; otherwise it waits for the batch window.
    if (peer.invQueue.length >= MAX_INV_ITEMS || now - peer.lastInvFlushAt >= this.options.announceBatchMs) this.host.wake()
  }

  /**
   * The object arrived or was accepted: stop looking for it. A request already out stays in
   * flight until answered or timed out, so the asked peer's answer is not taken for unsolicited.
   */
  private forget(hex: string): void {
    const want = this.wanted.get(hex)
    if (want !== undefined) this.dropWant(want)
  }

  /** Stops tracking a want: it leaves the wanted set and every announcer's tracked set. */
  private dropWant(want: Want): void {
    if (this.wanted.delete(want.hex) && want.unstaked) this.unstakedWants--
    this.unrequested.delete(want.hex)
    this.hedges.delete(want.hex)
    for (const id of want.announcers) this.peers.get(id)?.tracked.delete(want.hex)
  }

  /** The peer was asked and failed (notfound, timeout, gone): its announcement no longer counts against it. */
  private markTried(want: Want, peerId: string): void {
    want.tried.add(peerId)
    this.peers.get(peerId)?.tracked.delete(want.hex)
  }

  /**
   * Asks one peer for a block outside the announce path (the parent of an orphan, a peer's
   * head). It becomes a normal want: if the peer fails, later announcers are asked.
   */
  requestFrom(peerId: string, hash: Uint8Array, now: number): void {
    const hex = toHexKey(hash)
    if (this.host.hasBlock(hex) || !this.peers.has(peerId)) return
    let want = this.wanted.get(hex)
    if (want === undefined) {
      if (this.wanted.size >= this.options.maxWanted) return
      want = { kind: INV_BLOCK, hash: new Uint8Array(hash), hex, announcers: [], tried: new Set(), requestedFrom: undefined, requestedAt: 0, unstaked: false }
      this.wanted.set(hex, want)
    }
    if (!want.announcers.includes(peerId)) want.announcers.unshift(peerId)
    // The last announcer drops off: its announcement no longer counts against its allowance.
    for (const dropped of want.announcers.splice(this.options.maxAnnouncersPerItem)) this.peers.get(dropped)?.tracked.delete(hex)
    if (want.requestedFrom === undefined) this.request(want, now)
  }

  // ---------------------------------------------------------------- inbound

  onMessage(peerId: string, message: GossipMessage, now: number): void {
    const peer = this.peers.get(peerId)
    if (peer === undefined) return
    switch (message.type) {
      case 'inv':
        return this.onInv(peer, message.items, now)
      case 'getdata':
        return this.onGetData(peer, message.items, now)
      case 'notfound':
        return this.onNotFound(peer, message.items, now)
      case 'txs':
        return this.onTxs(peer, message.txs, message.solicited)
      case 'block':
        return this.onBlock(peer, message.block, message.solicited)
      case 'cmpctblock':
        return this.onCompactBlock(peer, message.header, message.txids, message.solicited, now)
      case 'getblocktxn':
        return this.onGetBlockTxn(peer, message.blockHash, message.indexes, now)
      case 'blocktxn':
        return this.onBlockTxn(peer, message.blockHash, message.txs, now)
      case 'votes':
        return this.onVotes(peer, message.votes, message.solicited)
      case 'evidence':
        return this.onEvidence(peer, message.evidence, message.solicited)
    }
  }

  private onInv(peer: PeerState, items: InvItem[], now: number): void {
    peer.counters.announcementsReceived += items.length
    let dropped = 0
    for (const item of items) {
      const hex = toHexKey(item.hash)
      peer.known.add(hex)
      if (item.kind === INV_VOTE || item.kind === INV_EVIDENCE) {
        if (this.hasFinalityItem(item.kind, hex)) continue
      } else if (item.kind !== INV_TX && item.kind !== INV_BLOCK) continue
      else if (item.kind === INV_TX ? this.host.hasTx(hex) : this.host.hasBlock(hex)) continue
      let want = this.wanted.get(hex)
      if (want !== undefined && (want.announcers.includes(peer.info.id) || want.tried.has(peer.info.id))) continue
      // Per-peer cap: an inv flood fills only the flooder's own allowance, never the wanted set.
      if (peer.tracked.size >= this.options.maxTrackedAnnouncementsPerPeer) {
        dropped++
        continue
      }
      if (want === undefined) {
        if (this.wanted.size >= this.options.maxWanted) continue
        const unstaked = peer.info.stake === 0n
        if (unstaked && this.unstakedWants >= Math.floor(this.options.maxWanted * UNSTAKED_CLASS_SHARE)) continue
        want = { kind: item.kind, hash: new Uint8Array(item.hash), hex, announcers: [], tried: new Set(), requestedFrom: undefined, requestedAt: 0, unstaked }
        this.wanted.set(hex, want)
        if (unstaked) this.unstakedWants++
      }
      if (want.announcers.length < this.options.maxAnnouncersPerItem) {
        want.announcers.push(peer.info.id)
        peer.tracked.add(hex)
      } else this.replaceAnnouncer(want, peer)
      if (want.requestedFrom === undefined) this.request(want, now)
      else this.scheduleHedge(want)
    }
    if (dropped > 0) {
      peer.counters.announcementsDropped += dropped
      this.report(peer, 'ANNOUNCEMENTS_OVERFLOW', `${dropped} announcements past ${this.options.maxTrackedAnnouncementsPerPeer} tracked`)
    }
  }

  /** Asks the best untried announcer; leaves the want unrequested if all are busy. */
  private request(want: Want, now: number): void {
    let best: PeerState | undefined
    for (const id of want.announcers) {
      if (want.tried.has(id)) continue
      const candidate = this.peers.get(id)
      if (candidate === undefined || candidate.inFlight.size >= this.options.maxInFlightPerPeer) continue
      if (best === undefined || this.preferredForRequest(candidate, best)) best = candidate
    }
    if (best === undefined) {
      const untried = want.announcers.some((id) => !want.tried.has(id) && this.peers.has(id))
      if (untried) this.unrequested.add(want.hex)
      else {
        // Every announcer failed: rumor gives up; anti-entropy repairs it later.
        this.dropWant(want)
      }
      return
    }
    this.unrequested.delete(want.hex)
    want.requestedFrom = best.info.id
    want.requestedAt = now
    best.inFlight.set(want.hex, now + this.options.requestTimeoutMs)
    this.timeouts.push({ deadline: now + this.options.requestTimeoutMs, peerId: best.info.id, hex: want.hex })
    best.getdataQueue.push({ kind: want.kind === INV_BLOCK ? INV_COMPACT_BLOCK : want.kind, hash: want.hash })
    best.counters.requestsSent++
    this.host.wake()
    this.scheduleHedge(want)
  }

  /**
   * The announcer list is full: `peer` takes the place of a gone announcer, or of the least
   * preferred one not yet asked, if it is preferred over it. Otherwise eight zero-stake
   * identities that announce first and never deliver would keep every validator's announcement
   * out, and the object would wait out eight request timeouts and then be left to anti-entropy.
   */
  private replaceAnnouncer(want: Want, peer: PeerState): void {
    let index = -1
    let worst: PeerState | undefined
    for (const [i, id] of want.announcers.entries()) {
      if (want.tried.has(id) || want.requestedFrom === id) continue
      const announcer = this.peers.get(id)
      if (announcer === undefined) {
        index = i
        worst = undefined
        break
      }
      if (worst === undefined || this.preferredForRequest(worst, announcer)) {
        index = i
        worst = announcer
      }
    }
    if (index < 0 || (worst !== undefined && !this.preferredForRequest(peer, worst))) return
    this.peers.get(want.announcers[index] as string)?.tracked.delete(want.hex)
    want.announcers[index] = peer.info.id
    peer.tracked.add(want.hex)
  }

  /** A request is out for `want`: if another announcer is left to ask, it is asked too once the request has waited `hedgeAfterMs`. */
  private scheduleHedge(want: Want): void {
    const from = want.requestedFrom
    if (from === undefined || this.hedges.get(want.hex)?.from === from) return
    if (!want.announcers.some((id) => id !== from && !want.tried.has(id) && this.peers.has(id))) return
    if (!this.hedges.has(want.hex) && this.hedges.size >= MAX_PENDING_HEDGES) return
    this.hedges.set(want.hex, { at: want.requestedAt + this.options.hedgeAfterMs, from })
  }

  /** Hedges whose time has come: the want still waits on the same peer, so the best announcer not yet asked is asked too. */
  private runHedges(now: number): void {
    for (const [hex, hedge] of this.hedges) {
      if (hedge.at > now) continue
      this.hedges.delete(hex)
      const want = this.wanted.get(hex)
      if (want === undefined || want.requestedFrom !== hedge.from) continue
      // Its request stays in flight (a late answer is one we asked for); it is not asked again.
      want.requestedFrom = undefined
      this.markTried(want, hedge.from)
      this.request(want, now)
    }
  }

  /** Outbound before inbound, then higher stake. */
  private preferredForRequest(a: PeerState, b: PeerState): boolean {
    if (a.info.outbound !== b.info.outbound) return a.info.outbound
    return a.info.stake > b.info.stake
  }

  private onGetData(peer: PeerState, items: InvItem[], now: number): void {
    peer.counters.requestsReceived += items.length
    const txs: SignedTx[] = []
    const votes: Vote[] = []
    const evidence: Evidence[] = []
    const missing: InvItem[] = []
    for (const item of items) {
      const hex = toHexKey(item.hash)
      peer.known.add(hex)
      if (item.kind === INV_VOTE || item.kind === INV_EVIDENCE) {
        const found = item.kind === INV_VOTE ? this.host.getVote?.(hex) : this.host.getEvidence?.(hex)
        if (found === undefined) missing.push(item)
        else if (item.kind === INV_VOTE) votes.push(found as Vote)
        else evidence.push(found as Evidence)
      } else if (item.kind === INV_TX) {
        const signed = this.host.getTx(hex)
        if (signed === undefined) missing.push(item)
        else txs.push(signed)
      } else {
        const block = this.host.getBlock(hex)
        if (block === undefined) missing.push(item)
        else if (item.kind === INV_COMPACT_BLOCK) {
          this.send(peer, { type: 'cmpctblock', solicited: true, header: block.header, txids: block.txs.map((signed) => signed.id) }, now)
        } else {
          this.send(peer, { type: 'block', solicited: true, block }, now)
        }
      }
    }
    // Answers leave at once; the txs count against what we may push it (the peer counts both).
    if (txs.length > 0) this.txBudget.charge(peer.info.id, txs.length, now)
    for (let i = 0; i < txs.length; i += MAX_TXS_PER_MESSAGE) {
      this.send(peer, { type: 'txs', solicited: true, txs: txs.slice(i, i + MAX_TXS_PER_MESSAGE) }, now)
    }
    for (let i = 0; i < votes.length; i += MAX_VOTES_PER_MESSAGE) {
      this.send(peer, { type: 'votes', solicited: true, votes: votes.slice(i, i + MAX_VOTES_PER_MESSAGE) }, now)
    }
    for (let i = 0; i < evidence.length; i += MAX_EVIDENCE_PER_MESSAGE) {
      this.send(peer, { type: 'evidence', solicited: true, evidence: evidence.slice(i, i + MAX_EVIDENCE_PER_MESSAGE) }, now)
    }
    if (missing.length > 0) this.send(peer, { type: 'notfound', items: missing }, now)
  }

  private onNotFound(peer: PeerState, items: InvItem[], now: number): void {
    let unsolicited = 0
    let undelivered = 0
    for (const item of items) {
      const hex = toHexKey(item.hash)
      // The answer to a getblocktxn for a block the peer no longer has: its other announcers are asked.
      if (peer.pendingCompact.delete(hex)) {
        peer.inFlight.delete(hex)
        peer.counters.notFoundReceived++
        this.blockCopyFailed(hex, now)
        continue
      }
      if (!peer.inFlight.delete(hex)) {
        peer.counters.unsolicited++
        this.totals.unsolicited++
        unsolicited++
        continue
      }
      peer.counters.notFoundReceived++
      undelivered++
      const want = this.wanted.get(hex)
      if (want !== undefined && want.requestedFrom === peer.info.id) {
        want.requestedFrom = undefined
        this.markTried(want, peer.info.id)
        this.request(want, now)
      }
    }
    if (unsolicited > 0) this.report(peer, 'GOSSIP_UNSOLICITED', `notfound for ${unsolicited} items never asked`)
    if (undelivered > 0) this.report(peer, 'GOSSIP_NOT_DELIVERED', `notfound for ${undelivered} announced items`)
  }

  /** Settles a delivery: clears the request and reports whether it was asked for. */
  private settle(peer: PeerState, hex: string): boolean {
    peer.known.add(hex)
    const requested = peer.inFlight.delete(hex)
    this.forget(hex)
    return requested
  }

  private onTxs(peer: PeerState, txs: SignedTx[], solicited: boolean): void {
    const fresh: SignedTx[] = []
    let unsolicited = 0
    let duplicates = 0
    for (const signed of txs) {
      const requested = this.settle(peer, signed.idHex)
      if (solicited && !requested) {
        peer.counters.unsolicited++
        this.totals.unsolicited++
        unsolicited++
      }
      peer.counters.txsReceived++
      this.totals.txsReceived++
      if (this.host.hasTx(signed.idHex)) {
        peer.counters.duplicates++
        this.totals.duplicates++
        // A copy we asked for that another peer beat is our race, not the sender's fault.
        if (!requested) duplicates++
        continue
      }
      fresh.push(signed)
    }
    if (unsolicited > 0) this.report(peer, 'GOSSIP_UNSOLICITED', `${unsolicited} txs marked solicited, never asked`)
    if (duplicates > 0) this.report(peer, 'GOSSIP_DUPLICATE', `${duplicates} txs already known`)
    if (fresh.length > 0) this.host.deliverTxs(peer.info.id, fresh)
  }

  /** Accounts for a block copy (full or compact); true when the block is new here. */
  private receiveBlockCopy(peer: PeerState, hex: string, solicited: boolean): boolean {
    const want = this.wanted.get(hex)
    const requested = this.settle(peer, hex)
    if (solicited && !requested) {
      peer.counters.unsolicited++
      this.totals.unsolicited++
      this.report(peer, 'GOSSIP_UNSOLICITED', 'block marked solicited, never asked')
    }
    peer.counters.blocksReceived++
    this.totals.blocksReceived++
    if (this.host.hasBlock(hex)) {
      peer.counters.duplicates++
      this.totals.duplicates++
      if (!requested) this.report(peer, 'GOSSIP_DUPLICATE', 'block already known')
      return false
    }
    const others = want?.announcers.filter((id) => id !== peer.info.id && !want.tried.has(id)) ?? []
    if (others.length > 0) this.awaitingVerdict.set(hex, { hash: (want as Want).hash, announcers: others })
    return true
  }

  /**
   * The block copy delivered as `hashHex` failed: the node refused it (its body is not the one
   * its header commits to, or its header no leader signed), or its sender never completed it
   * (getblocktxn timed out or answered notfound). The announcers not yet asked are asked in turn,
   * as if the copy had never come, so one bad copy does not end the search for the genuine block.
   */
  blockCopyFailed(hashHex: string, now: number): void {
    const waiting = this.awaitingVerdict.peek(hashHex)
    if (waiting === undefined) return
    this.awaitingVerdict.delete(hashHex)
    if (this.host.hasBlock(hashHex) || this.wanted.has(hashHex) || this.wanted.size >= this.options.maxWanted) return
    const announcers = waiting.announcers.filter((id) => this.peers.has(id))
    if (announcers.length === 0) return
    const want: Want = { kind: INV_BLOCK, hash: waiting.hash, hex: hashHex, announcers, tried: new Set(), requestedFrom: undefined, requestedAt: 0, unstaked: false }
    this.wanted.set(hashHex, want)
    for (const id of announcers) this.peers.get(id)?.tracked.add(hashHex)
    this.request(want, now)
  }

  private onBlock(peer: PeerState, block: Block, solicited: boolean): void {
    if (this.receiveBlockCopy(peer, toHexKey(headerHash(block.header)), solicited)) this.host.deliverBlock(peer.info.id, block)
  }

  private onCompactBlock(peer: PeerState, header: Header, txids: Uint8Array[], solicited: boolean, now: number): void {
    const hash = headerHash(header)
    const hex = toHexKey(hash)
    if (!this.receiveBlockCopy(peer, hex, solicited)) return
    if (txids.length !== header.txCount) {
      // The header commits to the count; a mismatch is the sender's fault.
      peer.counters.invalid++
      this.report(peer, 'COMPACT_BLOCK_INVALID', `${txids.length} txids for a header counting ${header.txCount}`)
      return
    }
    const txs: Array<SignedTx | undefined> = txids.map((id) => this.host.getTx(toHexKey(id)))
    const missing: number[] = []
    txs.forEach((signed, index) => {
      if (signed === undefined) missing.push(index)
    })
    if (missing.length === 0) {
      this.host.deliverBlock(peer.info.id, { header, txs: txs as SignedTx[] })
      return
    }
    if (peer.pendingCompact.size >= this.options.maxPendingCompactPerPeer) {
      const oldest = peer.pendingCompact.keys().next()
      if (!oldest.done) peer.pendingCompact.delete(oldest.value)
    }
    peer.pendingCompact.set(hex, { header, txids, txs, missing })
    this.send(peer, { type: 'getblocktxn', blockHash: hash, indexes: missing }, now)
    // Tracked like any request: a sender that never completes its compact block times out, and
    // the block's other announcers are asked (`blockCopyFailed`).
    const deadline = now + this.options.requestTimeoutMs
    peer.inFlight.set(hex, deadline)
    this.timeouts.push({ deadline, peerId: peer.info.id, hex })
  }

  private onGetBlockTxn(peer: PeerState, blockHash: Uint8Array, indexes: number[], now: number): void {
    peer.counters.requestsReceived++
    const block = this.host.getBlock(toHexKey(blockHash))
    if (block === undefined || indexes.some((index) => index >= block.txs.length)) {
      this.send(peer, { type: 'notfound', items: [{ kind: INV_BLOCK, hash: blockHash }] }, now)
      return
    }
    this.send(peer, { type: 'blocktxn', blockHash, txs: indexes.map((index) => block.txs[index] as SignedTx) }, now)
  }

  private onBlockTxn(peer: PeerState, blockHash: Uint8Array, txs: SignedTx[], now: number): void {
    const hex = toHexKey(blockHash)
    const pending = peer.pendingCompact.get(hex)
    if (pending === undefined) {
      peer.counters.unsolicited++
      this.totals.unsolicited++
      this.report(peer, 'GOSSIP_UNSOLICITED', 'blocktxn for no pending compact block')
      return
    }
    peer.pendingCompact.delete(hex)
    peer.inFlight.delete(hex)
    let consistent = txs.length === pending.missing.length
    if (consistent) {
      pending.missing.forEach((index, position) => {
        const signed = txs[position] as SignedTx
        if (!bytesEqual(signed.id, pending.txids[index] as Uint8Array)) consistent = false
        pending.txs[index] = signed
      })
    }
    if (!consistent) {
      // Fall back to the full block from the same peer, tracked like any request.
      peer.counters.invalid++
      this.report(peer, 'COMPACT_BLOCK_INVALID', 'blocktxn does not fill the compact block')
      const deadline = now + this.options.requestTimeoutMs
      peer.inFlight.set(hex, deadline)
      this.timeouts.push({ deadline, peerId: peer.info.id, hex })
      peer.getdataQueue.push({ kind: INV_BLOCK, hash: blockHash })
      peer.counters.requestsSent++
      this.host.wake()
      return
    }
    this.host.deliverBlock(peer.info.id, { header: pending.header, txs: pending.txs as SignedTx[] })
  }

  // ---------------------------------------------------------------- time

  /** Expires requests, retries waiting wants and flushes batches whose window ended. */
  tick(now: number): void {
    /** BOUNDED: by the peers (one count each), for one tick. */
    const expired = new Map<PeerState, number>()
    while (this.timeoutHead < this.timeouts.length) {
      const entry = this.timeouts[this.timeoutHead] as { deadline: number; peerId: string; hex: string }
      if (entry.deadline > now) break
      this.timeoutHead++
      const peer = this.peers.get(entry.peerId)
      if (peer === undefined || peer.inFlight.get(entry.hex) !== entry.deadline) continue
      peer.inFlight.delete(entry.hex)
      peer.counters.requestTimeouts++
      expired.set(peer, (expired.get(peer) ?? 0) + 1)
      const want = this.wanted.get(entry.hex)
      if (want !== undefined && want.requestedFrom === entry.peerId) {
        want.requestedFrom = undefined
        this.markTried(want, entry.peerId)
        this.request(want, now)
      } else if (want === undefined) {
        // A block copy this peer delivered and did not complete (getblocktxn, or the full block
        // after a bad blocktxn); not an announcer whose request was overtaken by another's copy.
        peer.pendingCompact.delete(entry.hex)
        if (this.awaitingVerdict.peek(entry.hex)?.announcers.includes(entry.peerId) === false) this.blockCopyFailed(entry.hex, now)
      }
    }
    for (const [peer, count] of expired) this.report(peer, 'GOSSIP_NOT_DELIVERED', `${count} requests timed out`)
    this.runHedges(now)
    if (this.timeoutHead > 4096 && this.timeoutHead * 2 > this.timeouts.length) {
      this.timeouts = this.timeouts.slice(this.timeoutHead)
      this.timeoutHead = 0
    }
    // Bounded retry: the oldest waiting wants first; one still waiting goes to the back (request()
    // re-adds it), so the whole set is visited in turn however large an inv flood made it.
    const batch: string[] = []
    for (const hex of this.unrequested) {
      if (batch.length >= this.options.maxRetriesPerTick) break
      batch.push(hex)
    }
    for (const hex of batch) {
      this.unrequested.delete(hex)
      const want = this.wanted.get(hex)
      if (want !== undefined && want.requestedFrom === undefined) this.request(want, now)
    }
    this.flush(now)
  }

  /**
   * Sends what is queued: compact blocks and votes at once; requests and pushes, and
   * announcements when the peer's batch window has ended, within the peer's budgets — what does
   * not fit waits for the next flush.
   */
  flush(now: number): void {
    for (const peer of this.peers.values()) {
      const id = peer.info.id
      // Consensus never waits: blocks and votes go out at once (a few frames per slot; the debt
      // they may leave is paid by the bulk below waiting), so a burst of tx traffic cannot hold
      // back a block or finality.
      for (const compact of peer.pushCompact) this.send(peer, { type: 'cmpctblock', solicited: false, header: compact.header, txids: compact.txids }, now)
      peer.pushCompact = []
      for (let i = 0; i < peer.pushVotes.length; i += MAX_VOTES_PER_MESSAGE) this.send(peer, { type: 'votes', solicited: false, votes: peer.pushVotes.slice(i, i + MAX_VOTES_PER_MESSAGE) }, now)
      peer.pushVotes = []
      peer.getdataQueue = this.sendFramed(peer, peer.getdataQueue, MAX_GETDATA_ITEMS, (items) => ({ type: 'getdata', items }), now)
      if (peer.pushTxs.length > 0) {
        // Within the peer's tx quota; the rest waits to be pushed later. Not announced instead:
        // thousands of announcements at once pass the peer's tracked-announcement cap, which it
        // charges as an inv flood (ANNOUNCEMENTS_OVERFLOW) — two validators graylisted each other so.
        if (peer.pushTxs.length > this.options.maxQueuedPushesPerPeer) {
          const dropped = peer.pushTxs.length - this.options.maxQueuedPushesPerPeer
          peer.pushTxs = peer.pushTxs.slice(0, this.options.maxQueuedPushesPerPeer)
          peer.counters.pushesSent -= dropped
        }
        const allowed = Math.min(peer.pushTxs.length, this.txBudget.available(id, now))
        const left = this.sendFramed(peer, peer.pushTxs.slice(0, allowed), MAX_TXS_PER_MESSAGE, (txs) => ({ type: 'txs', solicited: false, txs }), now)
        const sent = allowed - left.length
        if (sent > 0) this.txBudget.allows(id, sent, now)
        peer.pushTxs = peer.pushTxs.slice(sent)
      }
      const windowEnded = now - peer.lastInvFlushAt >= this.options.announceBatchMs
      if (peer.invQueue.length > 0 && (windowEnded || peer.invQueue.length >= MAX_INV_ITEMS)) {
        // Within the peer's announcement quota; the rest waits for a later flush (every tick).
        const allowed = Math.min(peer.invQueue.length, this.invBudget.available(id, now))
        if (allowed > 0) {
          const left = this.sendFramed(peer, peer.invQueue.slice(0, allowed), MAX_INV_ITEMS, (items) => ({ type: 'inv', items }), now)
          const sent = allowed - left.length
          if (sent > 0) {
            this.invBudget.allows(id, sent, now)
            peer.invQueue = peer.invQueue.slice(sent)
            peer.lastInvFlushAt = now
          }
        }
      }
    }
  }
}
