/**
 * Ingress: the one place where what peers deliver becomes domain actions, used alike by the
 * libp2p shell and the virtual network. Gossiped transactions are admitted as a batch (one
 * penalty per message for the invalid ones); gossiped blocks are imported, orphans are held and
 * their missing ancestors chased (or left to sync when far ahead); and whatever the node accepts
 * is relayed by the gossip engine.
 */
import { BlockError } from '../ledger/errors.ts'
import type { Block, Evidence, SignedTx, Vote } from '../ledger/types.ts'
import { toHexKey } from '../codec/bytes.ts'
import { headerHash } from '../codec/objects.ts'
import { OrphanPool } from '../chain/orphans.ts'
import type { GossipEngine } from '../gossip/engine.ts'
import type { OffenceCode, RewardCode } from '../peers/offences.ts'
import type { Clock } from '../util/clock.ts'
import type { Logger } from '../util/logger.ts'
import type { NodeMetrics } from '../util/metrics.ts'
import type { NodeFinality } from './finality.ts'
import type { GrapevineNode } from './node.ts'

/**
 * What the ingress needs of the node: `GrapevineNode` satisfies it; the simulator's light nodes
 * (src/sim/light-node.ts) implement it over a shared transaction catalog.
 */
export type IngressNode = Pick<GrapevineNode, 'events' | 'clock' | 'acceptTxs' | 'importBlock'> & {
  readonly chain: {
    hasBlock(hash: Uint8Array): boolean
    readonly head: { readonly header: { readonly height: number } }
    /** An orphan at or below finality that is not the finalized chain's block can never be adopted. */
    isBelowFinality(height: number, hash: Uint8Array): boolean
  }
  /** Finality votes and evidence (absent on the simulator's light nodes, which carry no votes). */
  readonly finality?: Pick<NodeFinality, 'acceptVotes' | 'acceptEvidence'>
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
  /** `count`: events one report stands for (ignored txs in a message), for the code's tolerance. */
  offence: (peerId: string, code: OffenceCode, detail?: string, count?: number) => void
  /** First delivery of a valid new object: a small, capped reward (and eviction protection). */
  reward?: (peerId: string, code: RewardCode) => void
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
      // Finality: accepted votes and new evidence go on (own votes pushed, relayed ones announced).
      node.events.on('votes', (votes, origin) => engine.relayVotes(votes, origin.kind === 'peer' ? origin.peerId : undefined, node.clock())),
      node.events.on('evidence', (evidence, origin) => engine.relayEvidence(evidence, origin.kind === 'peer' ? origin.peerId : undefined, node.clock())),
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
        let ignored = 0
        let unpayable = 0
        for (const error of errors) {
          if (error === undefined) {
            metrics?.relayLatency.observe({ kind: 'tx' }, seconds)
            this.deps.reward?.(peerId, 'FIRST_DELIVERY_TX')
            continue
          }
          metrics?.rejected.inc({ code: error.code })
          if (error.action === 'reject') fault ??= error.code
          else if (error.code === 'TX_INSUFFICIENT_FUNDS') unpayable++
          else ignored++
        }
        // One penalty per message: a batch of bad transactions is one offence.
        if (fault !== undefined) this.deps.offence(peerId, 'TX_REJECTED', fault)
        // Useless deliveries (cheap to refuse, but work for nothing) count against a tolerance, per tx.
        if (ignored > 0) this.deps.offence(peerId, 'TX_IGNORED', `${ignored} of ${txs.length} txs ignored`, ignored)
        // Txs whose sender cannot pay have a tolerance of their own, far below TX_IGNORED's: honest
        // relays send almost none (races give "already known" and "nonce spent"), an unfunded flood all.
        if (unpayable > 0) this.deps.offence(peerId, 'TX_UNPAYABLE', `${unpayable} of ${txs.length} txs cannot be paid`, unpayable)
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
      this.deps.reward?.(peerId, 'FIRST_DELIVERY_BLOCK')
    } catch (error) {
      if (!(error instanceof BlockError)) {
        this.log.error({ err: error }, 'block import failed')
        return
      }
      if (error.code === 'BLOCK_UNKNOWN_PARENT') {
        // An orphan at or below the finalized height that is not our block there can never be adopted.
        if (node.chain.isBelowFinality(block.header.height, headerHash(block.header))) {
          metrics?.rejected.inc({ code: 'BLOCK_BEFORE_FINALIZED' })
          return
        }
        const orphan = this.orphans.add(block, peerId)
        // Kept either way: it is imported as soon as its parent is (by sync or gossip).
        if (block.header.height > node.chain.head.header.height + MAX_ORPHAN_CHASE_BLOCKS) return
        engine.requestFrom(peerId, this.orphans.missingAncestor(orphan), node.clock())
        return
      }
      if (error.code === 'BLOCK_ALREADY_KNOWN') return
      metrics?.rejected.inc({ code: error.code })
      if (error.action === 'reject') {
        this.deps.offence(peerId, 'BLOCK_REJECTED', error.code)
        // A forged copy of a block others announced: they are asked for the genuine one.
        engine.blockCopyFailed(toHexKey(headerHash(block.header)), node.clock())
      }
      this.log.info({ peer: peerId.slice(-8), code: error.code, reason: error.message }, 'block refused')
    }
  }

  /** A peer's votes: checked as one batch (signatures on the verify pool), accepted ones relayed; one penalty per message. */
  deliverVotes(peerId: string, votes: Vote[]): void {
    const { node, metrics } = this.deps
    if (node.finality === undefined) return
    metrics?.votesReceived.inc(votes.length)
    node.finality.acceptVotes(votes, peerId).then(
      (outcome) => {
        for (const code of outcome.codes) metrics?.rejected.inc({ code })
        if (outcome.fault !== undefined) this.deps.offence(peerId, 'VOTE_REJECTED', outcome.fault)
      },
      (error: unknown) => this.log.error({ err: error }, 'vote intake failed'),
    )
  }

  /** A peer's evidence: checked, new items gossiped once; invalid evidence costs the sender. */
  deliverEvidence(peerId: string, evidence: Evidence[]): void {
    const fault = this.deps.node.finality?.acceptEvidence(evidence, peerId)
    if (fault !== undefined) {
      this.deps.metrics?.rejected.inc({ code: fault })
      this.deps.offence(peerId, 'VOTE_REJECTED', fault)
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
