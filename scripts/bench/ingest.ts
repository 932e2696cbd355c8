/**
 * Benchmark: transaction ingest — the node's pipeline on pre-signed transaction bytes (size check
 * → decode → stateless checks → known? → spent nonce → signature → mempool insert), compared with
 * the fastest raw signature verify (one core) measured in the same process. Two paths:
 *   - batched (the headline; what a JSON-RPC batch of tx_send or a peer's txs message takes):
 *     TxIngest.ingestMany on batches of 256 txs, signatures in parallel on a VerifyPool with one
 *     worker per core, admission in order on the main thread;
 *   - single: TxIngest.ingestBytes, one tx at a time, everything on the main thread.
 *
 *   node --import tsx scripts/bench/ingest.ts [--seconds 2] [--senders 1000] [--accounts 0] [--memo 28] [--prefill 0] [--json]
 *
 * Transactions are signed beforehand by --senders distinct dev keys (devKeypair(i)) with
 * consecutive nonces, round-robin across senders, so every insert succeeds; the mempool is
 * sized to hold all of them. The single path runs in three (four) wirings, each with a fresh
 * mempool and TxIngest after a warm-up (the batched path uses the first):
 *   - node/LevelDB: exactly as GrapevineNode wires it — account reads through Chain.getAccount
 *     (state trie over ChainStore over LevelDB in a temp dir), isIncluded = store.getTxLocation;
 *   - node/memory:  the same over MemoryStore;
 *   - stub state:   accounts from a Map, isIncluded = false (pipeline cost alone);
 *   - with --prefill N, node/LevelDB again with TxIngest's verified-id LRU (default capacity
 *     200,000, as in the node) pre-filled with N ids: the steady state of a node that has been
 *     ingesting for a while (N > 200,000 makes every insert evict).
 * Both raw verifiers (sodium-native, node:crypto with a cached KeyObject) are measured first over
 * the same transactions' signing messages; the fastest is then re-run in 0.1 s slices
 * interleaved with each ingest run, so the ratio ingest tx/s ÷ raw verify ops/s compares the
 * two under the same machine conditions. The ratio is compared with the target (0.8). A
 * per-stage breakdown (each stage timed alone over the same transactions) says where time goes.
 */
import '../../src/polyfill.ts'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { VerifyPool } from '../../src/crypto/verify-pool.ts'
import { Chain } from '../../src/chain/chain.ts'
import { toHexKey } from '../../src/codec/bytes.ts'
import { unsignedTxBytes } from '../../src/codec/objects.ts'
import { type Keypair, devKeypair } from '../../src/crypto/keys.ts'
import { signingMessage } from '../../src/crypto/sign.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { Account, Address, Genesis, SignedTx } from '../../src/ledger/types.ts'
import { checkTxStateless, decodeTxInput, txSignatureValid } from '../../src/ledger/validation.ts'
import { type IngestDeps, TxIngest } from '../../src/mempool/ingest.ts'
import { Mempool } from '../../src/mempool/mempool.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { LevelStore } from '../../src/store/level.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { LruSet } from '../../src/util/lru.ts'
import {
  type OpsResult,
  type SignedSample,
  benchGenesis,
  fmt,
  heading,
  intOption,
  makeTempDir,
  measureRawVerifiers,
  rawVerifiers,
  now,
  parseOptions,
  printHeader,
  printJson,
  printTable,
  removeDir,
  round,
  timed,
  toSample,
} from './util.ts'

const USAGE = `usage: node --import tsx scripts/bench/ingest.ts [options]
  --seconds N    measured duration of each ingest run and each raw verify loop (default 2)
  --senders N    distinct dev-key senders (default 1000)
  --accounts N   extra funded accounts with random addresses in the state (default 0)
  --memo N       memo bytes per tx (default 28, making each signed tx 200 bytes)
  --prefill N    also run the node/LevelDB wiring with TxIngest's verified-id LRU (default capacity
                 200,000) pre-filled with N synthetic ids, like a node that has run a while (default 0: off)
  --json         also print one JSON object as the last line`

const TARGET_RATIO = 0.8
const WARMUP_SECONDS = 0.5
const SLICE_SECONDS = 0.1

const { numbers, flags } = parseOptions(USAGE, { numbers: { seconds: 2, senders: 1000, accounts: 0, memo: 28, prefill: 0 } })
const seconds = numbers['seconds'] as number
const senderCount = intOption(numbers, 'senders')
const bulkAccounts = intOption(numbers, 'accounts', 0)
const memoBytes = intOption(numbers, 'memo', 0)
const prefill = intOption(numbers, 'prefill', 0)

const machine = printHeader('Transaction ingest (TxIngest: batches on a verify pool, and one tx at a time on one thread)', { seconds, senders: senderCount, accounts: bulkAccounts, memo: memoBytes, prefill })

// ---------------------------------------------------------------- keys, genesis, raw verify

const setupStart = now()
const validators = [0, 1, 2, 3].map((i) => devKeypair(i))
const senders: Keypair[] = []
for (let i = 0; i < senderCount; i++) senders.push(devKeypair(1000 + i))
const { genesis } = benchGenesis({ validators, senders, bulkAccounts, balance: 1_000_000_000_000n })
const recipients = [...genesis.accounts.map((a) => a.address)]
const memo = new Uint8Array(memoBytes).fill(0x61)

/** Transaction k: sender k mod S, nonce floor(k / S) — round-robin, consecutive per sender. */
function makeTx(k: number): SignedTx {
  const from = senders[k % senderCount] as Keypair
  const to = recipients[(k * 7919) % recipients.length] as Address
  return signTransfer({ chainId: genesis.chainId, from, to, amount: 1n + BigInt(k % 1000), fee: 1n + BigInt(k % 97), nonce: Math.floor(k / senderCount), memo })
}

// The raw verify loops run over the signing messages of real transactions (same sizes).
const sampleTxs: SignedTx[] = []
for (let k = 0; k < 1024; k++) sampleTxs.push(makeTx(k))
const samples: SignedSample[] = sampleTxs.map((s) => toSample(signingMessage(unsignedTxBytes(s)), s.tx.signature, s.tx.from))
console.log(`  tx size ${(sampleTxs[0] as SignedTx).bytes.length} bytes, signed message ${samples[0]?.message.length} bytes`)

const raw = measureRawVerifiers(samples, seconds)
for (const r of raw.results) console.log(`  measured raw ${r.name}: ${fmt(r.opsPerSec)} ops/s`)

// Enough transactions that no ingest run can exhaust them (the pipeline cannot beat raw verify;
// the factor 2 leaves room for the machine getting quieter after the raw measurement).
const perSender = Math.min(1000, Math.ceil(Math.max(20_000, raw.fastest.opsPerSec * (seconds + WARMUP_SECONDS) * 2) / senderCount))
const txCount = perSender * senderCount
const signing = timed(() => {
  const out: Uint8Array[] = sampleTxs.map((s) => s.bytes)
  for (let k = out.length; k < txCount; k++) out.push(makeTx(k).bytes)
  return out
})
const txBytes = signing.value
console.log(`  pre-signed ${fmt(txCount)} txs (${senderCount} senders × ${perSender} nonces) in ${fmt(signing.ms)} ms`)

// ---------------------------------------------------------------- wirings

interface IngestResult extends OpsResult {
  /** The fastest raw verifier's rate in the slices interleaved with this run. */
  rawOpsPerSec: number
  ratio: number
  exhausted: boolean
}

interface Wiring {
  name: string
  getAccount: (address: Address) => Account
  isIncluded: IngestDeps['isIncluded']
  close: () => Promise<void>
  /** Synthetic ids added to the verified-id LRU before the run. */
  prefill?: number
}

async function chainWiring(name: string, store: ChainStore, cleanup: () => Promise<void>): Promise<Wiring> {
  const opened = await timedAsyncOpen(() => Chain.open({ store, genesis }))
  console.log(`  ${name}: Chain.open (genesis with ${fmt(genesis.accounts.length)} accounts) ${fmt(opened.ms)} ms`)
  const chain = opened.value
  return {
    name,
    getAccount: (address) => chain.getAccount(address),
    isIncluded: (signed) => store.getTxLocation(signed.id) !== undefined,
    close: cleanup,
  }
}

async function timedAsyncOpen<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = now()
  const value = await fn()
  return { value, ms: now() - start }
}

function stubWiring(g: Genesis): Wiring {
  const accounts = new Map<string, Account>()
  for (const account of g.accounts) accounts.set(toHexKey(account.address), { balance: account.balance, nonce: 0 })
  return {
    name: 'stub state (Map, isIncluded=false)',
    getAccount: (address) => accounts.get(toHexKey(address)) ?? { balance: 0n, nonce: 0 },
    isIncluded: () => false,
    close: async () => {},
  }
}

/** A new mempool (large enough for every tx) and TxIngest (default verified-id capacity, as in the node). */
function freshIngest(wiring: Wiring, pool?: VerifyPool): { ingest: TxIngest; mempool: Mempool } {
  const mempool = new Mempool({ getAccount: wiring.getAccount }, { maxTxs: txCount + 1, maxBytes: 2 ** 40, ttlMs: 3_600_000, maxNonceAhead: perSender + 1 })
  const ingest = new TxIngest({ rules: { chainId: genesis.chainId, limits: genesis.limits }, mempool, getAccount: wiring.getAccount, isIncluded: wiring.isIncluded, ...(pool === undefined ? {} : { pool }) })
  if (wiring.prefill !== undefined && wiring.prefill > 0) {
    const filled = timed(() => {
      const ids = randomBytes(32 * 1024)
      for (let i = 0; i < (wiring.prefill as number); i++) {
        const slot = (i % 1024) * 32
        ids.writeUInt32BE(i, slot)
        ingest.verified.add(ids.toString('hex', slot, slot + 32))
      }
    })
    console.log(`  prefilled the verified-id LRU with ${fmt(wiring.prefill)} ids in ${fmt(filled.ms)} ms`)
  }
  return { ingest, mempool }
}

/** Ingests txBytes in order into a fresh pipeline until `runSeconds` elapse (warm-up). */
function ingestRun(wiring: Wiring, runSeconds: number): void {
  const { ingest } = freshIngest(wiring)
  const clock = Date.now()
  const start = now()
  for (let k = 0; k < txCount && now() - start < runSeconds * 1000; k++) ingest.ingestBytes(txBytes[k] as Uint8Array, clock)
}

interface Interleaved {
  ingestOps: number
  ingestMs: number
  rawOps: number
  rawMs: number
  exhausted: boolean
}

/** One slice of the raw verifier, continuing through the samples at `r`. */
function rawSlice(rawVerify: (sample: SignedSample) => boolean, r: number, sliceMs: number): { r: number; ms: number } {
  const start = now()
  let elapsed = 0
  do {
    for (let j = 0; j < 16; j++, r++) if (!rawVerify(samples[r % samples.length] as SignedSample)) throw new Error('raw verify failed')
    elapsed = now() - start
  } while (elapsed < sliceMs)
  return { r, ms: elapsed }
}

/** Ingests from txBytes[k] on for about `sliceMs`; returns the next k. */
type IngestSlice = (k: number, sliceMs: number) => number | Promise<number>

/**
 * The measured run: alternates SLICE_SECONDS of the raw verifier with SLICE_SECONDS of ingest
 * (one fresh pipeline, continuing through txBytes) until ingest has run `runSeconds`. Both see
 * the same machine conditions, so the ratio survives other load on a shared machine.
 */
async function interleaved(mempool: Mempool, runSeconds: number, rawVerify: (sample: SignedSample) => boolean, ingestSlice: IngestSlice): Promise<Interleaved> {
  const slice = SLICE_SECONDS * 1000
  let k = 0
  let r = 0
  let ingestMs = 0
  let rawMs = 0
  while (ingestMs < runSeconds * 1000 && k < txCount) {
    const raw = rawSlice(rawVerify, r, slice)
    r = raw.r
    rawMs += raw.ms
    const start = now()
    k = await ingestSlice(k, slice)
    ingestMs += now() - start
  }
  if (mempool.size !== k) throw new Error(`mempool holds ${mempool.size} of ${k} ingested txs`)
  return { ingestOps: k, ingestMs, rawOps: r, rawMs, exhausted: k === txCount }
}

/** One tx at a time on this thread: TxIngest.ingestBytes. */
function singleRun(wiring: Wiring, runSeconds: number, rawVerify: (sample: SignedSample) => boolean): Promise<Interleaved> {
  const { ingest, mempool } = freshIngest(wiring)
  const clock = Date.now()
  return interleaved(mempool, runSeconds, rawVerify, (k, sliceMs) => {
    const start = now()
    do {
      const end = Math.min(txCount, k + 16)
      for (; k < end; k++) ingest.ingestBytes(txBytes[k] as Uint8Array, clock)
    } while (now() - start < sliceMs && k < txCount)
    return k
  })
}

/**
 * The node's batched path (a JSON-RPC batch of tx_send, a peer's txs message): TxIngest.ingestMany
 * on batches of BATCH txs, signatures checked in parallel on a VerifyPool.
 */
function batchedRun(wiring: Wiring, runSeconds: number, rawVerify: (sample: SignedSample) => boolean, pool: VerifyPool): Promise<Interleaved> {
  const { ingest, mempool } = freshIngest(wiring, pool)
  const clock = () => 0
  return interleaved(mempool, runSeconds, rawVerify, async (k, sliceMs) => {
    const start = now()
    // Two batches in flight, as with concurrent RPC clients and peers: the main thread prepares
    // one batch while the workers verify the other.
    const inFlight: Array<Promise<void>> = []
    do {
      const end = Math.min(txCount, k + BATCH)
      inFlight.push(
        ingest.ingestMany(txBytes.slice(k, end), clock).then((outcomes) => {
          if (outcomes.some((outcome) => !outcome.ok)) throw new Error('a batched tx was refused')
        }),
      )
      k = end
      if (inFlight.length >= 2) await inFlight.shift()
    } while (now() - start < sliceMs && k < txCount)
    await Promise.all(inFlight)
    return k
  })
}

const BATCH = 256

const tempDir = makeTempDir('ingest')
const wirings: Wiring[] = []
const setupMs = now() - setupStart
try {
  const level = await LevelStore.open(tempDir)
  const levelStore = new ChainStore(level)
  wirings.push(await chainWiring('node wiring, LevelDB store', levelStore, () => levelStore.close()))
  wirings.push(await chainWiring('node wiring, MemoryStore', new ChainStore(new MemoryStore()), async () => {}))
  wirings.push(stubWiring(genesis))
  if (prefill > 0) wirings.push({ ...(wirings[0] as Wiring), name: `node wiring, LevelDB, verified LRU prefilled ${fmt(prefill)}`, close: async () => {}, prefill })

  const fastestVerify = rawVerifiers[raw.fastest.name] as (sample: SignedSample) => boolean
  const ingestResults: IngestResult[] = []
  for (const wiring of wirings) {
    if (wiring.prefill === undefined) ingestRun(wiring, WARMUP_SECONDS)
    const run = await singleRun(wiring, seconds, fastestVerify)
    const opsPerSec = run.ingestOps / (run.ingestMs / 1000)
    const rawOpsPerSec = run.rawOps / (run.rawMs / 1000)
    ingestResults.push({
      name: wiring.name,
      ops: run.ingestOps,
      seconds: run.ingestMs / 1000,
      opsPerSec,
      usPerOp: (run.ingestMs * 1000) / run.ingestOps,
      rawOpsPerSec,
      ratio: opsPerSec / rawOpsPerSec,
      exhausted: run.exhausted,
    })
    console.log(`  measured ingest, ${wiring.name}: ${fmt(opsPerSec)} tx/s (raw verify alongside: ${fmt(rawOpsPerSec)} ops/s)${run.exhausted ? ' (ran out of txs before the deadline)' : ''}`)
  }
  {
    const workers = availableParallelism()
    const pool = new VerifyPool({ workers })
    try {
      const wiring = wirings[0] as Wiring
      const name = `node wiring, LevelDB, batches of ${BATCH}, verify pool of ${workers}`
      const run = await batchedRun(wiring, seconds, fastestVerify, pool)
      const opsPerSec = run.ingestOps / (run.ingestMs / 1000)
      const rawOpsPerSec = run.rawOps / (run.rawMs / 1000)
      ingestResults.unshift({ name, ops: run.ingestOps, seconds: run.ingestMs / 1000, opsPerSec, usPerOp: (run.ingestMs * 1000) / run.ingestOps, rawOpsPerSec, ratio: opsPerSec / rawOpsPerSec, exhausted: run.exhausted })
      console.log(`  measured ingest, ${name}: ${fmt(opsPerSec)} tx/s (raw verify alongside: ${fmt(rawOpsPerSec)} ops/s)`)
    } finally {
      await pool.close()
    }
  }

  // ------------------------------------------------------------ per-stage breakdown

  // Each stage alone over the same transactions (node wiring, LevelDB), to show where time goes.
  const stageCount = Math.min(txCount, 4096)
  const nodeWiring = wirings[0] as Wiring
  const rules = { chainId: genesis.chainId, limits: genesis.limits }
  const decoded = txBytes.slice(0, stageCount).map((bytes) => decodeTxInput(bytes, rules))
  /** Best of three passes (after a warm pass), µs per tx. */
  const perTx = (fn: () => void): number => {
    fn()
    let best = Number.POSITIVE_INFINITY
    for (let pass = 0; pass < 3; pass++) {
      const start = now()
      fn()
      best = Math.min(best, now() - start)
    }
    return (best * 1000) / stageCount
  }
  const stages: Array<[string, number]> = [
    ['decodeTxInput (copy, decode, sha256 id, hex id)', perTx(() => { for (let k = 0; k < stageCount; k++) decodeTxInput(txBytes[k] as Uint8Array, rules) })],
    ['checkTxStateless', perTx(() => { for (const s of decoded) checkTxStateless(s, rules) })],
    ['isIncluded (LevelDB getTxLocation miss)', perTx(() => { for (const s of decoded) nodeWiring.isIncluded(s) })],
    ['signingMessage (copy into domain-tagged buffer)', perTx(() => { for (const s of decoded) signingMessage(unsignedTxBytes(s)) })],
    ['txSignatureValid (signingMessage + sodium verify)', perTx(() => { for (const s of decoded) if (!txSignatureValid(s)) throw new Error('bad signature') })],
    ['verified LruSet has + add', perTx(() => { const lru = new LruSet<string>(txCount + 1); for (const s of decoded) { lru.has(s.idHex); lru.add(s.idHex) } })],
    ['getAccount (Chain.getAccount: sha256 + trie walk)', perTx(() => { for (const s of decoded) nodeWiring.getAccount(s.tx.from) })],
    ['mempool.add (incl. getAccount)', perTx(() => { const { mempool } = freshIngest(nodeWiring); const clock = Date.now(); for (const s of decoded) mempool.add(s, clock) })],
  ]
  // The pipeline = decode + stateless + isIncluded + signature + LRU + mempool.add (the other rows are parts of these).
  const pipelineStages = stages.filter(([name]) => !name.startsWith('signingMessage') && !name.startsWith('getAccount'))
  const signatureUs = (stages.find(([name]) => name.startsWith('txSignatureValid')) as [string, number])[1]
  const overheadUs = pipelineStages.reduce((sum, [, us]) => sum + us, 0) - signatureUs

  // ------------------------------------------------------------ report

  heading('Raw signature verify (same process, same tx signing messages)')
  printTable(
    ['verifier', 'ops/s', 'µs/op'],
    raw.results.map((r) => [r.name + (r === raw.fastest ? '  ← fastest' : ''), fmt(r.opsPerSec), fmt(r.usPerOp, 2)]),
  )

  heading(`Ingest throughput (target: ratio to fastest raw verify ≥ ${TARGET_RATIO}; raw verify re-measured in slices interleaved with each run)`)
  printTable(
    ['wiring', 'tx/s', 'µs/tx', 'txs', 'raw verify/s', 'ratio', 'target'],
    ingestResults.map((r) => [r.name, fmt(r.opsPerSec), fmt(r.usPerOp, 2), fmt(r.ops), fmt(r.rawOpsPerSec), r.ratio.toFixed(3), r.ratio >= TARGET_RATIO ? 'met' : 'BELOW']),
  )

  heading(`Per-stage cost, each stage alone over ${fmt(stageCount)} txs (node wiring, LevelDB)`)
  printTable(['stage', 'µs/tx'], stages.map(([name, us]) => [name, fmt(us, 2)]))
  console.log(`  signature ${fmt(signatureUs, 2)} µs/tx; everything else in the pipeline ${fmt(overheadUs, 2)} µs/tx`)
  console.log(`  ratio implied by the stages: ${(signatureUs / (signatureUs + overheadUs)).toFixed(3)} (a ratio of ${TARGET_RATIO} allows ${fmt(signatureUs * (1 / TARGET_RATIO - 1), 1)} µs/tx of overhead)`)

  const headline = ingestResults[0] as IngestResult
  const single = ingestResults[1] as IngestResult
  console.log(
    `\nIngest (${headline.name}, the node's path for RPC batches and gossip): ${fmt(headline.opsPerSec)} tx/s = ${headline.ratio.toFixed(3)} × fastest single-core raw verify (${raw.fastest.name}, ${fmt(headline.rawOpsPerSec)} ops/s alongside); target ≥ ${TARGET_RATIO}: ${headline.ratio >= TARGET_RATIO ? 'MET' : 'BELOW TARGET'}`,
  )
  console.log(`  one tx at a time on one thread (${single.name}): ${fmt(single.opsPerSec)} tx/s = ${single.ratio.toFixed(3)} × raw verify`)
  console.log(`  setup ${fmt(setupMs)} ms before opening the chains; tx signing ${fmt(signing.ms)} ms`)

  if (flags['json']) {
    printJson({
      benchmark: 'ingest',
      machine,
      settings: { seconds, senders: senderCount, accounts: bulkAccounts, memo: memoBytes, prefill, txBytes: sampleTxs[0]?.bytes.length, txCount, perSender },
      rawVerify: raw.results.map((r) => ({ name: r.name, opsPerSec: round(r.opsPerSec, 1), usPerOp: round(r.usPerOp, 3) })),
      fastestRaw: { name: raw.fastest.name, opsPerSec: round(raw.fastest.opsPerSec, 1) },
      ingest: ingestResults.map((r) => ({ wiring: r.name, txPerSec: round(r.opsPerSec, 1), usPerTx: round(r.usPerOp, 3), txs: r.ops, rawVerifyPerSec: round(r.rawOpsPerSec, 1), ratio: round(r.ratio, 4), exhausted: r.exhausted })),
      target: TARGET_RATIO,
      ratio: round(headline.ratio, 4),
      targetMet: headline.ratio >= TARGET_RATIO,
      stagesUsPerTx: Object.fromEntries(stages.map(([name, us]) => [name, round(us, 3)])),
      stageSignatureUs: round(signatureUs, 3),
      stageOverheadUs: round(overheadUs, 3),
    })
  }
} finally {
  for (const wiring of wirings) await wiring.close()
  removeDir(tempDir)
}
