/** The `status` a node announces: network, head, finalized block, state root, mempool digest. */
import type { StatusMessage } from '../codec/wire.ts'
import type { GrapevineNode } from './node.ts'

export function statusOf(node: GrapevineNode): StatusMessage {
  const head = node.chain.head
  return {
    genesisHash: node.chain.genesisHash,
    headHeight: head.header.height,
    headHash: head.hash,
    finalizedHeight: node.chain.finalized.height,
    finalizedHash: node.chain.finalized.hash,
    stateRoot: head.header.stateRoot,
    mempoolDigest: node.mempoolDigest(),
    mempoolSize: node.mempool.size,
  }
}
