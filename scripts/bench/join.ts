/**
 * Join cost against chain length (docs/benchmarks.md, "Join"): a serving node holds a chain of
 * blocks signed by the devnet keys — the first few fund `--accounts` new addresses, the rest are
 * empty, so the state is the same at every height — and a fresh node joins it over libp2p on
 * 127.0.0.1. Printed per height: join time, sync bytes received, headers fetched, for the join
 * from a certificate (the certificate 5 blocks below the head) and — with `--before` — for the
 * pre-finality path (no certificate: every header from genesis, then state).
 *
 * Two processes, as two machines would be: the serving node runs in a CHILD process (this script
 * with `--role server`) on LevelDB in a temp dir, so building and holding its history (and the
 * garbage collection of that heap) is not inside the joiner's measured time; the joiner (this
 * process) is a fresh node on LevelDB in its own temp dir for every join. Per height the server
 * is built once; the pre-finality joins run first (the server offers no certificate yet), then the
 * server applies the certificate and the certified joins run. Each mode is measured `--repeat`
 * times at every height (a fresh joiner each time); the table gives the median and the range.
 *
 *   npx tsx scripts/bench/join.ts [--heights 1000,10000,100000] [--accounts 100000] [--before]
 *                                 [--repeat 3] [--before-repeat 1] [--timeout 300] [--json]
 *
 * The default is the size, 100,000 accounts: the joiner paces its state sync to the
 * server's published per-peer quotas (src/sync/pacing.ts), so it is never refused. The
 * pre-finality path (`--before`) fetches every header from genesis, paced to the server's
 * `getHeaders` quota (2,048 per 10 s per peer): about 60 s per 10,000 headers from one server.
 * A join that has not finished after `--timeout` seconds is reported as timed out.
 *
 * Building the history costs about 1 ms per block on LevelDB (not part of the figures).
 */
import '../../src/polyfill.ts'
import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { appendEmptyBlocks, appendFundingBlocks, devCertificate } from '../../src/chain/history.ts'
import { toHexKey } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { type RunningNode, runNode } from '../../src/node/run.ts'
import { createLogger, silentLogger } from '../../src/util/logger.ts'

function arg(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback
}

const HEIGHTS = arg('heights', '1000,10000,100000').split(',').map(Number)
const ACCOUNTS = Number(arg('accounts', '100000'))
const BEFORE = process.argv.includes('--before')
const REPEAT = Number(arg('repeat', '3'))
const BEFORE_REPEAT = Number(arg('before-repeat', '1'))
const TIMEOUT_MS = Number(arg('timeout', '300')) * 1000
const SLOT_MS = 1_000
const BLOCKS_AFTER_CERTIFICATE = 5

const genesisFor = (genesisTime: number) => devnetGenesis({ validatorCount: 4, genesisTime, slotMs: SLOT_MS })

async function start(options: Parameters<typeof runNode>[0]): Promise<RunningNode> {
  return runNode({ rpcPort: 0, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false, network: { inboundConnectionThreshold: 10_000 }, log: silentLogger(), ...options })
}

const tempDir = (label: string): string => mkdtempSync(join(tmpdir(), `grapevine-bench-join-${label}-`))

// ---------------------------------------------------------------- the serving node (child process)

type ToServer = { cmd: 'certify' } | { cmd: 'stop' }
type FromServer =
  | { type: 'ready'; address: string; head: string; buildSeconds: number }
  | { type: 'certified'; head: string }
  | { type: 'stopped' }
  | { type: 'error'; message: string }

async function serverMain(): Promise<void> {
  const send = (message: FromServer): void => {
    process.send?.(message)
  }
  const height = Number(arg('height', '1000'))
  const genesis = genesisFor(Number(arg('genesis-time', '0')))
  const dir = tempDir('server')
  // A validator key makes it a staked target for the pre-finality path; it does not produce.
  const server = await start({ genesis, dataDir: dir, produce: false, key: devKeypair(0), pruning: { archive: true } })
  const built = performance.now()
  const funding = await appendFundingBlocks(server.node.chain, ACCOUNTS)
  await appendEmptyBlocks(server.node.chain, height - funding)
  const address = server.network?.listenAddresses()[0]
  if (address === undefined) throw new Error('server has no listen address')
  send({ type: 'ready', address: address.toString(), head: toHexKey(server.node.chain.head.hash), buildSeconds: (performance.now() - built) / 1000 })
  process.on('message', (message: ToServer) => {
    void (async () => {
      try {
        if (message.cmd === 'certify') {
          await server.node.chain.applyCertificate(devCertificate(server.node.chain, height - BLOCKS_AFTER_CERTIFICATE))
          send({ type: 'certified', head: toHexKey(server.node.chain.head.hash) })
        } else {
          await server.stop()
          rmSync(dir, { recursive: true, force: true })
          send({ type: 'stopped' })
          process.disconnect?.()
        }
      } catch (error) {
        send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
      }
    })()
  })
}

class ServerChannel {
  private readonly inbox: FromServer[] = []
  private waiter: ((message: FromServer) => void) | undefined

  constructor(readonly child: ChildProcess) {
    child.on('message', (message) => {
      const resolve = this.waiter
      this.waiter = undefined
      if (resolve !== undefined) resolve(message as FromServer)
      else this.inbox.push(message as FromServer)
    })
    child.on('exit', (code, signal) => {
      this.waiter?.({ type: 'error', message: `server exited (code ${code}, signal ${signal})` })
      this.waiter = undefined
    })
  }

  async ask<T extends FromServer['type']>(command: ToServer | undefined, expected: T): Promise<Extract<FromServer, { type: T }>> {
    if (command !== undefined) this.child.send(command)
    const answer = this.inbox.shift() ?? (await new Promise<FromServer>((resolve) => (this.waiter = resolve)))
    if (answer.type === 'error') throw new Error(`server: ${answer.message}`)
    if (answer.type !== expected) throw new Error(`server answered ${answer.type}, expected ${expected}`)
    return answer as Extract<FromServer, { type: T }>
  }
}

// ---------------------------------------------------------------- the joiner (this process)

interface Sample {
  seconds: number
  bytes: number
  headers: number
  stateEntries: number
  mode: string
  load: number
}

async function joinOnce(genesis: ReturnType<typeof genesisFor>, address: string, head: string): Promise<Sample> {
  const dir = tempDir('joiner')
  const log = process.env['GRAPEVINE_LOG_LEVEL'] === undefined ? silentLogger() : createLogger({ name: 'joiner', pretty: true })
  const joiner = await start({ genesis, dataDir: dir, sync: { statusIntervalMs: 600_000 }, log })
  const load = loadavg()[0] ?? 0
  try {
    if (joiner.network === undefined) throw new Error('no network')
    const started = performance.now()
    await joiner.network.dial(address)
    let shown = started
    while (toHexKey(joiner.node.chain.head.hash) !== head) {
      if (performance.now() - started > TIMEOUT_MS) {
        const view = joiner.sync?.status()
        return { seconds: Number.NaN, bytes: view?.bytesReceived ?? 0, headers: view?.headersFetched ?? 0, stateEntries: view?.stateEntriesFetched ?? 0, mode: `timed out (${view?.phase ?? '?'})`, load }
      }
      if (process.env['GRAPEVINE_LOG_LEVEL'] !== undefined && performance.now() - shown > 2_000) {
        shown = performance.now()
        const view = joiner.sync?.status()
        process.stderr.write(`    ${((shown - started) / 1000).toFixed(0)} s: ${view?.phase} headers ${view?.headersFetched} state ${view?.stateEntriesFetched} bytes ${view?.bytesReceived}\n`)
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const seconds = (performance.now() - started) / 1000
    const view = joiner.sync?.status()
    return {
      seconds,
      bytes: view?.bytesReceived ?? 0,
      headers: view?.headersFetched ?? 0,
      stateEntries: view?.stateEntriesFetched ?? 0,
      mode: view?.certified === true ? 'certificate' : `headers from genesis (${view?.mode ?? '?'})`,
      load,
    }
  } finally {
    await joiner.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

interface Figure {
  height: number
  mode: string
  samples: Sample[]
  median: number
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

async function measureHeight(height: number): Promise<Figure[]> {
  const genesisTime = Date.now() - (height + 60) * SLOT_MS
  const genesis = genesisFor(genesisTime)
  const child = fork(fileURLToPath(import.meta.url), ['--role', 'server', '--height', String(height), '--accounts', String(ACCOUNTS), '--genesis-time', String(genesisTime)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const channel = new ServerChannel(child)
  const figures: Figure[] = []
  try {
    const ready = await channel.ask(undefined, 'ready')
    process.stderr.write(`  height ${height}: server built ${height} blocks on ${ACCOUNTS} accounts in ${ready.buildSeconds.toFixed(1)} s\n`)
    const run = async (count: number, head: string): Promise<void> => {
      const samples: Sample[] = []
      for (let i = 0; i < count; i++) {
        samples.push(await joinOnce(genesis, ready.address, head))
        process.stderr.write(`    ${(samples.at(-1) as Sample).mode}: ${(samples.at(-1) as Sample).seconds.toFixed(2)} s\n`)
      }
      figures.push({ height, mode: (samples[0] as Sample).mode, samples, median: median(samples.map((s) => s.seconds)) })
    }
    if (BEFORE) await run(BEFORE_REPEAT, ready.head)
    const certified = await channel.ask({ cmd: 'certify' }, 'certified')
    await run(REPEAT, certified.head)
    await channel.ask({ cmd: 'stop' }, 'stopped')
  } finally {
    if (child.exitCode === null) child.kill()
  }
  return figures
}

async function main(): Promise<void> {
  process.stdout.write(`join: ${ACCOUNTS.toLocaleString('en')} accounts (state identical at every height); server in a child process, both on LevelDB; load avg (1 min) at start ${loadavg()[0]?.toFixed(2)}\n`)
  const figures: Figure[] = []
  for (const height of HEIGHTS) figures.push(...(await measureHeight(height)))
  const order = (figure: Figure): number => (figure.mode === 'certificate' ? 1 : 0)
  figures.sort((a, b) => order(a) - order(b) || a.height - b.height)
  process.stdout.write(
    `\n${'mode'.padEnd(34)}${'height'.padStart(9)}${'time s'.padStart(9)}${'(min–max)'.padStart(13)}${'n'.padStart(3)}${'bytes'.padStart(12)}${'headers'.padStart(9)}${'accounts'.padStart(10)}${'load'.padStart(6)}${'× h=first'.padStart(11)}\n`,
  )
  for (const figure of figures) {
    const base = figures.find((other) => other.mode === figure.mode)
    const ratio = base === undefined ? 1 : figure.median / base.median
    const seconds = figure.samples.map((s) => s.seconds)
    const first = figure.samples[0] as Sample
    const range = `${Math.min(...seconds).toFixed(2)}–${Math.max(...seconds).toFixed(2)}`
    const load = figure.samples.reduce((sum, s) => sum + s.load, 0) / figure.samples.length
    process.stdout.write(
      `${figure.mode.padEnd(34)}${String(figure.height).padStart(9)}${figure.median.toFixed(2).padStart(9)}${range.padStart(13)}${String(figure.samples.length).padStart(3)}${String(first.bytes).padStart(12)}${String(first.headers).padStart(9)}${String(first.stateEntries).padStart(10)}${load.toFixed(1).padStart(6)}${ratio.toFixed(2).padStart(11)}\n`,
    )
  }
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ accounts: ACCOUNTS, figures })}\n`)
}

if (arg('role', '') === 'server') {
  serverMain().catch((error: unknown) => {
    process.send?.({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies FromServer)
    process.exit(1)
  })
} else {
  await main()
}
