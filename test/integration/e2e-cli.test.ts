/**
 * End to end through the real binaries: `grapevine node` runs as a child process on a one-validator
 * genesis (it leads every slot), and the CLI (`tx transfer --wait`, `status`, `keys`) talks to it
 * over JSON-RPC on 127.0.0.1, as a user would.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { toHex } from '../../src/codec/bytes.ts'
import { genesisHash } from '../../src/codec/objects.ts'
import { readKeyFile } from '../../src/crypto/keyfile.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis, genesisToJson } from '../../src/ledger/genesis.ts'
import type { AccountView, NodeStatusView, TxLookupView } from '../../src/rpc/backend.ts'
import { RpcClient } from '../../src/rpc/client.ts'
import type { BlockView } from '../../src/rpc/views.ts'
import { CLI_SCRIPT, type CliResult, REPO_ROOT, TailBuffer, freePort, runCli, stopChild, waitForRpc } from '../helpers/process.ts'

const TEST_TIMEOUT_MS = 90_000
const SLOT_MS = 250
const AMOUNT = 12_345n
const FEE = 1n

/** A failing command: non-zero exit, nothing on stdout, exactly one `grapevine: …` line on stderr. */
function assertOneLineError(outcome: CliResult, pattern: RegExp, label: string): void {
  const context = `${label}: ${JSON.stringify(outcome)}`
  assert.equal(outcome.signal, null, context)
  assert.ok(outcome.code !== null && outcome.code !== 0, context)
  assert.equal(outcome.stdout, '', context)
  const lines = outcome.stderr.split('\n').filter((line) => line.length > 0)
  assert.equal(lines.length, 1, context)
  assert.match(lines[0] as string, /^grapevine: /, context)
  assert.match(lines[0] as string, pattern, context)
  assert.doesNotMatch(outcome.stderr, /\n\s+at /, `${label}: no stack trace`)
}

describe('grapevine CLI end to end against a node process', () => {
  const tempDir = mkdtempSync(join(tmpdir(), 'grapevine-e2e-'))
  const genesisPath = join(tempDir, 'genesis.json')
  const dataDir = join(tempDir, 'data')
  const genesis = devnetGenesis({ validatorCount: 1, genesisTime: Math.floor(Date.now() / 1000) * 1000, slotMs: SLOT_MS })
  const sender = devKeypair(7)
  const recipient = devKeypair(50).publicKey
  let rpcPort = 0
  let rpcAddress = ''
  let client: RpcClient
  let nodeProcess: ChildProcess | undefined
  let nodeStderr = new TailBuffer()
  let transferTxid = ''

  async function startNode(): Promise<void> {
    nodeStderr = new TailBuffer()
    const child = spawn(
      process.execPath,
      [CLI_SCRIPT, 'node', '--genesis', genesisPath, '--data-dir', dataDir, '--key', 'dev:0', '--rpc', rpcAddress],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', GRAPEVINE_LOG_LEVEL: 'info' } },
    )
    nodeProcess = child
    child.stdout?.on('data', (chunk: Buffer) => nodeStderr.push(chunk))
    child.stderr?.on('data', (chunk: Buffer) => nodeStderr.push(chunk))
    await waitForRpc(client.url, { child, stderr: nodeStderr, timeoutMs: 30_000 })
  }

  async function account(address: Uint8Array): Promise<AccountView> {
    return client.call<AccountView>('state_getAccount', [toHex(address)])
  }

  before(
    async () => {
      writeFileSync(genesisPath, JSON.stringify(genesisToJson(genesis), null, 2))
      rpcPort = await freePort()
      rpcAddress = `127.0.0.1:${rpcPort}`
      client = new RpcClient(`http://${rpcAddress}`, 5_000)
      await startNode()
    },
    { timeout: TEST_TIMEOUT_MS },
  )

  after(
    async () => {
      if (nodeProcess !== undefined) await stopChild(nodeProcess, 'SIGTERM', 10_000)
      rmSync(tempDir, { recursive: true, force: true })
    },
    { timeout: TEST_TIMEOUT_MS },
  )

  it('tx transfer --wait is included and moves the balances', { timeout: TEST_TIMEOUT_MS }, async () => {
    const senderBefore = await account(sender.publicKey)
    const recipientBefore = await account(recipient)
    assert.equal(senderBefore.nonce, 0)

    const outcome = await runCli(
      ['tx', 'transfer', '--to', toHex(recipient), '--amount', AMOUNT.toString(), '--key', 'dev:7', '--rpc', rpcAddress, '--wait'],
      { timeoutMs: 45_000 },
    )
    assert.equal(outcome.code, 0, `${JSON.stringify(outcome)}\nnode log:\n${nodeStderr.toString()}`)
    const lines = outcome.stdout.trimEnd().split('\n')
    const txid = lines[lines.length - 1] as string
    assert.match(txid, /^0x[0-9a-f]{64}$/)
    assert.match(outcome.stderr, /included at height \d+/)
    transferTxid = txid

    const found = await client.call<TxLookupView | null>('tx_get', [txid])
    assert.ok(found !== null, 'the node knows the transaction')
    assert.ok(found.status === 'included' || found.status === 'finalized', found.status)
    assert.equal(found.tx.from, toHex(sender.publicKey))
    assert.equal(found.tx.to, toHex(recipient))
    assert.equal(found.tx.amount, AMOUNT.toString())
    assert.equal(found.tx.fee, FEE.toString())
    assert.equal(found.tx.nonce, 0)
    assert.ok(found.height !== undefined && found.height >= 1, `included at height ${found.height}`)
    const block = await client.call<BlockView>('chain_getBlock', [found.height])
    assert.equal(block.hash, found.blockHash)
    assert.ok((block.transactions as string[]).includes(txid), 'the block lists the txid')

    const senderAfter = await account(sender.publicKey)
    const recipientAfter = await account(recipient)
    assert.equal(BigInt(recipientAfter.balance), BigInt(recipientBefore.balance) + AMOUNT)
    assert.equal(BigInt(senderAfter.balance), BigInt(senderBefore.balance) - AMOUNT - FEE)
    assert.equal(senderAfter.nonce, 1)
    assert.equal(senderAfter.pendingNonce, 1)
  })

  it('status prints the node status as JSON', { timeout: TEST_TIMEOUT_MS }, async () => {
    const outcome = await runCli(['status', '--rpc', rpcAddress])
    assert.equal(outcome.code, 0, JSON.stringify(outcome))
    const status = JSON.parse(outcome.stdout) as NodeStatusView
    assert.equal(status.chainId, genesis.chainId)
    assert.equal(status.genesisHash, toHex(genesisHash(genesis)))
    assert.equal(status.validator, toHex(devKeypair(0).publicKey))
    assert.ok(status.height >= 1, 'blocks were produced')
    assert.match(status.headHash, /^0x[0-9a-f]{64}$/)
    // A URL works as well as HOST:PORT.
    const byUrl = await runCli(['status', '--rpc', `http://${rpcAddress}`])
    assert.equal(byUrl.code, 0, JSON.stringify(byUrl))
    assert.equal((JSON.parse(byUrl.stdout) as NodeStatusView).genesisHash, status.genesisHash)
  })

  it('keys dev 3 prints devnet key 3 and warns that it is public', { timeout: TEST_TIMEOUT_MS }, async () => {
    const outcome = await runCli(['keys', 'dev', '3'])
    assert.equal(outcome.code, 0, JSON.stringify(outcome))
    const key = JSON.parse(outcome.stdout) as { address: string; secretKey: string }
    assert.deepEqual(key, { address: toHex(devKeypair(3).publicKey), secretKey: toHex(devKeypair(3).seed) })
    assert.match(outcome.stderr, /public/)
  })

  it('keys new --out writes a mode-0600 key file and prints only its address', { timeout: TEST_TIMEOUT_MS }, async () => {
    const keyPath = join(tempDir, 'new-key.json')
    const outcome = await runCli(['keys', 'new', '--out', keyPath])
    assert.equal(outcome.code, 0, JSON.stringify(outcome))
    const address = outcome.stdout.trim()
    assert.match(address, /^0x[0-9a-f]{64}$/)
    assert.doesNotMatch(outcome.stdout, /secret/i, 'the secret goes to the file, not the terminal')
    assert.equal(statSync(keyPath).mode & 0o777, 0o600)
    const file = JSON.parse(readFileSync(keyPath, 'utf8')) as { address: string; secretKey: string }
    assert.equal(file.address, address)
    assert.match(file.secretKey, /^0x[0-9a-f]{64}$/)
    assert.equal(toHex(readKeyFile(keyPath).publicKey), address, 'the file round-trips to the same key')

    // A second key never overwrites the first.
    const again = await runCli(['keys', 'new', '--out', keyPath])
    assertOneLineError(again, /cannot write .*EEXIST/, 'keys new onto an existing file')
    assert.equal((JSON.parse(readFileSync(keyPath, 'utf8')) as { address: string }).address, address)

    // The new key file works as --key (it has no funds, so the node refuses the transfer, in one line).
    const unfunded = await runCli(['tx', 'transfer', '--to', toHex(recipient), '--amount', '1', '--key', keyPath, '--rpc', rpcAddress])
    assertOneLineError(unfunded, /TX_INSUFFICIENT_FUNDS/, 'transfer from an unfunded key file')
  })

  it('failures are one clear line on stderr with a non-zero exit', { timeout: TEST_TIMEOUT_MS }, async () => {
    const closedPort = await freePort()
    const to = toHex(recipient)
    // Each CLI start costs a couple of CPU-seconds; run them side by side with a generous bound.
    const options = { timeoutMs: 75_000 }
    const [unreachable, unreachableTx, badHost, badTo, missingKey, nonceTooLow] = await Promise.all([
      runCli(['status', '--rpc', `127.0.0.1:${closedPort}`], options),
      runCli(['tx', 'transfer', '--to', to, '--amount', '5', '--key', 'dev:8', '--rpc', `127.0.0.1:${closedPort}`], options),
      runCli(['status', '--rpc', '256.256.256.256:8545'], options),
      runCli(['tx', 'transfer', '--to', '0x1234', '--amount', '5', '--key', 'dev:8', '--rpc', rpcAddress], options),
      runCli(['tx', 'transfer', '--to', to, '--amount', '5', '--key', join(tempDir, 'no-such-key.json'), '--rpc', rpcAddress], options),
      runCli(['tx', 'transfer', '--to', to, '--amount', '5', '--nonce', '0', '--key', 'dev:7', '--rpc', rpcAddress], options),
    ])
    assertOneLineError(unreachable, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${closedPort}.*ECONNREFUSED`), 'status, nothing listening')
    assertOneLineError(unreachableTx, /cannot reach/, 'tx transfer, nothing listening')
    assertOneLineError(badHost, /cannot reach http:\/\/256\.256\.256\.256:8545/, 'status, invalid host')
    assertOneLineError(badTo, /--to: .*0x followed by 64 hex digits/, 'bad --to')
    assertOneLineError(missingKey, /cannot read key file .*no-such-key\.json.*ENOENT/, 'missing key file')
    assertOneLineError(nonceTooLow, /TX_NONCE_TOO_LOW/, 'nonce already used')
    // None of the refused commands moved funds.
    assert.equal((await account(devKeypair(8).publicKey)).nonce, 0)
    assert.equal((await account(sender.publicKey)).nonce, 1)
  })

  it('stops cleanly on SIGTERM and restarts from its data directory', { timeout: TEST_TIMEOUT_MS }, async () => {
    const beforeStop = await client.call<NodeStatusView>('node_status')
    const stopped = await stopChild(nodeProcess as ChildProcess, 'SIGTERM', 15_000)
    assert.deepEqual(stopped, { code: 0, signal: null, forced: false }, `node log:\n${nodeStderr.toString()}`)

    await startNode()
    const afterRestart = await client.call<NodeStatusView>('node_status')
    assert.equal(afterRestart.genesisHash, beforeStop.genesisHash)
    assert.ok(afterRestart.height >= beforeStop.height, `height went back from ${beforeStop.height} to ${afterRestart.height}`)
    const canonical = await client.call<BlockView>('chain_getBlock', [beforeStop.height])
    assert.equal(canonical.hash, beforeStop.headHash, 'the pre-restart head is still canonical')
    const found = await client.call<TxLookupView | null>('tx_get', [transferTxid])
    assert.ok(found?.status === 'included' || found?.status === 'finalized', found?.status)
    assert.equal((await account(recipient)).balance, (1_000_000_000_000n + AMOUNT).toString())
  })
})
