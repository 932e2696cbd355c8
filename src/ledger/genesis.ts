/**
 * The genesis file: JSON on disk (genesis/devnet.json), canonical binary for its hash.
 * Loading is untrusted-input handling: size-checked, parsed, every field validated.
 */
import { readFileSync, statSync } from 'node:fs'
import { MAX_U64 } from '../codec/binary.ts'
import { compareBytes, toHex, toHexKey } from '../codec/bytes.ts'
import {
  MAX_BLOCK_BYTES,
  MAX_BLOCK_TXS,
  MAX_GENESIS_ACCOUNTS,
  MAX_GENESIS_FILE_BYTES,
  MAX_GENESIS_VALIDATORS,
  MAX_MEMO_BYTES,
  MAX_TX_BYTES,
} from '../codec/limits.ts'
import { genesisHash, isValidChainId } from '../codec/objects.ts'
import { devKeypair, parseAddress } from '../crypto/keys.ts'
import type { Genesis, GenesisAccount, GenesisLimits, GenesisValidator } from './types.ts'

export class GenesisError extends Error {
  override name = 'GenesisError'
}

/** The JSON shape of a genesis file; amounts are decimal strings. */
export interface GenesisJson {
  chainId: string
  genesisTime: number
  slotMs: number
  validators: Array<{ address: string; stake: string }>
  accounts: Array<{ address: string; balance: string }>
  limits: {
    maxTxBytes: number
    maxMemoBytes: number
    maxBlockTxs: number
    maxBlockBytes: number
    minFee: string
    mempoolMaxTxs: number
    mempoolMaxBytes: number
    mempoolTxTtlMs: number
    maxClockDriftMs: number
  }
  /** Optional: multiaddrs of well-known nodes (not hashed). */
  seeds?: string[]
}

/** At most this many seed addresses in a genesis file, each at most MAX_SEED_CHARS long. */
export const MAX_GENESIS_SEEDS = 64
export const MAX_SEED_CHARS = 256

/** A multiaddr as text: '/'-separated printable ASCII (the network shell parses it; here only its shape is checked). */
function readSeeds(value: unknown): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length > MAX_GENESIS_SEEDS) fail(`seeds must be a list of at most ${MAX_GENESIS_SEEDS} multiaddrs`)
  return value.map((seed: unknown, i: number) => {
    if (typeof seed !== 'string' || seed.length > MAX_SEED_CHARS || !/^(\/[\x21-\x2e\x30-\x7e]+)+$/.test(seed)) fail(`seeds[${i}] must be a multiaddr such as /ip4/203.0.113.7/tcp/9000/p2p/<peer id>`)
    return seed
  })
}

export const DEFAULT_LIMITS: GenesisLimits = {
  maxTxBytes: MAX_TX_BYTES,
  maxMemoBytes: MAX_MEMO_BYTES,
  maxBlockTxs: 5_000,
  maxBlockBytes: 2 * 1024 * 1024,
  minFee: 1n,
  mempoolMaxTxs: 50_000,
  mempoolMaxBytes: 32 * 1024 * 1024,
  mempoolTxTtlMs: 10 * 60 * 1000,
  maxClockDriftMs: 500,
}

function fail(message: string): never {
  throw new GenesisError(message)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function readInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    fail(`${field} must be an integer in [${min}, ${max}]`)
  }
  return value
}

function readAmount(value: unknown, field: string, min = 0n): bigint {
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(value)) fail(`${field} must be a decimal string`)
  const amount = BigInt(value)
  if (amount < min || amount > MAX_U64) fail(`${field} must be in [${min}, 2^64 - 1]`)
  return amount
}

function readAddress(value: unknown, field: string): Uint8Array {
  try {
    return parseAddress(value as string)
  } catch (error) {
    return fail(`${field}: ${(error as Error).message}`)
  }
}

/** Validates parsed JSON and returns the Genesis (lists sorted by address). */
export function genesisFromJson(json: unknown): Genesis {
  if (!isRecord(json)) fail('genesis must be a JSON object')
  const chainId = json['chainId']
  if (typeof chainId !== 'string' || !isValidChainId(chainId)) fail('chainId must be 1-32 chars of [a-z0-9._-]')
  const genesisTime = readInteger(json['genesisTime'], 'genesisTime', 0, Number.MAX_SAFE_INTEGER)
  const slotMs = readInteger(json['slotMs'], 'slotMs', 20, 3_600_000)

  const validatorsJson = json['validators']
  if (!Array.isArray(validatorsJson) || validatorsJson.length === 0 || validatorsJson.length > MAX_GENESIS_VALIDATORS) {
    fail(`validators must be a list of 1 to ${MAX_GENESIS_VALIDATORS} entries`)
  }
  const validators: GenesisValidator[] = validatorsJson.map((entry: unknown, i: number) => {
    if (!isRecord(entry)) fail(`validators[${i}] must be an object`)
    return { address: readAddress(entry['address'], `validators[${i}].address`), stake: readAmount(entry['stake'], `validators[${i}].stake`, 1n) }
  })

  const accountsJson = json['accounts']
  if (!Array.isArray(accountsJson) || accountsJson.length > MAX_GENESIS_ACCOUNTS) {
    fail(`accounts must be a list of at most ${MAX_GENESIS_ACCOUNTS} entries`)
  }
  const accounts: GenesisAccount[] = accountsJson.map((entry: unknown, i: number) => {
    if (!isRecord(entry)) fail(`accounts[${i}] must be an object`)
    return { address: readAddress(entry['address'], `accounts[${i}].address`), balance: readAmount(entry['balance'], `accounts[${i}].balance`) }
  })

  const limitsJson = json['limits']
  if (!isRecord(limitsJson)) fail('limits must be an object')
  const limits: GenesisLimits = {
    maxTxBytes: readInteger(limitsJson['maxTxBytes'], 'limits.maxTxBytes', 128, MAX_TX_BYTES),
    maxMemoBytes: readInteger(limitsJson['maxMemoBytes'], 'limits.maxMemoBytes', 0, MAX_MEMO_BYTES),
    maxBlockTxs: readInteger(limitsJson['maxBlockTxs'], 'limits.maxBlockTxs', 1, MAX_BLOCK_TXS),
    maxBlockBytes: readInteger(limitsJson['maxBlockBytes'], 'limits.maxBlockBytes', 1024, MAX_BLOCK_BYTES),
    minFee: readAmount(limitsJson['minFee'], 'limits.minFee'),
    mempoolMaxTxs: readInteger(limitsJson['mempoolMaxTxs'], 'limits.mempoolMaxTxs', 1, 10_000_000),
    mempoolMaxBytes: readInteger(limitsJson['mempoolMaxBytes'], 'limits.mempoolMaxBytes', 1024, 4 * 1024 * 1024 * 1024 - 1),
    mempoolTxTtlMs: readInteger(limitsJson['mempoolTxTtlMs'], 'limits.mempoolTxTtlMs', 1000, 0xffffffff),
    maxClockDriftMs: readInteger(limitsJson['maxClockDriftMs'], 'limits.maxClockDriftMs', 0, 600_000),
  }
  const seeds = readSeeds(json['seeds'])
  return normalizeGenesis({ chainId, genesisTime, slotMs, validators, accounts, limits, ...(seeds === undefined ? {} : { seeds }) })
}

/** Sorts lists, rejects duplicates and checks that stake and supply fit in u64. */
export function normalizeGenesis(genesis: Genesis): Genesis {
  const validators = [...genesis.validators].sort((a, b) => compareBytes(a.address, b.address))
  const accounts = [...genesis.accounts].sort((a, b) => compareBytes(a.address, b.address))
  for (let i = 1; i < validators.length; i++) {
    if (compareBytes((validators[i - 1] as GenesisValidator).address, (validators[i] as GenesisValidator).address) === 0) {
      fail(`duplicate validator ${toHex((validators[i] as GenesisValidator).address)}`)
    }
  }
  for (let i = 1; i < accounts.length; i++) {
    if (compareBytes((accounts[i - 1] as GenesisAccount).address, (accounts[i] as GenesisAccount).address) === 0) {
      fail(`duplicate account ${toHex((accounts[i] as GenesisAccount).address)}`)
    }
  }
  const totalStake = validators.reduce((sum, v) => sum + v.stake, 0n)
  if (totalStake > MAX_U64) fail('total stake exceeds 2^64 - 1')
  // Supply is conserved (fees move to proposers), so balances can never overflow if this holds.
  const supply = accounts.reduce((sum, a) => sum + a.balance, 0n)
  if (supply > MAX_U64) fail('total supply exceeds 2^64 - 1')
  if (genesis.limits.maxTxBytes > genesis.limits.maxBlockBytes) fail('limits.maxTxBytes exceeds limits.maxBlockBytes')
  return { ...genesis, validators, accounts }
}

export function genesisToJson(genesis: Genesis): GenesisJson {
  return {
    chainId: genesis.chainId,
    genesisTime: genesis.genesisTime,
    slotMs: genesis.slotMs,
    validators: genesis.validators.map((v) => ({ address: toHex(v.address), stake: v.stake.toString() })),
    accounts: genesis.accounts.map((a) => ({ address: toHex(a.address), balance: a.balance.toString() })),
    limits: { ...genesis.limits, minFee: genesis.limits.minFee.toString() },
    ...(genesis.seeds === undefined ? {} : { seeds: [...genesis.seeds] }),
  }
}

/** Reads and validates a genesis file; the size is checked before the file is read. */
export function loadGenesisFile(path: string): Genesis {
  let size: number
  try {
    size = statSync(path).size
  } catch (error) {
    return fail(`cannot read genesis file ${path}: ${(error as Error).message}`)
  }
  if (size > MAX_GENESIS_FILE_BYTES) fail(`genesis file ${path} is larger than ${MAX_GENESIS_FILE_BYTES} bytes`)
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    return fail(`genesis file ${path} is not valid JSON: ${(error as Error).message}`)
  }
  return genesisFromJson(json)
}

export interface DevnetGenesisOptions {
  validatorCount: number
  /** Dev keys 0..fundedCount-1 get `balance` each. */
  fundedCount?: number
  balance?: bigint
  genesisTime: number
  slotMs?: number
  chainId?: string
  limits?: Partial<GenesisLimits>
}

/**
 * A devnet genesis: validators are dev keys 0..n-1 with unequal stake ((n - i) × 100), dev keys
 * 0..99 are funded. Dev keys are public: devnets only.
 */
export function devnetGenesis(options: DevnetGenesisOptions): Genesis {
  const fundedCount = options.fundedCount ?? 100
  if (options.validatorCount < 1 || options.validatorCount > MAX_GENESIS_VALIDATORS) fail('validatorCount out of range')
  const validators: GenesisValidator[] = []
  for (let i = 0; i < options.validatorCount; i++) {
    validators.push({ address: devKeypair(i).publicKey, stake: BigInt((options.validatorCount - i) * 100) })
  }
  const accounts: GenesisAccount[] = []
  const funded = Math.max(fundedCount, options.validatorCount)
  for (let i = 0; i < funded; i++) {
    accounts.push({ address: devKeypair(i).publicKey, balance: options.balance ?? 1_000_000_000_000n })
  }
  return normalizeGenesis({
    chainId: options.chainId ?? 'grapevine-devnet',
    genesisTime: options.genesisTime,
    slotMs: options.slotMs ?? 1000,
    validators,
    accounts,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  })
}

/** Short form of the genesis hash used in protocol ids and data-dir checks. */
export function genesisId(genesis: Genesis): { hash: Uint8Array; hex: string; prefix: string } {
  const hash = genesisHash(genesis)
  const hex = toHexKey(hash)
  return { hash, hex, prefix: hex.slice(0, 16) }
}
