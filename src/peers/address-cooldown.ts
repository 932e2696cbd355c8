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
 * A host with no record at all still costs a handshake per connection, and identities are free:
 * a stream of fresh identities from many hosts, each connecting and hanging up, is never refused
 * for what it is. So connections from hosts without a record reach their handshake within a
 * node-wide budget of their own (FRESH_HANDSHAKES), except from trusted hosts (the caller says
 * which: one that holds an admitted peer in good standing, or that brought a validator).
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
/** Hosts remembered as having brought a validator (trusted by the handshake gate); far above any validator set; least recently seen go first. */
export const MAX_VALIDATOR_HOSTS = 1_024

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
 * (the attack benchmark, `--oracle-cutoff`). With the budget a herd comes in one at a time, two a
 * second. (It was written as 4 a second, 2 at once, but spent twice per connection — at the socket
 * and again at libp2p's gater — so 2 a second is what every measurement since ran with; now it is
 * spent once, at the socket.) Hosts without a record never draw on it.
 */
export const PROBATION_HANDSHAKES: Quota = { tokens: 2, periodMs: 1_000, burst: 1 }

/**
 * Handshakes a second, node-wide, for connections from hosts without a record (and not trusted);
 * past it such a connection is refused on its address (HANDSHAKE_BUDGET), without a strike. An
 * inbound connection costs the node ~9–13 ms of its loop before any stream (the Noise handshake,
 * the muxer, identify, the status exchange and admission; stream-cost.ts): fresh identities from
 * 20 hosts, each connecting and hanging up at once, took the victim's loop to 70–100 % of a core
 * and its p99 to 4.6× (the attack benchmark's `churn`), with nothing to charge, as every identity
 * is new. With the budget they get at most 8 handshakes a second (~10 % of a core). A burst of
 * 16 (the tokens of two seconds at once) lets a node's own mesh form at once after a start:
 * sixteen nodes on one host dial each other before any is admitted (the host is trusted from
 * then on).
 */
export const FRESH_HANDSHAKES: Quota = { tokens: 16, periodMs: 2_000 }

/** What a connection from a host meets before its handshake (`AddressCooldowns.beforeHandshake`). */
export type HandshakeGate = 'allow' | 'cooling' | 'probation' | 'budget'

/** How `beforeHandshake` asks: whether the host is trusted, and whether this check spends the budgets (once per connection). */
export interface HandshakeAsk {
  /** Shares an admitted peer in good standing, or brought a validator: allowed, spends nothing, never cooled. */
  trusted: boolean
  /** The first check of a connection spends; a later check of the same connection (libp2p's gater after the socket check) only reads the cooldown. */
  spend: boolean
}

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
const FRESH_KEY = 'fresh'

export class AddressCooldowns {
  /** BOUNDED: MAX_ADDRESS_COOLDOWNS, insertion order = oldest refusal first. */
  private readonly entries = new Map<string, Cooldown>()

  /** The node-wide budget of handshakes for hosts on probation (one key). */
  private readonly probation = new RateLimiterGCRA(PROBATION_HANDSHAKES, 1)
  /** The node-wide budget of handshakes for hosts without a record (one key). */
  private readonly fresh = new RateLimiterGCRA(FRESH_HANDSHAKES, 1)

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
   * on probation is spent this moment), 'budget' (refused: no record, but the node-wide budget for
   * such hosts is spent this moment), or 'allow' — spending one of the budget it was let in by.
   * Neither budget refusal is a strike. A trusted host is allowed and spends nothing.
   */
  beforeHandshake(host: string, now: number, ask: HandshakeAsk): HandshakeGate {
    if (ask.trusted) return 'allow'
    const entry = this.entries.get(host)
    if (entry === undefined || entry.lastAt + ADDRESS_COOLDOWN_MEMORY_MS <= now) {
      return !ask.spend || this.fresh.allows(FRESH_KEY, 1, now) ? 'allow' : 'budget'
    }
    if (now < entry.until) return 'cooling'
    return !ask.spend || this.probation.allows(PROBATION_KEY, 1, now) ? 'allow' : 'probation'
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
