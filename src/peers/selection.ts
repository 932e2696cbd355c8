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

/**
 * Share of the selection weight zero-stake peers get as a class, however many they are:
 * identities are free, so a crowd of them must not outweigh the validators (the Sybil cap).
 */
export const UNSTAKED_CLASS_SHARE = 1 / 3

/** How a caller describes a candidate: its stake and its score factor (0 = never choose). */
export interface SelectionAccessors<T> {
  stake: (item: T) => bigint
  /** Score factor (PeerScores.selectionFactor): 0 excludes, below 1 penalised. Default 1. */
  factor?: (item: T) => number
}

/**
 * The class-capped weights of `items` (same order), summing to 1 over the eligible ones.
 * Zero-stake peers share min(UNSTAKED_CLASS_SHARE, their share under `peerWeight`) by score
 * factor; staked peers share the rest by stake × factor. If one class is empty or all-zero the
 * other takes everything.
 */
export function classCappedWeights<T>(items: readonly T[], totalStake: bigint, accessors: SelectionAccessors<T>): number[] {
  const factor = accessors.factor ?? (() => 1)
  const factors = items.map((item) => Math.max(0, factor(item)))
  const stakes = items.map((item) => accessors.stake(item))
  let stakedMass = 0
  let unstakedMass = 0
  let naturalStaked = 0
  let naturalUnstaked = 0
  const stakedWeights = items.map((_, i) => {
    const stake = stakes[i] as bigint
    const f = factors[i] as number
    if (f <= 0) return 0
    if (stake > 0n) {
      naturalStaked += peerWeight(stake, totalStake)
      // Relative stake as a double: never 0 for a positive stake (a fixed-point ratio could round a small validator away).
      const w = totalStake > 0n ? Number(stake) / Number(totalStake) : 1
      stakedMass += w * f
      return w * f
    }
    naturalUnstaked += peerWeight(0n, totalStake)
    unstakedMass += f
    return 0
  })
  let unstakedShare: number
  if (unstakedMass <= 0) unstakedShare = 0
  else if (stakedMass <= 0) unstakedShare = 1
  else unstakedShare = Math.min(UNSTAKED_CLASS_SHARE, naturalUnstaked / (naturalUnstaked + naturalStaked))
  return items.map((_, i) => {
    const f = factors[i] as number
    if (f <= 0) return 0
    if ((stakes[i] as bigint) > 0n) return stakedMass > 0 ? ((stakedWeights[i] as number) / stakedMass) * (1 - unstakedShare) : 0
    return (f / unstakedMass) * unstakedShare
  })
}

/** One pick in proportion to `weights`; undefined when none is positive. */
function pickIndex(weights: readonly number[], random: () => number): number | undefined {
  let total = 0
  for (const w of weights) total += w
  if (!(total > 0)) return undefined
  let target = random() * total
  let last: number | undefined
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i] as number
    if (w <= 0) continue
    last = i
    if (target < w) return i
    target -= w
  }
  return last
}

/**
 * One peer (an anti-entropy partner, a sync-request target) by class-capped weight: the
 * zero-stake class is chosen with at most UNSTAKED_CLASS_SHARE probability.
 */
export function pickPeer<T>(items: readonly T[], totalStake: bigint, accessors: SelectionAccessors<T>, random: () => number): T | undefined {
  const index = pickIndex(classCappedWeights(items, totalStake, accessors), random)
  return index === undefined ? undefined : items[index]
}

/**
 * `count` distinct peers (push targets): each slot is filled by a class-capped pick among the
 * peers not yet chosen, so while staked peers remain each slot goes to the zero-stake class with
 * at most UNSTAKED_CLASS_SHARE probability. Once every eligible staked peer is chosen the rest of
 * the slots go to zero-stake peers: fan-out is a reach guarantee (announcements reach everyone
 * anyway), not a trust decision.
 */
export function samplePeers<T>(items: readonly T[], count: number, totalStake: bigint, accessors: SelectionAccessors<T>, random: () => number): T[] {
  const remaining = [...items]
  const out: T[] = []
  while (out.length < count && remaining.length > 0) {
    const index = pickIndex(classCappedWeights(remaining, totalStake, accessors), random)
    if (index === undefined) break
    out.push(remaining[index] as T)
    remaining.splice(index, 1)
  }
  return out
}
