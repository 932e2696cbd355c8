// The sending half of a gossip stream (src/net/link.ts) on a fake stream: what one task queues
// leaves in one send() as soon as that task is done — not a loop iteration later — and a full
// write buffer is waited out on 'drain'.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Stream } from '@libp2p/interface'
import { OutboundLink, SlowPeerError } from '../../../src/net/link.ts'

/** A stream that records what is sent; `accept` says whether its write buffer takes more. */
class FakeStream extends EventTarget {
  status = 'open'
  sent: Uint8Array[] = []
  accept = true
  aborted: Error | undefined
  send(bytes: Uint8Array): boolean {
    this.sent.push(bytes)
    return this.accept
  }
  abort(error: Error): void {
    this.aborted = error
    this.status = 'aborted'
  }
}

/** The payloads in one batch: u32be(length) || payload, repeated. */
function unframe(batch: Uint8Array): number[][] {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength)
  const out: number[][] = []
  for (let offset = 0; offset < batch.length; ) {
    const length = view.getUint32(offset)
    out.push([...batch.subarray(offset + 4, offset + 4 + length)])
    offset += 4 + length
  }
  return out
}

const nextIteration = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('outbound link', () => {
  it('sends what one task queued in one frame batch, when that task returns', async () => {
    const stream = new FakeStream()
    const link = new OutboundLink(stream as unknown as Stream, { maxQueuedBytes: 1 << 20 })
    // Queued inside a check-phase callback (as the fair inbox's drain and the engine's flush run):
    // the batch leaves as the task ends (its microtasks), before any other callback of the loop —
    // a pump on setImmediate left only in the next iteration, behind its timers and poll phase.
    let sentAtTaskEnd = -1
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        link.send(Uint8Array.of(1))
        link.send(Uint8Array.of(2, 2))
        link.send(Uint8Array.of(3, 3, 3))
        assert.equal(stream.sent.length, 0, 'nothing leaves while the task still runs')
        queueMicrotask(() => {
          sentAtTaskEnd = stream.sent.length
          resolve()
        })
      }),
    )
    assert.equal(sentAtTaskEnd, 1, 'the batch left when the task ended, not an iteration later')
    assert.deepEqual(unframe(stream.sent[0] as Uint8Array), [[1], [2, 2], [3, 3, 3]])
  })

  it('waits out a full write buffer on drain, then sends what queued meanwhile in one batch', async () => {
    const stream = new FakeStream()
    const link = new OutboundLink(stream as unknown as Stream, { maxQueuedBytes: 1 << 20 })
    stream.accept = false
    link.send(Uint8Array.of(1))
    await nextIteration()
    assert.equal(stream.sent.length, 1)
    link.send(Uint8Array.of(2))
    link.send(Uint8Array.of(3))
    await nextIteration()
    assert.equal(stream.sent.length, 1, 'nothing more is sent until the stream drains')
    stream.accept = true
    stream.dispatchEvent(new Event('drain'))
    assert.equal(stream.sent.length, 2)
    assert.deepEqual(unframe(stream.sent[1] as Uint8Array), [[2], [3]])
  })

  it('aborts the stream of a peer that does not read once the queue passes its bound', async () => {
    const stream = new FakeStream()
    const link = new OutboundLink(stream as unknown as Stream, { maxQueuedBytes: 100 })
    stream.accept = false
    link.send(new Uint8Array(10))
    await nextIteration()
    for (let i = 0; i < 10; i++) link.send(new Uint8Array(10))
    assert.ok(stream.aborted instanceof SlowPeerError, 'aborted as a slow peer')
    assert.equal(link.isOpen, false)
  })
})
