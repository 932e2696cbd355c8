/**
 * Stake-weighted peer choice (docs/protocol.md, "Peer selection"). A peer's weight is a floor
 * (every peer gets some attention, so unstaked full nodes are reachable) plus a share that grows
 * with its validator stake (identities are free, stake is not). Pure functions: the caller
 * supplies the random source.
 */

/** Weight every peer has, staked or not. */
export const FLOOR_WEIGHT = 1
/** Extra weight of a peer holding all the stake; a 10%-stake validator gets FLOOR + 1. */
export const STAKE_WEIGHT = 10

export function peerWeight(stake: bigint, totalStake: bigint): number {
  if (totalStake <= 0n || stake <= 0n) return FLOOR_WEIGHT
  return FLOOR_WEIGHT + (STAKE_WEIGHT * Number((stake * 1_000_000n) / totalStake)) / 1_000_000
}

/**
 * Picks `count` distinct items, each with probability proportional to its weight
 * (Efraimidis–Spirakis: key = u^(1/w), keep the largest keys).
 */
export function weightedSample<T>(items: readonly T[], count: number, weight: (item: T) => number, random: () => number): T[] {
  if (count >= items.length) return [...items]
  if (count <= 0) return []
  const keyed = items.map((item) => ({ item, key: Math.pow(Math.max(random(), Number.MIN_VALUE), 1 / Math.max(weight(item), 1e-9)) }))
  keyed.sort((a, b) => b.key - a.key)
  return keyed.slice(0, count).map((entry) => entry.item)
}

/** Picks one item by weight, or undefined from an empty list. */
export function weightedPick<T>(items: readonly T[], weight: (item: T) => number, random: () => number): T | undefined {
  return weightedSample(items, 1, weight, random)[0]
}

/** About √n: the push fan-out of rumor gossip. */
export function pushFanout(peerCount: number): number {
  return Math.min(peerCount, Math.ceil(Math.sqrt(peerCount)))
}
