/** Hosts that keep bringing refused identities (src/peers/address-cooldown.ts): pure, on passed-in time. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ADDRESS_COOLDOWN_FIRST_MS,
  ADDRESS_COOLDOWN_MAX_MS,
  ADDRESS_COOLDOWN_MEMORY_MS,
  AddressCooldowns,
  COOLDOWN_JITTER,
  FRESH_HANDSHAKES,
  PROBATION_HANDSHAKES,
  cooldownMs,
} from '../../../src/peers/address-cooldown.ts'
import { addressHost } from '../../../src/peers/address-group.ts'
import { seededRandom } from '../../../src/util/random.ts'

/** A connection's first check (the socket): it spends the budgets. */
const SOCKET = { trusted: false, spend: true }

describe('AddressCooldowns', () => {
  it('a refusal cools the host down for the first cooldown; other hosts are untouched', () => {
    const table = new AddressCooldowns()
    assert.equal(table.refused('ip4:127.10.0.1', 1_000), ADDRESS_COOLDOWN_FIRST_MS)
    assert.equal(table.cooling('ip4:127.10.0.1', 1_000), true)
    assert.equal(table.cooling('ip4:127.10.0.1', 1_000 + ADDRESS_COOLDOWN_FIRST_MS - 1), true)
    assert.equal(table.cooling('ip4:127.10.0.1', 1_000 + ADDRESS_COOLDOWN_FIRST_MS), false)
    assert.equal(table.cooling('ip4:127.11.0.1', 1_000), false)
  })

  it('the cooldown doubles with each refusal and stops at the cap', () => {
    const table = new AddressCooldowns()
    let now = 0
    const seen: number[] = []
    for (let i = 0; i < 10; i++) {
      const ms = table.refused('ip4:10.0.0.1', now)
      seen.push(ms)
      now += ms // the banned identity redials as soon as it may
    }
    assert.deepEqual(seen.slice(0, 5), [1_000, 2_000, 4_000, 8_000, 16_000])
    assert.equal(Math.max(...seen), ADDRESS_COOLDOWN_MAX_MS)
    assert.equal(cooldownMs(100), ADDRESS_COOLDOWN_MAX_MS)
  })

  it('hosts cut off in the same instant come back spread over ±COOLDOWN_JITTER of the cooldown, not in one burst', () => {
    const table = new AddressCooldowns(undefined, seededRandom(7))
    const firsts = Array.from({ length: 40 }, (_, i) => table.refused(`ip4:127.${10 + i}.0.1`, 0))
    for (const ms of firsts) assert.ok(ms >= ADDRESS_COOLDOWN_FIRST_MS * (1 - COOLDOWN_JITTER) && ms <= ADDRESS_COOLDOWN_FIRST_MS * (1 + COOLDOWN_JITTER), `${ms} ms`)
    // Spread: the redials of a swarm land over most of the ±50 % band; no millisecond holds more than two.
    assert.ok(Math.max(...firsts) - Math.min(...firsts) >= ADDRESS_COOLDOWN_FIRST_MS * COOLDOWN_JITTER, `spread ${Math.min(...firsts)}–${Math.max(...firsts)} ms`)
    const perMs = new Map<number, number>()
    for (const ms of firsts) perMs.set(ms, (perMs.get(ms) ?? 0) + 1)
    assert.ok(Math.max(...perMs.values()) <= 2)
    // The mean stays the cooldown's.
    const mean = firsts.reduce((a, b) => a + b, 0) / firsts.length
    assert.ok(Math.abs(mean - ADDRESS_COOLDOWN_FIRST_MS) < 0.15 * ADDRESS_COOLDOWN_FIRST_MS, `mean ${mean}`)
    // The doubling still holds under the jitter: a second strike's cooldown lies in the doubled band.
    const second = table.refused('ip4:127.10.0.1', 5_000)
    assert.ok(second >= 2 * ADDRESS_COOLDOWN_FIRST_MS * (1 - COOLDOWN_JITTER) && second <= 2 * ADDRESS_COOLDOWN_FIRST_MS * (1 + COOLDOWN_JITTER))
  })

  it('a host that stopped bringing refused identities starts again at the first cooldown, and is pruned', () => {
    const table = new AddressCooldowns()
    table.refused('ip4:10.0.0.1', 0)
    table.refused('ip4:10.0.0.1', 1_000)
    const later = 1_000 + ADDRESS_COOLDOWN_MEMORY_MS
    assert.equal(table.refused('ip4:10.0.0.1', later), ADDRESS_COOLDOWN_FIRST_MS)
    table.prune(later + ADDRESS_COOLDOWN_MEMORY_MS)
    assert.equal(table.size, 0)
  })

  it('ADDRESS_PROBATION: a swarm back from its cooldowns at one instant reaches its handshakes a few at a time; no strike', () => {
    const table = new AddressCooldowns()
    const hosts = Array.from({ length: 20 }, (_, i) => `ip4:127.${10 + i}.0.1`)
    for (const host of hosts) table.refused(host, 0)
    // While cooling, every one is refused as cooling, and that spends nothing.
    for (const host of hosts) assert.equal(table.beforeHandshake(host, 500, SOCKET), 'cooling')
    // The dialler's own timeout ends for all of them at once, long after the cooldowns did.
    const back = 3_000
    const first = hosts.map((host) => table.beforeHandshake(host, back, SOCKET))
    assert.equal(first.filter((gate) => gate === 'allow').length, PROBATION_HANDSHAKES.burst)
    assert.equal(first.filter((gate) => gate === 'probation').length, hosts.length - (PROBATION_HANDSHAKES.burst ?? 0))
    // Redialling at once, as fast as they like, they get PROBATION_HANDSHAKES.tokens a second.
    let allowed = 0
    for (let t = back + 1; t <= back + 1_000; t++) for (const host of hosts) if (table.beforeHandshake(host, t, SOCKET) === 'allow') allowed++
    assert.equal(allowed, PROBATION_HANDSHAKES.tokens)
    // A refusal on probation is not a strike: the next identity refused there gets the second cooldown, not a later one.
    assert.equal(table.refused(hosts[19] as string, 5_000), 2 * ADDRESS_COOLDOWN_FIRST_MS)
    // A host without a record never draws on the probation budget, spent as it is (it has its own).
    for (let i = 0; i < 10; i++) assert.equal(table.beforeHandshake('ip4:127.99.0.1', back + 1_000, SOCKET), 'allow')
    // Past its memory a host is off probation.
    assert.equal(table.beforeHandshake(hosts[0] as string, ADDRESS_COOLDOWN_MEMORY_MS + 1, SOCKET), 'allow')
  })

  it('HANDSHAKE_BUDGET: fresh hosts reach their handshakes within a node-wide budget; trusted hosts and second checks spend nothing; no strike', () => {
    const table = new AddressCooldowns()
    const burst = FRESH_HANDSHAKES.burst ?? FRESH_HANDSHAKES.tokens
    // A flood of fresh identities from 40 hosts at one instant: the burst gets through, the rest is refused.
    const hosts = Array.from({ length: 40 }, (_, i) => `ip4:127.${10 + i}.0.1`)
    const first = hosts.map((host) => table.beforeHandshake(host, 0, SOCKET))
    assert.equal(first.filter((gate) => gate === 'allow').length, burst)
    assert.equal(first.filter((gate) => gate === 'budget').length, hosts.length - burst)
    // Dialling as fast as they like, they get the budget's rate: FRESH_HANDSHAKES.tokens per period.
    let allowed = 0
    for (let t = 1; t <= FRESH_HANDSHAKES.periodMs; t++) for (const host of hosts) if (table.beforeHandshake(host, t, SOCKET) === 'allow') allowed++
    assert.equal(allowed, FRESH_HANDSHAKES.tokens)
    // A trusted host (a validator's, or one shared with a good peer) passes with the budget spent, and spends nothing.
    const spentAt = FRESH_HANDSHAKES.periodMs
    for (let i = 0; i < 50; i++) assert.equal(table.beforeHandshake('ip4:127.0.0.1', spentAt, { trusted: true, spend: true }), 'allow')
    // libp2p's gater asking again for a connection the socket check let by spends nothing and is not refused.
    for (let i = 0; i < 50; i++) assert.equal(table.beforeHandshake(hosts[0] as string, spentAt, { trusted: false, spend: false }), 'allow')
    assert.equal(table.beforeHandshake(hosts[1] as string, spentAt, SOCKET), 'budget', 'the budget is still spent: neither drew on it')
    // A budget refusal is not a strike: the host has no record, and its first refused identity gets the first cooldown.
    assert.equal(table.size, 0)
    assert.equal(table.refused(hosts[0] as string, spentAt), ADDRESS_COOLDOWN_FIRST_MS)
    // The budget refills: after a quiet period the burst is there again.
    const later = hosts.slice(1).map((host) => table.beforeHandshake(host, 60_000, SOCKET))
    assert.equal(later.filter((gate) => gate === 'allow').length, burst)
  })

  it('holds at most its cap of hosts, dropping the oldest', () => {
    const table = new AddressCooldowns(3)
    for (let i = 0; i < 10; i++) table.refused(`ip4:10.0.0.${i}`, i)
    assert.equal(table.size, 3)
    assert.equal(table.cooling('ip4:10.0.0.9', 10), true)
    assert.equal(table.cooling('ip4:10.0.0.0', 10), false)
    assert.deepEqual(
      table.list(10).map((entry) => entry.host),
      ['ip4:10.0.0.7', 'ip4:10.0.0.8', 'ip4:10.0.0.9'],
    )
  })
})

describe('addressHost', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['/ip4/1.2.3.4/tcp/5', 'ip4:1.2.3.4'],
    ['/ip4/127.10.0.1/tcp/4001/p2p/12D3KooW', 'ip4:127.10.0.1'],
    ['/ip6/2001:DB8::1/tcp/5', 'ip6:2001:db8::1'],
    ['/dns4/Node.Example.com/tcp/5', 'dns4:node.example.com'],
    ['1.2.3.4', undefined],
    ['/memory/x', undefined],
    ['/ip4', undefined],
    [undefined, undefined],
  ]
  for (const [input, host] of cases) it(`${JSON.stringify(input)} → ${String(host)}`, () => assert.equal(addressHost(input), host))
})
