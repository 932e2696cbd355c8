/**
 * The node side's view of its admitted peers, transport-neutral: who they are, their last
 * status, their score. Offences are charged here and the verdict is acted on through the
 * transport (disconnect); sans-IO otherwise: time comes from the injected clock.
 */
import type { StatusMessage } from '../codec/wire.ts'
import type { Clock } from '../util/clock.ts'
import { TypedEmitter } from '../util/events.ts'
import { addressGroup, addressHost } from './address-group.ts'
import type { OffenceCode, RewardCode } from './offences.ts'
import { type PeerScores, type ScoreVerdict } from './scores.ts'
import type { AdmittedPeer, PeerTransport } from './transport.ts'

export interface PeerEntry extends AdmittedPeer {
  /** When it was admitted (clock ms). */
  admittedAt: number
  /** Its address group (address-group.ts), for slots and address-group bans. */
  addressGroup: string
  /** Its host (address-group.ts `addressHost`), kept so that hot paths (a refusal, a cut-off) do not parse every peer's address. */
  host: string | undefined
  /** Last first delivery of a valid new tx / block (clock ms): protects it from eviction. */
  lastNovelTxAt?: number
  lastNovelBlockAt?: number
}

export interface PeerSetEvents {
  admitted: [peer: PeerEntry]
  removed: [peerId: string]
  offence: [peerId: string, code: OffenceCode, verdict: ScoreVerdict, detail: string | undefined]
}

export class PeerSet {
  /** BOUNDED: by the transport's connection limit (only admitted peers are added). */
  private readonly peers = new Map<string, PeerEntry>()
  readonly events = new TypedEmitter<PeerSetEvents>()

  constructor(
    private readonly transport: PeerTransport,
    readonly scores: PeerScores,
    private readonly clock: Clock,
  ) {}

  add(peer: AdmittedPeer): PeerEntry {
    const entry: PeerEntry = { ...peer, admittedAt: this.clock(), addressGroup: addressGroup(peer.remoteAddress), host: addressHost(peer.remoteAddress) }
    this.scores.noteAddressGroup(peer.id, entry.addressGroup)
    this.peers.set(peer.id, entry)
    this.events.emit('admitted', entry)
    return entry
  }

  remove(peerId: string): boolean {
    if (!this.peers.delete(peerId)) return false
    this.events.emit('removed', peerId)
    return true
  }

  get(peerId: string): PeerEntry | undefined {
    return this.peers.get(peerId)
  }

  has(peerId: string): boolean {
    return this.peers.has(peerId)
  }

  get size(): number {
    return this.peers.size
  }

  list(): PeerEntry[] {
    return [...this.peers.values()]
  }

  setStatus(peerId: string, status: StatusMessage): void {
    const entry = this.peers.get(peerId)
    if (entry !== undefined) entry.status = status
  }

  /** A fresh status round trip, kept on the peer's entry. */
  async refreshStatus(peerId: string, timeoutMs: number): Promise<StatusMessage | undefined> {
    if (!this.peers.has(peerId)) return undefined
    const status = await this.transport.requestStatus(peerId, timeoutMs)
    this.setStatus(peerId, status)
    return status
  }

  /** Charges the offence (`times` times: a tolerated code counted per item); past the thresholds the peer is disconnected (and banned). */
  offence(peerId: string, code: OffenceCode, detail?: string, times = 1): ScoreVerdict {
    const verdict = this.scores.penalise(peerId, code, this.clock(), times)
    this.events.emit('offence', peerId, code, verdict, detail)
    if (verdict !== 'ok') this.transport.disconnect(peerId)
    return verdict
  }

  /** Credits a reward (capped by the score table); first deliveries also protect it from eviction. */
  reward(peerId: string, code: RewardCode): void {
    const now = this.clock()
    this.scores.reward(peerId, code, now)
    const entry = this.peers.get(peerId)
    if (entry === undefined) return
    if (code === 'FIRST_DELIVERY_TX') entry.lastNovelTxAt = now
    if (code === 'FIRST_DELIVERY_BLOCK') entry.lastNovelBlockAt = now
  }

  isBanned(peerId: string): boolean {
    return this.scores.isBanned(peerId, this.clock())
  }

  score(peerId: string): number {
    return this.scores.score(peerId, this.clock())
  }

  /** Score-based factor in [0.1, 1] weighing peer choice. */
  selectionFactor(peerId: string): number {
    return this.scores.selectionFactor(peerId, this.clock())
  }
}
