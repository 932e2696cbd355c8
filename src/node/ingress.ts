/**
 * Ingress: the one place where what peers deliver becomes domain actions, used alike by the
 * libp2p shell and the virtual network. Gossiped transactions are admitted as a batch (one
 * penalty per message for the invalid ones); gossiped blocks are imported, orphans are held and
 * their missing ancestors chased (or left to sync when far ahead); and whatever the node accepts
 * is relayed by the gossip engine.
 */
import { BlockError } from '../ledger/errors.ts'
import type { Block, SignedTx } from '../ledger/types.ts'
import { OrphanPool } from '../chain/orphans.ts'
import type { GossipEngine } from '../gossip/engine.ts'
import type { OffenceCode } from '../peers/offences.ts'
import type { Clock } from '../util/clock.ts'
import type { Logger } from '../util/logger.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import type { GrapevineNode } from './node.ts'

/**
 * What the ingress needs of the node: `GrapevineNode` satisfies it; the simulator's light nodes
 * (src/sim/light-node.ts) implement it over a shared transaction catalog.
 */
export type IngressNode = Pick<GrapevineNode, 'events' | 'clock' | 'acceptTxs' | 'importBlock'> & {
  readonly chain: { hasBlock(hash: Uint8Array): boolean; readonly head: { readonly header: { readonly height: number } } }
}

/**
 * A gossiped orphan further than this above our head is left to the sync manager (verified
 * headers first, state sync when far behind) instead of chasing its ancestors one getdata at a
 * time, which would replay history from genesis next to a state sync.
 */
export const MAX_ORPHAN_CHASE_BLOCKS = 8
/** Orphans held at most (oldest dropped first). */
export const MAX_ORPHANS = 256

export interface IngressDeps {
  node: IngressNode
  engine: GossipEngine
  offence: (peerId: string, code: OffenceCode, detail?: string) => void
  /** High-resolution time for latency metrics (performance.now, or virtual time). */
  elapsed: Clock
  log: Logger
  metrics?: NodeMetrics
}

export class Ingress {
  /** BOUNDED: MAX_ORPHANS. */
  readonly orphans = new OrphanPool(MAX_ORPHANS)
  private readonly unsubscribe: Array<() => void>
  private readonly log: Logger

  constructor(private readonly deps: IngressDeps) {
    this.log = deps.log.child({ component: 'ingress' })
    const { node, engine } = deps
    this.unsubscribe = [
      node.events.on('tx', (signed, origin) => engine.relayTx(signed, origin.kind === 'peer' ? origin.peerId : undefined, node.clock())),
      node.events.on('block', (block, hash, origin) => {
        // Blocks fetched by catch-up are history, not news: they are not announced.
        if (origin.kind !== 'sync') engine.relayBlock(block, hash, origin.kind === 'peer' ? origin.peerId : undefined, node.clock())
        void this.importOrphansOf(hash)
      }),
    ]
  }

  /** Whether the block is in the tree or waiting in the orphan pool. */
  hasBlock(hashHex: string): boolean {
    return this.deps.node.chain.hasBlock(Buffer.from(hashHex, 'hex')) || this.orphans.has(hashHex)
  }

  /** A peer's transactions: checked as one batch (signatures in parallel), relayed on acceptance. */
  deliverTxs(peerId: string, txs: SignedTx[]): void {
    const { node, metrics } = this.deps
    const started = this.deps.elapsed()
    node.acceptTxs(txs, { kind: 'peer', peerId }).then(
      (errors) => {
        const seconds = (this.deps.elapsed() - started) / 1000
        let fault: string | undefined
        for (const error of errors) {
          if (error === undefined) {
            metrics?.relayLatency.observe({ kind: 'tx' }, seconds)
            continue
          }
          metrics?.rejected.inc({ code: error.code })
          if (error.action === 'reject') fault ??= error.code
        }
        // One penalty per message: a batch of bad transactions is one offence.
        if (fault !== undefined) this.deps.offence(peerId, 'TX_REJECTED', fault)
      },
      (error: unknown) => this.log.error({ err: error }, 'transaction ingest failed'),
    )
  }

  /** A peer's block: imported; an orphan is held and its missing ancestor asked for. */
  async deliverBlock(peerId: string, block: Block): Promise<void> {
    const { node, metrics, engine } = this.deps
    const arrivedAt = this.deps.elapsed()
    try {
      await node.importBlock(block, { kind: 'peer', peerId })
      metrics?.relayLatency.observe({ kind: 'block' }, (this.deps.elapsed() - arrivedAt) / 1000)
    } catch (error) {
      if (!(error instanceof BlockError)) {
        this.log.error({ err: error }, 'block import failed')
        return
      }
      if (error.code === 'BLOCK_UNKNOWN_PARENT') {
        const orphan = this.orphans.add(block, peerId)
        // Kept either way: it is imported as soon as its parent is (by sync or gossip).
        if (block.header.height > node.chain.head.header.height + MAX_ORPHAN_CHASE_BLOCKS) return
        engine.requestFrom(peerId, this.orphans.missingAncestor(orphan), node.clock())
        return
      }
      if (error.code === 'BLOCK_ALREADY_KNOWN') return
      metrics?.rejected.inc({ code: error.code })
      if (error.action === 'reject') this.deps.offence(peerId, 'BLOCK_REJECTED', error.code)
      this.log.info({ peer: peerId.slice(-8), code: error.code, reason: error.message }, 'block refused')
    }
  }

  /** A block joined the tree: its waiting children can be imported now. */
  private async importOrphansOf(hash: Uint8Array): Promise<void> {
    for (const orphan of this.orphans.takeChildren(hash)) await this.deliverBlock(orphan.from, orphan.block)
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribe) unsubscribe()
  }
}
