import type { Command } from 'commander'
import { toHex } from '../codec/bytes.ts'
import { resolveKeyArgument } from '../crypto/keyfile.ts'
import { parseAddress } from '../crypto/keys.ts'
import { signTransfer } from '../ledger/transfer.ts'
import type { AccountView, NodeStatusView } from '../rpc/backend.ts'
import { RpcClient } from '../rpc/client.ts'
import { RpcError } from '../rpc/errors.ts'
import type { TxStatusEvent } from '../rpc/events.ts'
import { RpcWebSocketClient } from '../rpc/ws-client.ts'
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
    .option('--wait', 'wait until the transaction is included (follows a txStatus subscription over WebSocket)')
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
      // With --wait, subscribe to the tx's status before sending it, so no change can be missed.
      const waiter = options.wait === true ? await TxStatusWaiter.open(rpcUrl(options.rpc), toHex(signed.id)) : undefined
      try {
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
        if (waiter !== undefined) {
          const included = await waiter.included(options.timeout * 1000)
          process.stderr.write(`included at height ${included.height} in block ${included.blockHash}\n`)
        }
        process.stdout.write(`${txid}\n`)
      } finally {
        waiter?.close()
      }
    })
}

/** Follows one transaction's `txStatus` subscription until it is included (or dropped). */
export class TxStatusWaiter {
  private latest: TxStatusEvent | undefined
  private wake: (() => void) | undefined

  private constructor(
    private readonly client: RpcWebSocketClient,
    readonly txid: string,
  ) {}

  static async open(url: string, txid: string): Promise<TxStatusWaiter> {
    let client: RpcWebSocketClient
    try {
      client = await RpcWebSocketClient.connect(url, { timeoutMs: 10_000 })
    } catch (error) {
      throw new CliError(`--wait needs the node's WebSocket RPC: ${(error as Error).message}`)
    }
    const waiter = new TxStatusWaiter(client, txid)
    client.onClose = () => waiter.wake?.()
    await client.subscribe('txStatus', [txid], (result) => {
      waiter.latest = result as TxStatusEvent
      waiter.wake?.()
    })
    return waiter
  }

  /** Resolves once the tx is included (or finalized); throws CliError when dropped, on timeout or disconnect. */
  async included(timeoutMs: number): Promise<{ height: number; blockHash: string }> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const status = this.latest
      if (status?.status === 'included' || status?.status === 'finalized') return { height: status.height, blockHash: status.blockHash }
      if (status?.status === 'dropped') throw new CliError(`transaction ${this.txid} was dropped from the mempool (${status.reason})`)
      if (this.client.raw.readyState !== this.client.raw.OPEN) throw new CliError(`lost the connection to the node while waiting for ${this.txid}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new CliError(`transaction ${this.txid} not included within ${Math.round(timeoutMs / 1000)}s`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  close(): void {
    this.client.close()
  }
}
