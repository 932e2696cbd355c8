import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import { encodeUnsignedHeader, headerHash } from '../../src/codec/objects.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { sign, signingMessage } from '../../src/crypto/sign.ts'
import { BlockError } from '../../src/ledger/errors.ts'
import type { Block, Header } from '../../src/ledger/types.ts'
import { LeaderSchedule } from '../../src/chain/schedule.ts'
import { FAR_FUTURE, buildNext, extend, leaderKey, memoryChain, testGenesis, transfer } from '../helpers/chain.ts'
import { genesisHash } from '../../src/codec/objects.ts'
import { isBetterHead } from '../../src/chain/chain.ts'

function resign(header: Header, keyIndex?: number): Header {
  const unsigned = { ...header, signature: new Uint8Array(64) }
  const key = keyIndex === undefined ? undefined : devKeypair(keyIndex)
  if (key === undefined) return header
  return { ...unsigned, signature: sign(signingMessage(encodeUnsignedHeader(unsigned)), key) }
}

async function expectCode(promise: Promise<unknown>, code: string, action?: string) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof BlockError, `expected BlockError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    if (action !== undefined) assert.equal(error.action, action)
    return true
  })
}

describe('leader schedule', () => {
  it('is deterministic and follows stake', () => {
    const genesis = testGenesis()
    const a = new LeaderSchedule(genesis, genesisHash(genesis))
    const b = new LeaderSchedule(genesis, genesisHash(genesis))
    const counts = new Map<string, number>()
    const slots = 20_000
    for (let slot = 0; slot < slots; slot++) {
      const leader = a.leaderFor(slot)
      assert.ok(bytesEqual(leader.address, b.leaderFor(slot).address))
      counts.set(toHexKey(leader.address), (counts.get(toHexKey(leader.address)) ?? 0) + 1)
    }
    for (const validator of genesis.validators) {
      const share = (counts.get(toHexKey(validator.address)) ?? 0) / slots
      const expected = Number(validator.stake) / Number(a.totalStake)
      assert.ok(Math.abs(share - expected) < 0.02, `share ${share} vs stake ${expected}`)
    }
  })

  it('maps times to slots', () => {
    const genesis = testGenesis({ slotMs: 500 })
    const schedule = new LeaderSchedule(genesis, genesisHash(genesis))
    assert.equal(schedule.slotAt(genesis.genesisTime), 0)
    assert.equal(schedule.slotAt(genesis.genesisTime + 499), 0)
    assert.equal(schedule.slotAt(genesis.genesisTime + 500), 1)
    assert.equal(schedule.slotStart(3), genesis.genesisTime + 1500)
  })
})

describe('block import and validation', () => {
  it('a tx the builder tries and refuses (its sender has no account) leaves no trace in the block state: another node imports the block', async () => {
    const chain = await memoryChain()
    const unfundedSender = devKeypair(5_000)
    const refused = transfer(5_000, devKeypair(501).publicKey, 1n, 0)
    const accepted = transfer(11, devKeypair(502).publicKey, 7n, 0)
    const { block } = buildNext(chain, [refused, accepted])
    assert.deepEqual(block.txs.map((signed) => signed.idHex), [accepted.idHex], 'only the payable tx is packed')
    const other = await memoryChain()
    const result = await other.importBlock(block, { now: FAR_FUTURE })
    assert.ok(result.change, 'the other node computes the same state root from the block')
    assert.ok(bytesEqual(other.head.header.stateRoot, block.header.stateRoot))
    const { getAccount } = await import('../../src/state/trie.ts')
    const { sha256 } = await import('../../src/crypto/hash.ts')
    assert.equal(getAccount(other.store, other.head.header.stateRoot, sha256(unfundedSender.publicKey)), undefined, 'no empty account written for the refused sender')
  })

  it('imports a block with transfers and moves balances', async () => {
    const chain = await memoryChain()
    const recipient = devKeypair(500).publicKey
    const tx = transfer(10, recipient, 1234n, 0, 5n)
    const { block } = buildNext(chain, [tx])
    const other = await memoryChain()
    const result = await other.importBlock(block, { now: FAR_FUTURE })
    assert.ok(result.change)
    assert.equal(other.head.header.height, 1)
    assert.equal(other.getAccount(recipient).balance, 1234n)
    assert.equal(other.getAccount(devKeypair(10).publicKey).nonce, 1)
    assert.equal(other.getAccount(devKeypair(10).publicKey).balance, 1_000_000_000_000n - 1239n)
    assert.equal(other.getAccount(block.header.proposer).balance, 1_000_000_000_000n + 5n)
    assert.ok(bytesEqual(other.head.header.stateRoot, block.header.stateRoot))
  })

  it('BLOCK_ALREADY_KNOWN (ignore)', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    await chain.importBlock(block, { now: FAR_FUTURE })
    await expectCode(chain.importBlock(block, { now: FAR_FUTURE }), 'BLOCK_ALREADY_KNOWN', 'ignore')
  })

  it('BLOCK_UNKNOWN_PARENT (ignore)', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const header = resign({ ...block.header, parentHash: new Uint8Array(32).fill(9) }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_UNKNOWN_PARENT', 'ignore')
  })

  it('BLOCK_WRONG_CHAIN', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const header = resign({ ...block.header, chainId: 'other-net' }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_WRONG_CHAIN')
  })

  it('BLOCK_BAD_HEIGHT', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const header = resign({ ...block.header, height: 5 }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_BAD_HEIGHT')
  })

  it('BLOCK_SLOT_NOT_AFTER_PARENT', async () => {
    const chain = await memoryChain()
    await extend(chain, 1)
    const { block } = buildNext(chain)
    const slot = chain.head.header.slot
    const header = resign({ ...block.header, slot, timestamp: chain.schedule.slotStart(slot), proposer: leaderKey(chain, slot).publicKey }, leaderIndex(chain, slot))
    await expectCode(chain.importBlock({ header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_SLOT_NOT_AFTER_PARENT')
  })

  it('BLOCK_BAD_TIMESTAMP', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const header = resign({ ...block.header, timestamp: block.header.timestamp + chain.genesis.slotMs }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_BAD_TIMESTAMP')
  })

  it('BLOCK_FROM_FUTURE (ignore), accepted once the clock reaches it', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const early = block.header.timestamp - chain.genesis.limits.maxClockDriftMs - 1
    await expectCode(chain.importBlock(block, { now: early }), 'BLOCK_FROM_FUTURE', 'ignore')
    await chain.importBlock(block, { now: block.header.timestamp })
    assert.equal(chain.head.header.height, 1)
  })

  it('BLOCK_WRONG_LEADER', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const wrong = [0, 1, 2, 3].find((i) => !bytesEqual(devKeypair(i).publicKey, block.header.proposer)) as number
    const header = resign({ ...block.header, proposer: devKeypair(wrong).publicKey }, wrong)
    await expectCode(chain.importBlock({ header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_WRONG_LEADER')
  })

  it('BLOCK_BAD_SIGNATURE', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const signature = block.header.signature.slice()
    signature[5] = (signature[5] as number) ^ 1
    await expectCode(chain.importBlock({ header: { ...block.header, signature }, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_BAD_SIGNATURE')
  })

  it('BLOCK_TOO_MANY_TXS', async () => {
    const chain = await memoryChain(testGenesis({ limits: { maxBlockTxs: 2 } }))
    const txs = [0, 1, 2].map((nonce) => transfer(10, devKeypair(11).publicKey, 1n, nonce))
    const { block } = buildNext(chain, txs.slice(0, 2))
    const header = resign({ ...block.header, txCount: 3 }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs }, { now: FAR_FUTURE }), 'BLOCK_TOO_MANY_TXS')
  })

  it('BLOCK_TX_COUNT_MISMATCH', async () => {
    const chain = await memoryChain()
    const tx = transfer(10, devKeypair(11).publicKey, 1n, 0)
    const { block } = buildNext(chain, [tx])
    await expectCode(chain.importBlock({ header: block.header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_TX_COUNT_MISMATCH')
  })

  it('BLOCK_TOO_LARGE', async () => {
    const chain = await memoryChain(testGenesis({ limits: { maxBlockBytes: 1024 } }))
    const txs = [0, 1, 2, 3, 4, 5].map((nonce) => transfer(10, devKeypair(11).publicKey, 1n, nonce))
    const { block } = buildNext(chain, [])
    const merkle = (await import('../../src/ledger/merkle.ts')).merkleRoot
    const header = resign({ ...block.header, txCount: txs.length, txRoot: merkle(txs.map((t) => t.id)) }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs }, { now: FAR_FUTURE }), 'BLOCK_TOO_LARGE')
  })

  it('BLOCK_BAD_TX_ROOT', async () => {
    const chain = await memoryChain()
    const a = transfer(10, devKeypair(11).publicKey, 1n, 0)
    const b = transfer(12, devKeypair(11).publicKey, 1n, 0)
    const { block } = buildNext(chain, [a])
    await expectCode(chain.importBlock({ header: block.header, txs: [b] }, { now: FAR_FUTURE }), 'BLOCK_BAD_TX_ROOT')
  })

  describe('a block whose parent is not imported: what no parent can fix is refused, not left to be held', () => {
    /** A genuine child of a block `chain` does not have: built on a copy of the chain that imported the parent. */
    async function orphanOf(txs: ReturnType<typeof transfer>[]) {
      const chain = await memoryChain()
      const builder = await memoryChain()
      await extend(builder, 1)
      return { chain, child: buildNext(builder, txs).block }
    }

    it('genuine: BLOCK_UNKNOWN_PARENT (ignore), to be held until the parent comes', async () => {
      const { chain, child } = await orphanOf([transfer(10, devKeypair(11).publicKey, 1n, 0)])
      await expectCode(chain.importBlock(child, { now: FAR_FUTURE }), 'BLOCK_UNKNOWN_PARENT', 'ignore')
    })

    it('BLOCK_BAD_TX_ROOT: the leader-signed header with another body', async () => {
      const { chain, child } = await orphanOf([transfer(10, devKeypair(11).publicKey, 1n, 0)])
      await expectCode(chain.importBlock({ header: child.header, txs: [transfer(12, devKeypair(11).publicKey, 1n, 0)] }, { now: FAR_FUTURE }), 'BLOCK_BAD_TX_ROOT', 'reject')
    })

    it('BLOCK_TX_COUNT_MISMATCH: the leader-signed header with a body of another length', async () => {
      const { chain, child } = await orphanOf([transfer(10, devKeypair(11).publicKey, 1n, 0)])
      await expectCode(chain.importBlock({ header: child.header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_TX_COUNT_MISMATCH', 'reject')
    })

    it('BLOCK_BAD_SIGNATURE and BLOCK_WRONG_LEADER: a header its slot leader did not sign', async () => {
      const { chain, child } = await orphanOf([])
      const signature = child.header.signature.slice()
      signature[5] = (signature[5] as number) ^ 1
      await expectCode(chain.importBlock({ header: { ...child.header, signature }, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_BAD_SIGNATURE', 'reject')
      const notLeader = (leaderIndex(chain, child.header.slot) + 1) % chain.genesis.validators.length
      const byAnother = resign({ ...child.header, proposer: devKeypair(notLeader).publicKey }, notLeader)
      await expectCode(chain.importBlock({ header: byAnother, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_WRONG_LEADER', 'reject')
    })
  })

  it('BLOCK_DUPLICATE_TX', async () => {
    const chain = await memoryChain()
    const a = transfer(10, devKeypair(11).publicKey, 1n, 0)
    const { block } = buildNext(chain, [a])
    const txs = [a, a]
    const header = resign({ ...block.header, txCount: 2, txRoot: (await import('../../src/ledger/merkle.ts')).merkleRoot([a.id, a.id]) }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs }, { now: FAR_FUTURE }), 'BLOCK_DUPLICATE_TX')
  })

  it('BLOCK_INVALID_TX carries the transaction code', async () => {
    const chain = await memoryChain()
    const builder = await memoryChain()
    // Builder includes nonce 0 then 1; the importer receives a block with only nonce 1.
    const skip = transfer(10, devKeypair(11).publicKey, 1n, 1)
    const merkle = (await import('../../src/ledger/merkle.ts')).merkleRoot
    const { block } = buildNext(builder, [])
    const header = resign({ ...block.header, txCount: 1, txRoot: merkle([skip.id]) }, leaderIndex(chain, block.header.slot))
    await assert.rejects(chain.importBlock({ header, txs: [skip] }, { now: FAR_FUTURE }), (error: unknown) => {
      assert.ok(error instanceof BlockError)
      assert.equal(error.code, 'BLOCK_INVALID_TX')
      assert.equal(error.txCode, 'TX_NONCE_TOO_HIGH')
      return true
    })
  })

  it('BLOCK_BAD_STATE_ROOT', async () => {
    const chain = await memoryChain()
    const { block } = buildNext(chain)
    const header = resign({ ...block.header, stateRoot: new Uint8Array(32).fill(3) }, leaderIndex(chain, block.header.slot))
    await expectCode(chain.importBlock({ header, txs: [] }, { now: FAR_FUTURE }), 'BLOCK_BAD_STATE_ROOT')
  })
})

function leaderIndex(chain: Awaited<ReturnType<typeof memoryChain>>, slot: number): number {
  const leader = leaderKey(chain, slot)
  for (let i = 0; i < 4; i++) if (bytesEqual(devKeypair(i).publicKey, leader.publicKey)) return i
  throw new Error('no leader')
}

describe('fork choice and reorgs', () => {
  it('prefers the longer chain, then the lower hash', () => {
    const header = (height: number) => ({ height }) as Header
    const low = new Uint8Array(32).fill(1)
    const high = new Uint8Array(32).fill(2)
    assert.equal(isBetterHead(high, header(5), low, header(4)), true)
    assert.equal(isBetterHead(low, header(4), high, header(5)), false)
    assert.equal(isBetterHead(low, header(5), high, header(5)), true)
    assert.equal(isBetterHead(high, header(5), low, header(5)), false)
  })

  it('reorgs to a longer branch: state is the branch state, losing txs are reported', async () => {
    const base = await memoryChain()
    await extend(base, 2)
    // Two branches from height 2: A has one block with a tx, B has two blocks.
    const a = await memoryChain()
    const b = await memoryChain()
    for (let h = 1; h <= 2; h++) {
      const block = base.getBlock(base.getCanonicalHash(h) as Uint8Array) as Block
      await a.importBlock(block, { now: FAR_FUTURE })
      await b.importBlock(block, { now: FAR_FUTURE })
    }
    const lost = transfer(20, devKeypair(600).publicKey, 50n, 0)
    const blockA = buildNext(a, [lost])
    await a.importOwnBlock(blockA.block, blockA.execution)
    const kept = transfer(21, devKeypair(601).publicKey, 70n, 0)
    const b1 = buildNext(b, [kept], b.head.header.slot + 2)
    await b.importOwnBlock(b1.block, b1.execution)
    const b2 = buildNext(b, [])
    await b.importOwnBlock(b2.block, b2.execution)

    assert.equal(a.getAccount(devKeypair(600).publicKey).balance, 50n)
    await a.importBlock(b1.block, { now: FAR_FUTURE }) // same height 3: lower hash decides
    const result = await a.importBlock(b2.block, { now: FAR_FUTURE })
    assert.ok(result.change)
    assert.ok(bytesEqual(a.head.hash, headerHash(b2.block.header)))
    assert.equal(a.getAccount(devKeypair(600).publicKey).balance, 0n)
    assert.equal(a.getAccount(devKeypair(601).publicKey).balance, 70n)
    assert.ok(bytesEqual(a.head.header.stateRoot, b.head.header.stateRoot))
    const allRemoved = result.change.removed.flatMap((blk) => blk.txs.map((t) => t.idHex))
    const allAdded = result.change.added.flatMap((blk) => blk.txs.map((t) => t.idHex))
    // Either the first import (equal height) or this one took A's block off the chain.
    assert.ok(allRemoved.includes(lost.idHex) || a.store.getTxLocation(lost.id) === undefined)
    assert.ok(allAdded.includes(kept.idHex) || a.store.getTxLocation(kept.id) !== undefined)
    assert.equal(a.store.getTxLocation(lost.id), undefined)
    assert.ok(bytesEqual(a.store.getTxLocation(kept.id)?.blockHash ?? new Uint8Array(), headerHash(b1.block.header)))
    assert.ok(bytesEqual(a.getCanonicalHash(4) as Uint8Array, headerHash(b2.block.header)))
  })
})
