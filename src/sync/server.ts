/**
 * Answers sync requests from the local chain, state and mempool, within the limits the wire
 * codec enforces (docs/protocol.md, "Sync protocol"). Pure: request in, response out.
 */
import { bytesEqual, toHexKey } from '../codec/bytes.ts'
import {
  LeafPageWriter,
  MAX_MEMPOOL_IDS_PER_RESPONSE,
  SOFT_MAX_BLOCKS_RESPONSE_BYTES,
  type ServedSyncResponse,
  type SyncRequest,
  type SyncResponse,
} from '../codec/wire.ts'
import { blockEncodedSize } from '../codec/objects.ts'
import type { Chain } from '../chain/chain.ts'
import type { Block, Header, SignedTx } from '../ledger/types.ts'
import type { Mempool } from '../mempool/mempool.ts'
import { MissingNodeError, collectLeaves } from '../state/trie.ts'

export interface SyncServerDeps {
  chain: Chain
  mempool: Mempool
}

/** Height of the first locator hash on our canonical chain (0 when none is: genesis is shared). */
export function forkPoint(chain: Chain, locator: Uint8Array[]): number {
  for (const hash of locator) {
    const header = chain.getHeader(hash)
    if (header === undefined) continue
    const canonical = chain.getCanonicalHash(header.height)
    if (canonical !== undefined && bytesEqual(canonical, hash)) return header.height
  }
  return 0
}

/**
 * Leaves collected per slice when a big getLeaves is served in slices: ~128 leaves is ~0.5 ms of
 * trie walk, what one turn of the event loop may give to serving. An honest tx crosses several
 * turns on each node and pays a slice in each: with 256 (~1 ms) four peers that ask and never read
 * put the honest p99 at 19–25 ms, with 128 at 15 (docs/benchmarks.md, "Attacks"); a 1,000,000
 * account state sync was no slower within its noise (47.05 s, against 44.66–46.92 s before).
 */
export const LEAVES_PER_SLICE = 128

/** Leaves a served page has room for at first (doubling up to its `max`): our client's 8,192 grows three times; a page of a small subtree stays small. */
export const LEAVES_PAGE_FIRST_ROOM = 1_024

type GetLeaves = Extract<SyncRequest, { type: 'getLeaves' }>

/**
 * Most leaves one answer to a zero-stake asker holds (a page may be shorter than its `max`: `more`
 * says where to go on). Our own client asks 8,192 at a time, so an honest joiner never notices; a
 * maximal 65,536 cost ~260 ms of trie walk per answer, which a spammer that never reads it (or is
 * cut off a moment later) had built for it whole. Staked askers are served what they ask.
 */
export const MAX_UNSTAKED_LEAVES_PER_ANSWER = 8_192

/** The getLeaves to serve: an unstaked asker's `max` capped at MAX_UNSTAKED_LEAVES_PER_ANSWER. */
export function leavesToServe(request: GetLeaves, staked: boolean): GetLeaves {
  return staked || request.max <= MAX_UNSTAKED_LEAVES_PER_ANSWER ? request : { ...request, max: MAX_UNSTAKED_LEAVES_PER_ANSWER }
}

/**
 * A getLeaves answered in slices of LEAVES_PER_SLICE leaves, awaiting `yieldNow` between slices so
 * the event loop keeps turning (gossip, blocks, RPC) while a big range is collected: the same
 * answer as `serveSyncRequest`, already encoded. Each slice continues after the last key (the
 * subtree is content-addressed, so a block committed meanwhile does not change it), and its
 * leaves are written into the page's buffer as they are collected (`LeafPageWriter`): what lives
 * across the turns is one buffer, not a leaf object per leaf — 8,192 of those survived each
 * scavenge until the page was sent (docs/benchmarks.md, "A served leaf page is bytes"). A subtree
 * that vanishes between slices (pruned) ends in an `error`, as an unknown one does.
 * `stillWanted`, asked before each slice: false (the asker was cut off or left) ends it with an
 * `error` nobody will read, so a spammer cut off mid-answer costs no more slices.
 */
export async function serveLeavesInSlices(
  request: GetLeaves,
  deps: { chain: Pick<Chain, 'stateNodes'> },
  yieldNow: () => Promise<void>,
  stillWanted: () => boolean = () => true,
): Promise<ServedSyncResponse> {
  const page = new LeafPageWriter(request.max, Math.min(request.max, LEAVES_PAGE_FIRST_ROOM))
  let startAfter = request.startAfter
  const unknown = (): SyncResponse => ({ type: 'error', message: `unknown subtree ${toHexKey(request.subtree).slice(0, 16)}` })
  for (;;) {
    if (!stillWanted()) return { type: 'error', message: 'asker cut off' }
    let result: ReturnType<typeof collectLeaves>
    try {
      result = collectLeaves(deps.chain.stateNodes, request.subtree, request.depth, startAfter, Math.min(LEAVES_PER_SLICE, request.max - page.count))
    } catch (error) {
      if (error instanceof MissingNodeError) return unknown()
      throw error
    }
    if (result === undefined) return unknown()
    // Written at once: the slice's leaf objects die young, the page is one buffer across turns.
    for (const leaf of result.leaves) page.add(leaf.keyHash, leaf.account.balance, leaf.account.nonce)
    const last = result.leaves[result.leaves.length - 1]
    if (!result.more || page.count >= request.max || last === undefined) return { type: 'encodedLeaves', leaves: page.count, bytes: page.finish(result.more) }
    // A copy: a view would keep the node it was read from alive until the next slice.
    startAfter = last.keyHash.slice()
    await yieldNow()
  }
}

export function serveSyncRequest(request: SyncRequest, deps: SyncServerDeps): SyncResponse {
  const { chain, mempool } = deps
  switch (request.type) {
    case 'getHeaders': {
      const from = forkPoint(chain, request.locator) + 1
      const headers: Header[] = []
      const last = Math.min(chain.head.header.height, from + request.max - 1)
      for (let height = from; height <= last; height++) {
        const hash = chain.getCanonicalHash(height)
        const header = hash === undefined ? undefined : chain.getHeader(hash)
        if (header === undefined) break
        headers.push(header)
      }
      return { type: 'headers', headers }
    }
    case 'getBlocks': {
      const blocks: Block[] = []
      let bytes = 0
      for (const hash of request.hashes) {
        const block = chain.getBlock(hash)
        if (block === undefined) continue
        const size = blockEncodedSize(block)
        if (blocks.length > 0 && bytes + size > SOFT_MAX_BLOCKS_RESPONSE_BYTES) break
        blocks.push(block)
        bytes += size
      }
      return { type: 'blocks', blocks }
    }
    case 'getNodes':
      return { type: 'nodes', nodes: request.hashes.map((hash) => chain.stateNodes.getNode(hash) ?? new Uint8Array(0)) }
    case 'getLeaves': {
      const result = collectLeaves(chain.stateNodes, request.subtree, request.depth, request.startAfter, request.max)
      if (result === undefined) return { type: 'error', message: `unknown subtree ${toHexKey(request.subtree).slice(0, 16)}` }
      return {
        type: 'leaves',
        more: result.more,
        leaves: result.leaves.map((leaf) => ({ keyHash: leaf.keyHash, balance: leaf.account.balance, nonce: leaf.account.nonce })),
      }
    }
    case 'getMempoolDigest':
      return { type: 'mempoolDigest', summaries: mempool.digest.summaries() }
    case 'getMempoolIds': {
      const wanted = new Set(request.buckets)
      const ids: Uint8Array[] = []
      let truncated = false
      for (const entry of mempool.entries()) {
        if (!wanted.has(entry.signed.id[0] as number)) continue
        if (ids.length >= MAX_MEMPOOL_IDS_PER_RESPONSE) {
          truncated = true
          break
        }
        ids.push(entry.signed.id)
      }
      return { type: 'mempoolIds', ids, truncated }
    }
    case 'getFinality': {
      // The latest certificate, or the one for the asked height where this node finalized it.
      const height = request.height ?? chain.finalized.height
      const certificate = height === 0 ? undefined : chain.getCertificate(height)
      const header = certificate === undefined ? undefined : chain.getHeader(certificate.blockHash)
      return { type: 'finality', proof: certificate === undefined || header === undefined ? undefined : { certificate, header } }
    }
    case 'getTxs': {
      const txs: SignedTx[] = []
      for (const id of request.ids) {
        const signed = mempool.get(toHexKey(id))
        if (signed !== undefined) txs.push(signed)
      }
      return { type: 'txs', txs }
    }
  }
}
