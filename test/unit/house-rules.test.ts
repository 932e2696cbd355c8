// The house rules that keep one protocol implementation runnable on wall time and virtual time
// (docs/architecture.md, "The house"), checked on the source text so a regression fails a test.
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

function sources(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(join(root, dir))) {
    const path = join(dir, name)
    if (statSync(join(root, path)).isDirectory()) out.push(...sources(path))
    else if (name.endsWith('.ts')) out.push(path)
  }
  return out
}

/** Source without comments, so a doc comment may name what the code must not use. */
function code(path: string): string {
  return readFileSync(join(root, path), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '')
}

const PROTOCOL_CORE = ['src/gossip', 'src/sync', 'src/peers']
const FORBIDDEN_IN_CORE: Array<[string, RegExp]> = [
  ['Date.now', /\bDate\.now\b/],
  ['performance.now', /\bperformance\.now\b/],
  ['setTimeout', /\bsetTimeout\b/],
  ['setInterval', /\bsetInterval\b/],
  ['setImmediate', /\bsetImmediate\b/],
  ['Math.random', /\bMath\.random\b/],
  ['a node: import', /from 'node:/],
]

describe('house rules', () => {
  it('the protocol core (gossip, sync, peers) reads no real time, schedules no real timer and imports no node: module', () => {
    const files = PROTOCOL_CORE.flatMap(sources)
    assert.ok(files.length >= 15, `found the core's files (${files.length})`)
    const offences: string[] = []
    for (const file of files) {
      const text = code(file)
      for (const [name, pattern] of FORBIDDEN_IN_CORE) if (pattern.test(text)) offences.push(`${file}: ${name}`)
    }
    assert.deepEqual(offences, [])
  })

  it('nothing below src/node imports it (only the CLI and the simulator\'s node builders, which are composition roots)', () => {
    // The virtual network and virtual time (src/sim/virtual-*.ts) stay below node/: only the two
    // files that build simulated nodes from the node's composition may import it.
    const roots = new Set(['src/cli', 'src/node', 'src/sim/cluster.ts', 'src/sim/light-node.ts'])
    const offences: string[] = []
    for (const file of sources('src')) {
      if ([...roots].some((top) => file === top || file.startsWith(`${top}/`))) continue
      if (/from '\.\.\/node\//.test(code(file))) offences.push(relative(root, join(root, file)))
    }
    assert.deepEqual(offences, [])
  })

  it('the libp2p shell is the only code that imports libp2p', () => {
    const offences: string[] = []
    for (const file of sources('src')) {
      if (file.startsWith('src/net/')) continue
      if (/from '(libp2p|@libp2p\/|@chainsafe\/libp2p)/.test(code(file))) offences.push(file)
    }
    assert.deepEqual(offences, [])
  })
})
