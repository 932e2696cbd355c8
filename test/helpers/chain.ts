import { bytesEqual } from '../../src/codec/bytes.ts'
import { Chain, type TxPacker, fixedPacker as listPacker } from '../../src/chain/chain.ts'
import { type Keypair, devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import type { Genesis, GenesisLimits, SignedTx } from '../../src/ledger/types.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { MemoryStore } from '../../src/store/memory.ts'

export const GENESIS_TIME = 1_700_000_000_000

export function testGenesis(options: { validators?: number; slotMs?: number; limits?: Partial<GenesisLimits>; funded?: number } = {}): Genesis {
  return devnetGenesis({
    validatorCount: options.validators ?? 4,
    genesisTime: GENESIS_TIME,
    slotMs: options.slotMs ?? 1000,
    fundedCount: options.funded ?? 100,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
  })
}

export async function memoryChain(genesis: Genesis = testGenesis()): Promise<Chain> {
  return Chain.open({ store: new ChainStore(new MemoryStore()), genesis })
}

/** The dev key that leads `slot` (validators are dev keys 0..n-1). */
export function leaderKey(chain: Chain, slot: number): Keypair {
  const leader = chain.schedule.leaderFor(slot).address
  for (let i = 0; i < chain.genesis.validators.length; i++) {
    const key = devKeypair(i)
    if (bytesEqual(key.publicKey, leader)) return key
  }
  throw new Error('leader is not a dev key')
}

export { listPacker }

export const emptyPacker: TxPacker = listPacker([])

/** Builds the next block on the head at `slot` (default head slot + 1) by its leader. */
export function buildNext(chain: Chain, txs: SignedTx[] = [], slot = chain.head.header.slot + 1) {
  const key = leaderKey(chain, slot)
  return chain.buildBlock(slot, chain.schedule.slotStart(slot) + 1, key, listPacker(txs))
}

/** Extends the chain by `count` blocks, importing each. */
export async function extend(chain: Chain, count: number, txs: SignedTx[] = []): Promise<void> {
  for (let i = 0; i < count; i++) {
    const { block, execution } = buildNext(chain, i === 0 ? txs : [])
    await chain.importOwnBlock(block, execution)
  }
}

export function transfer(fromIndex: number, to: Uint8Array, amount: bigint, nonce: number, fee = 1n, chainId = 'grapevine-devnet'): SignedTx {
  return signTransfer({ chainId, from: devKeypair(fromIndex), to, amount, fee, nonce })
}

/** "now" far enough ahead that no test block is from the future. */
export const FAR_FUTURE = GENESIS_TIME + 10 * 365 * 24 * 3600 * 1000
