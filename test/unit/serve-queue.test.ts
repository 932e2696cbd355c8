import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ServeQueue } from '../../src/sync/serve-queue.ts'

/** A job that finishes when told to. */
function gate(): { promise: Promise<string>; open: (value: string) => void } {
  let open: (value: string) => void = () => undefined
  const promise = new Promise<string>((resolve) => (open = resolve))
  return { promise, open }
}
const flush = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('ServeQueue (sync serving, a few at a time)', () => {
  it('runs at most `concurrency` jobs at once; the rest wait in order', async () => {
    const queue = new ServeQueue({ concurrency: 2, maxQueued: 10, maxPerPeer: 10 })
    const started: number[] = []
    const gates = Array.from({ length: 4 }, () => gate())
    const results = gates.map((g, i) =>
      queue.run(`p${i}`, () => {
        started.push(i)
        return g.promise
      }),
    )
    await flush()
    assert.deepEqual(started, [0, 1])
    assert.deepEqual(queue.size, { running: 2, waiting: 2 })
    gates[1]?.open('b')
    await flush()
    assert.deepEqual(started, [0, 1, 2], 'a finished job hands its slot to the first waiting one')
    gates[0]?.open('a')
    gates[2]?.open('c')
    gates[3]?.open('d')
    assert.deepEqual(await Promise.all(results), ['a', 'b', 'c', 'd'])
    assert.deepEqual(queue.size, { running: 0, waiting: 0 })
  })

  it('refuses (undefined) when the queue is full, and a peer past its own share', async () => {
    const queue = new ServeQueue({ concurrency: 1, maxQueued: 2, maxPerPeer: 2 })
    const g = gate()
    assert.ok(queue.run('a', () => g.promise))
    assert.ok(queue.run('a', () => 'a2'))
    assert.equal(queue.run('a', () => 'a3'), undefined, 'a peer has at most maxPerPeer here')
    assert.ok(queue.run('b', () => 'b1'))
    assert.equal(queue.run('c', () => 'c1'), undefined, 'the queue is full: busy for everyone')
    g.open('a1')
    await flush()
    await flush()
    assert.ok(queue.run('c', () => 'c1'), 'room again once jobs finish')
  })

  it('a failing job frees its slot', async () => {
    const queue = new ServeQueue({ concurrency: 1, maxQueued: 4, maxPerPeer: 4 })
    await assert.rejects(
      queue.run('a', () => {
        throw new Error('boom')
      }) as Promise<unknown>,
    )
    assert.equal(await queue.run('a', () => 'next'), 'next')
    assert.deepEqual(queue.size, { running: 0, waiting: 0 })
  })
})
