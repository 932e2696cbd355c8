/**
 * Slots and leaders. Slot s covers [genesisTime + s·slotMs, genesisTime + (s+1)·slotMs).
 * The leader of slot s is drawn by stake: r = SHA-256(tag || genesisHash || u64be(s)) mod
 * totalStake, then the validator whose cumulative stake interval (validators sorted by address)
 * contains r. Deterministic, so every node agrees without talking.
 */
import { sha256Concat } from '../crypto/hash.ts'
import { utf8 } from '../codec/bytes.ts'
import type { Genesis, GenesisValidator } from '../ledger/types.ts'

const LEADER_TAG = utf8('grapevine/leader/v1')

export class LeaderSchedule {
  readonly totalStake: bigint
  /** Bounded by the validator count. */
  private readonly cumulative: bigint[] = []

  constructor(
    private readonly genesis: Genesis,
    private readonly genesisHash: Uint8Array,
  ) {
    let sum = 0n
    for (const validator of genesis.validators) {
      sum += validator.stake
      this.cumulative.push(sum)
    }
    this.totalStake = sum
  }

  get slotMs(): number {
    return this.genesis.slotMs
  }

  leaderFor(slot: number): GenesisValidator {
    const slotBytes = new Uint8Array(8)
    new DataView(slotBytes.buffer).setBigUint64(0, BigInt(slot))
    const draw = sha256Concat(LEADER_TAG, this.genesisHash, slotBytes)
    const r = BigInt('0x' + Buffer.from(draw).toString('hex')) % this.totalStake
    for (let i = 0; i < this.cumulative.length; i++) {
      if (r < (this.cumulative[i] as bigint)) return this.genesis.validators[i] as GenesisValidator
    }
    throw new Error('unreachable: draw beyond total stake')
  }

  /** The slot containing `timeMs` (slot 0 for times before genesis). */
  slotAt(timeMs: number): number {
    if (timeMs < this.genesis.genesisTime) return 0
    return Math.floor((timeMs - this.genesis.genesisTime) / this.genesis.slotMs)
  }

  slotStart(slot: number): number {
    return this.genesis.genesisTime + slot * this.genesis.slotMs
  }
}
