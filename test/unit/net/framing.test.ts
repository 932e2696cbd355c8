// Stream framing (src/net/framing.ts): a frame sent as a list (a sync answer, not copied) is the
// same bytes as the copied frame, and the reader gives back the payload across any chunking.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { FrameReader, FrameTooLargeError, frame, frameList } from '../../../src/net/framing.ts'

describe('framing', () => {
  it('frameList is the bytes of frame, without copying the payload', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), (payload) => {
        const list = frameList(payload)
        assert.deepEqual(list.subarray(), frame(payload))
        // The payload rides in the list as it is (the point of frameList: a large answer is not copied).
        assert.equal(list.sublist(4).subarray().buffer === payload.buffer || payload.length === 0, true)
      }),
    )
  })

  it('reads every frame back whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (payloads, cuts) => {
        const wire = new Uint8Array(Buffer.concat(payloads.map((payload) => frameList(payload).subarray())))
        const reader = new FrameReader(300)
        const got: Uint8Array[] = []
        for (let at = 0, k = 0; at < wire.length; k++) {
          const size = cuts[k % cuts.length] as number
          got.push(...reader.push(wire.subarray(at, at + size)))
          at += size
        }
        assert.deepEqual(got.map((bytes) => Buffer.from(bytes)), payloads.map((payload) => Buffer.from(payload)))
        assert.equal(reader.buffered, 0)
      }),
    )
  })

  it('refuses a frame longer than the maximum from its header, before its body arrives', () => {
    const reader = new FrameReader(16)
    assert.throws(() => reader.push(frameList(new Uint8Array(17)).subarray(0, 4)), FrameTooLargeError)
  })
})
