/**
 * Connection liveness, spread over time. libp2p's own connection monitor pings every connection
 * at once every 10 s: on a node with dozens of peers that is one burst of dozens of streams
 * (≈ 1.9 ms of CPU each, both ends), and in a process holding many nodes the bursts line up —
 * the simulator work on issue 12 found them to be the main source of the latency tail. Here each
 * connection is pinged once per interval at a phase of its own (drawn when it is first seen), a
 * few per tick; the round trip goes to `connection.rtt` (net_peers, the dashboard, eviction's
 * lowest-latency protection) and a connection whose ping fails or times out is aborted, as the
 * monitor did. Part of the libp2p shell: real timers, no protocol decisions.
 */
import type { Connection } from '@libp2p/interface'
import { byteStream } from '@libp2p/utils'
import type { Libp2p } from 'libp2p'
import type { Logger } from '../util/logger.ts'

/** libp2p's ping protocol (its ping service answers it; peers' monitors use it too). */
const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const PING_BYTES = 32

export interface LivenessOptions {
  /** Each connection is pinged once per this period (libp2p's monitor: 10 s). */
  intervalMs: number
  /** A ping not answered within this is a dead connection. */
  timeoutMs: number
  /** How often due pings are looked for: the spread's resolution. */
  tickMs: number
}

export const DEFAULT_LIVENESS: LivenessOptions = { intervalMs: 10_000, timeoutMs: 10_000, tickMs: 250 }

export class Liveness {
  /** When each connection is due. BOUNDED: weak keys, one per open connection. */
  private readonly due = new WeakMap<Connection, number>()
  private timer: ReturnType<typeof setInterval> | undefined
  private readonly inFlight = new WeakSet<Connection>()

  constructor(
    private readonly libp2p: Libp2p,
    private readonly log: Logger,
    private readonly options: LivenessOptions = DEFAULT_LIVENESS,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.options.tickMs)
    this.timer.unref?.()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private tick(): void {
    const now = Date.now()
    for (const connection of this.libp2p.getConnections()) {
      const due = this.due.get(connection)
      if (due === undefined) {
        // First seen: a phase of its own within the interval, so a node's pings never line up.
        this.due.set(connection, now + this.random() * this.options.intervalMs)
        continue
      }
      if (due > now || this.inFlight.has(connection) || connection.status !== 'open') continue
      this.due.set(connection, due + this.options.intervalMs)
      this.inFlight.add(connection)
      this.ping(connection)
        .then((rtt) => {
          connection.rtt = rtt
        })
        .catch((error: unknown) => {
          if (connection.status !== 'open') return
          this.log.debug({ peer: connection.remotePeer.toString().slice(-8), err: error }, 'ping failed: closing the connection')
          connection.abort(error instanceof Error ? error : new Error(String(error)))
        })
        .finally(() => this.inFlight.delete(connection))
    }
  }

  /** One ping over this very connection (a stream of its own, 32 random bytes echoed): the round trip in ms. */
  private async ping(connection: Connection): Promise<number> {
    const signal = AbortSignal.timeout(this.options.timeoutMs)
    let start = Date.now()
    const stream = await connection.newStream(PING_PROTOCOL, { signal, runOnLimitedConnection: true }).catch((error: unknown) => {
      // A peer without the ping protocol still answered multistream-select: alive (two round trips).
      if (error instanceof Error && error.name === 'UnsupportedProtocolError') return undefined
      throw error
    })
    if (stream === undefined) return (Date.now() - start) / 2
    try {
      const bytes = byteStream(stream)
      const data = crypto.getRandomValues(new Uint8Array(PING_BYTES))
      start = Date.now()
      await Promise.all([bytes.write(data, { signal }), bytes.read({ bytes: PING_BYTES, signal })])
      const rtt = Date.now() - start
      await stream.close({ signal })
      return rtt
    } catch (error) {
      stream.abort(error instanceof Error ? error : new Error(String(error)))
      throw error
    }
  }
}
