// Signature verification worker (see verify-pool.ts). Plain JavaScript so it loads without the
// TypeScript loader. Each job is one transferred ArrayBuffer of records laid out as
//   u16be(message length) || signature (64) || public key (32) || message
// and the answer is one byte per record: 1 = valid under the pinned rule (libsodium), 0 = not.
import { parentPort } from 'node:worker_threads'
import sodium from 'sodium-native'

parentPort.on('message', ({ id, buffer, count }) => {
  const bytes = new Uint8Array(buffer)
  const view = new DataView(buffer)
  const results = new Uint8Array(count)
  let offset = 0
  for (let i = 0; i < count; i++) {
    const length = view.getUint16(offset)
    const signature = bytes.subarray(offset + 2, offset + 66)
    const publicKey = bytes.subarray(offset + 66, offset + 98)
    const message = bytes.subarray(offset + 98, offset + 98 + length)
    results[i] = sodium.crypto_sign_verify_detached(signature, message, publicKey) ? 1 : 0
    offset += 98 + length
  }
  parentPort.postMessage({ id, results }, [results.buffer])
})
