import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { FairInbox } from '../../../src/net/inbox.ts'

const frame = (peer: number, n: number, size = 10): Uint8Array => {
  const bytes = new Uint8Array(size)
  bytes[0] = peer
  bytes[1] = n
  return bytes
}
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('FairInbox (round-robin inbound processing)', () => {
  it('one frame per peer per pass: a flooder’s backlog does not delay another peer’s frame', async () => {
    const order: string[] = []
    const inbox = new FairInbox(() => assert.fail('no errors'), { sliceMs: 1_000, pauseBytes: 1 << 30 })
    const process = (bytes: Uint8Array) => order.push(`${bytes[0]}:${bytes[1]}`)
    for (let n = 0; n < 100; n++) inbox.push('flooder', frame(1, n), undefined, process)
    inbox.push('honest', frame(2, 0), undefined, process)
    await settle()
    assert.equal(order.length, 101)
    assert.equal(order.indexOf('2:0'), 1, 'the honest frame is handled second, not after 100 flooder frames')
    assert.deepEqual(order.filter((o) => o.startsWith('1:')), Array.from({ length: 100 }, (_, n) => `1:${n}`), 'a peer’s frames keep their order')
  })

  it('a drain yields after its time slice and continues on a later turn', async () => {
    let handled = 0
    const inbox = new FairInbox(() => undefined, { sliceMs: 0, pauseBytes: 1 << 30 })
    for (let n = 0; n < 5; n++) inbox.push('p', frame(1, n), undefined, () => handled++)
    inbox.drain()
    assert.equal(handled, 1, 'a zero-length slice takes one pass (one frame per peer), then yields')
    for (let turn = 0; turn < 10 && handled < 5; turn++) await settle()
    assert.equal(handled, 5)
  })

  it('pauses a peer’s stream past pauseBytes queued and resumes it below half', async () => {
    const calls: string[] = []
    const source = { pause: () => calls.push('pause'), resume: () => calls.push('resume') }
    const inbox = new FairInbox(() => undefined, { sliceMs: 0, pauseBytes: 100 })
    for (let n = 0; n < 12; n++) inbox.push('p', frame(1, n, 10), source, () => undefined)
    assert.deepEqual(calls, ['pause'], 'paused once at 100 bytes, not again')
    assert.ok(inbox.queuedBytes('p') >= 100)
    for (let turn = 0; turn < 20 && inbox.queuedBytes('p') > 0; turn++) await settle()
    assert.deepEqual(calls, ['pause', 'resume'])
    assert.equal(inbox.queuedBytes('p'), 0)
  })

  it('pushFront: the rest of a big frame runs on later passes, ahead of that peer’s next frames, behind other peers’ turns', async () => {
    const order: string[] = []
    const inbox = new FairInbox(() => assert.fail('no errors'), { sliceMs: 1_000, pauseBytes: 1 << 30 })
    const process = (bytes: Uint8Array) => {
      order.push(`${bytes[0]}:${bytes[1]}`)
      // Peer 1's first frame is big: handled in three parts.
      if (bytes[0] === 1 && bytes[1] === 0) {
        const part = (k: number): void => {
          order.push(`1:0/${k}`)
          if (k < 2) inbox.pushFront('big', () => part(k + 1), process)
        }
        inbox.pushFront('big', () => part(1), process)
      }
    }
    inbox.push('big', frame(1, 0), undefined, process)
    inbox.push('big', frame(1, 1), undefined, process)
    inbox.push('other', frame(2, 0), undefined, process)
    inbox.push('other', frame(2, 1), undefined, process)
    await settle()
    assert.deepEqual(order, ['1:0', '2:0', '1:0/1', '2:1', '1:0/2', '1:1'])
  })

  it('a peer that left loses its queued frames; a throwing handler is reported, the drain goes on', async () => {
    const errors: string[] = []
    const handled: string[] = []
    const inbox = new FairInbox((peer) => errors.push(peer), { sliceMs: 1_000, pauseBytes: 1 << 30 })
    inbox.push('gone', frame(1, 0), undefined, () => handled.push('gone'))
    inbox.forget('gone')
    inbox.push('bad', frame(2, 0), undefined, () => {
      throw new Error('bug')
    })
    inbox.push('ok', frame(3, 0), undefined, () => handled.push('ok'))
    await settle()
    assert.deepEqual(handled, ['ok'])
    assert.deepEqual(errors, ['bad'])
  })
})
