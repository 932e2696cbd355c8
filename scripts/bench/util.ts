/**
 * Shared helpers for the benchmark scripts in this directory: option parsing, fixed-duration
 * op loops, wall-clock timing, aligned text tables and the trailing JSON line (--json).
 *
 * Not a benchmark itself; imported by the other scripts in this directory.
 */
import { type KeyObject, createPublicKey, verify as nodeVerify, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import type { Socket } from 'node:net'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Metrics, MultiaddrConnection } from '@libp2p/interface'
import sodium from 'sodium-native'
import type { Chain } from '../../src/chain/chain.ts'
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import type { Keypair } from '../../src/crypto/keys.ts'
import { DEFAULT_LIMITS, normalizeGenesis } from '../../src/ledger/genesis.ts'
import type { Genesis, GenesisAccount, GenesisLimits } from '../../src/ledger/types.ts'
import { libp2pKeyFrom } from '../../src/net/identity.ts'
import { Network, type NetworkOptions } from '../../src/net/network.ts'
import { type ComposeOptions, type NodeServices, composeNode } from '../../src/node/compose.ts'
import type { GrapevineNode } from '../../src/node/node.ts'
import { systemRuntime } from '../../src/util/clock.ts'
import { silentLogger } from '../../src/util/logger.ts'
import { seededRandom } from '../../src/util/random.ts'

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export const now = (): number => performance.now()

export interface OpsResult {
  name: string
  ops: number
  seconds: number
  opsPerSec: number
  usPerOp: number
}

/**
 * Calls `op(i)` (i counts up from 0) for `warmupSeconds`, then for `seconds`, checking the clock
 * every `batch` calls. `op` returns a boolean; a false result aborts the run (a benchmark that
 * silently measures failures is worse than none).
 */
export function measureOps(name: string, op: (i: number) => boolean, options: { seconds: number; warmupSeconds?: number; batch?: number }): OpsResult {
  const batch = options.batch ?? 32
  const run = (seconds: number, startIndex: number): { ops: number; ms: number } => {
    const deadline = seconds * 1000
    let i = startIndex
    const start = now()
    let elapsed = 0
    do {
      for (let k = 0; k < batch; k++, i++) {
        if (!op(i)) throw new Error(`${name}: operation ${i} returned false`)
      }
      elapsed = now() - start
    } while (elapsed < deadline)
    return { ops: i - startIndex, ms: elapsed }
  }
  const warm = run(options.warmupSeconds ?? Math.min(0.5, options.seconds / 4), 0)
  const measured = run(options.seconds, warm.ops)
  const seconds = measured.ms / 1000
  return { name, ops: measured.ops, seconds, opsPerSec: measured.ops / seconds, usPerOp: (measured.ms * 1000) / measured.ops }
}

/** Times one synchronous call. */
export function timed<T>(fn: () => T): { value: T; ms: number } {
  const start = now()
  const value = fn()
  return { value, ms: now() - start }
}

/** Times one asynchronous call. */
export async function timedAsync<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = now()
  const value = await fn()
  return { value, ms: now() - start }
}

// ---------------------------------------------------------------- options

export interface ArgSpec {
  /** Numeric options: name → default. */
  numbers?: Record<string, number>
  /** Boolean flags (always includes --json and --help). */
  flags?: string[]
}

/**
 * Minimal `--name value` / `--name=value` / `--flag` parser (numbers accept `_` separators).
 * Unknown options are an error so a typo does not silently run the default.
 */
export function parseOptions(usage: string, spec: ArgSpec, argv: string[] = process.argv.slice(2)): { numbers: Record<string, number>; flags: Record<string, boolean> } {
  const numbers: Record<string, number> = { ...spec.numbers }
  const flags: Record<string, boolean> = { json: false, help: false }
  for (const flag of spec.flags ?? []) flags[flag] = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (!arg.startsWith('--')) fail(usage, `unexpected argument ${arg}`)
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    if (name in flags) {
      if (eq !== -1) fail(usage, `--${name} takes no value`)
      flags[name] = true
      continue
    }
    if (!(name in numbers)) fail(usage, `unknown option --${name}`)
    const text = eq === -1 ? argv[++i] : arg.slice(eq + 1)
    const value = text === undefined ? Number.NaN : Number(text.replaceAll('_', ''))
    if (!Number.isFinite(value) || value < 0) fail(usage, `--${name} needs a non-negative number`)
    numbers[name] = value
  }
  if (flags['help']) {
    console.log(usage)
    process.exit(0)
  }
  return { numbers, flags }
}

function fail(usage: string, message: string): never {
  console.error(`${message}\n\n${usage}`)
  process.exit(2)
}

/** A positive integer option (rounded down). */
export function intOption(numbers: Record<string, number>, name: string, min = 1): number {
  const value = Math.floor(numbers[name] ?? Number.NaN)
  if (!(value >= min)) {
    console.error(`--${name} must be an integer >= ${min}`)
    process.exit(2)
  }
  return value
}

// ---------------------------------------------------------------- output

/** Groups thousands with commas; `digits` decimals. */
export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return String(value)
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function fmtBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${bytes} B`
}

/**
 * Prints rows as an aligned table. The first column is left-aligned, the rest right-aligned
 * (they are numbers).
 */
export function printTable(headers: string[], rows: string[][], indent = '  '): void {
  const widths = headers.map((header, col) => Math.max(header.length, ...rows.map((row) => (row[col] ?? '').length)))
  const line = (cells: string[]) =>
    indent +
    cells
      .map((cell, col) => (col === 0 ? cell.padEnd(widths[col] as number) : cell.padStart(widths[col] as number)))
      .join('  ')
      .trimEnd()
  console.log(line(headers))
  console.log(indent + widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of rows) console.log(line(row))
}

export function heading(text: string): void {
  console.log(`\n${text}`)
}

/** Node version, CPU model and count, memory and load: printed at the top of every benchmark. */
export function machineInfo(): { node: string; cpu: string; cores: number; memoryGiB: number; loadavg1m: number } {
  const cpuList = cpus()
  return {
    node: process.version,
    cpu: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round((totalmem() / 1024 / 1024 / 1024) * 10) / 10,
    loadavg1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  }
}

export function printHeader(title: string, settings: Record<string, unknown>): ReturnType<typeof machineInfo> {
  const machine = machineInfo()
  console.log(`${title}`)
  console.log(`  node ${machine.node}, ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB} GiB, load avg (1 min) ${machine.loadavg1m}`)
  console.log(`  settings: ${Object.entries(settings).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`)
  return machine
}

/** Prints `value` as ONE JSON line (bigints as strings): always the last line of --json output. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)))
}

/** Rounds for JSON output so the line stays readable. */
export function round(value: number, digits = 2): number {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

export function memoryMiB(): { rss: number; heapUsed: number } {
  const usage = process.memoryUsage()
  return { rss: Math.round(usage.rss / 1024 / 1024), heapUsed: Math.round(usage.heapUsed / 1024 / 1024) }
}

// ---------------------------------------------------------------- raw verifiers

/** DER SubjectPublicKeyInfo prefix for a raw 32-byte ed25519 key (RFC 8410). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export function ed25519SpkiDer(publicKey: Uint8Array): Buffer {
  return Buffer.concat([ED25519_SPKI_PREFIX, publicKey])
}

export function ed25519KeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
}

/** A signed message in the shapes each verifier wants. */
export interface SignedSample {
  message: Uint8Array
  signature: Uint8Array
  publicKey: Uint8Array
  keyObject: KeyObject
}

export function toSample(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): SignedSample {
  return { message, signature, publicKey, keyObject: ed25519KeyObject(publicKey) }
}

/**
 * The raw verifiers compared for "fastest raw verify": libsodium through sodium-native and
 * OpenSSL through node:crypto with a cached KeyObject (the two native candidates).
 */
export const rawVerifiers: Record<string, (sample: SignedSample) => boolean> = {
  'sodium-native crypto_sign_verify_detached': (s) => sodium.crypto_sign_verify_detached(s.signature, s.message, s.publicKey),
  'node:crypto verify (cached KeyObject)': (s) => nodeVerify(null, s.message, s.keyObject, s.signature),
}

/** Runs every raw verifier over `samples` and returns all results plus the fastest. */
export function measureRawVerifiers(samples: SignedSample[], seconds: number): { results: OpsResult[]; fastest: OpsResult } {
  const results: OpsResult[] = []
  for (const [name, check] of Object.entries(rawVerifiers)) {
    results.push(measureOps(name, (i) => check(samples[i % samples.length] as SignedSample), { seconds }))
  }
  const fastest = results.reduce((best, r) => (r.opsPerSec > best.opsPerSec ? r : best))
  return { results, fastest }
}

// ---------------------------------------------------------------- chain fixtures

/** Genesis time shared by the fixtures: old enough that no block is "from the future". */
export const BENCH_GENESIS_TIME = 1_700_000_000_000

export interface BenchGenesisOptions {
  /** Validators (also the possible block proposers); stake (n - i) × 100 like devnets. */
  validators: Keypair[]
  /** Funded senders. */
  senders: Keypair[]
  /** Extra accounts with random addresses, funded with `balance`. */
  bulkAccounts: number
  balance: bigint
  chainId?: string
  limits?: Partial<GenesisLimits>
}

/**
 * A Genesis built directly (not through devnetGenesis, which derives a dev key per funded
 * account): validators and senders are real keys, the bulk accounts random 32-byte addresses.
 * Also returns the bulk addresses (for choosing recipients).
 */
export function benchGenesis(options: BenchGenesisOptions): { genesis: Genesis; bulk: Uint8Array[] } {
  const raw = randomBytes(32 * options.bulkAccounts)
  const bulk: Uint8Array[] = []
  // Plain Uint8Array views (not Buffers, whose slice() does not copy) into one allocation.
  for (let i = 0; i < options.bulkAccounts; i++) bulk.push(new Uint8Array(raw.buffer, raw.byteOffset + 32 * i, 32))
  const seen = new Set<string>()
  const accounts: GenesisAccount[] = []
  const add = (address: Uint8Array) => {
    const hex = toHexKey(address)
    if (seen.has(hex)) return
    seen.add(hex)
    accounts.push({ address, balance: options.balance })
  }
  for (const key of options.validators) add(key.publicKey)
  for (const key of options.senders) add(key.publicKey)
  for (const address of bulk) add(address)
  const n = options.validators.length
  const genesis = normalizeGenesis({
    chainId: options.chainId ?? 'grapevine-bench',
    genesisTime: BENCH_GENESIS_TIME,
    slotMs: 1000,
    validators: options.validators.map((key, i) => ({ address: key.publicKey, stake: BigInt((n - i) * 100) })),
    accounts,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  })
  return { genesis, bulk }
}

/** The validator key that leads `slot`. */
export function leaderOf(chain: Chain, validators: Keypair[], slot: number): Keypair {
  const leader = chain.schedule.leaderFor(slot).address
  const key = validators.find((k) => bytesEqual(k.publicKey, leader))
  if (key === undefined) throw new Error(`leader of slot ${slot} is not a known key`)
  return key
}

export { fixedPacker as listPacker } from '../../src/chain/chain.ts'

export { seededRandom } from '../../src/util/random.ts'

/** A fresh temporary directory (the caller removes it with removeDir). */
export function makeTempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `grapevine-bench-${label}-`))
}

export function removeDir(path: string): void {
  rmSync(path, { recursive: true, force: true })
}

/** Bytes under a directory (LevelDB files), for reporting on-disk size. */
export function dirBytes(path: string): number {
  let total = 0
  for (const name of readdirSync(path)) {
    const full = join(path, name)
    const stat = statSync(full)
    total += stat.isDirectory() ? dirBytes(full) : stat.size
  }
  return total
}

/**
 * propagation.ts's graph and origins: each node dials `degree` − 1 distinct random others plus its
 * ring neighbour (so the graph is connected), then each of `txs` transactions gets a random origin,
 * all from one seeded stream. The simulator's 16-node comparison (sim.ts) uses the same draw.
 */
export function propagationTopology(nodes: number, degree: number, txs: number, seed: number): { edges: Array<[number, number]>; origins: number[] } {
  const random = seededRandom(seed)
  const edges = new Set<string>()
  const add = (a: number, b: number) => {
    if (a !== b) edges.add(a < b ? `${a}-${b}` : `${b}-${a}`)
  }
  for (let i = 0; i < nodes; i++) add(i, (i + 1) % nodes)
  for (let i = 0; i < nodes; i++) {
    let dialed = 0
    while (dialed < degree - 1) {
      const j = Math.floor(random() * nodes)
      if (j === i) continue
      add(i, j)
      dialed++
    }
  }
  const origins: number[] = []
  for (let i = 0; i < txs; i++) origins.push(Math.floor(random() * nodes))
  return { edges: [...edges].map((edge) => edge.split('-').map(Number) as [number, number]), origins }
}

/** A libp2p Metrics stub that only collects the raw TCP sockets, to read their byte counters. */
export function socketCollector(sockets: Set<Socket>) {
  return (): Metrics => {
    const noop: unknown = new Proxy(() => noop, { get: () => noop, apply: () => noop })
    return new Proxy({} as Metrics, {
      get(_target, property) {
        if (property === 'trackMultiaddrConnection') {
          return (connection: MultiaddrConnection) => {
            const socket = (connection as unknown as { socket?: Socket }).socket
            if (socket !== undefined) sockets.add(socket)
          }
        }
        if (property === 'trackProtocolStream') return () => undefined
        // Not a thenable, and no lifecycle hooks: libp2p awaits start()/stop() when present.
        if (property === 'then' || property === 'start' || property === 'stop' || property === 'beforeStart' || property === 'afterStart') return undefined
        return noop
      },
    })
  }
}

/**
 * A node's engines over a real libp2p network, as `runNode` wires them but without RPC:
 * Network.create → composeNode → network.start. Anti-entropy off unless asked, so a benchmark
 * measures what it drives.
 */
export async function startBenchNetwork(
  node: GrapevineNode,
  key: Keypair,
  options: NetworkOptions,
  compose: ComposeOptions = {},
): Promise<{ network: Network; services: NodeServices }> {
  const log = silentLogger()
  const network = await Network.create({ privateKey: await libp2pKeyFrom(key), genesisHash: node.chain.genesisHash, log }, { inboundConnectionThreshold: 10_000, ...options })
  const services = composeNode(
    { node, transport: network, runtime: { ...systemRuntime, ...(options.random === undefined ? {} : { random: options.random }) }, elapsed: now, log },
    { antiEntropy: false, ...compose },
  )
  await network.start(services.handler)
  services.start()
  return { network, services }
}

/** One row of the simulator's 16-node comparison with the real network: the figures, the tolerance, met or not. */
export interface Verdict {
  metric: string
  real: number
  sim: number
  allowed: string
  met: boolean
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux). */
const USER_HZ = 100

/**
 * The main thread's user + system CPU time (ms) from /proc/self/task/<pid>/stat: unlike the
 * event loop's busy time it does not count time the thread was runnable but descheduled (a
 * shared machine), and unlike process.cpuUsage() it leaves out V8's and libuv's helper threads.
 * Where /proc is not there, the process's CPU time.
 */
export function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ
  } catch {
    const cpu = process.cpuUsage()
    return (cpu.user + cpu.system) / 1000
  }
}
