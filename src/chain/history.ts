/**
 * Building a long chain fast, for tests and benchmarks of the join from a certificate: empty
 * blocks signed by the dev validator keys (each by its slot's leader), imported as own blocks
 * (valid by construction, so not executed twice), and a certificate signed by enough dev keys.
 * Devnets only: dev keys are public.
 */
import { sha256 } from '../crypto/hash.ts'
import { devKeypair } from '../crypto/keys.ts'
import { signTransfer } from '../ledger/transfer.ts'
import type { Certificate, SignedTx } from '../ledger/types.ts'
import { type Chain, fixedPacker } from './chain.ts'
import { hasSupermajority, signVote, totalStake, validatorIndexOf } from './finality.ts'

/** Dev key index of a genesis validator address (devnet genesis: validators are dev keys 0..n−1). */
function devKeyIndexOf(chain: Chain, address: Uint8Array): number {
  for (let i = 0; i < chain.genesis.validators.length; i++) {
    if (Buffer.compare(Buffer.from(devKeypair(i).publicKey), Buffer.from(address)) === 0) return i
  }
  throw new Error('leader is not a dev key')
}

/**
 * Appends `count` empty blocks on the head, one per slot from the slot after the head's. The
 * genesis time must be far enough in the past for the last slot to have started.
 */
export async function appendEmptyBlocks(chain: Chain, count: number): Promise<void> {
  await appendBlocks(chain, count, [])
}

/**
 * Appends blocks that fund `accounts` new addresses (1 unit each, from dev key `fromDevKey`), as
 * many per block as the limits allow: a state a joining node must fetch. Returns the blocks added.
 */
export async function appendFundingBlocks(chain: Chain, accounts: number, fromDevKey = 0): Promise<number> {
  const from = devKeypair(fromDevKey)
  let nonce = chain.getAccount(from.publicKey).nonce
  const txs: SignedTx[] = []
  for (let i = 0; i < accounts; i++) {
    const to = sha256(new TextEncoder().encode(`grapevine/bench-account/${i}`))
    txs.push(signTransfer({ chainId: chain.genesis.chainId, from, to, amount: 1n, fee: chain.genesis.limits.minFee, nonce: nonce++ }))
  }
  const perBlock = Math.min(chain.genesis.limits.maxBlockTxs, 2_000)
  const blocks = Math.ceil(txs.length / perBlock)
  await appendBlocks(chain, blocks, txs, perBlock)
  return blocks
}

async function appendBlocks(chain: Chain, count: number, txs: readonly SignedTx[], perBlock = 0): Promise<void> {
  const keys = new Map<string, ReturnType<typeof devKeypair>>()
  let slot = chain.head.header.slot
  for (let i = 0; i < count; i++) {
    slot++
    const leader = chain.schedule.leaderFor(slot)
    const hex = Buffer.from(leader.address).toString('hex')
    let key = keys.get(hex)
    if (key === undefined) {
      key = devKeypair(devKeyIndexOf(chain, leader.address))
      keys.set(hex, key)
    }
    const { block, execution } = chain.buildBlock(slot, chain.schedule.slotStart(slot), key, fixedPacker(txs.slice(i * perBlock, (i + 1) * perBlock)))
    await chain.importOwnBlock(block, execution)
  }
}

/** A certificate for the canonical block at `height`, signed by dev validators in genesis order until > 2/3 of the stake. */
export function devCertificate(chain: Chain, height: number): Certificate {
  const blockHash = chain.getCanonicalHash(height)
  if (blockHash === undefined) throw new RangeError(`no canonical block at ${height}`)
  const total = totalStake(chain.genesis)
  let signed = 0n
  const signatures: Certificate['signatures'] = []
  for (let i = 0; i < chain.genesis.validators.length && !hasSupermajority(signed, total); i++) {
    const validator = chain.genesis.validators[i] as { address: Uint8Array; stake: bigint }
    const key = devKeypair(devKeyIndexOf(chain, validator.address))
    const index = validatorIndexOf(chain.genesis, key.publicKey) as number
    signatures.push({ validatorIndex: index, signature: signVote(key, chain.genesis.chainId, index, height, blockHash).signature })
    signed += validator.stake
  }
  signatures.sort((a, b) => a.validatorIndex - b.validatorIndex)
  return { height, blockHash, signatures }
}
