/**
 * `grapevine join`: starts a fresh non-validator node against an existing network and shows it
 * catching up (phase, items and bytes done and left, rate, ETA), then keeps running as a full
 * node. The genesis file is the trust anchor: peers on another network are refused.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import type { Command } from 'commander'
import { pino } from 'pino'
import { loadGenesisFile } from '../ledger/genesis.ts'
import { createLogger } from '../util/logger.ts'
import type { SyncStatusView } from '../sync/manager.ts'
import type { DevnetFile } from './devnet.ts'
import { CliError, collect, parseHostPort } from './util.ts'

interface JoinOptions {
  genesis?: string
  devnet?: string
  bootstrap: string[]
  dataDir?: string
  rpc: { host: string; port: number }
  listen: string[]
}

export function readDevnetFile(path: string): DevnetFile {
  if (!existsSync(path)) throw new CliError(`${path} not found: start a devnet first (npm run devnet)`)
  if (statSync(path).size > 1024 * 1024) throw new CliError(`${path} is too large to be a devnet file`)
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    throw new CliError(`${path} is not valid JSON`)
  }
  const devnet = parsed as Partial<DevnetFile>
  if (typeof devnet.genesis !== 'string' || !Array.isArray(devnet.nodes)) throw new CliError(`${path} is not a devnet file (needs genesis and nodes)`)
  return devnet as DevnetFile
}

export function registerJoinCommand(program: Command): void {
  program
    .command('join')
    .description('start a fresh full node that catches up with an existing network, showing progress')
    .option('--genesis <file>', 'genesis file of the network to join')
    .option('--devnet <file>', 'a running devnet\'s devnet.json (genesis and bootstrap addresses from it)')
    .option('--bootstrap <multiaddr>', 'peer to dial (repeatable)', collect, [])
    .option('--data-dir <dir>', 'data directory (default: <devnet dir>/joiner, or ./grapevine-join)')
    .option('--rpc <host:port>', 'JSON-RPC listen address (port 0 picks one)', parseHostPort, { host: '127.0.0.1', port: 0 })
    .option('--listen <multiaddr>', 'libp2p listen address (repeatable)', collect, [])
    .action(async (options: JoinOptions) => {
      let genesisPath = options.genesis
      const bootstrap = [...options.bootstrap]
      let dataDir = options.dataDir
      if (options.devnet !== undefined) {
        const devnet = readDevnetFile(options.devnet)
        genesisPath ??= devnet.genesis
        bootstrap.push(...devnet.nodes.map((node) => node.multiaddr))
        dataDir ??= join(dirname(resolve(options.devnet)), 'joiner')
      }
      if (genesisPath === undefined) throw new CliError('give --genesis (or --devnet)')
      const genesis = loadGenesisFile(genesisPath)
      if (bootstrap.length === 0 && (genesis.seeds ?? []).length === 0) throw new CliError('give at least one --bootstrap address (or --devnet, or a genesis file with seeds)')
      dataDir ??= resolve('grapevine-join')
      mkdirSync(dataDir, { recursive: true })
      const tty = Boolean(process.stdout.isTTY)
      // On a terminal the progress bar owns the screen: logs go to a file.
      const log = tty ? createLogger({ name: 'joiner', pretty: false, destination: createFileStream(join(dataDir, 'node.log')) }) : createLogger({ name: 'joiner' })
      const { runNode } = await import('../node/run.ts')
      const running = await runNode({
        genesis,
        dataDir,
        rpcHost: options.rpc.host,
        rpcPort: options.rpc.port,
        listen: options.listen.length > 0 ? options.listen : ['/ip4/127.0.0.1/tcp/0'],
        bootstrap,
        processMetrics: true,
        verifyWorkers: availableParallelism(),
        log,
      })
      const sync = running.sync
      if (sync === undefined) throw new CliError('networking did not start')
      process.stdout.write(`joining ${genesis.chainId} from ${bootstrap.length} bootstrap peer(s); data in ${dataDir}; RPC ${running.rpcUrl}\n`)
      let stopping = false
      const stop = async () => {
        if (stopping) return
        stopping = true
        process.stdout.write('\nstopping…\n')
        await running.stop()
        process.exit(0)
      }
      process.once('SIGINT', () => void stop())
      process.once('SIGTERM', () => void stop())
      const started = Date.now()
      let lastPlain = 0
      while (!stopping) {
        const status = sync.status()
        if (sync.isSynced() && (status.phase === 'synced' || running.node.chain.head.header.height > 0 || status.catchUps > 0)) {
          if (tty) process.stdout.write('\r\x1b[2K')
          process.stdout.write(summary(status, running.node.chain.head.header.height, Date.now() - started) + '\n')
          break
        }
        if (tty) process.stdout.write('\r\x1b[2K' + progressLine(status, true))
        else if (Date.now() - lastPlain >= 2_000) {
          lastPlain = Date.now()
          process.stdout.write(progressLine(status, false) + '\n')
        }
        await new Promise((done) => setTimeout(done, tty ? 200 : 500))
      }
      process.stdout.write(`running as a full node at height ${running.node.chain.head.header.height}; RPC ${running.rpcUrl}; Ctrl-C to stop\n`)
      await new Promise(() => undefined)
    })
}

/** Appending JSON log file for a node whose terminal shows a progress bar. */
function createFileStream(path: string): NodeJS.WritableStream {
  return pino.destination({ dest: path, append: true, mkdir: true, sync: false }) as unknown as NodeJS.WritableStream
}

export function humanBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GB`
}

export function humanCount(count: number): string {
  if (count < 10_000) return String(Math.round(count))
  if (count < 1_000_000) return `${(count / 1000).toFixed(1)}k`
  return `${(count / 1_000_000).toFixed(2)}M`
}

function bar(fraction: number, width = 24): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)))
  return '█'.repeat(filled) + '░'.repeat(width - filled)
}

/** One status line: phase, bar, done/left, bytes, rate, ETA. */
export function progressLine(status: SyncStatusView, withBar: boolean): string {
  let fraction = 0
  let items = ''
  switch (status.phase) {
    case 'headers': {
      const total = Math.max(1, status.targetHeight - status.startHeight)
      fraction = status.headersFetched / total
      items = `${humanCount(status.headersFetched)}/${humanCount(total)} headers`
      break
    }
    case 'state':
      fraction = status.stateProgress
      items = `${humanCount(status.stateEntriesFetched)}/${status.stateEntriesEstimate === null ? '?' : `~${humanCount(status.stateEntriesEstimate)}`} state entries (pivot ${status.pivotHeight ?? '?'})`
      break
    case 'blocks':
      fraction = status.blocksTotal === 0 ? 1 : status.blocksImported / status.blocksTotal
      items = `${humanCount(status.blocksImported)}/${humanCount(status.blocksTotal)} blocks`
      break
    default:
      items = status.phase === 'idle' ? 'looking for peers' : `height ${status.currentHeight}`
  }
  const eta = status.etaSeconds === null ? '' : `  ETA ${status.etaSeconds}s`
  const rate = status.rate > 0 ? `  ${humanCount(status.rate)}/s` : ''
  const head = `${status.phase.padEnd(7)} ${withBar ? bar(fraction) + ' ' : ''}${(fraction * 100).toFixed(0).padStart(3)}%`
  const stalled = status.stalledReason === undefined ? '' : `  — ${status.stalledReason}`
  const ruledOut = status.ruledOut === undefined ? '' : `  (${status.ruledOut} peer(s) ruled out)`
  return `${head}  ${items}  ${humanBytes(status.bytesReceived)} received${rate}${eta}  (target ${status.targetHeight})${ruledOut}${stalled}`
}

function summary(status: SyncStatusView, height: number, elapsedMs: number): string {
  const how =
    status.mode === 'state'
      ? `state sync at pivot ${status.pivotHeight}: ${humanCount(status.stateEntriesFetched)} state entries (${humanBytes(status.stateBytesFetched)}), then ${status.blocksImported} blocks imported`
      : status.mode === 'blocks'
        ? `${status.blocksImported} blocks imported`
        : 'already at the network head'
  return `synced to height ${height} in ${(elapsedMs / 1000).toFixed(1)} s — ${how}; ${humanBytes(status.bytesReceived)} received`
}
