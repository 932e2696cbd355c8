/**
 * Crash consistency of the LevelDB store: a child process (test/fixtures/crash-importer.ts)
 * imports large blocks into a data directory and is SIGKILLed at random moments, round after
 * round on the same directory. After every kill the store must hold a complete, linked chain up to
 * its head, with the head's whole state trie present and correct, and the importer must carry on
 * from that head.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { Chain } from '../../src/chain/chain.ts'
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import { genesisHash, headerHash } from '../../src/codec/objects.ts'
import { merkleRoot } from '../../src/ledger/merkle.ts'
import type { Genesis } from '../../src/ledger/types.ts'
import { decodeNode, nibbleAt, nodeHash } from '../../src/state/nodes.ts'
import { isEmptyRoot } from '../../src/state/trie.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { LevelStore } from '../../src/store/level.ts'
import { FAR_FUTURE, memoryChain, testGenesis } from '../helpers/chain.ts'
import { REPO_ROOT, TailBuffer } from '../helpers/process.ts'
import { seededRandom as prng } from '../../src/util/random.ts'

/** Ten kills: each round after the first also proves the importer resumes from the previous crash. */
const ROUNDS = 10
const ROUND_TIMEOUT_MS = 60_000
/** The fixture's block size (100 senders × 3); checked so a smaller fixture cannot pass silently. */
const MIN_TXS_PER_BLOCK = 200


interface ImporterRun {
  start: number
  /** Heights the importer reported durable before it was killed, in order. */
  heights: number[]
  /** What the kill aimed at, and when it was sent. */
  aim: string
}

/**
 * Where a kill lands in a block's life: `build` (signing and packing, after a block landed),
 * `import` (anywhere in validation, execution and the store write), `late-import` (the last part
 * of an import) or `write` (from the moment the store batch is handed to LevelDB until it returns).
 */
type KillMode = 'build' | 'import' | 'late-import' | 'write'

/**
 * Runs the importer on `dataDir`; once it has reported `warmupHeights` imports (so phase lengths
 * are known from its own timing), SIGKILLs it at `fraction` of the next phase chosen by `mode`.
 */
async function runImporterUntilKilled(dataDir: string, warmupHeights: number, mode: KillMode, fraction: number): Promise<ImporterRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/setup.ts', 'test/fixtures/crash-importer.ts', dataDir], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const stderr = new TailBuffer()
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
  let start: number | undefined
  const heights: number[] = []
  let pending = ''
  let killTimer: NodeJS.Timeout | undefined
  let aim = 'not armed'
  let unexpected: string | undefined
  // Phase lengths as last measured: build = height line → import line, import = import line →
  // height line, write = write line → height line.
  let lastLineAt = Date.now()
  let lastImportAt = Date.now()
  let lastWriteAt = Date.now()
  let buildMs = 0
  let importMs = 0
  let writeMs = 0
  const arm = (delayMs: number, phase: string) => {
    aim = `${phase} +${delayMs} ms (build ${buildMs} ms, import ${importMs} ms, write ${writeMs} ms)`
    killTimer = setTimeout(() => child.kill('SIGKILL'), delayMs)
  }
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      const now = Date.now()
      const started = /^start (\d+)$/.exec(line)
      const importing = /^import (\d+)$/.exec(line)
      const writing = /^write (\d+)$/.exec(line)
      const imported = /^height (\d+)$/.exec(line)
      if (started !== null) start = Number(started[1])
      else if (importing !== null) {
        buildMs = now - lastLineAt
        lastImportAt = now
      } else if (writing !== null) {
        lastWriteAt = now
      } else if (imported !== null) {
        heights.push(Number(imported[1]))
        importMs = now - lastImportAt
        writeMs = now - lastWriteAt
      } else {
        // Not ours to interpret: stop the child and fail below (throwing here would escape the test).
        unexpected ??= line
        child.kill('SIGKILL')
        continue
      }
      if (writing === null) lastLineAt = now
      if (killTimer !== undefined || heights.length < warmupHeights) continue
      if (mode === 'build' && imported !== null) arm(Math.floor(fraction * buildMs), `build of ${heights.length + (start ?? 0) + 1}`)
      if (mode === 'import' && importing !== null) arm(Math.floor(fraction * importMs), `import of ${importing[1]}`)
      if (mode === 'late-import' && importing !== null) arm(Math.floor((0.6 + 0.45 * fraction) * importMs), `late import of ${importing[1]}`)
      if (mode === 'write' && writing !== null) arm(Math.floor(fraction * 1.2 * writeMs), `write of ${writing[1]} ops`)
    }
  })
  const guard = setTimeout(() => child.kill('SIGKILL'), ROUND_TIMEOUT_MS)
  // 'close', not 'exit': every line the importer wrote before dying has been read by then.
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  )
  clearTimeout(guard)
  if (killTimer !== undefined) clearTimeout(killTimer)
  assert.equal(unexpected, undefined, `unexpected importer output; stderr:\n${stderr.toString()}`)
  assert.ok(killTimer !== undefined, `importer exited (${exit.signal ?? exit.code}) before the kill was armed; stderr:\n${stderr.toString()}`)
  assert.equal(exit.signal, 'SIGKILL', `importer should die only by our SIGKILL; stderr:\n${stderr.toString()}`)
  assert.ok(start !== undefined, 'importer never reported its start height')
  return { start, heights, aim }
}

interface StoreReport {
  height: number
  accounts: number
}

/**
 * Reopens the killed importer's store and checks it end to end. `replay` is an in-memory chain
 * that re-executes every canonical block found in the store (kept across rounds, so each block is
 * replayed once); it must arrive at exactly the stored head and state root.
 */
async function checkStore(dataDir: string, genesis: Genesis, replay: Chain): Promise<StoreReport> {
  const store = new ChainStore(await LevelStore.open(join(dataDir, 'chain')), { nodeCacheEntries: 1_000, headerCacheEntries: 16 })
  try {
    const storedGenesis = store.getMeta('genesis')
    assert.ok(storedGenesis !== undefined && bytesEqual(storedGenesis, genesisHash(genesis)), 'genesis marker')

    // The head pointer names a stored header whose hash is its key.
    const headHash = store.getMeta('head')
    assert.ok(headHash !== undefined, 'head pointer missing')
    const head = store.getHeader(headHash)
    assert.ok(head !== undefined, `head header ${toHexKey(headHash)} missing`)
    assert.ok(bytesEqual(headerHash(head), headHash), 'head header does not hash to its key')
    const height = head.height

    // The canonical index 0..height is complete, each entry links to the one below, and nothing lies above.
    let txTotal = 0
    const recipients = new Set<string>()
    let child: { hash: Uint8Array; parentHash: Uint8Array } | undefined
    for (let h = height; h >= 0; h--) {
      const hash = store.getCanonicalHash(h)
      assert.ok(hash !== undefined, `canonical index has no entry for height ${h} (head ${height})`)
      const header = store.getHeader(hash)
      assert.ok(header !== undefined, `canonical header at ${h} missing`)
      assert.equal(header.height, h)
      assert.ok(bytesEqual(headerHash(header), hash), `header at ${h} does not hash to its key`)
      if (child !== undefined) assert.ok(bytesEqual(child.parentHash, hash), `block ${h + 1} does not link to block ${h}`)
      else assert.ok(bytesEqual(hash, headHash), 'canonical entry at the head height is not the head')
      const txs = store.getBody(hash)
      assert.ok(txs !== undefined, `body of canonical block ${h} missing`)
      assert.equal(txs.length, header.txCount)
      if (h > 0) {
        assert.ok(txs.length >= MIN_TXS_PER_BLOCK, `block ${h} has only ${txs.length} transactions`)
        assert.ok(bytesEqual(merkleRoot(txs.map((signed) => signed.id)), header.txRoot), `body of ${h} does not match its tx root`)
      }
      txs.forEach((signed, index) => {
        const location = store.getTxLocation(signed.id)
        assert.ok(location !== undefined && bytesEqual(location.blockHash, hash) && location.index === index, `tx index wrong for ${signed.idHex}`)
        recipients.add(toHexKey(signed.tx.to))
      })
      txTotal += txs.length
      child = { hash, parentHash: header.parentHash }
    }
    assert.ok(child !== undefined && bytesEqual(child.hash, replay.genesisBlock), 'the canonical chain does not start at our genesis')
    assert.equal(store.getCanonicalHash(height + 1), undefined, 'canonical entry above the head')

    // Every trie node reachable from the head's state root is present, hashes to its key and sits on its key's path.
    assert.ok(!isEmptyRoot(head.stateRoot), 'the head state is not empty')
    let accounts = 0
    let balances = 0n
    let nonces = 0
    const stack: Array<{ hash: Uint8Array; path: number[] }> = [{ hash: head.stateRoot, path: [] }]
    const seen = new Set<string>()
    while (stack.length > 0) {
      const { hash, path } = stack.pop() as { hash: Uint8Array; path: number[] }
      const hex = toHexKey(hash)
      assert.ok(!seen.has(hex), `trie node ${hex} reached twice`)
      seen.add(hex)
      const bytes = store.getNode(hash)
      assert.ok(bytes !== undefined, `trie node ${hex} at path [${path.join(',')}] missing under head ${height}`)
      assert.ok(bytesEqual(nodeHash(bytes), hash), `trie node ${hex} does not hash to its key`)
      const node = decodeNode(bytes)
      if (node.kind === 'leaf') {
        path.forEach((nibble, depth) => assert.equal(nibbleAt(node.keyHash, depth), nibble, `leaf ${toHexKey(node.keyHash)} off its path`))
        accounts++
        balances += node.account.balance
        nonces += node.account.nonce
      } else {
        node.children.forEach((childHash, nibble) => {
          if (childHash !== undefined) stack.push({ hash: childHash, path: [...path, nibble] })
        })
      }
    }
    const supply = genesis.accounts.reduce((sum, account) => sum + account.balance, 0n)
    assert.equal(balances, supply, 'balances must sum to the genesis supply')
    assert.equal(nonces, txTotal, 'every canonical transaction bumped one nonce')
    assert.equal(accounts, genesis.accounts.length + recipients.size, 'one account per genesis entry and per fresh recipient')

    // Re-execute the canonical blocks the replay has not seen yet: the result must be the stored head.
    for (let h = 1; h <= replay.head.header.height; h++) {
      const replayed = replay.getCanonicalHash(h)
      const stored = store.getCanonicalHash(h)
      assert.ok(replayed !== undefined && stored !== undefined && bytesEqual(replayed, stored), `canonical block ${h} changed after a crash`)
    }
    for (let h = replay.head.header.height + 1; h <= height; h++) {
      const block = store.getBlock(store.getCanonicalHash(h) as Uint8Array)
      assert.ok(block !== undefined, `canonical block ${h} unreadable`)
      const result = await replay.importBlock(block, { now: FAR_FUTURE, isVerified: () => true })
      assert.ok(result.change !== undefined, `replayed block ${h} did not become the head`)
    }
    assert.equal(replay.head.header.height, height)
    assert.ok(bytesEqual(replay.head.hash, headHash), 're-execution ends at the stored head')
    assert.ok(bytesEqual(replay.head.header.stateRoot, head.stateRoot), 're-execution reaches the stored state root')
    return { height, accounts }
  } finally {
    await store.close()
  }
}

describe('store crash consistency (SIGKILL during large imports)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'grapevine-crash-'))

  after(() => rmSync(dataDir, { recursive: true, force: true }))

  it(`keeps a complete head across ${ROUNDS} kills at random moments, and resumes from it`, { timeout: 300_000 }, async (t) => {
    const seed = Number(process.env['GRAPEVINE_CRASH_SEED'] ?? Date.now() % 1_000_000)
    const random = prng(seed)
    const genesis = testGenesis()
    const replay = await memoryChain(genesis)
    let head = 0
    const log: string[] = []
    const modes: KillMode[] = ['build', 'write', 'import', 'write', 'late-import']
    for (let round = 0; round < ROUNDS; round++) {
      const mode = modes[round % modes.length] as KillMode
      const warmupHeights = 2 + Math.floor(random() * 2)
      const run = await runImporterUntilKilled(dataDir, warmupHeights, mode, random())
      const context = `seed ${seed}, round ${round}, kill aimed at ${run.aim}; earlier: ${log.join('; ')}`
      assert.equal(run.start, head, `importer must resume from the head left by the last crash (${context})`)
      assert.ok(run.heights.length >= warmupHeights, context)
      assert.deepEqual(
        run.heights,
        run.heights.map((_, i) => head + 1 + i),
        `heights reported in order from the head (${context})`,
      )
      const report = await checkStore(dataDir, genesis, replay)
      const lastReported = run.heights[run.heights.length - 1] as number
      // A reported import is durable; at most the one in flight at the kill may also have landed.
      assert.ok(report.height >= lastReported, `reported height ${lastReported} lost: head is ${report.height} (${context})`)
      assert.ok(report.height <= lastReported + 1, `head ${report.height} is beyond anything in flight (${context})`)
      log.push(`round ${round}: ${run.aim} → reported ${lastReported}, head ${report.height}, ${report.accounts} accounts`)
      head = report.height
    }
    t.diagnostic(`seed ${seed}: ${log.join('; ')}`)
    assert.ok(head >= ROUNDS, `the chain grew across the crashes (${log.join('; ')})`)
  })
})
