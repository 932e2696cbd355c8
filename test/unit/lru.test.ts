import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LruMap, LruSet } from '../../src/util/lru.ts'

describe('LruMap', () => {
  it('never holds more than its capacity', () => {
    const map = new LruMap<number, number>(100)
    for (let i = 0; i < 10_000; i++) {
      map.set(i, i)
      assert.ok(map.size <= 100, `size ${map.size} at ${i}`)
    }
    assert.equal(map.get(9_999), 9_999, 'the newest entry is kept')
    assert.equal(map.get(0), undefined, 'the oldest entry is gone')
  })

  it('keeps an entry that is read while newer ones arrive', () => {
    const map = new LruMap<string, number>(10)
    map.set('hot', 1)
    for (let i = 0; i < 1_000; i++) {
      map.set(`cold${i}`, i)
      assert.equal(map.get('hot'), 1, `hot evicted after ${i} inserts`)
    }
    assert.equal(map.get('cold0'), undefined)
  })

  it('overwrites, deletes and peeks without refreshing', () => {
    const map = new LruMap<string, number>(4)
    map.set('a', 1)
    map.set('a', 2)
    assert.equal(map.size, 1)
    assert.equal(map.peek('a'), 2)
    assert.equal(map.delete('a'), true)
    assert.equal(map.has('a'), false)
    assert.equal(map.delete('a'), false)
    for (const key of ['b', 'c', 'd', 'e']) map.set(key, 0)
    assert.deepEqual([...map.keys()].sort(), ['b', 'c', 'd', 'e'])
  })

  it('LruSet follows the same bound', () => {
    const set = new LruSet<number>(8)
    for (let i = 0; i < 100; i++) set.add(i)
    assert.ok(set.size <= 8)
    assert.equal(set.has(99), true)
    assert.equal(set.has(0), false)
  })
})
