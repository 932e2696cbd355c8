/**
 * The simulator's models of the world: where nodes are (regions and the delay between them),
 * how fast they upload, how stake is spread, and what a message costs on the wire. Pure
 * functions over a seeded random source.
 */
import { type GossipMessage, encodeGossip } from '../codec/wire.ts'

/**
 * Regions and their one-way delays in ms: roughly half the round-trip times between cloud
 * regions published by public ping tables (WonderNetwork, AWS inter-region), rounded. Symmetric.
 */
export const REGIONS = ['us-east', 'us-west', 'europe', 'asia', 'south-america', 'oceania'] as const
export type Region = (typeof REGIONS)[number]

/** One-way delay (ms) between region i and region j. */
export const REGION_DELAY_MS: readonly (readonly number[])[] = [
  //  us-e us-w  eu  asia  sa   oc
  [5, 32, 40, 90, 60, 100],
  [32, 5, 70, 60, 90, 75],
  [40, 70, 5, 110, 100, 140],
  [90, 60, 110, 10, 150, 55],
  [60, 90, 100, 150, 8, 160],
  [100, 75, 140, 55, 160, 6],
]

/** Share of nodes per region (by where public nodes of large networks are hosted). */
export const REGION_WEIGHTS: readonly number[] = [0.3, 0.15, 0.3, 0.15, 0.05, 0.05]

export interface LatencyModel {
  /** Fixed one-way delay of every link (ms): no regions. */
  fixedMs?: number
  /** Jitter as a share of the base delay: each message adds uniform [0, jitter × base). */
  jitter: number
}

/** Picks a region index by REGION_WEIGHTS. */
export function pickRegion(random: () => number): number {
  let target = random()
  for (let i = 0; i < REGION_WEIGHTS.length; i++) {
    target -= REGION_WEIGHTS[i] as number
    if (target < 0) return i
  }
  return REGION_WEIGHTS.length - 1
}

/** Base one-way delay between two nodes' regions. */
export function baseDelayMs(model: LatencyModel, regionA: number, regionB: number): number {
  if (model.fixedMs !== undefined) return model.fixedMs
  return (REGION_DELAY_MS[regionA] as readonly number[])[regionB] as number
}

/**
 * Heavy-tailed stake: Pareto with shape `alpha` (1.16 is the 80/20 rule), scaled so the smallest
 * validator holds `minStake`. Returned as bigint units.
 */
export function paretoStakes(count: number, random: () => number, alpha = 1.16, minStake = 1_000): bigint[] {
  const out: bigint[] = []
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12)
    out.push(BigInt(Math.round(minStake / Math.pow(u, 1 / alpha))))
  }
  return out
}

/** Share of total stake held by the top `share` of holders (for the run's report). */
export function topShare(stakes: readonly bigint[], share: number): number {
  const sorted = [...stakes].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))
  const total = sorted.reduce((sum, s) => sum + s, 0n)
  if (total === 0n) return 0
  const top = sorted.slice(0, Math.max(1, Math.round(sorted.length * share))).reduce((sum, s) => sum + s, 0n)
  return Number((top * 1_000_000n) / total) / 1_000_000
}

/**
 * Bytes a frame costs on the libp2p stack beyond its payload: our u32 length prefix (4), a Yamux
 * data-frame header (12), a Noise transport message's length (2) and AEAD tag (16).
 */
export const FRAME_OVERHEAD_BYTES = 4 + 12 + 2 + 16

/**
 * Bytes a receiver writes back per frame it reads: @chainsafe/libp2p-yamux answers every data
 * frame with a window-update frame (a 12-byte header) in a Noise message of its own (2 + 16).
 * scripts/bench/sim-calibrate.ts measures both constants on real sockets.
 */
export const WINDOW_UPDATE_BYTES = 12 + 2 + 16

/**
 * The exact encoded size of a gossip message (what `encodeGossip` would produce), without
 * encoding it: inventory lists are 1 + 4 + 33 per item, tx lists 1 + 1 + 4 + Σ tx bytes.
 * Block messages (not used by light nodes) are encoded to measure them.
 * test/sim/model.test.ts checks it against `encodeGossip` for every kind used.
 */
export function gossipSize(message: GossipMessage): number {
  switch (message.type) {
    case 'inv':
    case 'getdata':
    case 'notfound':
      return 1 + 4 + 33 * message.items.length
    case 'txs': {
      let size = 1 + 1 + 4
      for (const signed of message.txs) size += signed.bytes.length
      return size
    }
    default:
      return encodeGossip(message).length
  }
}
