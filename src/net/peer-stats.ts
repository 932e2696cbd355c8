/**
 * Per-peer counters of the libp2p shell: bytes and messages per protocol, message types, and the
 * node-wide metrics beside them. What `net_peers` shows of the wire.
 */
import type { NodeMetrics } from '../util/metrics.ts'

export interface ProtocolCounters {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

export class PeerCounters {
  /** BOUNDED: by the number of protocols (status, gossip, sync). */
  readonly protocols = new Map<string, ProtocolCounters>()
  /** BOUNDED: by the number of message types × directions (wire.ts). */
  readonly messageTypes = new Map<string, number>()

  count(protocol: string, direction: 'in' | 'out', bytes: number): void {
    let counters = this.protocols.get(protocol)
    if (counters === undefined) {
      counters = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
      this.protocols.set(protocol, counters)
    }
    if (direction === 'in') {
      counters.messagesIn++
      counters.bytesIn += bytes
    } else {
      counters.messagesOut++
      counters.bytesOut += bytes
    }
  }

  countType(key: string): void {
    this.messageTypes.set(key, (this.messageTypes.get(key) ?? 0) + 1)
  }

  totals(): { bytesIn: number; bytesOut: number } {
    let bytesIn = 0
    let bytesOut = 0
    for (const counters of this.protocols.values()) {
      bytesIn += counters.bytesIn
      bytesOut += counters.bytesOut
    }
    return { bytesIn, bytesOut }
  }
}

/** Counts one frame on a peer and in the node's metrics (protocol label: its short name). */
export class WireAccounting {
  /** Bytes of sync answers received (our requests' responses), across reconnections. */
  syncBytesIn = 0

  constructor(
    /** Protocol id → short name (status, gossip, sync): the bounded metrics label. */
    private readonly protocolNames: ReadonlyMap<string, string>,
    private readonly metrics: NodeMetrics | undefined,
  ) {}

  bytes(counters: PeerCounters | undefined, protocol: string, direction: 'in' | 'out', bytes: number): void {
    counters?.count(protocol, direction, bytes)
    const name = this.protocolNames.get(protocol) ?? 'other'
    this.metrics?.bytes.inc({ direction, protocol: name }, bytes)
  }

  message(counters: PeerCounters | undefined, protocol: 'gossip' | 'sync', direction: 'in' | 'out', type: string): void {
    counters?.countType(`${direction}:${type}`)
    this.metrics?.messages.inc({ direction, protocol, type })
  }
}
