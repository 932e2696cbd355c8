/**
 * Selection (src/peers/selection.ts): zero-stake peers as a class get at most
 * UNSTAKED_CLASS_SHARE of the weight, however many they are. Property tests with fast-check.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { UNSTAKED_CLASS_SHARE, classCappedWeights, peerWeight, pickPeer, pushFanout, samplePeers, weightedPick, weightedSample } from '../../../src/peers/selection.ts'
import { seededRandom } from '../../../src/util/random.ts'

interface P {
  id: string
  stake: bigint
  factor: number
}
const accessors = { stake: (p: P) => p.stake, factor: (p: P) => p.factor }
const total = (peers: readonly P[]) => peers.reduce((sum, p) => sum + p.stake, 0n)

function population(unstaked: number, stakes: bigint[]): P[] {
  return [
    ...stakes.map((stake, i) => ({ id: `v${i}`, stake, factor: 1 })),
    ...Array.from({ length: unstaked }, (_, i) => ({ id: `s${i}`, stake: 0n, factor: 1 })),
  ]
}

const arbPeers = fc
  .array(fc.record({ stake: fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 10n ** 12n })), factor: fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 1.1, noNaN: true })) }), { minLength: 1, maxLength: 300 })
  .map((list) => list.map((p, i) => ({ id: `p${i}`, ...p })))

describe('class-capped selection', () => {
  it('property: the zero-stake class never holds more than UNSTAKED_CLASS_SHARE of the weight while a staked peer is eligible', () => {
    fc.assert(
      fc.property(arbPeers, (peers) => {
        const weights = classCappedWeights(peers, total(peers), accessors)
        const sum = weights.reduce((a, b) => a + b, 0)
        const eligible = peers.filter((p) => p.factor > 0)
        if (eligible.length === 0) return sum === 0
        const unstaked = peers.reduce((acc, p, i) => acc + (p.stake === 0n ? (weights[i] as number) : 0), 0)
        const anyStaked = eligible.some((p) => p.stake > 0n)
        assert.ok(Math.abs(sum - 1) < 1e-9, `weights sum to 1 (${sum})`)
        assert.ok(weights.every((w, i) => w >= 0 && ((peers[i] as P).factor > 0 || w === 0)), 'factor 0 excludes')
        if (anyStaked) assert.ok(unstaked <= UNSTAKED_CLASS_SHARE + 1e-9, `unstaked share ${unstaked}`)
        return true
      }),
      { numRuns: 300 },
    )
  })

  it('property: staked peers share their part in proportion to stake', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1_000 }), { minLength: 2, maxLength: 10 }), fc.integer({ min: 0, max: 50 }), (stakes, unstaked) => {
        const peers = population(unstaked, stakes.map(BigInt))
        const weights = classCappedWeights(peers, total(peers), accessors)
        const ratio = (weights[0] as number) / (weights[1] as number)
        assert.ok(Math.abs(ratio - (stakes[0] as number) / (stakes[1] as number)) < 1e-3 * ratio + 1e-6)
      }),
      { numRuns: 200 },
    )
  })

  it('with 1,000 zero-stake peers and 4 validators, the unstaked class gets at most its cap of single picks', () => {
    const peers = population(1_000, [25n, 25n, 25n, 25n])
    const random = seededRandom(11)
    const trials = 20_000
    let unstakedPicks = 0
    for (let i = 0; i < trials; i++) if ((pickPeer(peers, 100n, accessors, random) as P).stake === 0n) unstakedPicks++
    const share = unstakedPicks / trials
    // Cap 1/3; 4σ of a binomial(20,000, 1/3) is about 0.013.
    assert.ok(share <= UNSTAKED_CLASS_SHARE + 0.013, `unstaked share of picks ${share}`)
    assert.ok(share > 0.25, `the floor still reaches unstaked peers (${share})`)
  })

  it('with 1,000 zero-stake peers and 4 validators, samples of up to 4 slots give the unstaked class at most its cap', () => {
    const peers = population(1_000, [40n, 30n, 20n, 10n])
    const random = seededRandom(12)
    let unstaked = 0
    let slots = 0
    for (let i = 0; i < 5_000; i++) {
      const chosen = samplePeers(peers, 4, 100n, accessors, random)
      assert.equal(new Set(chosen).size, chosen.length, 'distinct')
      slots += chosen.length
      unstaked += chosen.filter((p) => p.stake === 0n).length
    }
    assert.ok(unstaked / slots <= UNSTAKED_CLASS_SHARE + 0.013, `unstaked share of slots ${unstaked / slots}`)
  })

  it('property: samples are distinct, of the asked size (or all eligible), with staked slots first in expectation', () => {
    fc.assert(
      fc.property(arbPeers, fc.integer({ min: 0, max: 40 }), fc.integer(), (peers, count, seed) => {
        const chosen = samplePeers(peers, count, total(peers), accessors, seededRandom(seed))
        const eligible = peers.filter((p) => p.factor > 0).length
        assert.equal(chosen.length, Math.min(count, eligible))
        assert.equal(new Set(chosen.map((p) => p.id)).size, chosen.length)
        assert.ok(chosen.every((p) => p.factor > 0))
      }),
      { numRuns: 200 },
    )
  })

  it('a few unstaked peers keep the share peerWeight gives them (the cap binds only on crowds)', () => {
    const peers = population(1, [50n, 50n])
    const weights = classCappedWeights(peers, 100n, accessors)
    const natural = peerWeight(0n, 100n) / (peerWeight(0n, 100n) + 2 * peerWeight(50n, 100n))
    assert.ok(Math.abs((weights[2] as number) - natural) < 1e-9)
  })

  it('score as a factor: a penalised validator is chosen less than an unpenalised one of equal stake', () => {
    const peers: P[] = [
      { id: 'good', stake: 50n, factor: 1 },
      { id: 'penalised', stake: 50n, factor: 0.5 },
      { id: 'gray', stake: 50n, factor: 0 },
    ]
    const weights = classCappedWeights(peers, 150n, accessors)
    assert.ok(Math.abs((weights[0] as number) - 2 * (weights[1] as number)) < 1e-9)
    assert.equal(weights[2], 0)
    assert.equal(pickPeer([peers[2] as P], 150n, accessors, Math.random), undefined, 'a graylisted peer is never chosen')
  })

  it('only unstaked peers: they share everything', () => {
    const peers = population(5, [])
    const weights = classCappedWeights(peers, 0n, accessors)
    for (const w of weights) assert.ok(Math.abs(w - 0.2) < 1e-12)
  })

  it('the old exports still work: peerWeight, weightedSample, weightedPick, pushFanout', () => {
    assert.equal(peerWeight(0n, 100n), 1)
    assert.equal(peerWeight(10n, 100n), 2)
    assert.equal(pushFanout(10), 4)
    assert.equal(weightedSample([1, 2, 3], 5, () => 1, seededRandom(1)).length, 3)
    assert.ok([1, 2].includes(weightedPick([1, 2], () => 1, seededRandom(1)) as number))
  })
})
