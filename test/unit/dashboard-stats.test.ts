/**
 * The dashboard's figures from a scripted event stream and a fake clock: tx/s and inclusion
 * latency per second, recent blocks across a reorg, fee levels, warnings, and the defensive
 * reading of peer views.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { NodeStatusView } from '../../src/rpc/backend.ts'
import type { HeadEvent, RpcEventMap, RpcEvents } from '../../src/rpc/events.ts'
import { DashboardStats, addressGroup, peerSummary } from '../../src/rpc/stats.ts'
import { TypedEmitter } from '../../src/util/events.ts'

class Events implements RpcEvents {
  readonly emitter = new TypedEmitter<RpcEventMap>()
  on<K extends keyof RpcEventMap>(event: K, listener: (...args: RpcEventMap[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }
  finalizedHeight(): number {
    return 0
  }
}

const STATUS: NodeStatusView = { chainId: 't', genesisHash: '0x', minFee: '1', height: 0, headHash: '0x', finalizedHeight: 0, finalizedHash: '0x', stateRoot: '0x', mempoolSize: 3, mempoolBytes: 300, peers: 1 }

function head(height: number, receivedAt: number, hash = `0x${height}`): HeadEvent {
  return { hash, chainId: 't', height, slot: height, parentHash: '0x', timestamp: height * 1000, proposer: '0xaa', txRoot: '0x', stateRoot: '0x', txCount: 1, signature: '0x', reorgDepth: 0, receivedAt }
}

describe('DashboardStats', () => {
  it('counts txs per second and measures inclusion latency from first seen pending', async () => {
    let now = 1_000_000
    const events = new Events()
    const stats = new DashboardStats(events, { status: () => STATUS }, { now: () => now, historySeconds: 120 })
    events.emitter.emit('tx', { txid: '0x01', status: 'pending' })
    events.emitter.emit('tx', { txid: '0x02', status: 'pending' })
    events.emitter.emit('tx', { txid: '0x01', status: 'pending' }) // seen again: not counted twice
    now += 1_500
    events.emitter.emit('tx', { txid: '0x01', status: 'included', height: 1, blockHash: '0xb1' })
    now += 1_000
    events.emitter.emit('tx', { txid: '0x02', status: 'included', height: 2, blockHash: '0xb2' })
    events.emitter.emit('tx', { txid: '0x03', status: 'included', height: 2, blockHash: '0xb2' }) // never seen pending: no latency
    const snapshot = await stats.snapshot()
    const { txIncluded, txPending, latencyAvgMs, latencyMaxMs } = snapshot.series
    assert.equal(txPending.reduce((a, b) => a + b, 0), 2)
    assert.equal(txIncluded.reduce((a, b) => a + b, 0), 3)
    assert.equal(txIncluded.length, 60, 'a minimum window of 60 s after start')
    assert.deepEqual(latencyAvgMs.filter((value) => value !== null), [1_500, 2_500])
    assert.deepEqual(latencyMaxMs.filter((value) => value !== null), [1_500, 2_500])
    assert.equal(snapshot.lastTxid, '0x02')
    assert.equal(snapshot.gossip.txsSeen, 2)
  })

  it('keeps recent blocks newest first, replaced on a reorg, bounded', async () => {
    const events = new Events()
    const stats = new DashboardStats(events, { status: () => STATUS }, { recentBlocks: 3, now: () => 10_000 })
    for (let height = 1; height <= 5; height++) events.emitter.emit('head', head(height, height))
    events.emitter.emit('head', head(4, 6, '0xother4')) // a reorg back to height 4
    const snapshot = await stats.snapshot()
    assert.deepEqual(snapshot.recentBlocks.map((block) => [block.height, block.hash]), [[4, '0xother4'], [3, '0x3']])
  })

  it('reports fee levels over a bounded sample of pending fees', async () => {
    const events = new Events()
    const fees = Array.from({ length: 100 }, (_, i) => BigInt(i + 1))
    const stats = new DashboardStats(events, { status: () => STATUS, pendingFees: () => fees }, { maxFeeSample: 50 })
    const snapshot = await stats.snapshot()
    assert.deepEqual(snapshot.mempool.fees, { sampled: 50, min: '1', p50: '26', p90: '46', max: '50' })
  })

  it('warns about a stalled head, few peers and bans; forgets old bans', async () => {
    let now = 100_000
    const events = new Events()
    const stats = new DashboardStats(events, { status: () => STATUS, peers: () => [] }, { now: () => now, stalledAfterMs: 5_000, banWarningMs: 60_000 })
    events.emitter.emit('head', head(1, now))
    events.emitter.emit('peer', { event: 'disconnected', peerId: 'p1', banned: true })
    events.emitter.emit('peer', { event: 'disconnected', peerId: 'p2', banned: false })
    now += 6_000
    let codes = (await stats.snapshot()).warnings.map((warning) => warning.code)
    assert.deepEqual(codes, ['HEAD_STALLED', 'FEW_PEERS', 'PEERS_BANNED'])
    now += 60_000
    events.emitter.emit('head', head(2, now))
    codes = (await stats.snapshot()).warnings.map((warning) => warning.code)
    assert.deepEqual(codes, ['FEW_PEERS'])
  })

  it('reads peer views defensively and derives the address group', () => {
    assert.equal(addressGroup('/ip4/10.77.0.12/tcp/9000/p2p/x'), '10.77.0.0/16')
    assert.equal(addressGroup('/ip6/2001:db8::1/tcp/1'), '2001:db8::/32')
    assert.equal(addressGroup('/dns4/example.org/tcp/1'), null)
    const summary = peerSummary({ peerId: 'p', direction: 'inbound', stake: '5', score: 'high', addresses: ['/ip4/192.168.1.2/tcp/1', 7], bytesIn: 10 }, () => 42)
    assert.deepEqual(summary, {
      peerId: 'p',
      direction: 'inbound',
      stake: '5',
      score: null,
      addresses: ['/ip4/192.168.1.2/tcp/1'],
      addressGroup: '192.168.0.0/16',
      bytesIn: 10,
      bytesOut: 0,
      rttMs: 42,
      headHeight: null,
      connectedSeconds: null,
    })
    assert.equal(peerSummary(null).peerId, '?')
  })
})
