/**
 * PeerScores (src/peers/scores.ts) and the tolerance counter (src/peers/tolerance.ts) on a fake
 * clock: one test per offence code and per reward code, named after it, then one per rule.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { OFFENCES, OFFENCE_CODES, REWARDS, REWARD_CODES } from '../../../src/peers/offences.ts'
import {
  ADDRESS_GROUP_BAN_MS,
  BAN_MEMORY_MS,
  BAN_MS,
  BAN_SCORE,
  DISCONNECT_SCORE,
  GRAYLIST_SCORE,
  MAX_BAN_MS,
  MAX_BANNED_PER_ADDRESS_GROUP,
  MAX_REWARD_SCORE,
  MAX_SCORE_ENTRIES,
  PENALTY,
  PeerScores,
  SCORE_HALF_LIFE_MS,
  SCORE_MAX,
  SCORE_MIN,
  banDurationMs,
  scoreTable,
  stateOfScore,
} from '../../../src/peers/scores.ts'
import { MAX_TOLERANCE_KEYS, TOLERANCES, ToleranceCounter, tolerate } from '../../../src/peers/tolerance.ts'

const T0 = 1_700_000_000_000
const close = (a: number, b: number, epsilon = 1e-9) => Math.abs(a - b) < epsilon

describe('offence codes: each costs its level', () => {
  for (const code of OFFENCE_CODES) {
    it(code, () => {
      const scores = new PeerScores()
      const verdict = scores.penalise('p', code, T0)
      const level = OFFENCES[code].level
      assert.ok(close(scores.score('p', T0), PENALTY[level]), `${code} costs ${PENALTY[level]}`)
      assert.deepEqual(scores.reasons('p'), { [code]: 1 })
      assert.equal(verdict, level === 'fatal' ? 'ban' : 'ok')
      assert.ok(OFFENCES[code].why.length > 10)
    })
  }
})

describe('reward codes: each earns its points', () => {
  for (const code of REWARD_CODES) {
    it(code, () => {
      const scores = new PeerScores()
      scores.reward('p', code, T0)
      assert.ok(close(scores.score('p', T0), REWARDS[code].points))
      assert.deepEqual(scores.view('p', T0).rewards, { [code]: 1 })
      assert.ok(REWARDS[code].points > 0 && REWARDS[code].points <= 1, 'rewards are small')
    })
  }
})

describe('scoring rules', () => {
  it('the score stays within [SCORE_MIN, SCORE_MAX] however many offences or rewards', () => {
    const scores = new PeerScores()
    for (let i = 0; i < 50; i++) scores.penalise('bad', 'TX_REJECTED', T0)
    assert.equal(scores.score('bad', T0), SCORE_MIN)
    for (let i = 0; i < 10_000; i++) scores.reward('good', 'FIRST_DELIVERY_BLOCK', T0)
    assert.ok(scores.score('good', T0) <= SCORE_MAX)
  })

  it('rewards are capped at MAX_REWARD_SCORE', () => {
    const scores = new PeerScores()
    for (let i = 0; i < 1_000; i++) scores.reward('p', 'FIRST_DELIVERY_BLOCK', T0)
    assert.equal(scores.score('p', T0), MAX_REWARD_SCORE)
    assert.equal(scores.view('p', T0).rewards.FIRST_DELIVERY_BLOCK, 1_000)
  })

  it('a fatal offence bans even a peer with banked rewards', () => {
    const scores = new PeerScores()
    for (let i = 0; i < 100; i++) scores.reward('p', 'SYNC_GOOD_ANSWER', T0)
    assert.equal(scores.penalise('p', 'BLOCK_REJECTED', T0), 'ban')
    assert.equal(scores.score('p', T0), SCORE_MIN)
    assert.equal(scores.state('p', T0), 'banned')
  })

  it('a graylisted peer earns no rewards: only decay lifts it', () => {
    const scores = new PeerScores()
    scores.penalise('p', 'TX_REJECTED', T0)
    scores.penalise('p', 'SYNC_USELESS_ANSWER', T0)
    scores.penalise('p', 'SYNC_USELESS_ANSWER', T0)
    assert.equal(scores.state('p', T0), 'graylisted')
    scores.reward('p', 'FIRST_DELIVERY_BLOCK', T0)
    assert.equal(scores.score('p', T0), PENALTY.high + 2 * PENALTY.mid)
  })

  it('scores halve every SCORE_HALF_LIFE_MS', () => {
    const scores = new PeerScores()
    scores.penalise('p', 'TX_REJECTED', T0)
    assert.ok(close(scores.score('p', T0 + SCORE_HALF_LIFE_MS), PENALTY.high / 2))
    assert.ok(close(scores.score('p', T0 + 3 * SCORE_HALF_LIFE_MS), PENALTY.high / 8))
  })

  it('thresholds: graylist, then disconnect, then ban', () => {
    assert.ok(SCORE_MIN <= BAN_SCORE && BAN_SCORE < DISCONNECT_SCORE && DISCONNECT_SCORE < GRAYLIST_SCORE && GRAYLIST_SCORE < 0)
    assert.equal(stateOfScore(0), 'ok')
    assert.equal(stateOfScore(GRAYLIST_SCORE), 'graylisted')
    assert.equal(stateOfScore(DISCONNECT_SCORE), 'disconnect')
    assert.equal(stateOfScore(BAN_SCORE), 'banned')
    const scores = new PeerScores()
    const verdicts = [1, 2, 3, 4, 5].map(() => scores.penalise('p', 'GOSSIP_UNDECODABLE', T0))
    // −30 ok (so the next is decoded and seen), −60 disconnect, −90 disconnect, −100 ban.
    assert.deepEqual(verdicts.slice(0, 4), ['ok', 'disconnect', 'disconnect', 'ban'])
    const other = new PeerScores()
    other.penalise('q', 'TX_REJECTED', T0)
    assert.equal(other.isGraylisted('q', T0), false, 'one high offence is not a graylist: the next message is still seen')
    other.penalise('q', 'SYNC_USELESS_ANSWER', T0)
    other.penalise('q', 'SYNC_USELESS_ANSWER', T0)
    // −40: graylisted (verdict ok: still connected).
    assert.equal(other.isGraylisted('q', T0), true)
    assert.equal(other.state('q', T0), 'graylisted')
    assert.equal(other.selectionFactor('q', T0), 0, 'a graylisted peer is never chosen')
  })

  it('ban duration doubles on repeat, capped at MAX_BAN_MS', () => {
    assert.equal(banDurationMs(1), BAN_MS)
    assert.equal(banDurationMs(2), 2 * BAN_MS)
    assert.equal(banDurationMs(3), 4 * BAN_MS)
    assert.equal(banDurationMs(60), MAX_BAN_MS)
    const scores = new PeerScores()
    scores.penalise('p', 'SYNC_FORGED_STATE', T0)
    assert.equal(scores.view('p', T0).bannedUntil, T0 + BAN_MS)
    const t1 = T0 + BAN_MS + 1
    assert.equal(scores.isBanned('p', t1), false)
    scores.penalise('p', 'SYNC_FORGED_STATE', t1)
    assert.equal(scores.view('p', t1).bannedUntil, t1 + 2 * BAN_MS)
    assert.equal(scores.view('p', t1).banCount, 2)
    // Past BAN_MEMORY_MS the slate is clean again.
    const t2 = t1 + 2 * BAN_MS + BAN_MEMORY_MS + 1
    scores.penalise('p', 'SYNC_FORGED_STATE', t2)
    assert.equal(scores.view('p', t2).bannedUntil, t2 + BAN_MS)
  })

  it('bans freeze decay: the score resumes decaying only when the ban ends', () => {
    const scores = new PeerScores()
    scores.penalise('p', 'BLOCK_REJECTED', T0)
    assert.equal(scores.score('p', T0 + BAN_MS - 1), SCORE_MIN)
    assert.equal(scores.score('p', T0 + BAN_MS), SCORE_MIN)
    assert.ok(close(scores.score('p', T0 + BAN_MS + SCORE_HALF_LIFE_MS), SCORE_MIN / 2))
  })

  it('scores survive reconnects: keyed by peer id, kept until decayed', () => {
    const scores = new PeerScores()
    scores.penalise('p', 'TX_REJECTED', T0)
    scores.penalise('p', 'TX_REJECTED', T0)
    // The peer disconnects and reconnects: nothing in the table is tied to the connection.
    scores.prune(T0 + 1_000)
    assert.equal(scores.state('p', T0 + 1_000), 'disconnect')
    // Decayed to ~0 after many half-lives: forgotten.
    scores.prune(T0 + 20 * SCORE_HALF_LIFE_MS)
    assert.equal(scores.size, 0)
  })

  it(`more than ${MAX_BANNED_PER_ADDRESS_GROUP} banned identities in one address group ban the group`, () => {
    const scores = new PeerScores()
    for (let i = 0; i < MAX_BANNED_PER_ADDRESS_GROUP; i++) {
      scores.noteAddressGroup(`s${i}`, 'ip4:10.1')
      scores.penalise(`s${i}`, 'BLOCK_REJECTED', T0)
    }
    assert.equal(scores.isAddressGroupBanned('ip4:10.1', T0), false)
    scores.noteAddressGroup('s-last', 'ip4:10.1')
    scores.penalise('s-last', 'BLOCK_REJECTED', T0)
    assert.equal(scores.isAddressGroupBanned('ip4:10.1', T0), true)
    assert.equal(scores.isAddressGroupBanned('ip4:10.2', T0), false)
    assert.equal(scores.isAddressGroupBanned('ip4:10.1', T0 + ADDRESS_GROUP_BAN_MS), false)
  })

  it('exportBans / importBans round-trip as JSON and survive a restart', () => {
    const scores = new PeerScores()
    for (let i = 0; i <= MAX_BANNED_PER_ADDRESS_GROUP; i++) {
      scores.noteAddressGroup(`s${i}`, 'ip4:10.1')
      scores.penalise(`s${i}`, 'BLOCK_REJECTED', T0)
    }
    const json = JSON.stringify(scores.exportBans(T0 + 1))
    const restarted = new PeerScores()
    assert.equal(restarted.importBans(JSON.parse(json), T0 + 2), MAX_BANNED_PER_ADDRESS_GROUP + 2)
    assert.equal(restarted.isBanned('s0', T0 + 2), true)
    assert.equal(restarted.state('s0', T0 + 2), 'banned')
    assert.equal(restarted.isAddressGroupBanned('ip4:10.1', T0 + 2), true)
    assert.deepEqual(restarted.exportBans(T0 + 2), JSON.parse(json))
    // A repeat offence after the restart doubles, as it would have without one.
    restarted.penalise('s0', 'BLOCK_REJECTED', T0 + BAN_MS + 10)
    assert.equal(restarted.view('s0', T0 + BAN_MS + 10).banCount, 2)
  })

  it('importBans skips malformed records and caps a ban at MAX_BAN_MS from now', () => {
    const scores = new PeerScores()
    const taken = scores.importBans(
      [null, 7, { kind: 'peer' }, { kind: 'peer', peerId: 'x', untilMs: 'soon' }, { kind: 'peer', peerId: 'forever', untilMs: Number.MAX_SAFE_INTEGER, count: 3 }, { kind: 'nope', untilMs: T0 + 1 }],
      T0,
    )
    assert.equal(taken, 1)
    assert.equal(scores.view('forever', T0).bannedUntil, T0 + MAX_BAN_MS)
    assert.equal(scores.importBans({ not: 'an array' }, T0), 0)
  })

  it('view: total, components and state, ready for net_peers', () => {
    const scores = new PeerScores()
    scores.reward('p', 'FIRST_DELIVERY_BLOCK', T0)
    scores.penalise('p', 'GOSSIP_DUPLICATE', T0)
    scores.penalise('p', 'GOSSIP_DUPLICATE', T0)
    const view = scores.view('p', T0)
    assert.deepEqual(view, { score: -1, penalty: -2, reward: 1, offences: { GOSSIP_DUPLICATE: 2 }, rewards: { FIRST_DELIVERY_BLOCK: 1 }, state: 'ok', banCount: 0 })
    assert.deepEqual(JSON.parse(JSON.stringify(view)), view)
  })

  it(`the score table is capped at MAX_SCORE_ENTRIES (${MAX_SCORE_ENTRIES}); offenders are kept over good peers`, () => {
    const scores = new PeerScores()
    scores.penalise('offender', 'TX_REJECTED', T0)
    for (let i = 0; i < MAX_SCORE_ENTRIES + 100; i++) scores.reward(`good${i}`, 'FIRST_DELIVERY_BLOCK', T0)
    assert.ok(scores.size <= MAX_SCORE_ENTRIES)
    assert.equal(scores.score('offender', T0), PENALTY.high)
  })

  it('docs/protocol.md lists every offence and reward code with its level, delta and why', () => {
    const docs = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8')
    const signed = (n: number) => (n < 0 ? `−${-n}` : `+${n}`)
    for (const row of scoreTable()) assert.ok(docs.includes(`| \`${row.code}\` | ${row.level} | ${signed(row.delta)} | ${row.why} |`), row.code)
    for (const code of REWARD_CODES) assert.ok(docs.includes(`| \`${code}\` | ${signed(REWARDS[code].points)} | ${REWARDS[code].why} |`), code)
  })

  it('scoreTable lists every offence code with its delta', () => {
    const table = scoreTable()
    assert.equal(table.length, OFFENCE_CODES.length)
    for (const row of table) assert.equal(row.delta, PENALTY[row.level])
  })
})

describe('tolerance of noise', () => {
  it('tolerate: free up to the tolerance per window, each event past it is charged', () => {
    const rule = { free: 2, windowMs: 1_000, why: '' }
    let state = undefined as ReturnType<typeof tolerate>['state'] | undefined
    const charges: number[] = []
    for (const at of [0, 10, 20, 30, 1_000, 1_001]) {
      const step = tolerate(state, rule, T0 + at)
      state = step.state
      charges.push(step.charges)
    }
    assert.deepEqual(charges, [0, 0, 1, 1, 0, 0])
  })

  for (const code of Object.keys(TOLERANCES) as (keyof typeof TOLERANCES)[]) {
    it(`${code} is charged only past ${TOLERANCES[code].free} per ${TOLERANCES[code].windowMs} ms`, () => {
      const counter = new ToleranceCounter()
      const { free, windowMs } = TOLERANCES[code]
      for (let i = 0; i < free; i++) assert.equal(counter.note('p', code, T0), 0)
      assert.equal(counter.note('p', code, T0), 1)
      assert.equal(counter.note('other', code, T0), 0, 'per peer')
      assert.equal(counter.note('p', code, T0 + windowMs), 0, 'a new window')
    })
  }

  it('TX_IGNORED is counted per tx: past the tolerance, a message is charged once per 12 ignored txs, at most −20', () => {
    const counter = new ToleranceCounter()
    const { free, windowMs, eventsPerCharge, maxChargesPerMessage } = TOLERANCES.TX_IGNORED
    assert.equal(counter.note('p', 'TX_IGNORED', T0, free - 8), 0, 'within the tolerance: free')
    assert.equal(counter.note('p', 'TX_IGNORED', T0 + 1, 8 + 40), Math.ceil(40 / eventsPerCharge), 'only the txs past the tolerance are charged')
    assert.equal(counter.note('p', 'TX_IGNORED', T0 + 2, 1), 1, 'one ignored tx past it: one charge')
    assert.equal(counter.note('p', 'TX_IGNORED', T0 + 3, 120), 120 / eventsPerCharge, 'a message of 120 is charged in units of 12')
    assert.equal(counter.note('p', 'TX_IGNORED', T0 + 4, 4_096), maxChargesPerMessage, 'capped per message')
    assert.equal(counter.note('p', 'TX_IGNORED', T0 + windowMs, 256), 0, 'a new window')
    // What the cap is worth: one message costs less than a high offence, and two full frames graylist.
    assert.ok(PENALTY.low * maxChargesPerMessage > PENALTY.high)
    assert.ok(2 * PENALTY.low * maxChargesPerMessage <= GRAYLIST_SCORE)
  })

  for (const code of ['TX_IGNORED', 'TX_UNPAYABLE'] as const) {
    it(`${code}: a flood of full frames of such txs is graylisted within about two full frames (512 txs) past the tolerance, however it splits them`, () => {
      for (const perFrame of [256, 64, 16]) {
        const scores = new PeerScores()
        const counter = new ToleranceCounter()
        let frames = 0
        let at = T0
        while (!scores.isGraylisted('p', at) && frames < 10_000) {
          const charges = counter.note('p', code, at, perFrame)
          if (charges > 0) scores.penalise('p', code, at, charges)
          frames++
          at += 1
        }
        const past = frames * perFrame - TOLERANCES[code].free
        // The frame that crosses the tolerance is charged only for its part past it.
        assert.ok(past <= 2 * 256 + perFrame, `${perFrame} per frame: ${past} txs past the tolerance before the graylist`)
      }
    })
  }

  it('TX_UNPAYABLE: a tenth of TX_IGNORED\'s tolerance, so an unfunded flood of full frames is graylisted within three of them, from a clean start', () => {
    assert.ok(TOLERANCES.TX_UNPAYABLE.free * 10 <= TOLERANCES.TX_IGNORED.free)
    const scores = new PeerScores()
    const counter = new ToleranceCounter()
    let frames = 0
    for (let at = T0; !scores.isGraylisted('p', at) && frames < 100; at++) {
      const charges = counter.note('p', 'TX_UNPAYABLE', at, 256)
      if (charges > 0) scores.penalise('p', 'TX_UNPAYABLE', at, charges)
      frames++
    }
    assert.equal(frames, 3)
  })

  it(`the tolerance counter is capped at MAX_TOLERANCE_KEYS (${MAX_TOLERANCE_KEYS})`, () => {
    const counter = new ToleranceCounter()
    for (let i = 0; i < MAX_TOLERANCE_KEYS + 50; i++) counter.note(`p${i}`, 'GOSSIP_DUPLICATE', T0)
    assert.equal(counter.size, MAX_TOLERANCE_KEYS)
    counter.prune(T0 + TOLERANCES.GOSSIP_DUPLICATE.windowMs)
    assert.equal(counter.size, 0)
  })
})
