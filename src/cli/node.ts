import { availableParallelism } from 'node:os'
import type { Command } from 'commander'
import { resolveKeyArgument } from '../crypto/keyfile.ts'
import { loadGenesisFile } from '../ledger/genesis.ts'
import { collect, parseCount, parseHostPort } from './util.ts'

interface NodeCommandOptions {
  genesis: string
  dataDir: string
  key?: string
  rpc: { host: string; port: number }
  listen: string[]
  bootstrap: string[]
  name?: string
  inboundThreshold?: number
  archive?: boolean
  keepBodies?: number
  keepMaterialized?: number
  rpcAdminToken?: string
}

export function registerNodeCommand(program: Command): void {
  program
    .command('node')
    .description('run a node (a validator when --key is one of the genesis validators)')
    .requiredOption('--genesis <file>', 'genesis file (the network\'s trust anchor)')
    .requiredOption('--data-dir <dir>', 'data directory (LevelDB inside)')
    .option('--key <key>', 'node key file, or dev:<i> for devnet key i')
    .option('--rpc <host:port>', 'JSON-RPC listen address', parseHostPort, { host: '127.0.0.1', port: 8545 })
    .option('--listen <multiaddr>', 'libp2p listen address (repeatable; default /ip4/127.0.0.1/tcp/0 — use /ip4/0.0.0.0/tcp/P to accept other machines)', collect, [])
    .option('--bootstrap <multiaddr>', 'peer to dial at start (repeatable)', collect, [])
    .option('--name <name>', 'name shown in logs')
    .option('--archive', 'keep every block body and state (no pruning)')
    .option('--keep-bodies <n>', 'block bodies kept below the head when pruning (default 128)', parseCount)
    .option('--keep-materialized <n>', 'of the 128 retained states, how many recent heights keep their trie nodes; older ones are kept as reverse diffs (default 16)', parseCount)
    .option('--rpc-admin-token <token>', 'enable the admin RPC methods (net_ban, net_unban, net_addPeer) for requests carrying Authorization: Bearer <token> (default: off)')
    .option('--inbound-threshold <n>', 'inbound connections accepted per second from one host (default libp2p\'s 5; a devnet on one host raises it)', parseCount)
    .action(async (options: NodeCommandOptions) => {
      const genesis = loadGenesisFile(options.genesis)
      const key = options.key === undefined ? undefined : resolveKeyArgument(options.key)
      // Loaded on demand: the other commands start without libp2p.
      const { runNode } = await import('../node/run.ts')
      const running = await runNode({
        genesis,
        dataDir: options.dataDir,
        ...(key === undefined ? {} : { key }),
        rpcHost: options.rpc.host,
        rpcPort: options.rpc.port,
        listen: options.listen.length > 0 ? options.listen : ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: options.bootstrap,
        processMetrics: true,
        // One signature-verifying worker per core.
        verifyWorkers: availableParallelism(),
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.archive === true || options.keepBodies !== undefined || options.keepMaterialized !== undefined
          ? {
              pruning: {
                ...(options.archive === true ? { archive: true } : {}),
                ...(options.keepBodies === undefined ? {} : { keepBodyBlocks: Math.max(1, options.keepBodies) }),
                ...(options.keepMaterialized === undefined ? {} : { materializedStateBlocks: Math.max(1, options.keepMaterialized) }),
              },
            }
          : {}),
        ...(options.rpcAdminToken === undefined ? {} : { rpcAdminToken: options.rpcAdminToken }),
        ...(options.inboundThreshold === undefined ? {} : { network: { inboundConnectionThreshold: options.inboundThreshold } }),
      })
      await waitForSignal()
      await running.stop()
    })
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve()
    process.once('SIGINT', done)
    process.once('SIGTERM', done)
  })
}
