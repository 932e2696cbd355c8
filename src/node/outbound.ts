/**
 * The outbound heartbeat: every few seconds, keep the outbound slots filled with a stake-weighted
 * sample of validators (found by peer id), redial the anchors saved before a restart first, and
 * dial more validators when the head stalls while the leader schedule says blocks should exist.
 * The plan is pure (`planOutbound`, src/peers/connection-policy.ts); this acts on it and saves
 * the outbound peers in good standing as the next restart's anchors.
 */
import { toHex, utf8 } from '../codec/bytes.ts'
import { type Anchor, MAX_OUTBOUND_PEERS, headStalled, planOutbound, selectAnchors } from '../peers/connection-policy.ts'
import type { PeerSet } from '../peers/peer-set.ts'
import type { PeerTransport } from '../peers/transport.ts'
import type { Runtime } from '../util/clock.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import { ANCHORS_META_KEY, type Defences } from './defences.ts'
import type { GrapevineNode } from './node.ts'

/** Anchors kept in the store (Bitcoin Core keeps 2 block-relay anchors; we keep a few outbound peers). */
const MAX_ANCHORS = 4
/** Records read from the store before the cap (a damaged record cannot make us read more). */
const MAX_ANCHOR_RECORDS = 16

export interface OutboundDeps {
  node: GrapevineNode
  transport: PeerTransport
  peers: PeerSet
  defences: Defences
  runtime: Runtime
  metrics?: NodeMetrics
  /** The sync manager has no useful peer (anti-entropy on only). */
  needsPeers(): boolean
}

export class OutboundHeartbeat {
  private readonly selfPeerId: string
  private readonly selfValidator: string | undefined
  private readonly validatorPeers: Array<{ peerId: string; stake: bigint }>
  /** Anchors read at start, dialled by the first heartbeats. BOUNDED: MAX_ANCHORS. */
  private anchors: Anchor[]
  private savedAnchors: string

  constructor(
    private readonly deps: OutboundDeps,
    private readonly maxOutbound = MAX_OUTBOUND_PEERS,
  ) {
    const { transport, node } = deps
    const validators = node.genesis.validators
    this.selfPeerId = transport.localPeerId
    const self = validators.find((v) => transport.peerIdOf(v.address) === this.selfPeerId)
    this.selfValidator = self === undefined ? undefined : toHex(self.address)
    this.validatorPeers = validators
      .map((v) => ({ peerId: transport.peerIdOf(v.address), stake: v.stake }))
      .filter((v): v is { peerId: string; stake: bigint } => v.peerId !== undefined && v.peerId !== this.selfPeerId)
    this.anchors = parseAnchors(deps.defences.loadMeta(ANCHORS_META_KEY))
    this.savedAnchors = JSON.stringify(this.anchors)
  }

  beat = async (): Promise<void> => {
    const { node, transport, peers, defences, runtime, metrics } = this.deps
    if (defences.isStopped) return
    defences.unparkRecovered()
    const at = runtime.clock()
    const schedule = node.chain.schedule
    const excluded = new Set<string>([this.selfPeerId])
    for (const v of this.validatorPeers) if (!defences.mayDial(v.peerId)) excluded.add(v.peerId)
    const stalled =
      headStalled({
        headSlot: node.chain.head.header.slot,
        currentSlot: schedule.slotAt(at),
        leaderOf: (slot) => toHex(schedule.leaderFor(slot).address),
        ...(this.selfValidator === undefined ? {} : { self: this.selfValidator }),
      }) || this.deps.needsPeers()
    const plan = planOutbound(
      {
        validators: this.validatorPeers,
        connected: new Set(transport.connectedPeers()),
        outboundCount: peers.list().filter((peer) => peer.direction === 'outbound').length,
        excluded,
        anchors: this.anchors,
        stalled,
        random: runtime.random,
      },
      this.maxOutbound,
    )
    this.anchors = []
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
        scoreState: peers.scores.state(peer.id, runtime.clock()),
      })),
    )
    const text = JSON.stringify(current)
    if (current.length > 0 && text !== this.savedAnchors && !defences.isStopped) {
      this.savedAnchors = text
      await node.store.batch().putMeta(ANCHORS_META_KEY, utf8(text)).commit().catch(() => undefined)
    }
  }
}

/** Anchors from the store: checked record by record, at most MAX_ANCHORS kept. */
export function parseAnchors(value: unknown): Anchor[] {
  if (!Array.isArray(value)) return []
  const out: Anchor[] = []
  for (const item of value.slice(0, MAX_ANCHOR_RECORDS) as unknown[]) {
    if (typeof item !== 'object' || item === null) continue
    const record = item as Record<string, unknown>
    if (typeof record.peerId !== 'string' || record.peerId.length === 0 || record.peerId.length > 128) continue
    const anchor: Anchor = { peerId: record.peerId }
    if (typeof record.address === 'string' && record.address.length <= 256) anchor.address = record.address
    out.push(anchor)
  }
  return out.slice(0, MAX_ANCHORS)
}

/** A dialable anchor address: the remote multiaddr with the peer id, so the dial checks who answers. */
function anchorAddress(remoteAddress: string, peerId: string): string {
  return remoteAddress.includes('/p2p/') ? remoteAddress : `${remoteAddress}/p2p/${peerId}`
}
