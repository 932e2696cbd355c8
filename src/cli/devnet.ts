/**
 * `grapevine devnet`: a fresh local network in one command. Writes a genesis for N validators
 * (dev keys 0..N-1, fresh genesis time), starts N node processes on 127.0.0.1 bootstrapped to
 * each other, writes D/genesis.json and D/devnet.json, shows a live table, and stops every node
 * cleanly on Ctrl-C. Each node serves its dashboard at its RPC URL; the devnet page (every node
 * side by side) is served on --page-port (default base port − 1).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { devKeypair } from '../crypto/keys.ts'
import { devnetGenesis, genesisToJson } from '../ledger/genesis.ts'
import type { NodeStatusView } from '../rpc/backend.ts'
import { RpcClient } from '../rpc/client.ts'
import { startDevnetPage } from '../rpc/devnet-page.ts'
import type { BlockView } from '../rpc/views.ts'
import { CliError, parseCount } from './util.ts'

export interface DevnetNodeInfo {
  name: string
  peerId: string
  multiaddr: string
  rpc: string
  dataDir: string
  log: string
}

export interface DevnetFile {
  genesis: string
  chainId: string
  createdAt: string
  nodes: DevnetNodeInfo[]
}

interface DevnetOptions {
  nodes: number
  dir: string
  basePort: number
  slotMs: number
  /** Port of the devnet page (all nodes side by side); 0 picks a free one. */
  pagePort?: number
  /** One IPv4 address per node (scripts/netns-devnet.sh): node i listens on hosts[i], same ports for all. */
  hosts?: string[]
  /** Write genesis.json and devnet.json, start nothing. */
  prepareOnly?: boolean
}

const CLI_ENTRY = fileURLToPath(new URL('../../scripts/grapevine.mjs', import.meta.url))

export function registerDevnetCommand(program: Command): void {
  program
    .command('devnet')
    .description('run a local devnet: N validator nodes on 127.0.0.1 with a live status table (Ctrl-C stops them)')
    .option('--nodes <n>', 'number of validator nodes', parseCount, 4)
    .option('--dir <dir>', 'devnet directory (genesis, devnet.json, node data and logs)', '.devnet')
    .option('--base-port <port>', 'node i listens for libp2p on P+2i and for RPC on P+2i+1', parseCount, 9600)
    .option('--slot-ms <ms>', 'slot length', parseCount, 1000)
    .option('--page-port <port>', 'port of the devnet page (default: base port - 1)', parseCount)
    .option('--hosts <a,b,…>', 'one IPv4 address per node (separate hosts or namespaces): every node uses the base ports on its own address', (value: string) => value.split(',').map((host) => host.trim()))
    .option('--prepare-only', 'write genesis.json and devnet.json (peer ids, addresses) and exit; used by scripts/netns-devnet.sh')
    .action(async (options: DevnetOptions) => {
      if (options.nodes < 1 || options.nodes > 64) throw new CliError('--nodes must be between 1 and 64')
      if (options.hosts !== undefined) {
        if (options.hosts.length !== options.nodes) throw new CliError(`--hosts lists ${options.hosts.length} addresses for ${options.nodes} nodes`)
        for (const host of options.hosts) if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) throw new CliError(`--hosts: ${host} is not an IPv4 address`)
      }
      const devnet = await prepareDevnet(options)
      if (options.prepareOnly === true) {
        process.stdout.write(`${join(options.dir, 'devnet.json')}\n`)
        return
      }
      if (options.hosts !== undefined) throw new CliError('--hosts needs --prepare-only: the nodes run on other hosts (see scripts/netns-devnet.sh)')
      const children = startNodes(devnet, options)
      const page = await startDevnetPage({ nodes: devnet.nodes.map((info) => ({ name: info.name, rpc: info.rpc })), port: options.pagePort ?? options.basePort - 1 }).catch((error: unknown) => {
        process.stderr.write(`devnet page not served: ${(error as Error).message}\n`)
        return undefined
      })
      const stop = once(async () => {
        process.stdout.write('\nstopping devnet…\n')
        await page?.close()
        await stopChildren(children)
        process.stdout.write(`devnet stopped; data and logs remain in ${options.dir}\n`)
      })
      process.once('SIGINT', () => void stop().then(() => process.exit(0)))
      process.once('SIGTERM', () => void stop().then(() => process.exit(0)))
      for (const child of children) {
        child.process.once('exit', (code, signal) => {
          if (!child.stopping) process.stderr.write(`\n${child.info.name} exited (${signal ?? code}); see ${child.info.log}\n`)
        })
      }
      process.stdout.write(`devnet of ${options.nodes} nodes starting; genesis ${devnet.genesis}; nodes in ${join(options.dir, 'devnet.json')}\n`)
      for (const info of devnet.nodes) process.stdout.write(`  ${info.name.padEnd(8)} dashboard ${info.rpc}/\n`)
      if (page !== undefined) process.stdout.write(`  devnet page ${page.url}  (every node side by side)\n`)
      await showTable(devnet, children, page?.url)
    })
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined
  return () => (result ??= fn())
}

async function prepareDevnet(options: DevnetOptions): Promise<DevnetFile> {
  const dir = resolve(options.dir)
  if (existsSync(dir)) {
    const entries = readdirSync(dir)
    if (entries.length > 0 && !entries.includes('devnet.json')) {
      throw new CliError(`${options.dir} exists and is not a devnet directory (no devnet.json); choose another --dir`)
    }
    // A fresh genesis makes the old chain data meaningless: start clean.
    for (const entry of entries) rmSync(join(dir, entry), { recursive: true, force: true })
  }
  mkdirSync(dir, { recursive: true })
  // Slot 0 starts a moment from now, so every node is up before the first block.
  const genesisTime = Math.ceil((Date.now() + 2_000) / 1000) * 1000
  const genesis = devnetGenesis({ validatorCount: options.nodes, genesisTime, slotMs: options.slotMs })
  const genesisPath = join(dir, 'genesis.json')
  writeFileSync(genesisPath, JSON.stringify(genesisToJson(genesis), null, 2) + '\n')
  // Validator identities are the dev keys, so peer ids are known before the nodes start.
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const { libp2pKeyFrom } = await import('../net/identity.ts')
  const nodes: DevnetNodeInfo[] = []
  for (let i = 0; i < options.nodes; i++) {
    const peerId = peerIdFromPrivateKey(await libp2pKeyFrom(devKeypair(i))).toString()
    // Separate hosts each use the base ports on their own address; one host spreads the ports.
    const host = options.hosts?.[i] ?? '127.0.0.1'
    const p2pPort = options.hosts === undefined ? options.basePort + 2 * i : options.basePort
    const dataDir = join(dir, `node${i}`)
    nodes.push({
      name: `node${i}`,
      peerId,
      multiaddr: `/ip4/${host}/tcp/${p2pPort}/p2p/${peerId}`,
      rpc: `http://${host}:${p2pPort + 1}`,
      dataDir,
      log: join(dataDir, 'node.log'),
    })
  }
  const devnet: DevnetFile = { genesis: genesisPath, chainId: genesis.chainId, createdAt: new Date().toISOString(), nodes }
  writeFileSync(join(dir, 'devnet.json'), JSON.stringify(devnet, null, 2) + '\n')
  return devnet
}

interface Child {
  info: DevnetNodeInfo
  process: ChildProcess
  stopping: boolean
}

function startNodes(devnet: DevnetFile, options: DevnetOptions): Child[] {
  return devnet.nodes.map((info, i) => {
    mkdirSync(info.dataDir, { recursive: true })
    const rpcPort = options.basePort + 2 * i + 1
    const bootstrap = devnet.nodes.filter((other) => other !== info).flatMap((other) => ['--bootstrap', other.multiaddr])
    const args = [
      CLI_ENTRY,
      'node',
      '--genesis',
      devnet.genesis,
      '--data-dir',
      info.dataDir,
      '--key',
      `dev:${i}`,
      '--rpc',
      `127.0.0.1:${rpcPort}`,
      '--listen',
      `/ip4/127.0.0.1/tcp/${options.basePort + 2 * i}`,
      '--name',
      info.name,
      // Every devnet node shares 127.0.0.1: libp2p's per-host limit (5/s) would refuse them.
      '--inbound-threshold',
      '10000',
      ...bootstrap,
    ]
    const log = createWriteStream(info.log, { flags: 'a' })
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } })
    child.stdout?.pipe(log)
    child.stderr?.pipe(log)
    return { info, process: child, stopping: false }
  })
}

async function stopChildren(children: Child[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((done) => {
          child.stopping = true
          if (child.process.exitCode !== null || child.process.signalCode !== null) return done()
          const killer = setTimeout(() => child.process.kill('SIGKILL'), 10_000)
          child.process.once('exit', () => {
            clearTimeout(killer)
            done()
          })
          child.process.kill('SIGTERM')
        }),
    ),
  )
}

interface Row {
  name: string
  height: string
  /** Finalized height. */
  final: string
  head: string
  peers: string
  mempool: string
  txps: string
}

/** Polls every node once a second; tx/s comes from the txCount of blocks new since the last poll. */
async function showTable(devnet: DevnetFile, children: Child[], pageUrl: string | undefined): Promise<void> {
  const clients = devnet.nodes.map((info) => new RpcClient(info.rpc, 2_000))
  const lastHeight = new Map<string, number>()
  const rates = new Map<string, number>()
  const lastPollAt = new Map<string, number>()
  const tty = Boolean(process.stdout.isTTY)
  let printedLines = 0
  let lastPlain = 0
  for (;;) {
    if (children.every((child) => child.stopping)) return
    const started = Date.now()
    const rows: Row[] = await Promise.all(
      devnet.nodes.map(async (info, i): Promise<Row> => {
        const client = clients[i] as RpcClient
        try {
          const status = await client.call<NodeStatusView>('node_status')
          const previous = lastHeight.get(info.name)
          if (previous !== undefined && status.height > previous) {
            const heights = []
            for (let h = previous + 1; h <= status.height && heights.length < 64; h++) heights.push(h)
            const blocks = await client.batch<BlockView | null>(heights.map((h) => ({ method: 'chain_getBlock', params: [h] })))
            let txs = 0
            for (const block of blocks) if (block !== null && !(block instanceof Error)) txs += block.txCount
            rates.set(info.name, txs / Math.max(0.001, (Date.now() - (lastPollAt.get(info.name) ?? started)) / 1000))
          } else if (previous !== undefined) {
            rates.set(info.name, 0)
          }
          lastHeight.set(info.name, status.height)
          lastPollAt.set(info.name, Date.now())
          return {
            name: info.name,
            height: String(status.height),
            final: String(status.finalizedHeight ?? 0),
            head: status.headHash.slice(2, 10),
            peers: String(status.peers ?? 0),
            mempool: String(status.mempoolSize),
            txps: (rates.get(info.name) ?? 0).toFixed(0),
          }
        } catch {
          return { name: info.name, height: '-', final: '-', head: 'starting', peers: '-', mempool: '-', txps: '-' }
        }
      }),
    )
    const lines = [
      `${'node'.padEnd(8)}${'height'.padStart(8)}${'final'.padStart(8)}  ${'head'.padEnd(10)}${'peers'.padStart(6)}${'mempool'.padStart(9)}${'tx/s'.padStart(8)}`,
      ...rows.map((row) => `${row.name.padEnd(8)}${row.height.padStart(8)}${row.final.padStart(8)}  ${row.head.padEnd(10)}${row.peers.padStart(6)}${row.mempool.padStart(9)}${row.txps.padStart(8)}`),
      `rpc and dashboards: ${devnet.nodes.map((info) => info.rpc).join('  ')}${pageUrl === undefined ? '' : `   devnet page: ${pageUrl}`}   (Ctrl-C to stop)`,
    ]
    if (tty) {
      if (printedLines > 0) process.stdout.write(`\x1b[${printedLines}A`)
      process.stdout.write(lines.map((line) => `\x1b[2K${line}`).join('\n') + '\n')
      printedLines = lines.length
    } else if (Date.now() - lastPlain >= 5_000) {
      lastPlain = Date.now()
      process.stdout.write(`${new Date().toISOString()} ${rows.map((row) => `${row.name} h=${row.height} final=${row.final} peers=${row.peers} mempool=${row.mempool}`).join(' | ')}\n`)
    }
    await new Promise((done) => setTimeout(done, Math.max(100, 1_000 - (Date.now() - started))))
  }
}
