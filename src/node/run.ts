/**
 * Runs one node process: node + RPC server (+ networking once configured), stopped cleanly on
 * SIGINT/SIGTERM. Used by `grapevine node` and by the devnet's child processes.
 */
import type { Keypair } from '../crypto/keys.ts'
import type { Genesis } from '../ledger/types.ts'
import { RpcServer } from '../rpc/server.ts'
import { type Logger, createLogger } from './logger.ts'
import { GrapevineNode } from './node.ts'

export interface RunNodeOptions {
  genesis: Genesis
  dataDir?: string
  key?: Keypair
  rpcHost: string
  rpcPort: number
  name?: string
  log?: Logger
}

export interface RunningNode {
  node: GrapevineNode
  rpcUrl: string
  stop: () => Promise<void>
}

export async function runNode(options: RunNodeOptions): Promise<RunningNode> {
  const log = options.log ?? createLogger(options.name === undefined ? {} : { name: options.name })
  const node = await GrapevineNode.open({
    genesis: options.genesis,
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.key === undefined ? {} : { key: options.key }),
    log,
  })
  const rpc = new RpcServer(node, { host: options.rpcHost, port: options.rpcPort, log: log.child({ component: 'rpc' }) })
  let rpcUrl: string
  try {
    rpcUrl = (await rpc.listen()).url
  } catch (error) {
    await node.stop()
    throw error
  }
  node.start()
  log.info({ rpc: rpcUrl }, 'node running')
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      await rpc.close()
      await node.stop()
    })()
    return stopping
  }
  return { node, rpcUrl, stop }
}
