import type { Command } from 'commander'
import { RpcClient } from '../rpc/client.ts'
import { rpcUrl } from './util.ts'

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description("print a node's status (node_status) as JSON")
    .requiredOption('--rpc <url>', 'node RPC URL or HOST:PORT')
    .action(async (options: { rpc: string }) => {
      const status = await new RpcClient(rpcUrl(options.rpc), 10_000).call('node_status')
      process.stdout.write(JSON.stringify(status, null, 2) + '\n')
    })
}
