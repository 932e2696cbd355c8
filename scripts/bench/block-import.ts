/**
 * Benchmark: importing a block of 5,000 transfers on a state of 100,000 accounts, with the new
 * state root computed and everything persisted in LevelDB (LevelStore + ChainStore + Chain, in a
 * temp dir that is removed at the end).
 *
 *   node --import tsx scripts/bench/block-import.ts [--accounts 100000] [--txs 5000] [--senders 5000] [--rounds 2] [--node-cache 500000] [--json]
 *
 * Setup: a Genesis built directly with --accounts funded accounts (random addresses for the bulk,
 * dev keys for the 4 validators and the --senders senders), opened with Chain.open (which builds
 * and persists the genesis trie). Each round then builds two blocks on the head with
 * Chain.buildBlock (the producer's path, timed but not the subject) and imports each with
 * Chain.importBlock, full validation included:
 *   (i)  verified: isVerified answers true for the block's txs (they came through the mempool);
 *   (ii) cold:     every signature is verified during the import, on the main thread;
 *   (iii) cold on a verify pool: as the node imports a block of unseen txs — the signatures are
 *        verified on worker threads (one per core) after the header checks, then executed.
 * Transfers go from --senders senders (consecutive nonces) to random existing accounts.
 * Reported per mode: import ms and transfers/s, split into the import's phases observed from
 * outside src/ (a ChainStore subclass and a timing KeyValueStore wrapper): validation, execution
 * (executeBlock: tx checks, signatures when cold, transfers, trie update), batch assembly, the
 * LevelDB write, and the rest. executeBlock and its parts (tx checks + signatures, transfers with
 * account reads, trie update) are also re-run alone on the same block and parent.
 */
import '../../src/polyfill.ts'
import { availableParallelism } from 'node:os'
import { Chain } from '../../src/chain/chain.ts'
import { executeBlock } from '../../src/chain/execute.ts'
import { type Keypair, devKeypair } from '../../src/crypto/keys.ts'
import { VerifyPool } from '../../src/crypto/verify-pool.ts'
import { StateOverlay, applyTransfer } from '../../src/ledger/transition.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { Address, Block, SignedTx } from '../../src/ledger/types.ts'
import { checkTxStateless, txSignatureValid } from '../../src/ledger/validation.ts'
import { TxIngest } from '../../src/mempool/ingest.ts'
import { Mempool } from '../../src/mempool/mempool.ts'
import { applyUpdates, getAccount } from '../../src/state/trie.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import type { BatchOp, KeyValueStore, RangeOptions } from '../../src/store/kv.ts'
import { LevelStore } from '../../src/store/level.ts'
import {
  benchGenesis,
  dirBytes,
  fmt,
  fmtBytes,
  heading,
  intOption,
  leaderOf,
  listPacker,
  makeTempDir,
  memoryMiB,
  now,
  parseOptions,
  printHeader,
  printJson,
  printTable,
  removeDir,
  round,
  timed,
  timedAsync,
} from './util.ts'

const USAGE = `usage: node --import tsx scripts/bench/block-import.ts [options]
  --accounts N   accounts in the state (default 100000)
  --txs N        transfers per block (default 5000; the genesis limit maxBlockTxs is raised if needed)
  --senders N    distinct senders (default 5000: one tx per sender per block)
  --rounds N     rounds; each imports one verified and one cold block (default 2)
  --node-cache N ChainStore trie-node cache entries (default 500000, the ChainStore default)
  --json         also print one JSON object as the last line`

const { numbers, flags } = parseOptions(USAGE, { numbers: { accounts: 100_000, txs: 5_000, senders: 5_000, rounds: 2, 'node-cache': 500_000 } })
const accountCount = intOption(numbers, 'accounts', 1)
const txsPerBlock = intOption(numbers, 'txs')
const senderCount = intOption(numbers, 'senders')
const rounds = intOption(numbers, 'rounds')
const nodeCacheEntries = intOption(numbers, 'node-cache')

const machine = printHeader('Block import on LevelDB (Chain.importBlock)', { accounts: accountCount, txs: txsPerBlock, senders: senderCount, rounds, nodeCache: nodeCacheEntries })

/** Wraps the LevelDB store to time the synchronous reads and the atomic batch writes. */
class TimedStore implements KeyValueStore {
  getMs = 0
  gets = 0
  writeMs = 0
  writeOps = 0
  writeBytes = 0
  writeStart = 0
  writeEnd = 0

  constructor(private readonly inner: KeyValueStore) {}

  get(key: Uint8Array): Uint8Array | undefined {
    const start = now()
    const value = this.inner.get(key)
    this.getMs += now() - start
    this.gets++
    return value
  }

  async write(ops: BatchOp[]): Promise<void> {
    for (const op of ops) this.writeBytes += op.key.length + (op.type === 'put' ? op.value.length : 0)
    this.writeOps += ops.length
    const start = now()
    this.writeStart = start
    await this.inner.write(ops)
    this.writeEnd = now()
    this.writeMs += this.writeEnd - start
  }

  range(options: RangeOptions): AsyncIterable<[Uint8Array, Uint8Array]> {
    return this.inner.range(options)
  }

  close(): Promise<void> {
    return this.inner.close()
  }

  reset(): void {
    this.getMs = this.gets = this.writeMs = this.writeOps = this.writeBytes = this.writeStart = this.writeEnd = 0
  }
}

/**
 * Marks the phases of Chain.importBlock from the outside (src/ is not instrumented): the first
 * trie-node read after `arm()` is the start of executeBlock (its first account read; in cold mode
 * after the first tx's signature check, ≈0.1 ms early), and `batch()` is called right after
 * executeBlock returns. With TimedStore's write window this splits the import exactly into
 * validation → execution → batch assembly → LevelDB write → cache update.
 */
class PhasedChainStore extends ChainStore {
  private armed = false
  executionStart = 0
  batchStart = 0

  arm(): void {
    this.armed = true
    this.executionStart = this.batchStart = 0
  }

  override getNode(hash: Uint8Array): Uint8Array | undefined {
    if (this.armed && this.executionStart === 0) this.executionStart = now()
    return super.getNode(hash)
  }

  override batch(): ReturnType<ChainStore['batch']> {
    if (this.armed) {
      this.batchStart = now()
      this.armed = false
    }
    return super.batch()
  }
}

// ---------------------------------------------------------------- setup

const validators = [0, 1, 2, 3].map((i) => devKeypair(i))
const keys = timed(() => {
  const out: Keypair[] = []
  for (let i = 0; i < senderCount; i++) out.push(devKeypair(100 + i))
  return out
})
const senders = keys.value
const bulkCount = Math.max(0, accountCount - validators.length - senderCount)
const { genesis, bulk } = benchGenesis({
  validators,
  senders,
  bulkAccounts: bulkCount,
  balance: 1_000_000_000_000n,
  limits: { maxBlockTxs: Math.max(5_000, txsPerBlock), maxBlockBytes: Math.max(2 * 1024 * 1024, txsPerBlock * 300) },
})
const recipients: Address[] = bulk.length > 0 ? bulk : genesis.accounts.map((a) => a.address)
console.log(`  state: ${fmt(genesis.accounts.length)} accounts (${fmt(bulkCount)} random, ${fmt(senderCount)} dev-key senders, ${validators.length} validators); ${fmt(senderCount)} dev keys derived in ${fmt(keys.ms)} ms`)

const dir = makeTempDir('block-import')
let store: PhasedChainStore | undefined
try {
  const timedStore = new TimedStore(await LevelStore.open(dir))
  store = new PhasedChainStore(timedStore, { nodeCacheEntries })
  const chainStore = store
  const opened = await timedAsync(() => Chain.open({ store: chainStore, genesis }))
  const chain = opened.value
  const genesisWrite = { ms: timedStore.writeMs, ops: timedStore.writeOps, bytes: timedStore.writeBytes }
  console.log(
    `  Chain.open (genesis trie built once and persisted): ${fmt(opened.ms)} ms, of which LevelDB write ${fmt(genesisWrite.ms)} ms (${fmt(genesisWrite.ops)} ops, ${fmtBytes(genesisWrite.bytes)})`,
  )

  const nextNonce = new Array<number>(senderCount).fill(0)
  let recipientCursor = 0
  /** Draws recipients pseudo-randomly (a fixed LCG, so runs are comparable). */
  let seed = 12345
  const nextRecipient = (): Address => {
    seed = (seed * 1103515245 + 12345) >>> 0
    recipientCursor = seed % recipients.length
    return recipients[recipientCursor] as Address
  }
  const signBlockTxs = (): SignedTx[] => {
    const txs: SignedTx[] = []
    for (let k = 0; k < txsPerBlock; k++) {
      const s = k % senderCount
      const nonce = nextNonce[s] as number
      nextNonce[s] = nonce + 1
      txs.push(signTransfer({ chainId: genesis.chainId, from: senders[s] as Keypair, to: nextRecipient(), amount: 1_000n + BigInt(k), fee: 1n + BigInt(k % 10), nonce }))
    }
    return txs
  }

  interface Measurement {
    mode: 'verified' | 'cold' | 'pool'
    round: number
    signMs: number
    buildMs: number
    importMs: number
    validateMs: number
    executeMs: number
    assembleMs: number
    storeWriteMs: number
    afterMs: number
    storeGetMs: number
    storeGets: number
    writeOps: number
    writeBytes: number
    trieNodes: number
    standaloneExecuteMs: number
    checksMs: number
    applyMs: number
    trieMs: number
  }
  const measurements: Measurement[] = []
  const workers = availableParallelism()
  const pool = new VerifyPool({ workers })
  const freshIngest = () =>
    new TxIngest({
      rules: { chainId: genesis.chainId, limits: genesis.limits },
      mempool: new Mempool({ getAccount: (address) => chain.getAccount(address) }, { maxTxs: 1, maxBytes: 1 << 20, ttlMs: 60_000 }),
      getAccount: (address) => chain.getAccount(address),
      isIncluded: () => false,
      pool,
    })

  for (let r = 0; r < rounds; r++) {
    for (const mode of ['verified', 'cold', 'pool'] as const) {
      const signing = timed(signBlockTxs)
      const txs = signing.value
      const slot = chain.head.header.slot + 1
      const parentRoot = chain.head.header.stateRoot
      const built = timed(() => chain.buildBlock(slot, chain.schedule.slotStart(slot) + 1, leaderOf(chain, validators, slot), listPacker(txs)))
      const block: Block = built.value.block
      if (block.txs.length !== txsPerBlock) throw new Error(`built block holds ${block.txs.length} of ${txsPerBlock} txs`)
      const verifiedIds = new Set(mode === 'verified' ? block.txs.map((s) => s.idHex) : [])
      // Pool mode: the node's own ingest (a fresh verified set) decides what is verified.
      const ingest = mode === 'pool' ? freshIngest() : undefined
      const isVerified = ingest === undefined ? (idHex: string): boolean => verifiedIds.has(idHex) : ingest.isVerified
      const preverify = ingest === undefined ? {} : { preverify: (txs: readonly SignedTx[]) => ingest.preverify(txs) }

      timedStore.reset()
      chainStore.arm()
      const importStart = now()
      const result = await chain.importBlock(block, { now: Date.now(), isVerified, ...preverify })
      const importEnd = now()
      if (result.change === undefined) throw new Error('import did not move the head')
      if (chainStore.executionStart === 0 || chainStore.batchStart === 0 || timedStore.writeEnd === 0) throw new Error('import phases were not observed')
      const io = { writeMs: timedStore.writeMs, getMs: timedStore.getMs, gets: timedStore.gets, ops: timedStore.writeOps, bytes: timedStore.writeBytes }
      const phases = {
        validateMs: chainStore.executionStart - importStart,
        executeMs: chainStore.batchStart - chainStore.executionStart,
        assembleMs: timedStore.writeStart - chainStore.batchStart,
        writeMs: timedStore.writeEnd - timedStore.writeStart,
        afterMs: importEnd - timedStore.writeEnd,
      }

      // The execution split: the same block on the same parent state, outside the import.
      const execution = timed(() => executeBlock(chainStore, parentRoot, block, genesis, { isVerified }))
      const rules = { chainId: genesis.chainId, limits: genesis.limits }
      const checks = timed(() => {
        for (const signed of block.txs) {
          checkTxStateless(signed, rules)
          if (!isVerified(signed.idHex) && !txSignatureValid(signed)) throw new Error('bad signature')
        }
      })
      const overlay = new StateOverlay((keyHash) => getAccount(chainStore, parentRoot, keyHash))
      const apply = timed(() => {
        for (const signed of block.txs) applyTransfer(overlay, signed, block.header.proposer)
      })
      const trie = timed(() => applyUpdates(chainStore, parentRoot, overlay.updates()))

      measurements.push({
        mode,
        round: r,
        signMs: signing.ms,
        buildMs: built.ms,
        importMs: importEnd - importStart,
        validateMs: phases.validateMs,
        executeMs: phases.executeMs,
        assembleMs: phases.assembleMs,
        storeWriteMs: phases.writeMs,
        afterMs: phases.afterMs,
        storeGetMs: io.getMs,
        storeGets: io.gets,
        writeOps: io.ops,
        writeBytes: io.bytes,
        trieNodes: execution.value.nodes.size,
        standaloneExecuteMs: execution.ms,
        checksMs: checks.ms,
        applyMs: apply.ms,
        trieMs: trie.ms,
      })
      console.log(
        `  round ${r + 1} ${mode.padEnd(8)}: import ${fmt(importEnd - importStart)} ms (${fmt(txsPerBlock / ((importEnd - importStart) / 1000))} transfers/s; execute ${fmt(phases.executeMs)} ms, write ${fmt(phases.writeMs)} ms); build ${fmt(built.ms)} ms, signing ${fmt(signing.ms)} ms`,
      )
    }
  }

  // ---------------------------------------------------------------- report

  const mean = (mode: string, pick: (m: Measurement) => number): number => {
    const rows = measurements.filter((m) => m.mode === mode)
    return rows.reduce((sum, m) => sum + pick(m), 0) / rows.length
  }
  await pool.close()
  const modes = ['verified', 'cold', 'pool'] as const
  const summary = modes.map((mode) => {
    const importMs = mean(mode, (m) => m.importMs)
    return {
      mode,
      importMs,
      transfersPerSec: txsPerBlock / (importMs / 1000),
      validateMs: mean(mode, (m) => m.validateMs),
      executeMs: mean(mode, (m) => m.executeMs),
      assembleMs: mean(mode, (m) => m.assembleMs),
      storeWriteMs: mean(mode, (m) => m.storeWriteMs),
      afterMs: mean(mode, (m) => m.afterMs),
      standaloneExecuteMs: mean(mode, (m) => m.standaloneExecuteMs),
      checksMs: mean(mode, (m) => m.checksMs),
      applyMs: mean(mode, (m) => m.applyMs),
      trieMs: mean(mode, (m) => m.trieMs),
      buildMs: mean(mode, (m) => m.buildMs),
      storeGetMs: mean(mode, (m) => m.storeGetMs),
      storeGets: mean(mode, (m) => m.storeGets),
      trieNodes: mean(mode, (m) => m.trieNodes),
      writeOps: mean(mode, (m) => m.writeOps),
      writeBytes: mean(mode, (m) => m.writeBytes),
    }
  })
  const label = { verified: '(i) signatures pre-verified', cold: '(ii) cold (signatures verified)', pool: `(iii) cold, verify pool of ${workers}` }

  heading(`Import of a ${fmt(txsPerBlock)}-transfer block on ${fmt(genesis.accounts.length)} accounts (mean of ${rounds} round(s) per mode)`)
  printTable(
    ['mode', 'import ms', 'transfers/s', 'validate ms', 'execute ms', 'assemble ms', 'store write ms', 'after ms'],
    summary.map((s) => [
      label[s.mode],
      fmt(s.importMs, 1),
      fmt(s.transfersPerSec),
      fmt(s.validateMs, 1),
      fmt(s.executeMs, 1),
      fmt(s.assembleMs, 1),
      fmt(s.storeWriteMs, 1),
      fmt(s.afterMs, 1),
    ]),
  )
  console.log('  Phases inside Chain.importBlock: validate = header + body-shape checks, and in (iii) the signatures on the')
  console.log('  pool; execute = executeBlock (tx checks, signatures in (ii), transfers, trie update); assemble = building the')
  console.log('  write batch; store write = the LevelDB batch; after = cache update and promise settling.')

  heading('Execution split (executeBlock and its parts re-run alone on the same block and parent)')
  printTable(
    ['mode', 'tx checks + sigs ms', 'transfers ms', 'trie update ms', 'sum ms', 'executeBlock ms'],
    summary.map((s) => [label[s.mode], fmt(s.checksMs, 1), fmt(s.applyMs, 1), fmt(s.trieMs, 1), fmt(s.checksMs + s.applyMs + s.trieMs, 1), fmt(s.standaloneExecuteMs, 1)]),
  )
  console.log('  transfers = applyTransfer over a StateOverlay, including every account read from the trie.')

  heading('Store traffic per import')
  printTable(
    ['mode', 'new trie nodes', 'batch ops', 'batch bytes', 'LevelDB gets', 'get ms', 'build ms (producer)'],
    summary.map((s) => [label[s.mode], fmt(s.trieNodes), fmt(s.writeOps), fmtBytes(s.writeBytes), fmt(s.storeGets), fmt(s.storeGetMs, 1), fmt(s.buildMs, 1)]),
  )
  const onDisk = dirBytes(dir)
  const memory = memoryMiB()
  console.log(`\n  LevelDB directory ${fmtBytes(onDisk)}; process rss ${memory.rss} MiB, heap ${memory.heapUsed} MiB`)

  if (flags['json']) {
    printJson({
      benchmark: 'block-import',
      machine,
      settings: { accounts: genesis.accounts.length, txs: txsPerBlock, senders: senderCount, rounds, nodeCache: nodeCacheEntries },
      genesis: { openMs: round(opened.ms, 1), writeMs: round(genesisWrite.ms, 1), writeOps: genesisWrite.ops, writeBytes: genesisWrite.bytes },
      summary: summary.map((s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? round(v, 2) : v]))),
      rounds: measurements.map((m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, typeof v === 'number' ? round(v, 2) : v]))),
      dbBytes: onDisk,
    })
  }
} finally {
  if (store !== undefined) await store.close()
  removeDir(dir)
}
