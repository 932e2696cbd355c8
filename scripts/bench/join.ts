/**
 * Join cost against chain length (docs/benchmarks.md, "Join"): a serving node holds a chain of
 * blocks signed by the devnet keys — the first few fund `--accounts` new addresses, the rest are
 * empty, so the state is the same at every height — and a fresh node joins it
 * over libp2p on 127.0.0.1. Printed per height: join time, sync bytes received, headers fetched,
 * for the join from a certificate (the certificate 5 blocks below the head) and — with
 * `--before` — for the pre-finality path (no certificate: every header from genesis, then state).
 *
 *   npx tsx scripts/bench/join.ts [--heights 1000,10000,100000] [--accounts 10000] [--before]
 *
 * Building the history costs about 0.3 ms per block (not part of the figures).
 */
import '../../src/polyfill.ts'
import { appendEmptyBlocks, appendFundingBlocks, devCertificate } from '../../src/chain/history.ts'
import { bytesEqual } from '../../src/codec/bytes.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { type RunningNode, runNode } from '../../src/node/run.ts'
import { silentLogger } from '../../src/util/logger.ts'

function arg(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback
}

const HEIGHTS = arg('heights', '1000,10000,100000').split(',').map(Number)
const ACCOUNTS = Number(arg('accounts', '10000'))
const BEFORE = process.argv.includes('--before')
const SLOT_MS = 1_000
const BLOCKS_AFTER_CERTIFICATE = 5

interface Figure {
  height: number
  mode: string
  seconds: number
  bytes: number
  headers: number
  stateEntries: number
}

async function start(options: Parameters<typeof runNode>[0]): Promise<RunningNode> {
  return runNode({ rpcPort: 0, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false, network: { inboundConnectionThreshold: 10_000 }, log: silentLogger(), ...options })
}

async function measure(height: number, certified: boolean): Promise<Figure> {
  // The first blocks fund ACCOUNTS new addresses, the rest are empty: the same state at every height.
  const genesis = devnetGenesis({ validatorCount: 4, genesisTime: Date.now() - (height + 30) * SLOT_MS, slotMs: SLOT_MS })
  // A validator key on the server makes it a staked target for the pre-finality path; it does not produce.
  const server = await start({ genesis, produce: false, key: devKeypair(0), pruning: { archive: true } })
  const built = performance.now()
  const funding = await appendFundingBlocks(server.node.chain, ACCOUNTS)
  await appendEmptyBlocks(server.node.chain, height - funding)
  if (certified) await server.node.chain.applyCertificate(devCertificate(server.node.chain, height - BLOCKS_AFTER_CERTIFICATE))
  process.stderr.write(`  built ${height} blocks in ${((performance.now() - built) / 1000).toFixed(1)} s\n`)
  const joiner = await start({ genesis, sync: { statusIntervalMs: 600_000 } })
  try {
    const started = performance.now()
    const address = server.network?.listenAddresses()[0]
    if (address === undefined || joiner.network === undefined) throw new Error('no network')
    await joiner.network.dial(address)
    for (;;) {
      if (bytesEqual(joiner.node.chain.head.hash, server.node.chain.head.hash)) break
      if (performance.now() - started > 600_000) throw new Error('join timed out')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const seconds = (performance.now() - started) / 1000
    const view = joiner.sync?.status()
    return {
      height,
      mode: view?.certified === true ? 'certificate' : `headers from genesis (${view?.mode ?? '?'})`,
      seconds,
      bytes: view?.bytesReceived ?? 0,
      headers: view?.headersFetched ?? 0,
      stateEntries: view?.stateEntriesFetched ?? 0,
    }
  } finally {
    await joiner.stop()
    await server.stop()
  }
}

const figures: Figure[] = []
for (const certified of BEFORE ? [false, true] : [true]) {
  for (const height of HEIGHTS) {
    process.stderr.write(`height ${height}, ${certified ? 'certificate' : 'no certificate'}\n`)
    figures.push(await measure(height, certified))
  }
}
process.stdout.write(`\njoin on ${ACCOUNTS.toLocaleString('en')} accounts (state identical at every height)\n`)
process.stdout.write(`${'mode'.padEnd(34)}${'height'.padStart(9)}${'time s'.padStart(9)}${'bytes'.padStart(12)}${'headers'.padStart(9)}${'accounts'.padStart(10)}${'× h=first'.padStart(11)}\n`)
for (const figure of figures) {
  const base = figures.find((other) => other.mode === figure.mode)
  const ratio = base === undefined ? 1 : figure.seconds / base.seconds
  process.stdout.write(
    `${figure.mode.padEnd(34)}${String(figure.height).padStart(9)}${figure.seconds.toFixed(2).padStart(9)}${String(figure.bytes).padStart(12)}${String(figure.headers).padStart(9)}${String(figure.stateEntries).padStart(10)}${ratio.toFixed(2).padStart(11)}\n`,
  )
}
