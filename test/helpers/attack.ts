/**
 * Helpers for the adversarial tests and the attack benchmark: a small live devnet of real
 * libp2p nodes on loopback, honest traffic through it, and the checks every attack test makes —
 * honest transactions still reach every node, the victim keeps producing its blocks, and the
 * attacker ends graylisted, disconnected or banned.
 */
import { toHex, toHexKey } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import type { Genesis } from '../../src/ledger/types.ts'
import type { RunNodeOptions, RunningNode } from '../../src/node/run.ts'
import { transfer } from './chain.ts'
import { RawPeer, connect, genesisStartingNow, hasTx, isAdmitted, net, peerSet, startNode, statusLike, waitFor } from './net.ts'

export interface Devnet {
  genesis: Genesis
  nodes: RunningNode[]
  /** Node 0: the one the attacks aim at. */
  victim: RunningNode
}

/** `count` validators (dev keys 0..count−1), fully meshed; node 0 is the victim. */
export async function startDevnet(
  count: number,
  options: { slotMs?: number; fundedCount?: number; node?: Partial<RunNodeOptions>; /** Node 0 only, over `node`. */ victim?: Partial<RunNodeOptions> } = {},
): Promise<Devnet> {
  const genesis = options.fundedCount === undefined ? genesisStartingNow(count, { slotMs: options.slotMs ?? 400 }) : devnetGenesis({ validatorCount: count, genesisTime: Date.now(), slotMs: options.slotMs ?? 400, fundedCount: options.fundedCount })
  const nodes: RunningNode[] = []
  for (let i = 0; i < count; i++) nodes.push(await startNode({ genesis, key: devKeypair(i), name: `v${i}`, ...options.node, ...(i === 0 ? options.victim : {}) }))
  for (let i = 0; i < count; i++) for (let j = i + 1; j < count; j++) await connect(nodes[i] as RunningNode, nodes[j] as RunningNode)
  return { genesis, nodes, victim: nodes[0] as RunningNode }
}

const RECIPIENT = devKeypair(7_777).publicKey

/** Sends an honest tx from dev key `sender` to node `via` and waits until every node has it. Returns ms until the last node had it. */
export async function honestTxReachesAll(nodes: RunningNode[], via: RunningNode, sender: number, nonce: number, timeoutMs = 10_000): Promise<number> {
  const signed = transfer(sender, RECIPIENT, 1n, nonce, 1n, via.node.genesis.chainId)
  const started = Date.now()
  await via.node.submitTx(signed.bytes)
  await waitFor(`honest tx ${signed.idHex.slice(0, 8)} on every node`, () => nodes.every((running) => hasTx(running.node, signed.idHex)), { timeoutMs, intervalMs: 5 })
  return Date.now() - started
}

/** Canonical blocks proposed by `proposer`'s key above `fromHeight` on `node`. */
export function blocksBy(node: RunningNode, proposerIndex: number, fromHeight: number): number {
  const proposer = toHex(devKeypair(proposerIndex).publicKey)
  let count = 0
  for (let height = fromHeight + 1; height <= node.node.chain.head.header.height; height++) {
    const hash = node.node.store.getCanonicalHash(height)
    const header = hash === undefined ? undefined : node.node.store.getHeader(hash)
    if (header !== undefined && toHex(header.proposer) === proposer) count++
  }
  return count
}

/** The victim's blocks keep landing on the chain seen by `observer` (another validator). */
export async function victimKeepsProducing(victim: RunningNode, observer: RunningNode, fromHeight: number, timeoutMs = 15_000): Promise<void> {
  await waitFor('a block by the victim on the honest chain', () => blocksBy(observer, 0, fromHeight) > 0, { timeoutMs })
  void victim
}

/** The attacker's standing at the victim: graylisted, disconnected or banned (anything but ok and admitted). */
export function cutOff(victim: RunningNode, attackerId: string): boolean {
  const state = peerSet(victim).scores.state(attackerId, Date.now())
  return state !== 'ok' || !isAdmitted(net(victim), attackerId)
}

let nextHost = 0
/** A fresh loopback address in its own /16 (127.10.0.1, 127.11.0.1, …): its own address group. */
export function freshHost(): string {
  const n = nextHost++
  return `127.${10 + (n % 240)}.${Math.floor(n / 240)}.1`
}

/**
 * A raw peer that passes the status handshake honestly, dialled in and admitted by the victim.
 * It dials from its own address group (the node caps unstaked inbound peers per group).
 */
export async function admittedRaw(victim: RunningNode, options: { host?: string } = {}): Promise<{ raw: RawPeer; victimId: import('@libp2p/interface').PeerId }> {
  const raw = await RawPeer.start({ genesisHashHex: toHexKey(victim.node.chain.genesisHash), status: () => statusLike(victim.node), host: options.host ?? freshHost() })
  try {
    const victimId = await raw.dialUntilConnected(net(victim).listenAddresses()[0] as string)
    await waitFor('the raw peer admitted', () => isAdmitted(net(victim), raw.peerId))
    return { raw, victimId }
  } catch (error) {
    await raw.stop()
    throw error
  }
}
