/**
 * The dashboard's figures: what a node reports now (status, peers, sync, mempool fees, gossip
 * totals) plus short histories kept here from the node's events (tx/s, inclusion latency, recent
 * blocks, recent bans). Served as one JSON snapshot through the WebSocket `stats` subscription
 * and the `node_dashboard` method. Every history has a fixed size.
 */
import type { NodeStatusView } from './backend.ts'
import type { HeadEvent, RpcEvents } from './events.ts'
import { LruMap } from '../util/lru.ts'

export interface DashboardSources {
  status(): NodeStatusView
  /** `net_peers` views (read as JSON: their shape belongs to src/net). */
  peers?(): unknown[]
  syncStatus?(): unknown
  /** Fees of pending transactions; read up to `maxFeeSample` of them. */
  pendingFees?(): Iterable<bigint>
  /** Gossip totals since start. */
  gossipTotals?(): Promise<GossipTotals> | GossipTotals
  /** Round-trip time to a peer, when the transport measured one. */
  peerRttMs?(peerId: string): number | undefined
}

export interface GossipTotals {
  duplicates: number
  bytesIn: number
  bytesOut: number
}

export interface DashboardOptions {
  /** Seconds of tx/s and latency history (default 300: five minutes). */
  historySeconds?: number
  /** Recent blocks listed (default 20). */
  recentBlocks?: number
  /** First-seen times remembered for inclusion latency (default 100,000 txids). */
  maxTrackedTxs?: number
  /** Pending fees read for the fee levels (default 5,000). */
  maxFeeSample?: number
  /** A head older than this is reported stalled (default 10 s, or 5 block intervals if longer). */
  stalledAfterMs?: number
  /** Fewer admitted peers than this is a warning (default 2). */
  minPeers?: number
  /** How long a ban stays in the warnings (default 10 minutes). */
  banWarningMs?: number
  now?: () => number
}

export interface PeerSummary {
  peerId: string
  direction: string
  stake: string
  validator?: string
  score: number | null
  addresses: string[]
  /** The /16 of an IPv4 remote address (/32 of IPv6): peers in one group may share an operator. */
  addressGroup: string | null
  bytesIn: number
  bytesOut: number
  rttMs: number | null
  headHeight: number | null
  connectedSeconds: number | null
}

export interface RecentBlock {
  height: number
  hash: string
  txCount: number
  proposer: string
  timestamp: number
  receivedAt: number
}

export interface Warning {
  code: 'HEAD_STALLED' | 'FEW_PEERS' | 'PEERS_BANNED' | 'SYNCING'
  message: string
}

export interface FeeLevels {
  sampled: number
  min: string | null
  p50: string | null
  p90: string | null
  max: string | null
}

export interface DashboardSnapshot {
  now: number
  node: NodeStatusView
  finalizedHeight: number
  lastBlockAt: number | null
  msSinceLastBlock: number | null
  peers: PeerSummary[]
  mempool: { size: number; bytes: number; fees: FeeLevels }
  /** One entry per second, oldest first, ending at `seriesEnd` (seconds since the epoch); since start, 60 s to historySeconds long. */
  series: { seriesEnd: number; txIncluded: number[]; txPending: number[]; latencyAvgMs: Array<number | null>; latencyMaxMs: Array<number | null> }
  gossip: GossipTotals & { txsSeen: number; bytesInPerTx: number | null; duplicatesPerTx: number | null }
  sync: unknown
  recentBlocks: RecentBlock[]
  /** The latest transaction to enter the mempool here (the devnet page follows it). */
  lastTxid: string | null
  warnings: Warning[]
}

interface Bucket {
  second: number
  txIncluded: number
  txPending: number
  latencySumMs: number
  latencyCount: number
  latencyMaxMs: number
}

const EMPTY_GOSSIP: GossipTotals = { duplicates: 0, bytesIn: 0, bytesOut: 0 }

export class DashboardStats {
  private readonly historySeconds: number
  private readonly recentLimit: number
  private readonly maxFeeSample: number
  private readonly now: () => number
  /** Ring of per-second buckets: BOUNDED by historySeconds. */
  private readonly buckets: Bucket[]
  /** BOUNDED: recentBlocks entries, newest first. */
  private readonly recent: RecentBlock[] = []
  /** txid → first seen here (ms); BOUNDED by maxTrackedTxs (two-generation LRU). */
  private readonly firstSeen: LruMap<string, number>
  /** peerId → ban time (ms); BOUNDED by MAX_BANS_TRACKED and by expiry after banWarningMs. */
  private readonly bans = new Map<string, number>()
  private lastBlockAt: number | null = null
  private lastTxid: string | null = null
  private txsSeen = 0
  /** Seconds before this are not shown (nothing was recorded then), except for a 60 s minimum. */
  private readonly startSecond: number
  private readonly unsubscribe: Array<() => void>

  constructor(
    private readonly events: RpcEvents,
    private readonly sources: DashboardSources,
    private readonly options: DashboardOptions = {},
  ) {
    this.historySeconds = options.historySeconds ?? 300
    this.recentLimit = options.recentBlocks ?? 20
    this.maxFeeSample = options.maxFeeSample ?? 5_000
    this.now = options.now ?? Date.now
    this.buckets = Array.from({ length: this.historySeconds }, () => ({ second: -1, txIncluded: 0, txPending: 0, latencySumMs: 0, latencyCount: 0, latencyMaxMs: 0 }))
    this.firstSeen = new LruMap(options.maxTrackedTxs ?? 100_000)
    this.startSecond = Math.floor(this.now() / 1000)
    this.unsubscribe = [
      events.on('head', (head) => this.onHead(head)),
      events.on('tx', (event) => {
        const now = this.now()
        if (event.status === 'pending' && event.reorged !== true) {
          if (this.firstSeen.get(event.txid) === undefined) {
            this.firstSeen.set(event.txid, now)
            this.bucket(now).txPending++
            this.txsSeen++
            this.lastTxid = event.txid
          }
        } else if (event.status === 'included') {
          const bucket = this.bucket(now)
          bucket.txIncluded++
          const seen = this.firstSeen.get(event.txid)
          if (seen !== undefined) {
            const latency = Math.max(0, now - seen)
            bucket.latencySumMs += latency
            bucket.latencyCount++
            bucket.latencyMaxMs = Math.max(bucket.latencyMaxMs, latency)
            this.firstSeen.delete(event.txid)
          }
        }
      }),
      events.on('peer', (peer) => {
        if (peer.event !== 'disconnected' || peer.banned !== true) return
        if (this.bans.size >= MAX_BANS_TRACKED) this.pruneBans(true)
        this.bans.set(peer.peerId, this.now())
      }),
    ]
  }

  close(): void {
    for (const off of this.unsubscribe) off()
  }

  private bucket(nowMs: number): Bucket {
    const second = Math.floor(nowMs / 1000)
    const bucket = this.slot(second)
    if (bucket.second !== second) {
      bucket.second = second
      bucket.txIncluded = 0
      bucket.txPending = 0
      bucket.latencySumMs = 0
      bucket.latencyCount = 0
      bucket.latencyMaxMs = 0
    }
    return bucket
  }

  private slot(second: number): Bucket {
    return this.buckets[((second % this.historySeconds) + this.historySeconds) % this.historySeconds] as Bucket
  }

  private onHead(head: HeadEvent): void {
    this.lastBlockAt = head.receivedAt
    // A reorg replaces the tail: drop the blocks at or above the new head's height first.
    while (this.recent.length > 0 && (this.recent[0] as RecentBlock).height >= head.height) this.recent.shift()
    this.recent.unshift({ height: head.height, hash: head.hash, txCount: head.txCount, proposer: head.proposer, timestamp: head.timestamp, receivedAt: head.receivedAt })
    if (this.recent.length > this.recentLimit) this.recent.length = this.recentLimit
  }

  private pruneBans(force: boolean): void {
    const cutoff = this.now() - (this.options.banWarningMs ?? 10 * 60_000)
    for (const [peerId, at] of this.bans) if (at < cutoff) this.bans.delete(peerId)
    if (force && this.bans.size >= MAX_BANS_TRACKED) {
      const oldest = this.bans.keys().next()
      if (oldest.done !== true) this.bans.delete(oldest.value)
    }
  }

  private feeLevels(): FeeLevels {
    const fees: bigint[] = []
    if (this.sources.pendingFees !== undefined) {
      for (const fee of this.sources.pendingFees()) {
        fees.push(fee)
        if (fees.length >= this.maxFeeSample) break
      }
    }
    if (fees.length === 0) return { sampled: 0, min: null, p50: null, p90: null, max: null }
    fees.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    const at = (q: number) => (fees[Math.min(fees.length - 1, Math.floor(q * fees.length))] as bigint).toString()
    return { sampled: fees.length, min: at(0), p50: at(0.5), p90: at(0.9), max: at(1) }
  }

  async snapshot(): Promise<DashboardSnapshot> {
    const now = this.now()
    const node = this.sources.status()
    const peers = (this.sources.peers?.() ?? []).map((view) => peerSummary(view, this.sources.peerRttMs))
    const sync = this.sources.syncStatus?.() ?? null
    const gossipTotals = (await this.sources.gossipTotals?.()) ?? EMPTY_GOSSIP
    const seriesEnd = Math.floor(now / 1000)
    const txIncluded: number[] = []
    const txPending: number[] = []
    const latencyAvgMs: Array<number | null> = []
    const latencyMaxMs: Array<number | null> = []
    const firstSecond = Math.max(seriesEnd - this.historySeconds + 1, Math.min(this.startSecond, seriesEnd - 59))
    for (let second = firstSecond; second <= seriesEnd; second++) {
      const bucket = this.slot(second)
      const live = bucket.second === second
      txIncluded.push(live ? bucket.txIncluded : 0)
      txPending.push(live ? bucket.txPending : 0)
      latencyAvgMs.push(live && bucket.latencyCount > 0 ? Math.round(bucket.latencySumMs / bucket.latencyCount) : null)
      latencyMaxMs.push(live && bucket.latencyCount > 0 ? bucket.latencyMaxMs : null)
    }
    this.pruneBans(false)
    const msSinceLastBlock = this.lastBlockAt === null ? null : now - this.lastBlockAt
    return {
      now,
      node,
      finalizedHeight: this.events.finalizedHeight(),
      lastBlockAt: this.lastBlockAt,
      msSinceLastBlock,
      peers,
      mempool: { size: node.mempoolSize, bytes: node.mempoolBytes, fees: this.feeLevels() },
      series: { seriesEnd, txIncluded, txPending, latencyAvgMs, latencyMaxMs },
      gossip: {
        ...gossipTotals,
        txsSeen: this.txsSeen,
        bytesInPerTx: this.txsSeen === 0 ? null : Math.round(gossipTotals.bytesIn / this.txsSeen),
        duplicatesPerTx: this.txsSeen === 0 ? null : Math.round((gossipTotals.duplicates / this.txsSeen) * 100) / 100,
      },
      sync,
      recentBlocks: [...this.recent],
      lastTxid: this.lastTxid,
      warnings: this.warnings(now, node, peers.length, sync),
    }
  }

  private warnings(now: number, node: NodeStatusView, peerCount: number, sync: unknown): Warning[] {
    const out: Warning[] = []
    const stalledAfter = Math.max(this.options.stalledAfterMs ?? 10_000, 5 * this.blockIntervalMs())
    const since = this.lastBlockAt === null ? null : now - this.lastBlockAt
    if (since !== null && since > stalledAfter) out.push({ code: 'HEAD_STALLED', message: `no new head for ${Math.round(since / 1000)} s (height ${node.height})` })
    const minPeers = this.options.minPeers ?? 2
    if (node.peers !== undefined && peerCount < minPeers) out.push({ code: 'FEW_PEERS', message: `${peerCount} peer${peerCount === 1 ? '' : 's'} connected (fewer than ${minPeers})` })
    if (this.bans.size > 0) out.push({ code: 'PEERS_BANNED', message: `${this.bans.size} peer${this.bans.size === 1 ? '' : 's'} banned in the last ${Math.round((this.options.banWarningMs ?? 600_000) / 60_000)} min` })
    const phase = typeof sync === 'object' && sync !== null ? (sync as { phase?: unknown }).phase : undefined
    if (phase === 'headers' || phase === 'state' || phase === 'blocks') out.push({ code: 'SYNCING', message: `catching up (${phase})` })
    return out
  }

  /** Median gap between the recent blocks' timestamps (0 when unknown). */
  private blockIntervalMs(): number {
    const gaps: number[] = []
    for (let i = 0; i + 1 < this.recent.length; i++) gaps.push((this.recent[i] as RecentBlock).timestamp - (this.recent[i + 1] as RecentBlock).timestamp)
    if (gaps.length === 0) return 0
    gaps.sort((a, b) => a - b)
    return gaps[Math.floor(gaps.length / 2)] as number
  }
}

/** Bans remembered for the warning (a flood of bans is itself shown by the count reaching it). */
const MAX_BANS_TRACKED = 1_024

function numberField(view: Record<string, unknown>, name: string): number | null {
  const value = view[name]
  return typeof value === 'number' && Number.isFinite(value) ? value : null
}

/** Reads a `net_peers` view defensively: a field that is missing or of another type becomes null. */
export function peerSummary(raw: unknown, rtt?: (peerId: string) => number | undefined): PeerSummary {
  const view = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {}
  const peerId = typeof view['peerId'] === 'string' ? view['peerId'] : '?'
  const addresses = Array.isArray(view['addresses']) ? view['addresses'].filter((item): item is string => typeof item === 'string') : []
  const head = view['head']
  const headHeight = typeof head === 'object' && head !== null && typeof (head as { height?: unknown }).height === 'number' ? ((head as { height: number }).height) : null
  const group = typeof view['addressGroup'] === 'string' ? view['addressGroup'] : addressGroup(addresses[0])
  return {
    peerId,
    direction: typeof view['direction'] === 'string' ? view['direction'] : '?',
    stake: typeof view['stake'] === 'string' ? view['stake'] : '0',
    ...(typeof view['validator'] === 'string' ? { validator: view['validator'] } : {}),
    score: numberField(view, 'score'),
    addresses,
    addressGroup: group,
    bytesIn: numberField(view, 'bytesIn') ?? 0,
    bytesOut: numberField(view, 'bytesOut') ?? 0,
    rttMs: numberField(view, 'rttMs') ?? rtt?.(peerId) ?? null,
    headHeight,
    connectedSeconds: numberField(view, 'connectedSeconds'),
  }
}

/** The address group of a multiaddr: /16 for IPv4, /32 for IPv6 (null when neither). */
export function addressGroup(address: string | undefined): string | null {
  if (address === undefined) return null
  const ip4 = /^\/ip4\/(\d+)\.(\d+)\.\d+\.\d+/.exec(address)
  if (ip4 !== null) return `${ip4[1]}.${ip4[2]}.0.0/16`
  const ip6 = /^\/ip6\/([0-9a-fA-F]*):([0-9a-fA-F]*):/.exec(address)
  if (ip6 !== null) return `${ip6[1]}:${ip6[2]}::/32`
  return null
}

/** Sums a prom-client counter's values whose labels match (for gossip totals from NodeMetrics). */
export async function counterSum(counter: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, string | number | undefined> }> }> }, match: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get()
  let total = 0
  for (const item of values) if (Object.entries(match).every(([key, wanted]) => item.labels[key] === wanted)) total += item.value
  return total
}
