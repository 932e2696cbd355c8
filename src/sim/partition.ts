/**
 * Partition and heal on complete nodes (SimCluster: GrapevineNode on a memory store, real
 * producer, chain, trie, SyncManager, gossip engine and ingress via composeNode): validators with
 * a heavy-tailed stake on both sides of a 50/50 cut produce competing chains; after the heal the
 * real anti-entropy (status rounds, chain sync) must bring every node to one head and one state
 * root. Reported in anti-entropy rounds (time since heal ÷ statusIntervalMs).
 */
import { devKeypair } from '../crypto/keys.ts'
import { devnetGenesis, normalizeGenesis } from '../ledger/genesis.ts'
import { signTransfer } from '../ledger/transfer.ts'
import type { Genesis } from '../ledger/types.ts'
import { seededRandom } from '../util/random.ts'
import { type SimNode, SimCluster } from './cluster.ts'
import { paretoStakes } from './model.ts'

export interface PartitionOptions {
  nodes: number
  validators: number
  degree: number
  partitionMs: number
  statusIntervalMs: number
  slotMs: number
  seed: number
  /** Virtual time allowed for convergence after the heal. */
  limitMs: number
}

export const DEFAULT_PARTITION_OPTIONS: PartitionOptions = { nodes: 40, validators: 8, degree: 4, partitionMs: 30_000, statusIntervalMs: 2_000, slotMs: 1_000, seed: 1, limitMs: 120_000 }

export interface PartitionResult {
  options: PartitionOptions
  /** Distinct heads at the end of the partition (≥ 2: the halves diverged). */
  headsBeforeHeal: number
  heightsBeforeHeal: { left: number; right: number }
  converged: boolean
  /** Virtual ms from heal to one head and one state root on every node. */
  convergedMs: number
  rounds: number
  /** [ms since heal, share of nodes on the majority head]. */
  curve: Array<[number, number]>
  headHeight: number
  wallMs: number
}

/** A devnet genesis whose validators hold a heavy-tailed (Pareto) stake. */
export function simGenesis(validators: number, genesisTime: number, slotMs: number, seed: number): Genesis {
  const base = devnetGenesis({ validatorCount: validators, genesisTime, slotMs, fundedCount: 200, chainId: 'grapevine-sim' })
  const stakes = paretoStakes(validators, seededRandom(seed))
  const byAddress = new Map(Array.from({ length: validators }, (_, i) => [Buffer.from(devKeypair(i).publicKey).toString('hex'), stakes[i] as bigint]))
  return normalizeGenesis({ ...base, validators: base.validators.map((v) => ({ ...v, stake: byAddress.get(Buffer.from(v.address).toString('hex')) ?? v.stake })) })
}

function majorityShare(values: string[]): number {
  const counts = new Map<string, number>()
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1)
  return Math.max(...counts.values()) / values.length
}

export async function runPartition(partial: Partial<PartitionOptions> = {}): Promise<PartitionResult> {
  const options = { ...DEFAULT_PARTITION_OPTIONS, ...partial }
  const wallStart = performance.now()
  const genesis = simGenesis(options.validators, 1_700_000_000_000, options.slotMs, options.seed)
  const sim = new SimCluster({ genesis, seed: options.seed, sync: { statusIntervalMs: options.statusIntervalMs } })
  try {
    for (let i = 0; i < options.validators; i++) await sim.addNode({ validatorIndex: i })
    for (let i = options.validators; i < options.nodes; i++) await sim.addNode()
    sim.connectRandom(options.degree)
    await sim.time.runFor(3 * options.slotMs)
    // Half of the validators and half of the full nodes on each side.
    const half = Math.floor(options.validators / 2)
    const full = sim.nodes.slice(options.validators)
    const left = [...sim.nodes.slice(0, half), ...full.slice(0, Math.floor(full.length / 2))] as SimNode[]
    const right = [...sim.nodes.slice(half, options.validators), ...full.slice(Math.floor(full.length / 2))] as SimNode[]
    const cut = sim.partition(left, right)
    const to = devKeypair(9_999).publicKey
    // Each side gets its own transfers, so the state roots differ too.
    for (let i = 0; i < 10; i++) {
      await (left[i % left.length] as SimNode).node.submitTx(signTransfer({ chainId: genesis.chainId, from: devKeypair(50 + i), to, amount: 5n, fee: genesis.limits.minFee, nonce: 0 }).bytes).catch(() => undefined)
      await (right[i % right.length] as SimNode).node.submitTx(signTransfer({ chainId: genesis.chainId, from: devKeypair(100 + i), to, amount: 7n, fee: genesis.limits.minFee, nonce: 0 }).bytes).catch(() => undefined)
    }
    await sim.time.runFor(options.partitionMs)
    const before = sim.heads()
    const headsBeforeHeal = new Set(before.map((head) => head.hash)).size
    const heightOf = (group: SimNode[]): number => Math.max(...group.map((node) => node.node.chain.head.header.height))
    const heightsBeforeHeal = { left: heightOf(left), right: heightOf(right) }
    sim.heal(cut)
    const healedAt = sim.time.now
    const curve: Array<[number, number]> = []
    let converged = false
    const stepMs = 250
    while (sim.time.now - healedAt < options.limitMs) {
      await sim.time.runFor(stepMs)
      const heads = sim.heads()
      const share = majorityShare(heads.map((head) => `${head.hash}/${head.stateRoot}`))
      curve.push([sim.time.now - healedAt, share])
      if (share === 1) {
        converged = true
        break
      }
    }
    const convergedMs = sim.time.now - healedAt
    return {
      options,
      headsBeforeHeal,
      heightsBeforeHeal,
      converged,
      convergedMs,
      rounds: convergedMs / options.statusIntervalMs,
      curve,
      headHeight: sim.nodes[0]?.node.chain.head.header.height ?? 0,
      wallMs: performance.now() - wallStart,
    }
  } finally {
    await sim.stop()
  }
}
