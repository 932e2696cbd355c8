/**
 * Pending transactions (docs/protocol.md, "Mempool rules").
 *
 * - Per-sender queues by nonce; a tx is accepted when its nonce is within
 *   [account nonce, account nonce + maxNonceAhead) and the sender's balance covers every queued
 *   tx up to and including it.
 * - A same-sender, same-nonce tx replaces the queued one only with a strictly higher fee.
 * - Full (by count or bytes): the lowest-fee tx is evicted with the same sender's later txs, if
 *   the newcomer pays more; otherwise MEMPOOL_FULL.
 * - Entries expire after the genesis `mempoolTxTtlMs`.
 * - Block packing takes executable txs in fee order (highest first), nonce order per sender.
 *
 * Signatures are checked by the caller before `add` (or were checked when first seen).
 */
import { toHexKey } from '../codec/bytes.ts'
import { TxError } from '../ledger/errors.ts'
import type { Account, Address, SignedTx } from '../ledger/types.ts'
import { Heap } from '../util/heap.ts'
import { MempoolDigest } from './digest.ts'

export interface MempoolOptions {
  maxTxs: number
  maxBytes: number
  ttlMs: number
  /** Largest nonce distance ahead of the account nonce (also the per-sender queue bound). */
  maxNonceAhead?: number
}

export interface MempoolDeps {
  /** Account at the current head. */
  getAccount: (address: Address) => Account
}

export interface MempoolEntry {
  signed: SignedTx
  senderKey: string
  addedAt: number
  /** Arrival order: ties in fee go to the earlier tx. */
  sequence: number
  removed: boolean
}

interface SenderQueue {
  address: Address
  /** Bounded by maxNonceAhead. */
  byNonce: Map<number, MempoolEntry>
  /**
   * Running cost (amount + fee) of the consecutive txs from nonce `from` through `through`, so
   * appending the next nonce checks the balance in O(1). Dropped on any removal or replacement.
   */
  spend?: { from: number; through: number; total: bigint }
}

export interface AddResult {
  replaced?: SignedTx
  evicted: SignedTx[]
}

export class Mempool {
  /** Bounded by maxTxs. */
  private readonly byId = new Map<string, MempoolEntry>()
  /** Bounded by maxTxs (a sender exists only while it has entries). */
  private readonly bySender = new Map<string, SenderQueue>()
  /** Lowest fee first, for eviction; lazily cleaned (removed entries are skipped). */
  private readonly evictionHeap = new Heap<MempoolEntry>((a, b) => a.signed.tx.fee < b.signed.tx.fee || (a.signed.tx.fee === b.signed.tx.fee && a.sequence > b.sequence))
  private bytes = 0
  private sequence = 0
  /** Bucketed summary of the pending txids, kept in step with every insert and removal. */
  readonly digest = new MempoolDigest()
  readonly maxNonceAhead: number

  constructor(
    private readonly deps: MempoolDeps,
    private readonly options: MempoolOptions,
  ) {
    this.maxNonceAhead = options.maxNonceAhead ?? 1024
  }

  get size(): number {
    return this.byId.size
  }

  get sizeBytes(): number {
    return this.bytes
  }

  has(idHex: string): boolean {
    return this.byId.has(idHex)
  }

  get(idHex: string): SignedTx | undefined {
    return this.byId.get(idHex)?.signed
  }

  /** All pending ids (for digests and announcements). */
  ids(): IterableIterator<string> {
    return this.byId.keys()
  }

  *entries(): IterableIterator<MempoolEntry> {
    yield* this.byId.values()
  }

  /** The first nonce at or after `accountNonce` with no pending tx from `address`. */
  nextNonce(address: Address, accountNonce: number): number {
    const queue = this.bySender.get(toHexKey(address))
    let nonce = accountNonce
    while (queue?.byNonce.has(nonce)) nonce++
    return nonce
  }

  /** Admits a signature-checked transaction or throws TxError with the reason. */
  add(signed: SignedTx, now: number): AddResult {
    // IGNORE: already pending.
    if (this.byId.has(signed.idHex)) throw new TxError('TX_ALREADY_KNOWN', 'transaction is already pending', 'ignore')
    const tx = signed.tx
    const account = this.deps.getAccount(tx.from)
    // IGNORE: already executed here; a peer may have relayed it before it saw the block.
    if (tx.nonce < account.nonce) throw new TxError('TX_NONCE_TOO_LOW', `nonce ${tx.nonce} is below the account nonce ${account.nonce}`, 'ignore')
    // IGNORE: too far ahead to hold; may be valid later.
    if (tx.nonce >= account.nonce + this.maxNonceAhead) {
      throw new TxError('TX_NONCE_TOO_HIGH', `nonce ${tx.nonce} is more than ${this.maxNonceAhead} ahead of the account nonce ${account.nonce}`, 'ignore')
    }
    const senderKey = toHexKey(tx.from)
    const queue = this.bySender.get(senderKey)
    const existing = queue?.byNonce.get(tx.nonce)
    // IGNORE: a replacement must pay strictly more.
    if (existing !== undefined && tx.fee <= existing.signed.tx.fee) {
      throw new TxError('TX_REPLACEMENT_UNDERPRICED', `a tx with nonce ${tx.nonce} and fee ${existing.signed.tx.fee} is pending; a replacement must pay more`, 'ignore')
    }
    let committed = tx.amount + tx.fee
    // Whether every nonce from the account's up to this one is queued (then the running total extends).
    let contiguous = true
    const spend = queue?.spend
    if (spend !== undefined && existing === undefined && spend.from === account.nonce && spend.through === tx.nonce - 1) {
      committed += spend.total
    } else if (queue !== undefined) {
      for (let nonce = account.nonce; nonce < tx.nonce; nonce++) {
        const earlier = queue.byNonce.get(nonce)
        if (earlier === undefined) {
          contiguous = false
          break
        }
        committed += earlier.signed.tx.amount + earlier.signed.tx.fee
      }
    } else {
      contiguous = tx.nonce === account.nonce
    }
    // IGNORE: depends on this node's view of the sender's balance and queue, not provable to a peer.
    if (account.balance < committed) {
      throw new TxError('TX_INSUFFICIENT_FUNDS', `balance ${account.balance} does not cover ${committed} (this tx and those queued before it)`, 'ignore')
    }

    const size = signed.bytes.length
    const evicted: SignedTx[] = []
    const countAfter = this.byId.size + (existing === undefined ? 1 : 0)
    const bytesAfter = this.bytes + size - (existing === undefined ? 0 : existing.signed.bytes.length)
    if (countAfter > this.options.maxTxs || bytesAfter > this.options.maxBytes) {
      // Plan evictions without changing anything, so a refusal leaves the pool untouched.
      const victims = this.planEviction(signed, existing, countAfter - this.options.maxTxs, bytesAfter - this.options.maxBytes)
      if (victims === undefined) throw new TxError('MEMPOOL_FULL', 'mempool is full and this fee does not beat the cheapest pending tx', 'ignore')
      for (const victim of victims) {
        this.removeEntry(victim)
        evicted.push(victim.signed)
      }
    }
    let replaced: SignedTx | undefined
    if (existing !== undefined && !existing.removed) {
      this.removeEntry(existing)
      replaced = existing.signed
    }
    const entry: MempoolEntry = { signed, senderKey, addedAt: now, sequence: this.sequence++, removed: false }
    let target = this.bySender.get(senderKey)
    if (target === undefined) {
      target = { address: tx.from, byNonce: new Map() }
      this.bySender.set(senderKey, target)
    }
    target.byNonce.set(tx.nonce, entry)
    if (existing === undefined && contiguous && evicted.length === 0 && (target.spend === undefined || target.spend.through === tx.nonce - 1)) {
      target.spend = { from: account.nonce, through: tx.nonce, total: committed }
    }
    this.byId.set(signed.idHex, entry)
    this.digest.add(signed.id)
    this.bytes += size
    this.evictionHeap.push(entry)
    this.compactHeap()
    return replaced === undefined ? { evicted } : { replaced, evicted }
  }

  /** Lowest-fee entries (with their sender's later txs) to free the space; undefined if the newcomer does not outbid them. */
  private planEviction(incoming: SignedTx, replacing: MempoolEntry | undefined, countOver: number, bytesOver: number): MempoolEntry[] | undefined {
    const chosen = new Map<string, MempoolEntry>()
    let freedCount = 0
    let freedBytes = 0
    const popped: MempoolEntry[] = []
    let outcome: MempoolEntry[] | undefined = []
    while (freedCount < countOver || freedBytes < bytesOver) {
      const cheapest = this.evictionHeap.pop()
      if (cheapest === undefined) {
        outcome = undefined
        break
      }
      popped.push(cheapest)
      // The entry being replaced is already counted as freed; evicting it would free it twice.
      if (cheapest.removed || cheapest === replacing || chosen.has(cheapest.signed.idHex)) continue
      if (cheapest.signed.tx.fee >= incoming.tx.fee) {
        outcome = undefined
        break
      }
      const queue = this.bySender.get(cheapest.senderKey)
      if (queue === undefined) continue
      for (const [nonce, dependent] of queue.byNonce) {
        if (nonce >= cheapest.signed.tx.nonce && !chosen.has(dependent.signed.idHex)) {
          // Evicting an earlier nonce of the newcomer's own sender would strand the newcomer.
          if (dependent.senderKey === toHexKey(incoming.tx.from) && nonce < incoming.tx.nonce) {
            outcome = undefined
            break
          }
          chosen.set(dependent.signed.idHex, dependent)
          freedCount++
          freedBytes += dependent.signed.bytes.length
        }
      }
      if (outcome === undefined) break
    }
    for (const entry of popped) if (!entry.removed) this.evictionHeap.push(entry)
    return outcome === undefined ? undefined : [...chosen.values()]
  }

  private removeEntry(entry: MempoolEntry): void {
    if (entry.removed) return
    entry.removed = true
    this.byId.delete(entry.signed.idHex)
    this.digest.remove(entry.signed.id)
    this.bytes -= entry.signed.bytes.length
    const queue = this.bySender.get(entry.senderKey)
    if (queue !== undefined) {
      queue.spend = undefined
      if (queue.byNonce.get(entry.signed.tx.nonce) === entry) queue.byNonce.delete(entry.signed.tx.nonce)
      if (queue.byNonce.size === 0) this.bySender.delete(entry.senderKey)
    }
  }

  /** Keeps the lazy heap within 2× the live entries. */
  private compactHeap(): void {
    if (this.evictionHeap.size > 2 * this.byId.size + 1024) this.evictionHeap.retain((entry) => !entry.removed)
  }

  remove(idHex: string): boolean {
    const entry = this.byId.get(idHex)
    if (entry === undefined) return false
    this.removeEntry(entry)
    return true
  }

  /**
   * After the head moved: drops included txs and, for the senders involved, txs whose nonce is
   * now spent. `senders` are the addresses touched by the blocks that joined the chain. Returns
   * the txs dropped for a spent nonce (a conflicting tx was included instead).
   */
  onHeadChange(includedIds: Iterable<string>, senders: Iterable<Address>): SignedTx[] {
    for (const idHex of includedIds) this.remove(idHex)
    /** The txs dropped because another tx spent their nonce (not the included ones). */
    const spent: SignedTx[] = []
    for (const address of senders) {
      const key = toHexKey(address)
      const queue = this.bySender.get(key)
      if (queue === undefined) continue
      const account = this.deps.getAccount(address)
      for (const [nonce, entry] of [...queue.byNonce]) {
        if (nonce >= account.nonce) continue
        this.removeEntry(entry)
        spent.push(entry.signed)
      }
    }
    this.compactHeap()
    return spent
  }

  /** Re-checks every sender's queue against the head (after a state-sync jump): spent nonces go. */
  revalidateAll(): SignedTx[] {
    return this.onHeadChange([], [...this.bySender.values()].map((queue) => queue.address))
  }

  /** Drops entries older than the TTL (and the same sender's later txs, now stranded). */
  expire(now: number): SignedTx[] {
    const dropped: SignedTx[] = []
    for (const entry of [...this.byId.values()]) {
      if (entry.removed || now - entry.addedAt < this.options.ttlMs) continue
      const queue = this.bySender.get(entry.senderKey)
      const stranded = queue === undefined ? [entry] : [...queue.byNonce.values()].filter((other) => other.signed.tx.nonce >= entry.signed.tx.nonce)
      for (const victim of stranded) {
        if (!victim.removed) {
          this.removeEntry(victim)
          dropped.push(victim.signed)
        }
      }
    }
    this.compactHeap()
    return dropped
  }

  /**
   * Picks transactions for a block: executable ones (consecutive nonces from the account nonce),
   * highest fee first across senders. `tryApply` applies a tx to the block's state and returns
   * false if it no longer fits (then that sender's later txs are skipped).
   */
  pack(tryApply: (signed: SignedTx) => boolean, maxTxs: number, maxBytes: number): SignedTx[] {
    const better = (a: MempoolEntry, b: MempoolEntry) =>
      a.signed.tx.fee > b.signed.tx.fee || (a.signed.tx.fee === b.signed.tx.fee && a.sequence < b.sequence)
    const heads = new Heap<MempoolEntry>(better)
    const nextNonce = new Map<string, number>()
    for (const [key, queue] of this.bySender) {
      const nonce = this.deps.getAccount(queue.address).nonce
      const head = queue.byNonce.get(nonce)
      if (head !== undefined) {
        heads.push(head)
        nextNonce.set(key, nonce + 1)
      }
    }
    const picked: SignedTx[] = []
    let bytes = 0
    while (heads.size > 0 && picked.length < maxTxs) {
      const best = heads.pop() as MempoolEntry
      const size = best.signed.bytes.length
      if (bytes + size > maxBytes) continue
      if (!tryApply(best.signed)) continue
      picked.push(best.signed)
      bytes += size
      const queue = this.bySender.get(best.senderKey)
      const nonce = nextNonce.get(best.senderKey) as number
      const next = queue?.byNonce.get(nonce)
      if (next !== undefined) {
        heads.push(next)
        nextNonce.set(best.senderKey, nonce + 1)
      }
    }
    return picked
  }
}
