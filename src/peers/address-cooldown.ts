/**
 * Hosts that keep bringing refused identities (docs/protocol.md, "Defences"). A banned or
 * low-scored peer id is refused right after the encryption handshake — the earliest it is known —
 * but the handshake itself (three Diffie-Hellmans and a signature check) is already spent, and a
 * cut-off attacker that simply redials costs us that again and again: 20 banned identities
 * redialling at libp2p's 5 connections per second per host cost a victim ~30 % of a core in Noise
 * handshakes, long after they were cut off. So a host from which a refused identity arrived is
 * refused before its next handshake (on its address alone) for a cooldown that doubles with each
 * refusal there, each spread by a random factor (COOLDOWN_JITTER): identities cut off together
 * (a swarm) would otherwise all redial at the same instant when their cooldowns end, and each
 * such burst of handshakes held the victim's loop for tens of milliseconds at 1.5 s, 3.5 s and
 * 7.5 s after the cut-off. The cost falls on the host, not the identity: honest peers behind the
 * same address wait out a cooldown of seconds (as behind Bitcoin Core's discouraged addresses),
 * and the record is forgotten once the host stops bringing refused identities.
 *
 * A host whose cooldown has ended is on probation while its record lasts: its connections reach
 * their handshake only within a small node-wide budget (PROBATION_HANDSHAKES), because a swarm cut
 * off together comes back together whatever the jitter (see there).
 *
 * Pure: time is passed in. Entries are capped (MAX_ADDRESS_COOLDOWNS).
 */
import { type Quota, RateLimiterGCRA } from './rate-limit.ts'

/** The first cooldown: a redial loop is slowed to one handshake per second at once. */
export const ADDRESS_COOLDOWN_FIRST_MS = 1_000
/** The longest before the jitter (at most 1.5× this with it): an honest peer sharing the address with a banned one is kept out at most that long at a time. */
export const ADDRESS_COOLDOWN_MAX_MS = 30_000
/**
 * Each cooldown is the doubled one times a factor drawn uniformly from [1 − J, 1 + J]: the mean
 * stays, and hosts cut off in the same instant come back spread over ±J of it instead of as one
 * burst of handshakes (the thundering herd; backoff with jitter, as clients retrying a busy
 * service do).
 */
export const COOLDOWN_JITTER = 0.5
/** A host's record is forgotten this long after its last refusal (its next refusal starts again at the first cooldown). */
export const ADDRESS_COOLDOWN_MEMORY_MS = 10 * 60_000
/** Limit of hosts remembered: far above the inbound slots; the oldest record goes first. */
export const MAX_ADDRESS_COOLDOWNS = 4_096

/**
 * A connection refused on its address is held open, unread, for this long and then reset (a
 * tarpit), not reset at once: a reset reached the dialler at once, and 20 cut-off identities
 * redialling in a loop had ~600 connections a second refused during the attack benchmark's
 * window, each an accept, a socket and a reset on the victim's loop (~8 % of its core). Held,
 * a dial waits out the dialler's own timeout (libp2p's: seconds) before it can try again. Above
 * the 10 s dial timeout of our own nodes, so an honest node sharing such a host gives up once.
 */
export const REFUSED_SOCKET_HOLD_MS = 10_000
/** Refused connections held at once; past it a refused one is reset at once. Bounds the file descriptors held and what they buffer (≤ 16 KiB each, paused). */
export const MAX_HELD_REFUSED_SOCKETS = 128

/**
 * Handshakes a second, node-wide, for connections from hosts on probation (a record within
 * ADDRESS_COOLDOWN_MEMORY_MS, its cooldown over); past it such a connection is refused on its
 * address again (ADDRESS_PROBATION), without a strike. The cooldowns' jitter does not spread a
 * swarm that redials from inside our tarpit: each of its dials is held until the dialler's own
 * timeout, the same for every identity of one attacker, and then all redial at once — twenty
 * handshakes within 270 ms, 3.1 s after a cut-off, held the victim's loop 61 ms and set its p99
 * (the attack benchmark, `--oracle-cutoff`). With the budget a herd comes in two at once at most,
 * four a second. Hosts without a record never draw on it.
 */
export const PROBATION_HANDSHAKES: Quota = { tokens: 4, periodMs: 1_000, burst: 2 }

/** What a connection from a host meets before its handshake (`AddressCooldowns.beforeHandshake`). */
export type HandshakeGate = 'allow' | 'cooling' | 'probation'

/** A host cooling down, as net_bans lists it. */
export interface CoolingHost {
  host: string
  until: number
  strikes: number
}

interface Cooldown {
  /** Refusals of identities from this host (within ADDRESS_COOLDOWN_MEMORY_MS of each other). */
  strikes: number
  /** Connections from this host are refused before their handshake until then. */
  until: number
  lastAt: number
}

/** The cooldown after the `strikes`-th refusal: the first, doubled per refusal, capped. */
export function cooldownMs(strikes: number): number {
  return Math.min(ADDRESS_COOLDOWN_MAX_MS, ADDRESS_COOLDOWN_FIRST_MS * Math.pow(2, Math.max(0, strikes - 1)))
}

const PROBATION_KEY = 'probation'

export class AddressCooldowns {
  /** BOUNDED: MAX_ADDRESS_COOLDOWNS, insertion order = oldest refusal first. */
  private readonly entries = new Map<string, Cooldown>()

  /** The node-wide budget of handshakes for hosts on probation (one key). */
  private readonly probation = new RateLimiterGCRA(PROBATION_HANDSHAKES, 1)

  /** `random`: uniform in [0, 1), the jitter's source (the node's seeded one); 0.5 gives the cooldown without jitter. */
  constructor(
    private readonly maxEntries = MAX_ADDRESS_COOLDOWNS,
    private readonly random: () => number = () => 0.5,
  ) {}

  /** An identity from `host` was refused (banned, low score, banned group): returns the cooldown set (ms). */
  refused(host: string, now: number): number {
    const previous = this.entries.get(host)
    const strikes = previous !== undefined && previous.lastAt + ADDRESS_COOLDOWN_MEMORY_MS > now ? previous.strikes + 1 : 1
    const ms = Math.round(cooldownMs(strikes) * (1 - COOLDOWN_JITTER + 2 * COOLDOWN_JITTER * this.random()))
    this.entries.delete(host)
    if (this.entries.size >= this.maxEntries) this.prune(now)
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
    this.entries.set(host, { strikes, until: now + ms, lastAt: now })
    return ms
  }

  /** Whether a connection from `host` is refused before its handshake now. */
  cooling(host: string, now: number): boolean {
    const entry = this.entries.get(host)
    return entry !== undefined && now < entry.until
  }

  /**
   * Whether a connection from `host` goes on to its handshake now: 'cooling' (refused: its
   * cooldown runs), 'probation' (refused: its cooldown is over, but the node-wide budget for hosts
   * on probation is spent this moment; no strike), or 'allow' — a host on probation then spends
   * one of that budget, a host without a record spends nothing.
   */
  beforeHandshake(host: string, now: number): HandshakeGate {
    const entry = this.entries.get(host)
    if (entry === undefined || entry.lastAt + ADDRESS_COOLDOWN_MEMORY_MS <= now) return 'allow'
    if (now < entry.until) return 'cooling'
    return this.probation.allows(PROBATION_KEY, 1, now) ? 'allow' : 'probation'
  }

  /** Drops records past their memory. */
  prune(now: number): void {
    for (const [host, entry] of this.entries) if (entry.lastAt + ADDRESS_COOLDOWN_MEMORY_MS <= now) this.entries.delete(host)
  }

  /** Hosts cooling down now (net_bans). */
  list(now: number): CoolingHost[] {
    return [...this.entries].filter(([, entry]) => now < entry.until).map(([host, entry]) => ({ host, until: entry.until, strikes: entry.strikes }))
  }

  get size(): number {
    return this.entries.size
  }
}
