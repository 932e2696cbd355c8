/**
 * `grapevine load`: sends N signed transfers from the funded dev keys (K of them to fresh
 * accounts) over the nodes' JSON-RPC at up to R tx/s, in JSON-RPC batches, and exits 0 once all
 * are included. Signing is done in bulk up front. Inclusion is observed through the senders'
 * account nonces (one batched query per poll), which also gives each tx's inclusion latency.
 */
import type { Command } from 'commander'
import { toHex } from '../codec/bytes.ts'
import { type Keypair, devKeypair, generateKeypair } from '../crypto/keys.ts'
import { signTransfer } from '../ledger/transfer.ts'
import type { SignedTx } from '../ledger/types.ts'
import type { AccountView, NodeStatusView } from '../rpc/backend.ts'
import { RpcClient } from '../rpc/client.ts'
import { RpcError } from '../rpc/errors.ts'
import { readDevnetFile } from './join.ts'
import { CliError, collect, parseCount, rpcUrl } from './util.ts'

interface LoadOptions {
  devnet?: string
  rpc: string[]
  count: number
  accounts: number
  rate: number
  senders: number
  batch: number
  /** Pending (sent, not yet included) transactions allowed at once. */
  window: number
  timeout: number
  amount: number
  fee: number
}

interface PlannedTx {
  signed: SignedTx
  sender: number
  nonce: number
  sentAt?: number
  includedAt?: number
  failed?: string
}

/** Nodes of a devnet that was just started take a few seconds to answer. */
async function waitForNode(client: RpcClient, timeoutMs: number): Promise<NodeStatusView> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await client.call<NodeStatusView>('node_status')
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  }
}

/** Rejections worth retrying later (the pool or the sender's nonce window is momentarily full). */
const RETRYABLE = new Set(['MEMPOOL_FULL', 'TX_NONCE_TOO_HIGH'])

export function registerLoadCommand(program: Command): void {
  program
    .command('load')
    .description('send N signed transfers from the funded dev keys over RPC and wait until all are included')
    .option('--devnet <file>', 'a running devnet\'s devnet.json (sends to all its nodes)')
    .option('--rpc <url>', 'node RPC URL (repeatable)', collect, [])
    .option('--count <n>', 'transfers to send', parseCount, 10_000)
    .option('--accounts <k>', 'how many of them go to fresh accounts (grows the state)', parseCount, 5_000)
    .option('--rate <r>', 'most transfers per second sent', parseCount, 2_000)
    .option('--senders <n>', 'funded dev keys used as senders (keys 0..n-1; devnet funds 0..99)', parseCount, 100)
    .option('--batch <n>', 'transactions per JSON-RPC batch', parseCount, 250)
    .option('--window <n>', 'most sent-but-not-included transactions at once', parseCount, 20_000)
    .option('--timeout <seconds>', 'give up after this long', parseCount, 600)
    .option('--amount <n>', 'amount per transfer', parseCount, 1)
    .option('--fee <n>', 'fee per transfer', parseCount, 1)
    .action(async (options: LoadOptions) => {
      const urls = [...options.rpc.map(rpcUrl)]
      if (options.devnet !== undefined) urls.push(...readDevnetFile(options.devnet).nodes.map((node) => node.rpc))
      if (urls.length === 0) throw new CliError('give --devnet or at least one --rpc')
      if (options.accounts > options.count) throw new CliError('--accounts cannot exceed --count')
      if (options.senders < 1) throw new CliError('--senders must be at least 1')
      const summary = await runLoad(urls, options, (line) => process.stdout.write(line + '\n'))
      process.stdout.write(summary + '\n')
    })
}

export async function runLoad(urls: string[], options: LoadOptions, print: (line: string) => void): Promise<string> {
  const clients = urls.map((url) => new RpcClient(url, 60_000))
  const primary = clients[0] as RpcClient
  const status = await waitForNode(primary, 30_000)
  const senders: Keypair[] = []
  for (let i = 0; i < options.senders; i++) senders.push(devKeypair(i))
  const accounts = await primary.batch<AccountView>(senders.map((key) => ({ method: 'state_getAccount', params: [toHex(key.publicKey)] })))
  const nextNonce = accounts.map((account, i) => {
    if (account instanceof RpcError) throw new CliError(`cannot read sender ${i}: ${account.message}`)
    return account.pendingNonce
  })

  // Sign everything first (bulk), round-robin over senders so each sender's nonces are consecutive.
  const signStarted = Date.now()
  const plan: PlannedTx[] = []
  const perSender: PlannedTx[][] = senders.map(() => [])
  for (let i = 0; i < options.count; i++) {
    const sender = i % senders.length
    const to = i < options.accounts ? generateKeypair().publicKey : (senders[(sender + 1) % senders.length] as Keypair).publicKey
    const nonce = nextNonce[sender] as number
    nextNonce[sender] = nonce + 1
    const entry: PlannedTx = {
      signed: signTransfer({ chainId: status.chainId, from: senders[sender] as Keypair, to, amount: BigInt(options.amount), fee: BigInt(options.fee), nonce }),
      sender,
      nonce,
    }
    plan.push(entry)
    ;(perSender[sender] as PlannedTx[]).push(entry)
  }
  print(`signed ${plan.length} transfers from ${senders.length} senders in ${((Date.now() - signStarted) / 1000).toFixed(1)} s; sending to ${urls.length} node(s) at up to ${options.rate} tx/s`)

  const started = Date.now()
  const deadline = started + options.timeout * 1000
  const cursor = perSender.map(() => 0)
  let accepted = 0
  let rejected = 0
  const rejectCodes = new Map<string, number>()
  let sentBudget = 0
  let lastBudgetAt = Date.now()
  let clientIndex = 0
  let lastReport = 0
  let included = 0

  const pendingCount = () => plan.filter((entry) => entry.sentAt !== undefined && entry.includedAt === undefined && entry.failed === undefined).length

  for (;;) {
    const now = Date.now()
    if (now > deadline) throw new CliError(`timed out after ${options.timeout}s: ${included}/${plan.length} included`)
    sentBudget = Math.min(options.rate, sentBudget + ((now - lastBudgetAt) / 1000) * options.rate)
    lastBudgetAt = now
    // Next txs in nonce order per sender, within the rate budget and the in-flight window.
    const room = Math.min(Math.floor(sentBudget), options.window - pendingCount())
    const batch: PlannedTx[] = []
    for (let round = 0; batch.length < room && round < 64; round++) {
      let added = false
      for (let sender = 0; sender < perSender.length && batch.length < room; sender++) {
        const queue = perSender[sender] as PlannedTx[]
        const next = queue[cursor[sender] as number]
        if (next === undefined) continue
        cursor[sender] = (cursor[sender] as number) + 1
        batch.push(next)
        added = true
      }
      if (!added) break
    }
    sentBudget -= batch.length
    for (let i = 0; i < batch.length; i += options.batch) {
      const chunk = batch.slice(i, i + options.batch)
      const client = clients[clientIndex++ % clients.length] as RpcClient
      const sentAt = Date.now()
      let answers: Array<string | RpcError>
      try {
        answers = await client.batch<string>(chunk.map((entry) => ({ method: 'tx_send', params: [toHex(entry.signed.bytes)] })))
      } catch (error) {
        // The node is unreachable: put the chunk back for the next round.
        for (const entry of chunk) cursor[entry.sender] = Math.min(cursor[entry.sender] as number, (perSender[entry.sender] as PlannedTx[]).indexOf(entry))
        print(`send failed (${(error as Error).message}); retrying`)
        break
      }
      chunk.forEach((entry, index) => {
        const answer = answers[index]
        if (!(answer instanceof RpcError)) {
          entry.sentAt = sentAt
          accepted++
          return
        }
        const code = (answer.data as { code?: string } | undefined)?.code ?? String(answer.code)
        if (code === 'TX_ALREADY_KNOWN') {
          entry.sentAt ??= sentAt
          return
        }
        if (RETRYABLE.has(code)) {
          // Resend this one (and the sender's later ones) next round.
          cursor[entry.sender] = Math.min(cursor[entry.sender] as number, (perSender[entry.sender] as PlannedTx[]).indexOf(entry))
          return
        }
        entry.failed = code
        rejected++
        rejectCodes.set(code, (rejectCodes.get(code) ?? 0) + 1)
      })
    }

    // Inclusion: a sender's account nonce past a tx's nonce means it is in the chain.
    const nonces = await primary.batch<AccountView>(senders.map((key) => ({ method: 'state_getAccount', params: [toHex(key.publicKey)] })))
    const seenAt = Date.now()
    included = 0
    for (const entry of plan) {
      if (entry.includedAt === undefined && entry.sentAt !== undefined) {
        const account = nonces[entry.sender]
        if (account !== undefined && !(account instanceof RpcError) && account.nonce > entry.nonce) entry.includedAt = seenAt
      }
      if (entry.includedAt !== undefined) included++
    }
    const done = plan.every((entry) => entry.includedAt !== undefined || entry.failed !== undefined)
    if (Date.now() - lastReport >= 2_000 || done) {
      lastReport = Date.now()
      print(`sent ${accepted}  included ${included}/${plan.length}  pending ${pendingCount()}  rejected ${rejected}  ${((Date.now() - started) / 1000).toFixed(0)} s`)
    }
    if (done) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }

  const elapsed = (Date.now() - started) / 1000
  const latencies = plan
    .filter((entry) => entry.includedAt !== undefined && entry.sentAt !== undefined)
    .map((entry) => (entry.includedAt as number) - (entry.sentAt as number))
    .sort((a, b) => a - b)
  const pct = (p: number) => (latencies.length === 0 ? 0 : (latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] as number))
  const codes = [...rejectCodes].map(([code, count]) => `${code}×${count}`).join(', ')
  if (rejected > 0) throw new CliError(`${rejected} transfers rejected (${codes}); ${included} included`)
  return [
    `accepted ${accepted}, included ${included} of ${plan.length} in ${elapsed.toFixed(1)} s (${(included / elapsed).toFixed(0)} tx/s)`,
    `inclusion latency p50 ${(pct(0.5) / 1000).toFixed(2)} s, p99 ${(pct(0.99) / 1000).toFixed(2)} s (observed by polling every 250 ms)`,
  ].join('\n')
}
