/**
 * Block rules (docs/protocol.md, "Block rules"), cheap checks first. Each check's comment says
 * why it is REJECT (provably invalid, penalise the sender) or IGNORE (drop without penalty).
 */
import { bytesEqual, toHex, toHexKey } from '../codec/bytes.ts'
import { encodeUnsignedHeader } from '../codec/objects.ts'
import { signingMessage, verify } from '../crypto/sign.ts'
import { BlockError, TxError } from '../ledger/errors.ts'
import { merkleRoot } from '../ledger/merkle.ts'
import { StateOverlay, applyTransfer } from '../ledger/transition.ts'
import type { Block, Genesis, Header, SignedTx } from '../ledger/types.ts'
import { badSignatureError, checkTxStateless, txSignatureValid } from '../ledger/validation.ts'
import { type AccountWrite, type NodeSource, applyUpdates, getAccount } from '../state/trie.ts'
import type { LeaderSchedule } from './schedule.ts'

export interface HeaderContext {
  genesis: Genesis
  schedule: LeaderSchedule
  /** Local clock reading, ms. */
  now: number
}

export function headerSignatureValid(header: Header): boolean {
  return verify(header.signature, signingMessage(encodeUnsignedHeader(header)), header.proposer)
}

/** Header rules that need only the parent header: used for blocks and for header-first sync. */
export function validateHeader(header: Header, parent: Header, context: HeaderContext): void {
  // REJECT: heights count up by one from the parent.
  if (header.height !== parent.height + 1) {
    throw new BlockError('BLOCK_BAD_HEIGHT', `height ${header.height} does not follow parent height ${parent.height}`)
  }
  // REJECT: slots strictly increase along a chain.
  if (header.slot <= parent.slot) {
    throw new BlockError('BLOCK_SLOT_NOT_AFTER_PARENT', `slot ${header.slot} is not after parent slot ${parent.slot}`)
  }
  validateHeaderAlone(header, context)
}

/**
 * Header rules that need no parent: the chain, the timestamp inside its slot and not ahead of
 * us, the slot's leader, the count limit, and the signature. Asked of a block whose parent we
 * lack before it is held (chain.ts): a held block is found by its header's hash, so one that can
 * never be valid must not take a genuine block's place.
 */
export function validateHeaderAlone(header: Header, context: HeaderContext): void {
  const { genesis, schedule } = context
  // REJECT: built for another network.
  if (header.chainId !== genesis.chainId) throw new BlockError('BLOCK_WRONG_CHAIN', `block is for chain ${header.chainId}`)
  // REJECT: the timestamp must lie inside the block's own slot.
  const slotStart = schedule.slotStart(header.slot)
  if (header.timestamp < slotStart || header.timestamp >= slotStart + genesis.slotMs) {
    throw new BlockError('BLOCK_BAD_TIMESTAMP', `timestamp ${header.timestamp} is outside slot ${header.slot}`)
  }
  // IGNORE: a block from a slot that has not started yet (beyond the drift bound) may become valid later.
  if (header.timestamp > context.now + genesis.limits.maxClockDriftMs) {
    throw new BlockError('BLOCK_FROM_FUTURE', `timestamp ${header.timestamp} is ahead of local time ${context.now}`, 'ignore')
  }
  // REJECT: only the slot's stake-drawn leader may propose.
  const leader = schedule.leaderFor(header.slot)
  if (!bytesEqual(leader.address, header.proposer)) {
    throw new BlockError('BLOCK_WRONG_LEADER', `proposer ${toHex(header.proposer)} is not the leader of slot ${header.slot}`)
  }
  // REJECT: limits on the declared count.
  if (header.txCount > genesis.limits.maxBlockTxs) {
    throw new BlockError('BLOCK_TOO_MANY_TXS', `${header.txCount} transactions, limit ${genesis.limits.maxBlockTxs}`)
  }
  // REJECT: signature last among header checks: it is the expensive one.
  if (!headerSignatureValid(header)) throw new BlockError('BLOCK_BAD_SIGNATURE', 'header signature does not verify under the proposer key')
}

/** Body rules that need no state: counts, size, tx root, duplicates. */
export function validateBodyShape(block: Block, genesis: Genesis, encodedBytes: number): void {
  // REJECT: the header commits to the count.
  if (block.txs.length !== block.header.txCount) {
    throw new BlockError('BLOCK_TX_COUNT_MISMATCH', `header says ${block.header.txCount} transactions, body has ${block.txs.length}`)
  }
  // REJECT: limits.
  if (block.txs.length > genesis.limits.maxBlockTxs) throw new BlockError('BLOCK_TOO_MANY_TXS', `${block.txs.length} transactions`)
  if (encodedBytes > genesis.limits.maxBlockBytes) {
    throw new BlockError('BLOCK_TOO_LARGE', `block is ${encodedBytes} bytes, limit ${genesis.limits.maxBlockBytes}`)
  }
  // REJECT: the tx root binds the body to the signed header.
  const ids = block.txs.map((signed) => signed.id)
  if (!bytesEqual(merkleRoot(ids), block.header.txRoot)) throw new BlockError('BLOCK_BAD_TX_ROOT', 'tx root does not match the transactions')
  // REJECT: a transaction appears at most once in a block.
  const seen = new Set<string>()
  for (const signed of block.txs) {
    if (seen.has(signed.idHex)) throw new BlockError('BLOCK_DUPLICATE_TX', `transaction ${signed.idHex} appears twice`)
    seen.add(signed.idHex)
  }
}

export interface ExecutionResult {
  stateRoot: Uint8Array
  /** New trie nodes to persist with the block. */
  nodes: Map<string, Uint8Array>
  /** What the block changed, as it was before (src/state/reverse-diff.ts): stored with the block. */
  reverseDiff: AccountWrite[]
}

export interface ExecuteOptions {
  /** True when this tx's signature was already verified (mempool, earlier import). */
  isVerified: (idHex: string) => boolean
}

/** Applies the block's transactions in order on its parent's state and returns the new root. */
export function executeBlock(source: NodeSource, parentStateRoot: Uint8Array, block: Block, genesis: Genesis, options: ExecuteOptions): ExecutionResult {
  const overlay = new StateOverlay((keyHash) => getAccount(source, parentStateRoot, keyHash))
  const rules = { chainId: genesis.chainId, limits: genesis.limits }
  for (let i = 0; i < block.txs.length; i++) {
    const signed = block.txs[i] as SignedTx
    try {
      checkTxStateless(signed, rules)
      if (!options.isVerified(signed.idHex) && !txSignatureValid(signed)) {
        throw badSignatureError()
      }
      applyTransfer(overlay, signed, block.header.proposer)
    } catch (error) {
      // REJECT: every transaction must be valid, in order, on the parent's state.
      if (error instanceof TxError) {
        throw new BlockError('BLOCK_INVALID_TX', `transaction ${i} (${signed.idHex}): ${error.message}`, 'reject', error.code)
      }
      throw error
    }
  }
  const { root, nodes } = applyUpdates(source, parentStateRoot, overlay.updates())
  return { stateRoot: root, nodes, reverseDiff: overlay.reverseDiff() }
}

/** Short hex for logs. */
export function shortHash(hash: Uint8Array): string {
  return toHexKey(hash).slice(0, 12)
}
