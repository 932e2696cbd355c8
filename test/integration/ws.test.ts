/**
 * JSON-RPC over WebSocket: the same methods as HTTP on the same port, subscriptions fed by a real
 * node (heads in order, a transaction's status from pending to included, a replaced tx reported
 * dropped), and the limits with a scripted event source: subscriptions per connection, message
 * size, rate, delivery order under load, and a client that stops reading dropped at its bound
 * while the server keeps answering everyone else.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { toHex } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { Genesis } from '../../src/ledger/types.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import { silentLogger } from '../../src/util/logger.ts'
import type { RunningNode } from '../../src/node/run.ts'
import type { NodeStatusView, RpcBackend } from '../../src/rpc/backend.ts'
import { RpcClient } from '../../src/rpc/client.ts'
import { INVALID_PARAMS, INVALID_REQUEST, LIMIT_EXCEEDED, METHOD_NOT_FOUND, PARSE_ERROR, RpcError } from '../../src/rpc/errors.ts'
import type { HeadEvent, RpcEventMap, RpcEvents, TxStatusEvent } from '../../src/rpc/events.ts'
import { RpcServer } from '../../src/rpc/server.ts'
import type { WebSocketOptions } from '../../src/rpc/websocket.ts'
import { RpcWebSocketClient, webSocketUrl } from '../../src/rpc/ws-client.ts'
import { TypedEmitter } from '../../src/util/events.ts'
import { genesisStartingNow, sleep, startNode, waitFor } from '../helpers/net.ts'

const TEST_TIMEOUT_MS = 30_000

/** Collects a subscription's notifications; `next(n)` waits until n have arrived. */
class Collector<T> {
  readonly items: T[] = []
  readonly push = (item: unknown) => {
    this.items.push(item as T)
  }
  async waitFor(what: string, check: (items: T[]) => boolean, timeoutMs = 10_000): Promise<void> {
    await waitFor(what, () => check(this.items), { timeoutMs, detail: () => this.items.slice(-5) })
  }
}

function rpcCode(error: unknown): number | undefined {
  return error instanceof RpcError ? error.code : undefined
}

function dataCode(error: unknown): string | undefined {
  return error instanceof RpcError ? (error.data as { code?: string } | undefined)?.code : undefined
}

describe('WebSocket RPC on a running node', { timeout: TEST_TIMEOUT_MS }, () => {
  let genesis: Genesis
  let producer: RunningNode
  let idle: RunningNode
  const clients: RpcWebSocketClient[] = []

  before(async () => {
    genesis = genesisStartingNow(1, { slotMs: 300 })
    producer = await startNode({ genesis, key: devKeypair(0), listen: [] })
    // No producer: its transactions stay pending, so a replacement can drop one.
    idle = await startNode({ genesis, listen: [], produce: false })
  })

  after(async () => {
    for (const client of clients) client.close()
    await Promise.allSettled([producer.stop(), idle.stop()])
  })

  async function connect(node: RunningNode): Promise<RpcWebSocketClient> {
    const client = await RpcWebSocketClient.connect(node.rpcUrl, { timeoutMs: 5_000 })
    clients.push(client)
    return client
  }

  it('answers the HTTP methods and batches over the same port', async () => {
    const client = await connect(producer)
    const overWs = await client.call<NodeStatusView>('node_status')
    const overHttp = await new RpcClient(producer.rpcUrl).call<NodeStatusView>('node_status')
    assert.equal(overWs.chainId, overHttp.chainId)
    assert.equal(overWs.genesisHash, overHttp.genesisHash)
    const raw = client.raw
    const answer = await new Promise<unknown>((resolve) => {
      raw.once('message', (data) => resolve(JSON.parse(data.toString())))
      raw.send(JSON.stringify([{ jsonrpc: '2.0', id: 'a', method: 'chain_getHead' }, { jsonrpc: '2.0', id: 'b', method: 'nope' }]))
    })
    assert.ok(Array.isArray(answer))
    const [head, missing] = answer as Array<{ id: string; result?: { height: number }; error?: { code: number } }>
    assert.equal(head?.id, 'a')
    assert.equal(typeof head?.result?.height, 'number')
    assert.equal(missing?.error?.code, METHOD_NOT_FOUND)
    // Subscriptions need the WebSocket: over HTTP the answer says so.
    await assert.rejects(new RpcClient(producer.rpcUrl).call('subscribe', ['newHeads']), (error: unknown) => rpcCode(error) === METHOD_NOT_FOUND && /WebSocket/.test((error as Error).message))
  })

  it('delivers new heads in order, one per height, until unsubscribed', async () => {
    const client = await connect(producer)
    const heads = new Collector<HeadEvent>()
    const id = await client.subscribe('newHeads', [], heads.push)
    await heads.waitFor('4 heads', (items) => items.length >= 4)
    for (let i = 1; i < heads.items.length; i++) {
      const previous = heads.items[i - 1] as HeadEvent
      const head = heads.items[i] as HeadEvent
      assert.equal(head.height, previous.height + 1, 'heights arrive in order without gaps')
      assert.equal(head.parentHash, previous.hash, 'each head builds on the one before')
    }
    assert.equal(await client.unsubscribe(id), true)
    assert.equal(await client.unsubscribe(id), false, 'a second unsubscribe finds nothing')
    await sleep(50)
    const count = heads.items.length
    await sleep(800)
    assert.equal(heads.items.length, count, 'no heads after unsubscribe')
  })

  it('streams a transaction status from unknown to pending to included to finalized', async () => {
    const client = await connect(producer)
    const status = await client.call<NodeStatusView>('node_status')
    const signed = signTransfer({ chainId: status.chainId, from: devKeypair(5), to: devKeypair(6).publicKey, amount: 7n, fee: BigInt(status.minFee), nonce: 0 })
    const txid = toHex(signed.id)
    const events = new Collector<TxStatusEvent>()
    await client.subscribe('txStatus', [txid], events.push)
    await events.waitFor('the first status', (items) => items.length >= 1)
    assert.deepEqual(events.items[0], { txid, status: 'unknown' })
    assert.equal(await client.call('tx_send', [toHex(signed.bytes)]), txid)
    await events.waitFor('finalized', (items) => items.some((item) => item.status === 'finalized'))
    assert.deepEqual(
      events.items.map((item) => item.status),
      ['unknown', 'pending', 'included', 'finalized'],
    )
    const included = events.items[2] as Extract<TxStatusEvent, { status: 'included' }>
    const finalized = events.items[3] as Extract<TxStatusEvent, { status: 'finalized' }>
    const found = await client.call<{ status: string; height: number; blockHash: string }>('tx_get', [txid])
    assert.equal(found.status, 'finalized')
    assert.equal(included.height, found.height)
    assert.equal(included.blockHash, found.blockHash)
    assert.deepEqual([finalized.height, finalized.blockHash], [found.height, found.blockHash])
    // A late subscriber starts from where the tx stands.
    const late = new Collector<TxStatusEvent>()
    await client.subscribe('txStatus', [txid], late.push)
    await late.waitFor('the current status', (items) => items.length >= 1)
    assert.deepEqual(late.items[0], { txid, status: 'finalized', height: found.height, blockHash: found.blockHash })
  })

  it('reports a pending transaction replaced by a higher fee as dropped', async () => {
    const client = await connect(idle)
    const status = await client.call<NodeStatusView>('node_status')
    const fee = BigInt(status.minFee)
    const first = signTransfer({ chainId: status.chainId, from: devKeypair(7), to: devKeypair(8).publicKey, amount: 1n, fee, nonce: 0 })
    const second = signTransfer({ chainId: status.chainId, from: devKeypair(7), to: devKeypair(8).publicKey, amount: 1n, fee: fee + 1n, nonce: 0 })
    const events = new Collector<TxStatusEvent>()
    await client.subscribe('txStatus', [toHex(first.id)], events.push)
    await client.call('tx_send', [toHex(first.bytes)])
    await client.call('tx_send', [toHex(second.bytes)])
    await events.waitFor('dropped', (items) => items.some((item) => item.status === 'dropped'))
    assert.deepEqual(events.items.map((item) => item.status), ['unknown', 'pending', 'dropped'])
    assert.deepEqual(events.items[2], { txid: toHex(first.id), status: 'dropped', reason: 'replaced' })
  })

  it('rejects bad subscriptions with clear errors', async () => {
    const client = await connect(producer)
    await assert.rejects(client.call('subscribe', ['everything']), (error: unknown) => rpcCode(error) === INVALID_PARAMS && /topic must be one of/.test((error as Error).message))
    await assert.rejects(client.call('subscribe', ['txStatus', '0x12']), (error: unknown) => rpcCode(error) === INVALID_PARAMS && /txid/.test((error as Error).message))
    await assert.rejects(client.call('subscribe', ['newHeads', 'extra']), (error: unknown) => rpcCode(error) === INVALID_PARAMS)
    await assert.rejects(client.call('unsubscribe', [42]), (error: unknown) => rpcCode(error) === INVALID_PARAMS)
  })
})

// ------------------------------------------------------------------ limits, with a scripted event source

class ScriptedEvents implements RpcEvents {
  readonly emitter = new TypedEmitter<RpcEventMap>()
  on<K extends keyof RpcEventMap>(event: K, listener: (...args: RpcEventMap[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }
  finalizedHeight(): number {
    return 0
  }
}

function fakeHead(height: number, padding = ''): HeadEvent {
  const hash = `0x${height.toString(16).padStart(64, '0')}`
  return {
    hash,
    chainId: 'test',
    height,
    slot: height,
    parentHash: `0x${(height - 1).toString(16).padStart(64, '0')}`,
    timestamp: height,
    proposer: `0x${padding}`,
    txRoot: hash,
    stateRoot: hash,
    txCount: 0,
    signature: '0x',
    reorgDepth: 0,
    receivedAt: height,
  }
}

const FAKE_STATUS: NodeStatusView = { chainId: 'test', genesisHash: '0x00', minFee: '1', height: 0, headHash: '0x00', finalizedHeight: 0, finalizedHash: '0x00', stateRoot: '0x00', mempoolSize: 0, mempoolBytes: 0 }

const fakeBackend: RpcBackend = {
  status: () => FAKE_STATUS,
  submitTx: () => '0x00',
  getTx: () => null,
  getAccount: () => ({ address: '0x00', balance: '0', nonce: 0, pendingNonce: 0 }),
  getHead: () => fakeHead(0),
  getBlock: () => null,
}

async function scriptedServer(options: { maxBodyBytes?: number; websocket?: WebSocketOptions }): Promise<{ server: RpcServer; events: ScriptedEvents; url: string }> {
  const events = new ScriptedEvents()
  const server = new RpcServer(fakeBackend, { log: silentLogger(), events, dashboard: false, ...options })
  const { url } = await server.listen()
  return { server, events, url }
}

describe('WebSocket limits', { timeout: TEST_TIMEOUT_MS }, () => {
  it('caps subscriptions per connection and frees a slot on unsubscribe', async () => {
    const { server, url } = await scriptedServer({ websocket: { maxSubscriptionsPerConnection: 3 } })
    const client = await RpcWebSocketClient.connect(url, { timeoutMs: 5_000 })
    try {
      const ids = [await client.subscribe('newHeads', [], () => undefined), await client.subscribe('peers', [], () => undefined), await client.subscribe('finalizedHeads', [], () => undefined)]
      await assert.rejects(client.call('subscribe', ['newHeads']), (error: unknown) => rpcCode(error) === LIMIT_EXCEEDED && dataCode(error) === 'TOO_MANY_SUBSCRIPTIONS')
      assert.equal(await client.unsubscribe(ids[0] as string), true)
      await client.subscribe('newHeads', [], () => undefined)
      assert.equal(server.websocket.counters.subscriptions, 3)
      // Another connection has its own budget.
      const other = await RpcWebSocketClient.connect(url, { timeoutMs: 5_000 })
      await other.subscribe('newHeads', [], () => undefined)
      other.close()
      await waitFor('the closed connection forgotten', () => server.websocket.counters.subscriptions === 3)
    } finally {
      client.close()
      await server.close()
    }
  })

  it('refuses a message over the size limit before reading it, and stays up', async () => {
    const { server, url } = await scriptedServer({ maxBodyBytes: 1_024 })
    try {
      const socket = new WebSocket(webSocketUrl(url))
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
      const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)))
      socket.on('error', () => undefined)
      socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'node_status', params: ['x'.repeat(2_000)] }))
      assert.equal(await closed, 1009, 'closed with 1009 Message Too Big')
      // The same limit applies over HTTP.
      const http = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(2_000) })
      assert.equal(http.status, 413)
      // Just under the limit is fine, and the server still answers.
      const client = await RpcWebSocketClient.connect(url, { timeoutMs: 5_000 })
      const status = await client.call<NodeStatusView>('node_status')
      assert.equal(status.chainId, 'test')
      client.close()
    } finally {
      await server.close()
    }
  })

  it('answers malformed input with JSON-RPC errors', async () => {
    const { server, url } = await scriptedServer({})
    const socket = new WebSocket(webSocketUrl(url))
    try {
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
      const next = () => new Promise<{ error?: { code: number; message: string } }>((resolve) => socket.once('message', (data) => resolve(JSON.parse(data.toString()))))
      let answer = next()
      socket.send('{not json')
      assert.equal((await answer).error?.code, PARSE_ERROR)
      answer = next()
      socket.send(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"node_status"}'), { binary: true })
      assert.equal((await answer).error?.code, INVALID_REQUEST)
      answer = next()
      socket.send('{"jsonrpc":"1.0","id":1,"method":"node_status"}')
      assert.equal((await answer).error?.code, INVALID_REQUEST)
      answer = next()
      socket.send('[]')
      assert.equal((await answer).error?.code, INVALID_REQUEST)
    } finally {
      socket.close()
      await server.close()
    }
  })

  it('rate-limits requests per connection, charging a batch its length', async () => {
    const { server, url } = await scriptedServer({ websocket: { requestsPerSecond: 5, requestBurst: 20 } })
    const socket = new WebSocket(webSocketUrl(url))
    try {
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
      const next = () => new Promise<unknown>((resolve) => socket.once('message', (data) => resolve(JSON.parse(data.toString()))))
      const batch = (size: number, from: number) => JSON.stringify(Array.from({ length: size }, (_, i) => ({ jsonrpc: '2.0', id: from + i, method: 'node_status' })))
      let answer = next()
      socket.send(batch(15, 0))
      assert.equal((await answer as unknown[]).length, 15, 'within the burst')
      answer = next()
      socket.send(batch(15, 100))
      const refused = (await answer) as { error?: { code: number; data?: { code: string } } }
      assert.equal(refused.error?.code, LIMIT_EXCEEDED)
      assert.equal(refused.error?.data?.code, 'RATE_LIMITED')
    } finally {
      socket.close()
      await server.close()
    }
  })

  it('refuses browser pages of other origins, accepts same-host pages', async () => {
    const { server, url } = await scriptedServer({})
    try {
      const host = new URL(url)
      const refused = new WebSocket(webSocketUrl(url), { headers: { origin: 'http://evil.example' } })
      const status = await new Promise<number | undefined>((resolve) => {
        refused.once('unexpected-response', (_request, response) => resolve(response.statusCode))
        refused.once('open', () => resolve(101))
        refused.once('error', () => undefined)
      })
      refused.terminate()
      assert.equal(status, 403)
      const same = await RpcWebSocketClient.connect(url, { timeoutMs: 5_000, headers: { origin: `http://${host.hostname}:1234` } })
      assert.equal((await same.call<NodeStatusView>('node_status')).chainId, 'test')
      same.close()
    } finally {
      await server.close()
    }
  })

  it('delivers every notification of a subscription in the order the node emitted it', async () => {
    const { server, events, url } = await scriptedServer({})
    const client = await RpcWebSocketClient.connect(url, { timeoutMs: 5_000 })
    try {
      const heads = new Collector<HeadEvent>()
      const peers = new Collector<{ peerId: string }>()
      await client.subscribe('newHeads', [], heads.push)
      await client.subscribe('peers', [], peers.push)
      const total = 3_000
      for (let height = 1; height <= total; height++) {
        events.emitter.emit('head', fakeHead(height))
        if (height % 3 === 0) events.emitter.emit('peer', { event: 'connected', peerId: `p${height}` })
        if (height % 500 === 0) await sleep(1)
      }
      await heads.waitFor(`${total} heads`, (items) => items.length === total)
      await peers.waitFor(`${total / 3} peer events`, (items) => items.length === total / 3)
      assert.deepEqual(heads.items.map((head) => head.height), Array.from({ length: total }, (_, i) => i + 1))
      assert.deepEqual(peers.items.map((peer) => peer.peerId), Array.from({ length: total / 3 }, (_, i) => `p${(i + 1) * 3}`))
    } finally {
      client.close()
      await server.close()
    }
  })

  it("sends a subscription's first notification only after the reply that names it", async () => {
    const { server, url } = await scriptedServer({})
    const socket = new WebSocket(webSocketUrl(url))
    try {
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
      const received: Array<{ id?: number; result?: unknown; method?: string; params?: { subscription: string } }> = []
      socket.on('message', (data) => received.push(JSON.parse(data.toString())))
      const txid = `0x${'ab'.repeat(32)}`
      // Messages of one connection are handled concurrently: another call finishing first must
      // not release the subscription's first notification ahead of its reply.
      for (let round = 0; round < 20; round++) {
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1000 + round, method: 'node_status' }))
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: round, method: 'subscribe', params: ['txStatus', txid] }))
      }
      await waitFor('40 replies and 20 notifications', () => received.length === 60)
      for (const message of received) {
        if (message.method !== 'subscription') continue
        const replyIndex = received.findIndex((other) => other.result === message.params?.subscription)
        assert.ok(replyIndex >= 0 && replyIndex < received.indexOf(message), 'the reply naming the subscription came first')
      }
    } finally {
      socket.close()
      await server.close()
    }
  })

  it('drops a client that stops reading at its send bound; the server stays healthy', async () => {
    const maxBufferedBytes = 256 * 1024
    const { server, events, url } = await scriptedServer({ websocket: { maxBufferedBytes } })
    const slow = await RpcWebSocketClient.connect(url, { timeoutMs: 5_000 })
    const healthy = await RpcWebSocketClient.connect(url, { timeoutMs: 5_000 })
    try {
      await slow.subscribe('newHeads', [], () => undefined)
      const healthyHeads = new Collector<HeadEvent>()
      await healthy.subscribe('newHeads', [], healthyHeads.push)
      const slowClosed = new Promise<void>((resolve) => {
        slow.onClose = () => resolve()
      })
      slow.raw.pause() // stop reading: the kernel buffers fill, then the server's queue
      const padding = 'ab'.repeat(1_000)
      let emitted = 0
      while (server.websocket.counters.droppedSlow === 0 && emitted < 100_000) {
        for (let i = 0; i < 100; i++) events.emitter.emit('head', fakeHead(++emitted, padding))
        await sleep(2)
      }
      assert.equal(server.websocket.counters.droppedSlow, 1, `slow client dropped after ${emitted} heads`)
      assert.ok(server.websocket.counters.maxBufferedSeen <= maxBufferedBytes, `queued ${server.websocket.counters.maxBufferedSeen} bytes, bound ${maxBufferedBytes}`)
      slow.raw.resume()
      await slowClosed
      // The healthy reader got everything, in order, and the server still answers calls.
      await healthyHeads.waitFor('all heads', (items) => items.length === emitted, 20_000)
      assert.equal((healthyHeads.items[emitted - 1] as HeadEvent).height, emitted)
      assert.equal((await healthy.call<NodeStatusView>('node_status')).chainId, 'test')
      assert.equal(server.websocket.counters.connections, 1)
    } finally {
      slow.close()
      healthy.close()
      await server.close()
    }
  })
})
