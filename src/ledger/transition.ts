/**
 * The state transition: a transfer moves `amount` from sender to recipient, pays `fee` to the
 * block's proposer and bumps the sender's nonce. Applied to an overlay over a trie root; the
 * overlay's updates become one trie update per block.
 */
import { toHexKey } from '../codec/bytes.ts'
import { sha256 } from '../crypto/hash.ts'
import { compareBytes } from '../codec/bytes.ts'
import type { AccountUpdate, AccountWrite } from '../state/trie.ts'
import { TxError } from './errors.ts'
import type { Account, Address, SignedTx } from './types.ts'

export const EMPTY_ACCOUNT: Readonly<Account> = Object.freeze({ balance: 0n, nonce: 0 })

/** Reads the committed state by keyHash (= SHA-256(address)). */
export type AccountLookup = (keyHash: Uint8Array) => Account | undefined

interface OverlayEntry {
  keyHash: Uint8Array
  account: Account
  /** The committed value (undefined: absent from the trie): what a reverse diff restores. */
  previous: Account | undefined
}

/** Uncommitted account writes over a committed state. Bounded by the block's transactions. */
export class StateOverlay {
  /** Accounts written. Bounded by the block's transactions. */
  private readonly entries = new Map<string, OverlayEntry>()
  /**
   * Committed values read and not (yet) written. Kept apart from the writes: a read alone must
   * never become a write — a transaction the block builder tries and refuses (its sender has no
   * account) would otherwise put an empty account for that sender into the block's state, a
   * state root no other node computes from the block's transactions. Bounded like `entries`.
   */
  private readonly reads = new Map<string, { keyHash: Uint8Array; previous: Account | undefined }>()

  constructor(private readonly lookup: AccountLookup) {}

  private committed(key: string, address: Address): { keyHash: Uint8Array; previous: Account | undefined } {
    let read = this.reads.get(key)
    if (read === undefined) {
      const keyHash = sha256(address)
      read = { keyHash, previous: this.lookup(keyHash) }
      this.reads.set(key, read)
    }
    return read
  }

  get(address: Address): Account {
    const key = toHexKey(address)
    const account = this.entries.get(key)?.account ?? this.committed(key, address).previous ?? EMPTY_ACCOUNT
    return { balance: account.balance, nonce: account.nonce }
  }

  set(address: Address, account: Account): void {
    const key = toHexKey(address)
    const entry = this.entries.get(key)
    if (entry !== undefined) {
      entry.account = { balance: account.balance, nonce: account.nonce }
      return
    }
    const { keyHash, previous } = this.committed(key, address)
    this.entries.set(key, { keyHash, account: { balance: account.balance, nonce: account.nonce }, previous })
  }

  /** The writes as trie updates (every written account, changed or not; never one only read). */
  updates(): AccountUpdate[] {
    return [...this.entries.values()].map((entry) => ({ keyHash: entry.keyHash, account: entry.account }))
  }

  /**
   * The reverse diff of these writes (src/state/reverse-diff.ts): each account whose trie entry
   * they change, with its committed value (undefined: absent), sorted by keyHash.
   */
  reverseDiff(): AccountWrite[] {
    const out: AccountWrite[] = []
    for (const entry of this.entries.values()) {
      const { previous, account } = entry
      if (previous !== undefined && previous.balance === account.balance && previous.nonce === account.nonce) continue
      out.push({ keyHash: entry.keyHash, account: previous === undefined ? undefined : { balance: previous.balance, nonce: previous.nonce } })
    }
    return out.sort((a, b) => compareBytes(a.keyHash, b.keyHash))
  }
}

/**
 * Applies one transfer in block context: the nonce must be exactly the sender's next nonce and
 * the balance must cover amount + fee. Throws TxError without touching the overlay on failure.
 */
export function applyTransfer(overlay: StateOverlay, signed: SignedTx, proposer: Address): void {
  const tx = signed.tx
  const sender = overlay.get(tx.from)
  if (tx.nonce < sender.nonce) throw new TxError('TX_NONCE_TOO_LOW', `nonce ${tx.nonce} is below the account nonce ${sender.nonce}`)
  if (tx.nonce > sender.nonce) throw new TxError('TX_NONCE_TOO_HIGH', `nonce ${tx.nonce} is above the account nonce ${sender.nonce}`)
  const cost = tx.amount + tx.fee
  if (sender.balance < cost) throw new TxError('TX_INSUFFICIENT_FUNDS', `balance ${sender.balance} does not cover amount + fee ${cost}`)
  overlay.set(tx.from, { balance: sender.balance - cost, nonce: sender.nonce + 1 })
  const recipient = overlay.get(tx.to)
  overlay.set(tx.to, { balance: recipient.balance + tx.amount, nonce: recipient.nonce })
  if (tx.fee > 0n) {
    const producer = overlay.get(proposer)
    overlay.set(proposer, { balance: producer.balance + tx.fee, nonce: producer.nonce })
  }
}
