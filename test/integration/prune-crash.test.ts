/**
 * Crash safety of pruning: a child (test/fixtures/prune-importer.ts) imports, finalizes and prunes
 * after every block and is SIGKILLed at random moments inside a prune, round after round on the
 * same LevelDB directory. After every kill: a consistent head, a full hash walk of the head's trie,
 * every retained state complete (the last 6 and the finalized block's: a full hash walk, from the
 * store where its trie is materialized, else rebuilt from the reverse diffs), the last 4 bodies, the
 * finalized pointer's certificate valid, and the importer resumes from the head.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { verifyCertificate } from '../../src/chain/finality.ts'
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import { headerHash } from '../../src/codec/objects.ts'
import { decodeNode, nodeHash } from '../../src/state/nodes.ts'
import { RetainedStates } from '../../src/chain/retained-states.ts'
import type { NodeSource } from '../../src/state/trie.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { LevelStore } from '../../src/store/level.ts'
import { seededRandom } from '../../src/util/random.ts'
import { testGenesis } from '../helpers/chain.ts'
import { REPO_ROOT, TailBuffer } from '../helpers/process.ts'

const ROUNDS = 6
/** test/fixtures/prune-importer.ts keeps 6 states (3 of them as reverse diffs) and 4 bodies. */
const KEEP_STATES = 6
const KEEP_BODIES = 4

async function runUntilKilled(dataDir: string, fraction: number): Promise<{ start: number; heights: number[]; aim: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/setup.ts', 'test/fixtures/prune-importer.ts', dataDir], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const stderr = new TailBuffer()
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
  let start: number | undefined
  const heights: number[] = []
  let pending = ''
  let pruneStartedAt = 0
  let pruneMs = 0
  let prunes = 0
  let aim = 'not armed'
  let armed = false
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      const now = Date.now()
      const started = /^start (\d+)$/.exec(line)
      const imported = /^height (\d+)$/.exec(line)
      if (started !== null) start = Number(started[1])
      else if (imported !== null) heights.push(Number(imported[1]))
      else if (line.startsWith('prune ')) {
        pruneStartedAt = now
        // Two prunes measured first, then the kill lands inside the third (or just after it).
        if (prunes >= 2 && !armed) {
          armed = true
          const delay = Math.floor(fraction * 1.2 * pruneMs)
          aim = `prune at ${line.slice(6)} +${delay} ms (a prune takes ${pruneMs} ms)`
          setTimeout(() => child.kill('SIGKILL'), delay)
        }
      } else if (line.startsWith('pruned ')) {
        pruneMs = now - pruneStartedAt
        prunes++
      } else child.kill('SIGKILL')
    }
  })
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const exit = await new Promise<NodeJS.Signals | null>((resolve) => child.once('close', (_code, signal) => resolve(signal)))
  clearTimeout(guard)
  assert.equal(exit, 'SIGKILL', `importer should die only by our SIGKILL; stderr:\n${stderr.toString()}`)
  assert.ok(armed, `never armed; stderr:\n${stderr.toString()}`)
  assert.ok(start !== undefined)
  return { start, heights, aim }
}

function walk(store: NodeSource, root: Uint8Array, what: string): number {
  let leaves = 0
  const stack = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const bytes = store.getNode(hash)
    assert.ok(bytes !== undefined, `${what}: trie node ${toHexKey(hash)} missing`)
    assert.ok(bytesEqual(nodeHash(bytes), hash), `${what}: node does not hash to its key`)
    const node = decodeNode(bytes)
    if (node.kind === 'leaf') leaves++
    else for (const child of node.children) if (child !== undefined) stack.push(child)
  }
  return leaves
}

describe('prune crash safety (SIGKILL during a prune)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'grapevine-prune-crash-'))
  after(() => rmSync(dataDir, { recursive: true, force: true }))

  it(`keeps the head and every retained state complete across ${ROUNDS} kills`, { timeout: 300_000 }, async (t) => {
    const seed = Number(process.env['GRAPEVINE_CRASH_SEED'] ?? Date.now() % 1_000_000)
    const random = seededRandom(seed)
    const genesis = testGenesis()
    let head = 0
    let rebuiltChecked = 0
    const log: string[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const run = await runUntilKilled(dataDir, random())
      const context = `seed ${seed}, round ${round}, ${run.aim}; ${log.join('; ')}`
      assert.equal(run.start, head, `resumes from the last head (${context})`)
      const store = new ChainStore(await LevelStore.open(join(dataDir, 'chain')), { nodeCacheEntries: 100, headerCacheEntries: 16 })
      try {
        const headHash = store.getMeta('head')
        assert.ok(headHash !== undefined, context)
        const headHeader = store.getHeader(headHash)
        assert.ok(headHeader !== undefined && bytesEqual(headerHash(headHeader), headHash), context)
        assert.ok(headHeader.height >= (run.heights.at(-1) ?? 0), `a durable height was lost (${context})`)
        const accounts = walk(store, headHeader.stateRoot, `head ${headHeader.height}`)
        // The node's own serving path: stored nodes, else the state rebuilt from reverse diffs.
        const headInfo = { hash: headHash, header: headHeader }
        const retained = new RetainedStates(store, {
          head: () => headInfo,
          lowestRetainedHeight: () => store.getMetaHeight('prunedStatesBelow') ?? 0,
        })
        assert.ok(accounts >= genesis.accounts.length, context)
        // Every header down to genesis links; the retained states are complete.
        let hash = headHash
        for (let h = headHeader.height; h >= 0; h--) {
          const header = store.getHeader(hash)
          assert.ok(header !== undefined && header.height === h, `header ${h} (${context})`)
          assert.ok(bytesEqual(store.getCanonicalHash(h) as Uint8Array, hash), `canonical ${h} (${context})`)
          if (h > headHeader.height - KEEP_STATES) {
            if (!store.hasNode(header.stateRoot)) rebuiltChecked++
            walk(retained, header.stateRoot, `retained state ${h} (${context})`)
          }
          if (h > headHeader.height - KEEP_BODIES) assert.ok(store.hasBody(hash), `retained body ${h} (${context})`)
          hash = header.parentHash
        }
        const finalized = store.getFinalized()
        if (finalized !== undefined) {
          const header = store.getHeader(finalized.hash)
          const certificate = store.getCertificate(finalized.height)
          assert.ok(header !== undefined && certificate !== undefined, `finalized block and certificate (${context})`)
          verifyCertificate(certificate, header, genesis)
          walk(store, header.stateRoot, `finalized state ${finalized.height} (${context})`)
        }
        log.push(`round ${round}: ${run.aim} → head ${headHeader.height}, finalized ${finalized?.height ?? 0}, ${accounts} accounts`)
        head = headHeader.height
      } finally {
        await store.close()
      }
    }
    t.diagnostic(`seed ${seed}: ${log.join('; ')}; ${rebuiltChecked} retained states checked rebuilt from reverse diffs`)
    assert.ok(head >= ROUNDS * 3)
    assert.ok(rebuiltChecked >= ROUNDS, 'the states kept as reverse diffs were checked')
  })
})
