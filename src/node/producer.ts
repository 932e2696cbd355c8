/**
 * Block production for a validator: wakes at each slot start, and if this node leads the slot
 * and its head is from an earlier slot, builds a block from the mempool and imports it.
 */
import { bytesEqual } from '../codec/bytes.ts'
import type { Chain, TxPacker } from '../chain/chain.ts'
import type { Keypair } from '../crypto/keys.ts'
import type { Block } from '../ledger/types.ts'
import type { Clock, TimerHandle, Timers } from '../util/clock.ts'
import type { Logger } from '../util/logger.ts'

export interface ProducerDeps {
  chain: Chain
  keypair: Keypair
  packer: TxPacker
  clock: Clock
  timers: Timers
  log: Logger
  /** Hands the built block to the node's import path (mempool, relay, events). */
  publish: (block: Block, execution: ReturnType<Chain['buildBlock']>['execution']) => Promise<void>
}

export class BlockProducer {
  private timer: TimerHandle | undefined
  private stopped = true
  private lastSlot = -1

  constructor(private readonly deps: ProducerDeps) {}

  start(): void {
    this.stopped = false
    this.scheduleNext()
  }

  stop(): void {
    this.stopped = true
    this.timer?.cancel()
  }

  private scheduleNext(): void {
    if (this.stopped) return
    const { chain, clock } = this.deps
    const now = clock()
    const nextSlot = chain.schedule.slotAt(now) + 1
    // Wake a few ms into the slot so the timestamp is safely inside it.
    const delay = Math.max(1, chain.schedule.slotStart(nextSlot) - now + 2)
    this.timer = this.deps.timers.schedule(delay, () => void this.onSlot())
  }

  private async onSlot(): Promise<void> {
    try {
      await this.produce()
    } catch (error) {
      this.deps.log.error({ err: error }, 'block production failed')
    } finally {
      this.scheduleNext()
    }
  }

  /** Produces for the current slot if this node leads it; returns the block, if any. */
  async produce(): Promise<Block | undefined> {
    const { chain, clock, keypair } = this.deps
    const now = clock()
    const slot = chain.schedule.slotAt(now)
    if (slot === this.lastSlot || slot <= chain.head.header.slot) return undefined
    if (!bytesEqual(chain.schedule.leaderFor(slot).address, keypair.publicKey)) return undefined
    this.lastSlot = slot
    const { block, execution } = chain.buildBlock(slot, Math.max(now, chain.schedule.slotStart(slot)), keypair, this.deps.packer)
    await this.deps.publish(block, execution)
    this.deps.log.info({ height: block.header.height, slot, txs: block.txs.length }, 'produced block')
    return block
  }
}
