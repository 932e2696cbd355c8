/**
 * The chain's objects (../docs/protocol.md, "Objects"). Plain data: encoding lives in
 * src/codec/objects.ts, rules in src/ledger/validation.ts.
 *
 * Amounts are u64 carried as bigint. Heights, slots, nonces and timestamps are u64 on the wire
 * but are carried as JS numbers, so the codec refuses values above 2^53 - 1.
 */

/** 32 bytes. */
export type Hash = Uint8Array
/** The 32-byte ed25519 public key. */
export type Address = Uint8Array

export interface Transaction {
  chainId: string
  from: Address
  to: Address
  amount: bigint
  fee: bigint
  nonce: number
  /** Free bytes for the sender, bounded by the genesis `maxMemoBytes`. */
  memo: Uint8Array
  /** ed25519 over the domain-separated unsigned encoding. */
  signature: Uint8Array
}

export interface Header {
  chainId: string
  height: number
  slot: number
  parentHash: Hash
  /** Milliseconds since the Unix epoch; must lie inside `slot`. */
  timestamp: number
  proposer: Address
  /** Merkle root of the block's txids (src/ledger/merkle.ts). */
  txRoot: Hash
  /** State trie root after applying the block. */
  stateRoot: Hash
  txCount: number
  signature: Uint8Array
}

export interface Block {
  header: Header
  txs: SignedTx[]
}

/** A decoded transaction with its canonical bytes and id, computed once when it arrives. */
export interface SignedTx {
  tx: Transaction
  /** Canonical encoding, signature included. */
  bytes: Uint8Array
  /** What the signature covers: the signing domain then the unsigned encoding (a view, no copy). */
  signingMessage: Uint8Array
  /** SHA-256 of `bytes`. */
  id: Hash
  /** `id` as bare hex: the key in every map. */
  idHex: string
}

export interface Account {
  balance: bigint
  nonce: number
}

export interface GenesisValidator {
  address: Address
  stake: bigint
}

export interface GenesisAccount {
  address: Address
  balance: bigint
}

export interface GenesisLimits {
  /** Largest encoded transaction accepted. */
  maxTxBytes: number
  maxMemoBytes: number
  maxBlockTxs: number
  /** Largest encoded block (header and transactions). */
  maxBlockBytes: number
  minFee: bigint
  /** Mempool capacity, by count and by encoded bytes. */
  mempoolMaxTxs: number
  mempoolMaxBytes: number
  /** A pending transaction older than this is dropped from the mempool. */
  mempoolTxTtlMs: number
  /** How far ahead of a node's clock a block's timestamp may be. */
  maxClockDriftMs: number
}

export interface Genesis {
  chainId: string
  /** Start of slot 0, ms since the Unix epoch. */
  genesisTime: number
  slotMs: number
  /** Sorted by address, unique. */
  validators: GenesisValidator[]
  /** Sorted by address, unique. */
  accounts: GenesisAccount[]
  limits: GenesisLimits
  /**
   * Multiaddrs of well-known nodes a fresh node dials besides its `--bootstrap` peers (and before
   * it can find the validators through the DHT). Not part of the genesis hash: seeds are
   * operational, so an operator may add or change them without starting another network.
   */
  seeds?: string[]
}

/**
 * A validator's finality vote (docs/protocol.md, "Finality"): "block `blockHash` at `height` is
 * on my canonical chain". The signature covers SIGNING_DOMAIN || 0x04 || chainId || height ||
 * blockHash; the validator is named by its index in the genesis validator list (sorted by
 * address), which is not signed (a signature only verifies under its own validator's key).
 */
export interface Vote {
  chainId: string
  height: number
  blockHash: Hash
  /** Index into `Genesis.validators`. */
  validatorIndex: number
  signature: Uint8Array
}

/** One validator's signature inside a certificate. */
export interface CertificateSignature {
  validatorIndex: number
  signature: Uint8Array
}

/**
 * Proof that more than 2/3 of the genesis stake voted for `blockHash` at `height`: the
 * (validator index, vote signature) pairs, sorted by index, no index twice.
 */
export interface Certificate {
  height: number
  blockHash: Hash
  signatures: CertificateSignature[]
}

/** Two votes by one validator at one height for different blocks; `first.blockHash` < `second.blockHash`. */
export interface Evidence {
  first: Vote
  second: Vote
}
