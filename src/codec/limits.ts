/**
 * Protocol-wide maxima the decoder enforces before allocating. The genesis file may set tighter
 * limits (checked by validation), never looser ones.
 */
export const MAX_CHAIN_ID_BYTES = 32
export const MAX_MEMO_BYTES = 256
/** type + chainId + from + to + amount + fee + nonce + memo + signature */
export const MAX_TX_BYTES = 1 + (1 + MAX_CHAIN_ID_BYTES) + 32 + 32 + 8 + 8 + 8 + (2 + MAX_MEMO_BYTES) + 64
export const MAX_BLOCK_TXS = 20_000
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024
export const MAX_GENESIS_VALIDATORS = 1_024
export const MAX_GENESIS_ACCOUNTS = 1_000_000
/** A genesis file larger than this is refused before it is parsed. */
export const MAX_GENESIS_FILE_BYTES = 128 * 1024 * 1024
