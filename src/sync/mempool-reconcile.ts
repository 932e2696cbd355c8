/**
 * Mempool reconciliation (docs/protocol.md, "Mempool reconciliation"): compare the 256 XOR
 * bucket summaries of the two mempools, list the ids in the buckets that differ, and fetch only
 * the transactions we lack, in pages. Invalid transactions cost one offence per answer.
 */
import { toHexKey } from '../codec/bytes.ts'
import type { SyncRequest, SyncResponse } from '../codec/wire.ts'
import { differingBuckets } from '../mempool/digest.ts'
import type { SyncNode, SyncPeers, SyncRequestTransport } from './interfaces.ts'

/** Transactions asked for in one getTxs request. */
const TXS_PER_REQUEST = 1024
/** How long a peer has to answer one reconciliation request. */
const REQUEST_TIMEOUT_MS = 10_000

export interface ReconcileDeps {
  node: SyncNode
  transport: SyncRequestTransport
  peers: SyncPeers
}

/** Fetches the transactions `peerId` has and we lack; returns how many were admitted. */
export async function reconcileMempool(peerId: string, deps: ReconcileDeps): Promise<{ fetched: number; buckets: number }> {
  const { node, transport, peers } = deps
  const ask = (request: SyncRequest): Promise<SyncResponse> => transport.request(peerId, request, REQUEST_TIMEOUT_MS)
  const digest = await ask({ type: 'getMempoolDigest' })
  if (digest.type !== 'mempoolDigest') return { fetched: 0, buckets: 0 }
  const buckets = differingBuckets(node.mempool.digest.summaries(), digest.summaries)
  if (buckets.length === 0) return { fetched: 0, buckets: 0 }
  const listing = await ask({ type: 'getMempoolIds', buckets })
  if (listing.type !== 'mempoolIds') return { fetched: 0, buckets: buckets.length }
  const missing = listing.ids.filter((id) => !node.mempool.has(toHexKey(id)) && node.store.getTxLocation(id) === undefined)
  let fetched = 0
  for (let i = 0; i < missing.length; i += TXS_PER_REQUEST) {
    const answer = await ask({ type: 'getTxs', ids: missing.slice(i, i + TXS_PER_REQUEST) })
    if (answer.type !== 'txs') break
    let fault: string | undefined
    for (const error of await node.acceptTxs(answer.txs, { kind: 'peer', peerId })) {
      if (error === undefined) fetched++
      else if (error.action === 'reject') fault ??= error.code
    }
    // One penalty per answer, as for gossip.
    if (fault !== undefined) peers.offence(peerId, 'TX_REJECTED', fault)
  }
  return { fetched, buckets: buckets.length }
}
