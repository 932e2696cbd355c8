import type { Command } from 'commander'
import { toHex } from '../codec/bytes.ts'
import { resolveKeyArgument } from '../crypto/keyfile.ts'
import { parseAddress } from '../crypto/keys.ts'
import { signTransfer } from '../ledger/transfer.ts'
import type { AccountView, NodeStatusView, TxLookupView } from '../rpc/backend.ts'
import { RpcClient } from '../rpc/client.ts'
import { RpcError } from '../rpc/errors.ts'
import { CliError, parseAmount, parseCount, rpcUrl } from './util.ts'

interface TransferOptions {
  to: string
  amount: bigint
  fee: bigint
  nonce?: number
  memo?: string
  key: string
  rpc: string
  wait?: boolean
  timeout: number
}

export function registerTxCommands(program: Command): void {
  const tx = program.command('tx').description('build, sign and submit transactions')
  tx.command('transfer')
    .description('sign a transfer and submit it; prints the txid as the last line')
    .requiredOption('--to <address>', 'recipient address (0x + 64 hex)')
    .requiredOption('--amount <n>', 'amount to send', parseAmount)
    .option('--fee <n>', 'fee (default: the network minimum)', parseAmount)
    .option('--nonce <n>', 'nonce (default: fetched from the node, pending txs included)', parseCount)
    .option('--memo <text>', 'a short memo (UTF-8)')
    .requiredOption('--key <key>', 'sender key file, or dev:<i> for devnet key i')
    .requiredOption('--rpc <url>', 'node RPC URL or HOST:PORT')
    .option('--wait', 'wait until the transaction is included')
    .option('--timeout <seconds>', 'how long --wait waits', parseCount, 60)
    .action(async (options: TransferOptions) => {
      let to: Uint8Array
      try {
        to = parseAddress(options.to)
      } catch (error) {
        throw new CliError(`--to: ${(error as Error).message}`)
      }
      const keypair = resolveKeyArgument(options.key)
      const client = new RpcClient(rpcUrl(options.rpc))
      const status = await client.call<NodeStatusView>('node_status')
      const nonce = options.nonce ?? (await client.call<AccountView>('state_getAccount', [toHex(keypair.publicKey)])).pendingNonce
      const fee = options.fee ?? BigInt(status.minFee)
      const memo = options.memo === undefined ? undefined : new TextEncoder().encode(options.memo)
      const signed = signTransfer({ chainId: status.chainId, from: keypair, to, amount: options.amount, fee, nonce, ...(memo === undefined ? {} : { memo }) })
      let txid: string
      try {
        txid = await client.call<string>('tx_send', [toHex(signed.bytes)])
      } catch (error) {
        if (error instanceof RpcError) {
          const code = (error.data as { code?: string } | undefined)?.code
          throw new CliError(code === undefined ? error.message : `${code}: ${error.message}`)
        }
        throw error
      }
      if (options.wait === true) {
        const deadline = Date.now() + options.timeout * 1000
        for (;;) {
          const found = await client.call<TxLookupView | null>('tx_get', [txid])
          if (found?.status === 'included' || found?.status === 'finalized') {
            process.stderr.write(`included at height ${found.height} in block ${found.blockHash}\n`)
            break
          }
          if (Date.now() > deadline) throw new CliError(`transaction ${txid} not included within ${options.timeout}s`)
          await new Promise((resolve) => setTimeout(resolve, 250))
        }
      }
      process.stdout.write(`${txid}\n`)
    })
}
