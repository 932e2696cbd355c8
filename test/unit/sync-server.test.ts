/** Sync serving (src/sync/server.ts): a big leaf range served in slices gives the same answer, yielding between slices. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type ServedSyncResponse, type SyncRequest, type SyncResponse, decodeSyncResponse, encodeServedResponse, encodeSyncResponse } from '../../src/codec/wire.ts'
import { Mempool } from '../../src/mempool/mempool.ts'
import { LEAVES_PER_SLICE, MAX_UNSTAKED_LEAVES_PER_ANSWER, leavesToServe, serveLeavesInSlices, serveSyncRequest } from '../../src/sync/server.ts'
import { memoryChain, testGenesis } from '../helpers/chain.ts'

/** A served answer as its asker reads it. */
const asRead = (answer: ServedSyncResponse): SyncResponse => decodeSyncResponse(encodeServedResponse(answer))

describe('sync serving', () => {
  it(`serveLeavesInSlices: a big getLeaves in slices of ${LEAVES_PER_SLICE}, yielding between them, equals the one-shot answer`, async () => {
    const chain = await memoryChain(testGenesis({ funded: 3 * LEAVES_PER_SLICE + 100 }))
    const deps = { chain, mempool: new Mempool({ getAccount: (address) => chain.getAccount(address) }, { maxTxs: 100, maxBytes: 1 << 20, ttlMs: 60_000 }) }
    const root = chain.head.header.stateRoot
    const requests: Array<Extract<SyncRequest, { type: 'getLeaves' }>> = [
      { type: 'getLeaves', subtree: root, depth: 0, startAfter: undefined, max: 65_536 },
      { type: 'getLeaves', subtree: root, depth: 0, startAfter: undefined, max: 2 * LEAVES_PER_SLICE + 7 },
    ]
    for (const request of requests) {
      let yields = 0
      const sliced = await serveLeavesInSlices(request, deps, async () => void yields++)
      const whole = serveSyncRequest(request, deps)
      assert.equal(sliced.type, 'encodedLeaves', 'a sliced page is written as bytes')
      assert.deepEqual(encodeServedResponse(sliced), encodeSyncResponse(whole), 'byte for byte the one-shot answer')
      assert.deepEqual(asRead(sliced), whole)
      const leaves = (whole as Extract<SyncResponse, { type: 'leaves' }>).leaves.length
      assert.equal(yields, Math.ceil(leaves / LEAVES_PER_SLICE) - 1, 'one yield between two slices')
    }
    // Continuation after the first slice's last key, as a client pages.
    const first = asRead(await serveLeavesInSlices({ ...requests[1], max: 10 } as Extract<SyncRequest, { type: 'getLeaves' }>, deps, async () => undefined)) as Extract<SyncResponse, { type: 'leaves' }>
    const next = { type: 'getLeaves' as const, subtree: root, depth: 0, startAfter: first.leaves[9]?.keyHash, max: 2 * LEAVES_PER_SLICE }
    assert.deepEqual(asRead(await serveLeavesInSlices(next, deps, async () => undefined)), serveSyncRequest(next, deps))
    // An unknown subtree is an error, as before.
    const unknown = await serveLeavesInSlices({ ...next, subtree: new Uint8Array(32), startAfter: undefined }, deps, async () => undefined)
    assert.equal(unknown.type, 'error')
  })

  it('serveLeavesInSlices: an asker cut off mid-answer gets no more slices', async () => {
    const chain = await memoryChain(testGenesis({ funded: 4 * LEAVES_PER_SLICE }))
    const deps = { chain, mempool: new Mempool({ getAccount: (address) => chain.getAccount(address) }, { maxTxs: 100, maxBytes: 1 << 20, ttlMs: 60_000 }) }
    const request = { type: 'getLeaves' as const, subtree: chain.head.header.stateRoot, depth: 0, startAfter: undefined, max: 65_536 }
    let slices = 0
    let wanted = true
    const answer = await serveLeavesInSlices(
      request,
      deps,
      async () => {
        // Cut off after the second slice.
        if (++slices === 2) wanted = false
      },
      () => wanted,
    )
    assert.equal(answer.type, 'error')
    assert.equal(slices, 2, 'two slices collected, no third')
    const never = await serveLeavesInSlices(request, deps, async () => assert.fail('no slice for an asker already gone'), () => false)
    assert.equal(never.type, 'error')
  })

  it(`leavesToServe: a zero-stake asker gets pages of at most ${MAX_UNSTAKED_LEAVES_PER_ANSWER} leaves, and paging on from a short page gives the whole range`, async () => {
    const chain = await memoryChain(testGenesis({ funded: MAX_UNSTAKED_LEAVES_PER_ANSWER + 300 }))
    const deps = { chain, mempool: new Mempool({ getAccount: (address) => chain.getAccount(address) }, { maxTxs: 100, maxBytes: 1 << 20, ttlMs: 60_000 }) }
    const big = { type: 'getLeaves' as const, subtree: chain.head.header.stateRoot, depth: 0, startAfter: undefined, max: 65_536 }
    assert.equal(leavesToServe(big, true), big, 'a staked asker is served what it asks')
    assert.equal(leavesToServe({ ...big, max: 1_000 }, false).max, 1_000, 'a page within the cap is unchanged')
    const capped = leavesToServe(big, false)
    assert.equal(capped.max, MAX_UNSTAKED_LEAVES_PER_ANSWER)
    const whole = serveSyncRequest(big, deps) as Extract<SyncResponse, { type: 'leaves' }>
    const first = asRead(await serveLeavesInSlices(capped, deps, async () => undefined)) as Extract<SyncResponse, { type: 'leaves' }>
    assert.equal(first.leaves.length, MAX_UNSTAKED_LEAVES_PER_ANSWER)
    assert.equal(first.more, true, 'a short page says there is more')
    const rest = serveSyncRequest(leavesToServe({ ...big, startAfter: first.leaves[first.leaves.length - 1]?.keyHash }, false), deps) as Extract<SyncResponse, { type: 'leaves' }>
    assert.equal(rest.more, false)
    assert.deepEqual([...first.leaves, ...rest.leaves], whole.leaves, 'the pages add up to the one-shot answer')
  })
})
