/**
 * Prometheus metrics (prom-client), one registry per node so several nodes can share a process
 * (tests, benchmarks). Served as text at GET /metrics on the RPC port.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export class NodeMetrics {
  readonly registry = new Registry()

  readonly bytes = new Counter({
    name: 'grapevine_net_bytes_total',
    help: 'Bytes on the wire by direction (in/out) and protocol',
    labelNames: ['direction', 'protocol'] as const,
    registers: [this.registry],
  })

  readonly messages = new Counter({
    name: 'grapevine_net_messages_total',
    help: 'Wire messages by direction, protocol and message type',
    labelNames: ['direction', 'protocol', 'type'] as const,
    registers: [this.registry],
  })

  readonly announcements = new Counter({
    name: 'grapevine_gossip_announcements_total',
    help: 'Inventory items announced (out) and received (in)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  })

  readonly requests = new Counter({
    name: 'grapevine_gossip_requests_total',
    help: 'getdata items sent (out) and received (in)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  })

  readonly duplicates = new Counter({
    name: 'grapevine_gossip_duplicates_total',
    help: 'Full objects received that this node already had',
    registers: [this.registry],
  })

  readonly unsolicited = new Counter({
    name: 'grapevine_gossip_unsolicited_total',
    help: 'Responses received that were never requested',
    registers: [this.registry],
  })

  readonly relayLatency = new Histogram({
    name: 'grapevine_relay_latency_seconds',
    help: 'Time from an object arriving from a peer to it being relayed (validation included)',
    labelNames: ['kind'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  })

  readonly rejected = new Counter({
    name: 'grapevine_rejected_total',
    help: 'Objects refused by validation, by code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  })

  readonly offences = new Counter({
    name: 'grapevine_peer_offences_total',
    help: 'Peer offences by stable code (src/peers/offences.ts)',
    labelNames: ['code'] as const,
    registers: [this.registry],
  })

  readonly disconnects = new Counter({
    name: 'grapevine_peer_penalty_actions_total',
    help: 'Peers disconnected or banned by the score table, by verdict',
    labelNames: ['verdict'] as const,
    registers: [this.registry],
  })

  readonly limitHits = new Counter({
    name: 'grapevine_rate_limit_hits_total',
    help: 'Frames and requests refused by a rate limit, by limit name (src/peers/rate-limit.ts) and scope (peer: its own quota, an offence; node: the node-wide quota)',
    labelNames: ['limit', 'scope'] as const,
    registers: [this.registry],
  })

  readonly evictions = new Counter({
    name: 'grapevine_peer_evictions_total',
    help: 'Peers dropped by the connection policy or the score table, by reason (EVICTION_REASONS)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })

  readonly refusals = new Counter({
    name: 'grapevine_peer_refusals_total',
    help: 'Connections refused at admission, by reason (REFUSAL_REASONS)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })

  readonly serveBusy = new Counter({
    name: 'grapevine_sync_serve_busy_total',
    help: 'Sync requests refused because the serving queue was full (or the peer had too many in it); not an offence',
    registers: [this.registry],
  })

  readonly graylisted = new Counter({
    name: 'grapevine_graylisted_messages_total',
    help: 'Gossip messages and requests ignored because their sender is graylisted',
    registers: [this.registry],
  })

  readonly outboundDials = new Counter({
    name: 'grapevine_outbound_dials_total',
    help: 'Outbound dials planned by the connection heartbeat, by reason (ANCHOR, VALIDATOR, STALLED) and result',
    labelNames: ['reason', 'result'] as const,
    registers: [this.registry],
  })

  readonly blocksImported = new Counter({
    name: 'grapevine_blocks_imported_total',
    help: 'Blocks imported (any branch, any source: gossip, catch-up, own)',
    registers: [this.registry],
  })

  readonly reorgs = new Counter({
    name: 'grapevine_reorgs_total',
    help: 'Head moves that removed blocks from the canonical chain',
    registers: [this.registry],
  })

  readonly mempoolSize = new Gauge({ name: 'grapevine_mempool_size', help: 'Pending transactions', registers: [this.registry] })
  readonly mempoolBytes = new Gauge({ name: 'grapevine_mempool_bytes', help: 'Pending transaction bytes', registers: [this.registry] })
  readonly headHeight = new Gauge({ name: 'grapevine_head_height', help: 'Height of the head block', registers: [this.registry] })
  readonly peers = new Gauge({ name: 'grapevine_peers', help: 'Connected and admitted peers', registers: [this.registry] })
  // ---- finality
  readonly finalizedHeight = new Gauge({ name: 'grapevine_finalized_height', help: 'Height of the finalized block', registers: [this.registry] })
  readonly finalityLag = new Gauge({ name: 'grapevine_finality_lag_blocks', help: 'Blocks between the head and the finalized block', registers: [this.registry] })
  readonly votesReceived = new Counter({ name: 'grapevine_votes_received_total', help: 'Finality votes received from peers (any verdict)', registers: [this.registry] })
  readonly evidence = new Gauge({ name: 'grapevine_evidence', help: 'Equivocation evidence items on record', registers: [this.registry] })

  /** Adds process metrics (CPU, memory, event-loop lag): for a node process, not for tests. */
  withProcessMetrics(): this {
    collectDefaultMetrics({ register: this.registry })
    return this
  }

  async text(): Promise<[string, string]> {
    return [this.registry.contentType, await this.registry.metrics()]
  }
}
