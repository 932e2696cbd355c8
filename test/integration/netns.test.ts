/**
 * Nodes on separate hosts: scripts/netns-devnet.sh puts 5 nodes in 5 Linux network namespaces on
 * one bridge (10.77.0.0/24, all inside namespaces the script creates), each listening on 0.0.0.0
 * with its own address, node 0 the only bootstrap. Checks every node discovers at least 3 peers
 * (at least 2 of them not the bootstrap: found through the DHT), net_peers shows distinct remote
 * addresses, a transaction reaches every node and the blocks agree. Needs root; skipped with a
 * message where namespaces cannot be created. The namespaces are deleted even when a check fails.
 */
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { toHex } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { NodeStatusView, TxLookupView } from '../../src/rpc/backend.ts'
import type { BlockView } from '../../src/rpc/views.ts'
import { REPO_ROOT } from '../helpers/process.ts'
import { waitFor } from '../helpers/net.ts'

const SCRIPT = join(REPO_ROOT, 'scripts', 'netns-devnet.sh')
const NODES = 5
const SUBNET = '10.77.0'
const PREFIX = `gvt${process.pid}`
const run = promisify(execFile)

/** Why the test cannot run here, or false. */
function skipReason(): string | false {
  if (process.platform !== 'linux') return 'netns test skipped: Linux network namespaces only'
  if (process.getuid?.() !== 0) return 'netns test skipped: needs root to create network namespaces (run as root, as CI does)'
  const probe = `${PREFIX}-probe`
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 })
  if (added.status !== 0) return `netns test skipped: 'ip netns add' failed here (${(added.stderr || added.error?.message || 'no ip command').trim()})`
  spawnSync('ip', ['netns', 'del', probe], { timeout: 10_000 })
  return false
}

const skip = skipReason()

interface PeerView {
  peerId: string
  addresses: string[]
}

describe('a devnet of 5 hosts in network namespaces', { skip, timeout: 120_000 }, () => {
  const dir = skip === false ? mkdtempSync(join(tmpdir(), 'grapevine-netns-')) : ''
  const env = { ...process.env, GRAPEVINE_NETNS_PREFIX: PREFIX, GRAPEVINE_NETNS_SUBNET: SUBNET, GRAPEVINE_NETNS_DIR: dir, GRAPEVINE_NETNS_SLOT_MS: '1000' }
  let peerIds: string[] = []

  async function rpc<T>(node: number, method: string, params: unknown[] = []): Promise<T> {
    const { stdout } = await run(SCRIPT, ['rpc', String(node), method, JSON.stringify(params)], { env, timeout: 15_000 })
    const answer = JSON.parse(stdout) as { result?: T; error?: { message: string } }
    if (answer.error !== undefined) throw new Error(`node${node} ${method}: ${answer.error.message}`)
    return answer.result as T
  }

  before(async () => {
    try {
      await run(SCRIPT, ['up', String(NODES)], { env, timeout: 90_000 })
    } catch (error) {
      const logs = Array.from({ length: NODES }, (_, i) => {
        try {
          return `node${i}: ${readFileSync(join(dir, `node${i}`, 'node.log'), 'utf8').slice(-600)}`
        } catch {
          return ''
        }
      })
      throw new Error(`netns-devnet.sh up failed: ${(error as { stderr?: string }).stderr ?? (error as Error).message}\n${logs.join('\n')}`)
    }
    const devnet = JSON.parse(readFileSync(join(dir, 'devnet.json'), 'utf8')) as { nodes: Array<{ peerId: string }> }
    peerIds = devnet.nodes.map((node) => node.peerId)
  })

  after(async () => {
    // Always: stop our nodes and delete every namespace with our prefix.
    await run(SCRIPT, ['down'], { env, timeout: 60_000 }).catch((error: unknown) => process.stderr.write(`netns down failed: ${String(error)}\n`))
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
    for (const line of left.split('\n')) {
      const name = line.split(' ')[0] ?? ''
      if (name.startsWith(`${PREFIX}-`)) spawnSync('ip', ['netns', 'del', name])
    }
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('every node finds at least 3 peers, most through the DHT, each at its own address', async () => {
    let peers: PeerView[][] = []
    await waitFor(
      'every node with ≥ 3 peers',
      async () => {
        peers = await Promise.all(Array.from({ length: NODES }, (_, i) => rpc<PeerView[]>(i, 'net_peers')))
        return peers.every((list) => list.length >= 3)
      },
      { timeoutMs: 40_000, intervalMs: 1_000, detail: () => peers.map((list) => list.length) },
    )
    for (let i = 0; i < NODES; i++) {
      const list = peers[i] as PeerView[]
      const remote = list.map((peer) => /^\/ip4\/([\d.]+)\//.exec(peer.addresses[0] ?? '')?.[1])
      assert.equal(new Set(remote).size, list.length, `node${i}: one distinct remote address per peer: ${remote.join(' ')}`)
      for (const address of remote) {
        assert.ok(address !== undefined && address.startsWith(`${SUBNET}.`), `node${i}: peer address ${address} on the bridge`)
        assert.notEqual(address, `${SUBNET}.${10 + i}`, `node${i}: no connection to itself`)
      }
      // Each peer is at the address of the namespace that runs it.
      for (const peer of list) {
        const index = peerIds.indexOf(peer.peerId)
        assert.ok(index >= 0, `node${i}: peer ${peer.peerId} is one of ours`)
        assert.match(peer.addresses[0] ?? '', new RegExp(`^/ip4/${SUBNET.replace(/\./g, '\\.')}\\.${10 + index}/`))
      }
      if (i > 0) {
        const discovered = list.filter((peer) => peer.peerId !== peerIds[0]).length
        assert.ok(discovered >= 2, `node${i} found ${discovered} peers besides the bootstrap`)
      }
    }
  })

  it('a transaction sent to one host reaches all of them, and their blocks agree', async () => {
    const status = await rpc<NodeStatusView>(NODES - 1, 'node_status')
    const signed = signTransfer({ chainId: status.chainId, from: devKeypair(20), to: devKeypair(21).publicKey, amount: 12_345n, fee: BigInt(status.minFee), nonce: 0 })
    const txid = await rpc<string>(NODES - 1, 'tx_send', [toHex(signed.bytes)])
    assert.equal(txid, toHex(signed.id))
    let found: Array<TxLookupView | null> = []
    await waitFor(
      'the tx included on every node',
      async () => {
        found = await Promise.all(Array.from({ length: NODES }, (_, i) => rpc<TxLookupView | null>(i, 'tx_get', [txid])))
        return found.every((item) => item?.status === 'included' || item?.status === 'finalized')
      },
      { timeoutMs: 30_000, intervalMs: 1_000, detail: () => found.map((item) => item?.status ?? null) },
    )
    const heights = new Set(found.map((item) => item?.height))
    const hashes = new Set(found.map((item) => item?.blockHash))
    assert.equal(heights.size, 1, 'same height everywhere')
    assert.equal(hashes.size, 1, 'same block everywhere')
    const height = found[0]?.height as number
    for (const at of [height - 1, height]) {
      const blocks = await Promise.all(Array.from({ length: NODES }, (_, i) => rpc<BlockView | null>(i, 'chain_getBlock', [at])))
      assert.equal(new Set(blocks.map((block) => block?.hash)).size, 1, `one block at height ${at}`)
    }
  })
})
