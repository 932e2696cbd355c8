// The genesis file (src/ledger/genesis.ts): the devnet genesis, loading genesis/devnet.json,
// field-by-field validation of untrusted JSON, and the hash that names the network.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { toHex, toHexKey } from '../../src/codec/bytes.ts'
import { MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_GENESIS_VALIDATORS, MAX_MEMO_BYTES, MAX_TX_BYTES } from '../../src/codec/limits.ts'
import { decodeGenesis, encodeGenesis, genesisHash } from '../../src/codec/objects.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import {
  DEFAULT_LIMITS,
  GenesisError,
  type GenesisJson,
  devnetGenesis,
  genesisFromJson,
  genesisId,
  genesisToJson,
  loadGenesisFile,
} from '../../src/ledger/genesis.ts'
import type { Genesis } from '../../src/ledger/types.ts'
import { GENESIS_TIME, testGenesis } from '../helpers/chain.ts'

const DEVNET_FILE = fileURLToPath(new URL('../../genesis/devnet.json', import.meta.url))
const MAX_U64 = (1n << 64n) - 1n

/** A valid genesis JSON to break one field at a time. */
function baseJson(): GenesisJson {
  return genesisToJson(devnetGenesis({ validatorCount: 4, fundedCount: 6, genesisTime: GENESIS_TIME }))
}

/** `baseJson()` with `edit` applied to a deep copy. */
function edited(edit: (json: Record<string, any>) => void): unknown {
  const json = structuredClone(baseJson()) as unknown as Record<string, any>
  edit(json)
  return json
}

function expectGenesisError(json: unknown, message?: RegExp): void {
  assert.throws(
    () => genesisFromJson(json),
    (error: unknown) => {
      assert.ok(error instanceof GenesisError, `expected GenesisError, got ${String(error)}`)
      if (message !== undefined) assert.match(error.message, message)
      return true
    },
  )
}

const hashHex = (genesis: Genesis) => toHexKey(genesisHash(genesis))

describe('devnet genesis', () => {
  it('is deterministic', () => {
    const a = devnetGenesis({ validatorCount: 4, genesisTime: GENESIS_TIME })
    const b = devnetGenesis({ validatorCount: 4, genesisTime: GENESIS_TIME })
    assert.deepEqual(encodeGenesis(a), encodeGenesis(b))
    assert.equal(hashHex(a), hashHex(b))
    assert.equal(hashHex(testGenesis()), hashHex(a))
  })

  it('has 4 validators (dev keys 0..3) with unequal stake', () => {
    const genesis = devnetGenesis({ validatorCount: 4, genesisTime: GENESIS_TIME })
    assert.equal(genesis.validators.length, 4)
    const stakeOf = new Map(genesis.validators.map((v) => [toHexKey(v.address), v.stake]))
    for (let i = 0; i < 4; i++) assert.equal(stakeOf.get(toHexKey(devKeypair(i).publicKey)), BigInt((4 - i) * 100))
    assert.equal(new Set(genesis.validators.map((v) => v.stake)).size, 4, 'all stakes differ')
  })

  it('funds dev keys 0..99 and nobody else', () => {
    const genesis = devnetGenesis({ validatorCount: 4, genesisTime: GENESIS_TIME })
    assert.equal(genesis.accounts.length, 100)
    const balanceOf = new Map(genesis.accounts.map((a) => [toHexKey(a.address), a.balance]))
    for (let i = 0; i < 100; i++) assert.equal(balanceOf.get(toHexKey(devKeypair(i).publicKey)), 1_000_000_000_000n, `dev key ${i}`)
    assert.equal(balanceOf.has(toHexKey(devKeypair(100).publicKey)), false)
  })

  it('keeps its lists sorted by address, so it encodes', () => {
    const genesis = devnetGenesis({ validatorCount: 7, genesisTime: GENESIS_TIME })
    for (const list of [genesis.validators, genesis.accounts]) {
      for (let i = 1; i < list.length; i++) {
        assert.ok(Buffer.compare((list[i - 1] as { address: Uint8Array }).address, (list[i] as { address: Uint8Array }).address) < 0)
      }
    }
    assert.deepEqual(decodeGenesis(encodeGenesis(genesis)), genesis)
  })

  it('validators are funded even when fewer accounts are asked for; options apply', () => {
    const genesis = devnetGenesis({ validatorCount: 5, fundedCount: 2, genesisTime: 1, slotMs: 250, chainId: 'x', balance: 9n, limits: { minFee: 3n } })
    assert.equal(genesis.accounts.length, 5)
    assert.ok(genesis.accounts.every((a) => a.balance === 9n))
    assert.equal(genesis.slotMs, 250)
    assert.equal(genesis.chainId, 'x')
    assert.equal(genesis.limits.minFee, 3n)
    assert.equal(genesis.limits.maxBlockTxs, DEFAULT_LIMITS.maxBlockTxs)
    assert.throws(() => devnetGenesis({ validatorCount: 0, genesisTime: 1 }), GenesisError)
    assert.throws(() => devnetGenesis({ validatorCount: MAX_GENESIS_VALIDATORS + 1, genesisTime: 1 }), GenesisError)
  })
})

describe('genesis file', () => {
  it('genesis/devnet.json loads, validates, and is the devnet genesis', () => {
    const genesis = loadGenesisFile(DEVNET_FILE)
    assert.equal(genesis.chainId, 'grapevine-devnet')
    assert.equal(genesis.validators.length, 4)
    assert.equal(genesis.accounts.length, 100)
    assert.equal(hashHex(genesis), hashHex(devnetGenesis({ validatorCount: 4, genesisTime: genesis.genesisTime })))
    assert.equal(genesisId(genesis).prefix, genesisId(genesis).hex.slice(0, 16))
    assert.equal(genesisId(genesis).prefix.length, 16)
  })

  it('JSON round-trips through genesisToJson and genesisFromJson', () => {
    const genesis = devnetGenesis({ validatorCount: 4, genesisTime: GENESIS_TIME })
    const back = genesisFromJson(JSON.parse(JSON.stringify(genesisToJson(genesis))))
    assert.deepEqual(back, genesis)
  })

  it('seeds: optional multiaddrs, validated, round-tripped, and not part of the genesis hash', () => {
    const genesis = devnetGenesis({ validatorCount: 4, genesisTime: GENESIS_TIME })
    const seeds = ['/ip4/203.0.113.7/tcp/9000/p2p/12D3KooWAbc', '/dns4/seed.example.org/tcp/9000']
    const json = { ...genesisToJson(genesis), seeds }
    const withSeeds = genesisFromJson(JSON.parse(JSON.stringify(json)))
    assert.deepEqual(withSeeds.seeds, seeds)
    assert.deepEqual(genesisToJson(withSeeds).seeds, seeds)
    assert.equal(hashHex(withSeeds), hashHex(genesis), 'adding seeds does not start another network')
    for (const bad of [['not a multiaddr'], [42], ['/ip4/1.2.3.4/tcp/1 /x'], Array.from({ length: 65 }, () => '/ip4/1.2.3.4/tcp/1'), ['/' + 'a'.repeat(300)], 'x']) {
      assert.throws(() => genesisFromJson({ ...json, seeds: bad }), GenesisError, JSON.stringify(bad).slice(0, 40))
    }
  })

  it('lists in any order load to the same (sorted) genesis', () => {
    const json = baseJson()
    const shuffled = { ...json, validators: [...json.validators].reverse(), accounts: [...json.accounts].reverse() }
    assert.equal(hashHex(genesisFromJson(shuffled)), hashHex(genesisFromJson(json)))
  })

  it('a missing, unreadable or non-JSON file is a GenesisError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grapevine-genesis-'))
    try {
      assert.throws(() => loadGenesisFile(join(dir, 'absent.json')), GenesisError)
      const bad = join(dir, 'bad.json')
      writeFileSync(bad, '{ "chainId": ')
      assert.throws(() => loadGenesisFile(bad), (error: unknown) => error instanceof GenesisError && /not valid JSON/.test(error.message))
      const wrong = join(dir, 'wrong.json')
      writeFileSync(wrong, JSON.stringify({ ...baseJson(), slotMs: 5 }))
      assert.throws(() => loadGenesisFile(wrong), (error: unknown) => error instanceof GenesisError && /slotMs/.test(error.message))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('genesisFromJson rejects malformed fields', () => {
  it('accepts the base JSON (so each rejection below is about its one change)', () => {
    genesisFromJson(baseJson())
  })

  it('not an object', () => {
    for (const json of [null, 1, 'genesis', [], [baseJson()]]) expectGenesisError(json, /JSON object/)
  })

  it('bad chainId', () => {
    for (const chainId of ['', 'Grapevine', '-devnet', 'dev net', 'dev/net', 'a'.repeat(33), 'dévnet', 7, null, undefined]) {
      expectGenesisError(
        edited((json) => {
          json['chainId'] = chainId
        }),
        /chainId/,
      )
    }
  })

  it('genesisTime not a non-negative safe integer', () => {
    for (const genesisTime of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, '1700000000000', null]) {
      expectGenesisError(
        edited((json) => {
          json['genesisTime'] = genesisTime
        }),
        /genesisTime/,
      )
    }
  })

  it('slotMs out of range', () => {
    for (const slotMs of [0, 19, 3_600_001, 100.5, '1000', -1000]) {
      expectGenesisError(
        edited((json) => {
          json['slotMs'] = slotMs
        }),
        /slotMs/,
      )
    }
    for (const slotMs of [20, 3_600_000]) {
      const genesis = genesisFromJson(
        edited((json) => {
          json['slotMs'] = slotMs
        }),
      )
      assert.equal(genesis.slotMs, slotMs)
    }
  })

  it('duplicate validator', () => {
    expectGenesisError(
      edited((json) => {
        json['validators'][1].address = json['validators'][0].address
      }),
      /duplicate validator/,
    )
    // The same address in another case is still the same key.
    expectGenesisError(
      edited((json) => {
        json['validators'][1].address = '0x' + json['validators'][0].address.slice(2).toUpperCase()
      }),
      /duplicate validator/,
    )
  })

  it('duplicate account', () => {
    expectGenesisError(
      edited((json) => {
        json['accounts'][3].address = json['accounts'][0].address
      }),
      /duplicate account/,
    )
  })

  it('zero (or malformed) stake', () => {
    for (const stake of ['0', '', '-1', 100, '1.0', 'abc']) {
      expectGenesisError(
        edited((json) => {
          json['validators'][2].stake = stake
        }),
        /validators\[2\]\.stake/,
      )
    }
  })

  it('validators missing, empty or too many', () => {
    expectGenesisError(edited((json) => void delete json['validators']), /validators/)
    expectGenesisError(
      edited((json) => {
        json['validators'] = []
      }),
      /validators/,
    )
    expectGenesisError(
      edited((json) => {
        json['validators'] = Array.from({ length: MAX_GENESIS_VALIDATORS + 1 }, (_, i) => ({ address: toHex(new Uint8Array(32).fill(i % 256)), stake: '1' }))
      }),
      /validators must be a list of 1 to 1024/,
    )
    expectGenesisError(
      edited((json) => {
        json['validators'][0] = 'not an object'
      }),
      /validators\[0\] must be an object/,
    )
  })

  it('bad addresses', () => {
    for (const address of ['0x1234', 'ab'.repeat(32), '0x' + 'zz'.repeat(32), '0x' + 'ab'.repeat(33), 42]) {
      expectGenesisError(
        edited((json) => {
          json['validators'][0].address = address
        }),
        /validators\[0\]\.address/,
      )
      expectGenesisError(
        edited((json) => {
          json['accounts'][1].address = address
        }),
        /accounts\[1\]\.address/,
      )
    }
  })

  it('balance not a decimal string', () => {
    for (const balance of [5, '5x', '0x10', '-1', '01', '1e3', ' 1', '1 ', '1.5', '', null, '18446744073709551616']) {
      expectGenesisError(
        edited((json) => {
          json['accounts'][0].balance = balance
        }),
        /accounts\[0\]\.balance/,
      )
    }
    // Zero and the u64 maximum are fine on their own.
    for (const balance of ['0', MAX_U64.toString()]) {
      const genesis = genesisFromJson(
        edited((json) => {
          json['accounts'] = [{ address: json['accounts'][0].address, balance }]
        }),
      )
      assert.equal(genesis.accounts[0]?.balance, BigInt(balance))
    }
  })

  it('supply over u64', () => {
    expectGenesisError(
      edited((json) => {
        json['accounts'][0].balance = MAX_U64.toString()
        json['accounts'][1].balance = '1'
      }),
      /total supply/,
    )
    expectGenesisError(
      edited((json) => {
        for (const account of json['accounts']) account.balance = (1n << 62n).toString()
      }),
      /total supply/,
    )
  })

  it('total stake over u64', () => {
    expectGenesisError(
      edited((json) => {
        json['validators'][0].stake = MAX_U64.toString()
        json['validators'][1].stake = '1'
      }),
      /total stake/,
    )
  })

  it('limits above protocol maxima (or below their minima, or of the wrong type)', () => {
    const cases: Array<[field: string, value: unknown]> = [
      ['maxTxBytes', MAX_TX_BYTES + 1],
      ['maxTxBytes', 127],
      ['maxMemoBytes', MAX_MEMO_BYTES + 1],
      ['maxMemoBytes', -1],
      ['maxBlockTxs', MAX_BLOCK_TXS + 1],
      ['maxBlockTxs', 0],
      ['maxBlockBytes', MAX_BLOCK_BYTES + 1],
      ['maxBlockBytes', 1023],
      ['minFee', 1],
      ['minFee', '-1'],
      ['minFee', '18446744073709551616'],
      ['mempoolMaxTxs', 0],
      ['mempoolMaxTxs', 10_000_001],
      ['mempoolMaxBytes', 2 ** 32],
      ['mempoolTxTtlMs', 999],
      ['mempoolTxTtlMs', 2 ** 32],
      ['maxClockDriftMs', 600_001],
      ['maxClockDriftMs', '500'],
    ]
    for (const [field, value] of cases) {
      expectGenesisError(
        edited((json) => {
          json['limits'][field] = value
        }),
        new RegExp(`limits\\.${field}`),
      )
    }
    expectGenesisError(edited((json) => void delete json['limits']['maxBlockTxs']), /limits\.maxBlockTxs/)
    expectGenesisError(
      edited((json) => {
        json['limits'] = 'none'
      }),
      /limits must be an object/,
    )
    // The protocol maxima themselves are accepted.
    const atMax = genesisFromJson(
      edited((json) => {
        json['limits'].maxTxBytes = MAX_TX_BYTES
        json['limits'].maxMemoBytes = MAX_MEMO_BYTES
        json['limits'].maxBlockTxs = MAX_BLOCK_TXS
        json['limits'].maxBlockBytes = MAX_BLOCK_BYTES
      }),
    )
    assert.equal(atMax.limits.maxBlockBytes, MAX_BLOCK_BYTES)
  })
})

describe('genesis hash', () => {
  it('changes when any field changes', () => {
    const base = devnetGenesis({ validatorCount: 4, fundedCount: 6, genesisTime: GENESIS_TIME })
    const [v0, v1, v2, v3] = base.validators as [Genesis['validators'][number], Genesis['validators'][number], Genesis['validators'][number], Genesis['validators'][number]]
    const a0 = base.accounts[0] as Genesis['accounts'][number]
    const flipFirst = (address: Uint8Array) => {
      const out = new Uint8Array(address)
      out[0] = (out[0] as number) ^ 0x01
      return out
    }
    const variants: Array<[string, Genesis]> = [
      ['chainId', { ...base, chainId: 'grapevine-devnet2' }],
      ['genesisTime', { ...base, genesisTime: base.genesisTime + 1 }],
      ['slotMs', { ...base, slotMs: base.slotMs + 1 }],
      ['validator stake', { ...base, validators: [{ ...v0, stake: v0.stake + 1n }, v1, v2, v3] }],
      ['validator address', { ...base, validators: [v0, v1, v2, { ...v3, address: flipFirst(v3.address) }] }],
      ['validator removed', { ...base, validators: [v0, v1, v2] }],
      ['account balance', { ...base, accounts: [{ ...a0, balance: a0.balance - 1n }, ...base.accounts.slice(1)] }],
      ['account removed', { ...base, accounts: base.accounts.slice(1) }],
      ['account added', { ...base, accounts: [...base.accounts, { address: new Uint8Array(32).fill(0xff), balance: 1n }] }],
    ]
    for (const key of Object.keys(base.limits) as Array<keyof Genesis['limits']>) {
      const value = base.limits[key]
      variants.push([`limits.${key}`, { ...base, limits: { ...base.limits, [key]: typeof value === 'bigint' ? value + 1n : value + 1 } }])
    }
    assert.equal(variants.length, 9 + 9, 'every limit is varied')
    const seen = new Map<string, string>([[hashHex(base), 'base']])
    for (const [name, variant] of variants) {
      const hash = hashHex(variant)
      assert.equal(seen.has(hash), false, `${name} gives the same hash as ${seen.get(hash)}`)
      seen.set(hash, name)
    }
  })

  it('is SHA-256 of the canonical encoding', () => {
    const genesis = testGenesis()
    assert.equal(hashHex(genesis), createHash('sha256').update(encodeGenesis(genesis)).digest('hex'))
    assert.equal(genesisId(genesis).hex, hashHex(genesis))
  })
})
