/**
 * Anti-entropy between real nodes (runNode: store + chain + libp2p + sync manager) on 127.0.0.1,
 * DHT off, peers wired explicitly:
 *
 * - a fresh node joins a devnet holding 10,000+ accounts by state sync (not by replaying blocks);
 * - a full node on LevelDB restarts after downtime and catches up by block sync;
 * - a 2+2 validator partition heals onto one chain;
 * - a transaction submitted while a node was cut off reaches it by mempool reconciliation;
 * - a peer serving forged state, or a forged header, is penalised and replaced, and sync completes.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Connection, Stream } from '@libp2p/interface'
import { bytesEqual, toHex, toHexKey } from '../../src/codec/bytes.ts'
import { encodeUnsignedHeader } from '../../src/codec/objects.ts'
import {
  MAX_SYNC_REQUEST_BYTES,
  type SyncRequest,
  type SyncResponse,
  decodeSyncRequest,
  encodeSyncResponse,
} from '../../src/codec/wire.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { sign, signingMessage } from '../../src/crypto/sign.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { Genesis, Header, SignedTx } from '../../src/ledger/types.ts'
import { frame } from '../../src/net/framing.ts'
import { readOneFrame } from '../../src/net/framing.ts'
import type { Network } from '../../src/net/network.ts'
import { createLogger } from '../../src/util/logger.ts'
import { DISCONNECT_SCORE } from '../../src/peers/scores.ts'
import { type RunNodeOptions, type RunningNode, runNode } from '../../src/node/run.ts'
import type { SyncManager, SyncManagerOptions, SyncStatusView } from '../../src/sync/manager.ts'
import { serveSyncRequest } from '../../src/sync/server.ts'

const SLOT_MS = 250
/** Accounts created by transfers to fresh addresses (the devnet's 100 funded keys send them). */
const FRESH_ACCOUNTS = 10_000
const SENDERS = 100

interface NodeSpec {
  name: string
  /** Dev key index: a validator of the genesis (also its libp2p identity). */
  key?: number
  dataDir?: string
  bootstrap?: RunningNode[]
  sync?: Partial<SyncManagerOptions>
  produce?: boolean
}

/** Starts nodes and remembers them, so `stopAll` always runs them down. */
class Cluster {
  readonly running = new Set<RunningNode>()
  private readonly dirs: string[] = []

  constructor(readonly genesis: Genesis) {}

  async start(spec: NodeSpec): Promise<RunningNode> {
    const options: RunNodeOptions = {
      genesis: this.genesis,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: (spec.bootstrap ?? []).flatMap((peer) => net(peer).listenAddresses()),
      dht: false,
      rpcPort: 0,
      name: spec.name,
      network: { inboundConnectionThreshold: 10_000 },
      log: createLogger({ name: spec.name }),
      sync: { statusIntervalMs: 500, ...spec.sync },
      ...(spec.key === undefined ? {} : { key: devKeypair(spec.key) }),
      ...(spec.dataDir === undefined ? {} : { dataDir: spec.dataDir }),
      ...(spec.produce === undefined ? {} : { produce: spec.produce }),
    }
    const node = await runNode(options)
    this.running.add(node)
    return node
  }

  async stop(node: RunningNode): Promise<void> {
    this.running.delete(node)
    await node.stop()
  }

  tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'grapevine-sync-'))
    this.dirs.push(dir)
    return dir
  }

  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.running].map((node) => node.stop()))
    this.running.clear()
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  }
}

function net(node: RunningNode): Network {
  assert.ok(node.network !== undefined, 'networking is on')
  return node.network
}

function syncOf(node: RunningNode): SyncManager {
  assert.ok(node.sync !== undefined, 'anti-entropy is on')
  return node.sync
}

function devnet(): Genesis {
  return devnetGenesis({ validatorCount: 4, genesisTime: Date.now(), slotMs: SLOT_MS, fundedCount: SENDERS })
}

/** Polls `check` until it returns something other than undefined/false; `explain` adds context to a timeout. */
async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs: number, intervalMs = 25, explain?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${explain === undefined ? '' : `: ${explain()}`}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function head(node: RunningNode): { height: number; hash: string; stateRoot: string } {
  const info = node.node.chain.head
  return { height: info.header.height, hash: toHexKey(info.hash), stateRoot: toHexKey(info.header.stateRoot) }
}

/** The canonical hash `node` has at `height`, hex ('' when none). */
function canonicalAt(node: RunningNode, height: number): string {
  const hash = node.node.chain.getCanonicalHash(height)
  return hash === undefined ? '' : toHexKey(hash)
}

/** `node`'s head is on `reference`'s canonical chain (same hash at the same height). */
function sameChain(node: RunningNode, reference: RunningNode): boolean {
  const { height, hash } = head(node)
  return height > 0 && canonicalAt(reference, height) === hash
}

function admitted(node: RunningNode, peer: RunningNode): boolean {
  return net(node).admittedPeers().some((session) => session.id === net(peer).peerId)
}

/** Waits until `node` has finished at least one catch-up and its head is on `reference`'s chain at `minHeight` or above. */
async function waitCaughtUp(node: RunningNode, reference: RunningNode, minHeight: number, timeoutMs: number): Promise<void> {
  await waitFor(
    `the node to catch up to height ${minHeight}`,
    () => syncOf(node).status().catchUps >= 1 && head(node).height >= minHeight && sameChain(node, reference),
    timeoutMs,
    25,
    () => `head ${JSON.stringify(head(node))}, reference at ${head(reference).height}, sync ${JSON.stringify(syncOf(node).status())}`,
  )
}

/**
 * Samples a node's sync status every 10 ms while it catches up. status() describes the current
 * catch-up attempt only: when the chain moved during a state sync, the next (short, block) attempt
 * replaces it, so the samples are what shows how the node got where it is.
 */
function recordSync(node: RunningNode): { samples: SyncStatusView[]; stop: () => void } {
  /** Bounded by the test's duration (one sample per 10 ms). */
  const samples: SyncStatusView[] = []
  const sample = () => {
    const status = syncOf(node).status()
    if (status.mode !== 'none') samples.push(status)
  }
  const timer = setInterval(sample, 10)
  // A failing test must not be kept alive by its sampler.
  timer.unref()
  return {
    samples,
    stop: () => {
      clearInterval(timer)
      sample()
    },
  }
}

/** The last sample of a state-sync attempt, if any. */
function lastStateSync(samples: SyncStatusView[]): SyncStatusView | undefined {
  return samples.filter((status) => status.mode === 'state').pop()
}

/** Replaces a node's sync protocol handler by one that answers honestly, then lets `tamper` edit the answer. */
async function tamperSyncAnswers(node: RunningNode, tamper: (response: SyncResponse, request: SyncRequest) => SyncResponse): Promise<{ tampered: number }> {
  const network = net(node)
  const counter = { tampered: 0 }
  await network.libp2p.unhandle(network.protocols.sync)
  await network.libp2p.handle(
    network.protocols.sync,
    async (stream: Stream, connection: Connection) => {
      void connection
      try {
        const request = decodeSyncRequest(await readOneFrame(stream, MAX_SYNC_REQUEST_BYTES, 5_000))
        const honest = serveSyncRequest(request, { chain: node.node.chain, mempool: node.node.mempool })
        const answer = tamper(honest, request)
        if (answer !== honest) counter.tampered++
        stream.send(frame(encodeSyncResponse(answer)))
        await stream.close()
      } catch (error) {
        stream.abort(error as Error)
      }
    },
    { maxInboundStreams: 16 },
  )
  return counter
}

function flipLastByte(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes)
  out[out.length - 1] = (out[out.length - 1] as number) ^ 0x01
  return out
}

/** Forged state: one node's bytes changed, or one account's balance raised. */
function forgeState(response: SyncResponse): SyncResponse {
  if (response.type === 'nodes') {
    const index = response.nodes.findIndex((node) => node.length > 0)
    if (index < 0) return response
    const nodes = response.nodes.slice()
    nodes[index] = flipLastByte(nodes[index] as Uint8Array)
    return { type: 'nodes', nodes }
  }
  if (response.type === 'leaves' && response.leaves.length > 0) {
    const leaves = response.leaves.slice()
    const first = leaves[0] as (typeof leaves)[number]
    leaves[0] = { ...first, balance: first.balance + 1_000_000n }
    return { ...response, leaves }
  }
  return response
}

/** Penalty reasons and score a node's network holds for `peer`. */
function verdictOn(node: RunningNode, peer: RunningNode): { score: number; reasons: Record<string, number> } {
  const id = net(peer).peerId
  const peers = node.services?.peers
  assert.ok(peers !== undefined, 'networking is on')
  return { score: peers.score(id), reasons: peers.scores.reasons(id) }
}

// ---------------------------------------------------------------- a devnet holding 10,000+ accounts

describe('sync against a devnet holding 10,000+ accounts', { timeout: 330_000 }, () => {
  const cluster = new Cluster(devnet())
  /**
   * Two of the four genesis validators run (v0 and v1: 700 of 1,000 stake); the others' slots
   * stay empty. Every validator must accept and execute the 10,000 transfers, which costs seconds
   * of CPU each on a shared test machine, so two are enough here (the partition test runs four).
   */
  const validators: RunningNode[] = []
  const freshAddresses: Uint8Array[] = []

  before(
    async () => {
      for (let i = 0; i < 2; i++) {
        validators.push(await cluster.start({ name: `v${i}`, key: i, bootstrap: validators.slice() }))
      }
      await waitFor('validators to admit each other', () => validators.every((node) => net(node).admittedPeers().length === 1), 15_000)
      // 10,000 transfers to fresh addresses: 100 senders × 100 nonces, into v0's mempool and gossiped.
      const submitter = validators[0] as RunningNode
      const senders = Array.from({ length: SENDERS }, (_, i) => devKeypair(i))
      for (let nonce = 0; nonce < FRESH_ACCOUNTS / SENDERS; nonce++) {
        senders.forEach((from, sender) => {
          const to = sha256(new TextEncoder().encode(`fresh/${sender}/${nonce}`))
          freshAddresses.push(to)
          const signed = signTransfer({ chainId: cluster.genesis.chainId, from, to, amount: 1n + BigInt(nonce), fee: 1n, nonce })
          submitter.node.acceptTx(signed, { kind: 'local' })
        })
      }
      const last = freshAddresses[freshAddresses.length - 1] as Uint8Array
      await waitFor(
        'every fresh account to be on chain at every validator',
        () => validators.every((node) => node.node.mempool.size === 0 && node.node.chain.getAccount(last).balance > 0n),
        60_000,
        100,
      )
      // Past the joiners' state-sync threshold (16 blocks).
      await waitFor('the chain to pass height 30', () => head(validators[0] as RunningNode).height >= 30, 30_000)
      // The joins below start from a certificate. A fork at start-up (each validator built and voted
      // blocks before they met) can leave both bound to votes on abandoned branches (VotingPolicy:
      // neither's vote there can be outvoted by 1/3 while the other two validators are offline), and
      // then finality resumes only once those votes fall 64 blocks below the head (~45 s here).
      await waitFor('finality to follow the head', () => validators.every((node) => node.node.chain.finalized.height >= head(node).height - 3), 120_000)
    },
    { timeout: 220_000 },
  )

  after(() => cluster.stopAll(), { timeout: 30_000 })

  it('a fresh node joins by state sync, not by replaying from genesis, and reaches the same head and state root', { timeout: 60_000 }, async () => {
    const reference = validators[0] as RunningNode
    const target = head(reference).height
    // Small pages keep the state sync busy for a few seconds while new blocks are gossiped to the
    // joiner: long enough to show it if those blocks made it replay history from genesis meanwhile.
    const joiner = await cluster.start({
      name: 'joiner',
      bootstrap: [reference, validators[1] as RunningNode],
      sync: { stateSyncThresholdBlocks: 16, state: { leavesPerRequest: 512, maxInFlightPerPeer: 1 } },
    })
    const recorder = recordSync(joiner)
    await waitCaughtUp(joiner, reference, target, 45_000)
    recorder.stop()
    const status = lastStateSync(recorder.samples)

    assert.ok(status !== undefined && status.mode === 'state', `no state-sync catch-up seen: ${JSON.stringify(syncOf(joiner).status())}`)
    assert.equal(status.startHeight, 0)
    assert.ok(status.stateEntriesFetched >= FRESH_ACCOUNTS, `only ${status.stateEntriesFetched} state entries fetched`)
    assert.ok(status.pivotHeight !== undefined && status.pivotHeight >= target - 3, `pivot ${status.pivotHeight}, target ${target}`)
    assert.ok(status.blocksImported < target / 4, `${status.blocksImported} blocks imported by sync for a chain of ${target}`)

    // Same head hash and state root as a validator at the same height.
    const mine = head(joiner)
    assert.equal(canonicalAt(reference, mine.height), mine.hash)
    assert.equal(toHexKey((reference.node.chain.getHeader(Buffer.from(mine.hash, 'hex')) as Header).stateRoot), mine.stateRoot)
    // History before the pivot was not replayed: joined from a certificate, not even its headers were fetched.
    const pivot = status.pivotHeight as number
    assert.equal(status.certified, true, 'the pivot is a certified block')
    for (const height of [1, Math.floor(pivot / 2), pivot - 1]) {
      const hash = joiner.node.chain.getCanonicalHash(height)
      assert.equal(hash, undefined, `nothing of block ${height} (below the pivot ${pivot}) was fetched`)
    }
    // Accounts answer the same (read at the joiner's head state root on both nodes).
    const root = joiner.node.chain.head.header.stateRoot
    for (let i = 0; i < freshAddresses.length; i += 97) {
      const address = freshAddresses[i] as Uint8Array
      assert.deepEqual(joiner.node.chain.getAccount(address, root), reference.node.chain.getAccount(address, root))
    }
    for (let i = 0; i < SENDERS; i += 9) {
      const address = devKeypair(i).publicKey
      assert.deepEqual(joiner.node.chain.getAccount(address, root), reference.node.chain.getAccount(address, root))
    }
    // And it keeps following the chain afterwards.
    const followed = head(joiner).height + 3
    await waitFor('the joiner to follow new blocks', () => head(joiner).height >= followed && sameChain(joiner, reference), 15_000)
    await cluster.stop(joiner)
  })

  it('a peer serving forged state is penalised and replaced, and state sync completes from an honest peer', { timeout: 60_000 }, async () => {
    const reference = validators[0] as RunningNode
    const mallory = await cluster.start({ name: 'mallory', bootstrap: [reference], sync: { stateSyncThresholdBlocks: 16 } })
    await waitCaughtUp(mallory, reference, head(reference).height, 30_000)
    const forged = await tamperSyncAnswers(mallory, forgeState)

    // The joiner meets the forger first, then an honest validator.
    const joiner = await cluster.start({ name: 'joiner-state', bootstrap: [mallory], sync: { stateSyncThresholdBlocks: 16 } })
    const recorder = recordSync(joiner)
    // Mallory may be caught (and banned) before a poll sees it admitted.
    await waitFor('the joiner to meet mallory', () => admitted(joiner, mallory) || verdictOn(joiner, mallory).score < 0, 15_000, 5)
    await net(joiner).dial(net(validators[1] as RunningNode).listenAddresses()[0] as string)
    await waitCaughtUp(joiner, reference, head(reference).height, 45_000)
    recorder.stop()
    const status = lastStateSync(recorder.samples)

    assert.ok(status !== undefined && status.stateEntriesFetched >= FRESH_ACCOUNTS, `no complete state sync seen: ${JSON.stringify(status)}`)
    assert.ok(forged.tampered >= 1, 'mallory served forged state')
    const verdict = verdictOn(joiner, mallory)
    assert.ok(verdict.score < DISCONNECT_SCORE, `mallory's score ${verdict.score}, reasons ${JSON.stringify(verdict.reasons)}`)
    assert.ok(
      Object.keys(verdict.reasons).includes('SYNC_FORGED_STATE'),
      `penalised for the forgery: ${JSON.stringify(verdict.reasons)}`,
    )
    await waitFor('mallory to be disconnected', () => !admitted(joiner, mallory), 10_000)
    assert.ok(joiner.services?.peers.isBanned(net(mallory).peerId))
    // Nothing forged got in: the joiner's state equals the honest chain's at its head.
    const mine = head(joiner)
    assert.equal(canonicalAt(reference, mine.height), mine.hash)
    const root = joiner.node.chain.head.header.stateRoot
    for (let i = 0; i < freshAddresses.length; i += 101) {
      const address = freshAddresses[i] as Uint8Array
      assert.deepEqual(joiner.node.chain.getAccount(address, root), reference.node.chain.getAccount(address, root))
    }
    await cluster.stop(joiner)
    await cluster.stop(mallory)
  })

  it('a peer serving a forged header is penalised and replaced, and sync completes from an honest peer', { timeout: 60_000 }, async () => {
    const reference = validators[0] as RunningNode
    // Mallory block-syncs too, so it holds every header to forge (a certificate-joined node serves none below its pivot).
    const mallory = await cluster.start({ name: 'mallory-headers', bootstrap: [reference], sync: { stateSyncThresholdBlocks: 16, enableStateSync: false } })
    await waitCaughtUp(mallory, reference, head(reference).height, 30_000)
    const schedule = reference.node.chain.schedule
    // A header re-signed by a validator that does not lead its slot (everything else unchanged).
    const forged = await tamperSyncAnswers(mallory, (response) => {
      if (response.type !== 'headers' || response.headers.length < 8) return response
      const headers = response.headers.slice()
      const original = headers[5] as Header
      const leader = schedule.leaderFor(original.slot).address
      const impostor = [0, 1, 2, 3].map((i) => devKeypair(i)).find((key) => !bytesEqual(key.publicKey, leader))
      assert.ok(impostor !== undefined)
      const unsigned = { ...original, proposer: impostor.publicKey, signature: new Uint8Array(64) }
      headers[5] = { ...unsigned, signature: sign(signingMessage(encodeUnsignedHeader(unsigned)), impostor) }
      return { type: 'headers', headers }
    })

    // Block sync (headers first from genesis): a join from a certificate would fetch no early header to forge.
    const joiner = await cluster.start({ name: 'joiner-headers', bootstrap: [mallory], sync: { stateSyncThresholdBlocks: 16, enableStateSync: false } })
    // Mallory may be caught (and banned) before a poll sees it admitted.
    await waitFor('the joiner to meet mallory', () => admitted(joiner, mallory) || verdictOn(joiner, mallory).score < 0, 15_000, 5)
    await net(joiner).dial(net(validators[1] as RunningNode).listenAddresses()[0] as string)
    await waitCaughtUp(joiner, reference, head(reference).height, 45_000)

    assert.ok(forged.tampered >= 1, 'mallory served a forged header')
    const verdict = verdictOn(joiner, mallory)
    assert.ok(verdict.score < DISCONNECT_SCORE, `mallory's score ${verdict.score}, reasons ${JSON.stringify(verdict.reasons)}`)
    assert.ok(
      Object.keys(verdict.reasons).includes('SYNC_FORGED_CHAIN'),
      `penalised for the forged header: ${JSON.stringify(verdict.reasons)}`,
    )
    await waitFor('mallory to be disconnected', () => !admitted(joiner, mallory), 10_000)
    assert.ok(joiner.services?.peers.isBanned(net(mallory).peerId))
    assert.ok(syncOf(joiner).status().catchUps >= 1)
    // The chain goes on meanwhile: a head just imported may be a block the reference has not
    // taken (yet, or any more); the joiner must settle on the reference's canonical chain.
    const mine = await waitFor(
      'the joiner on the reference’s canonical chain',
      () => {
        const at = head(joiner)
        return canonicalAt(reference, at.height) === at.hash ? at : undefined
      },
      15_000,
    )
    assert.equal(mine.stateRoot, toHexKey((reference.node.chain.getHeader(Buffer.from(mine.hash, 'hex')) as Header).stateRoot))
    await cluster.stop(joiner)
    await cluster.stop(mallory)
  })

  it('a full node on LevelDB stopped while the chain advanced catches up by block sync after a restart', { timeout: 60_000 }, async () => {
    const reference = validators[1] as RunningNode
    const dataDir = cluster.tempDir()
    // The first join state-syncs (cheaper than executing the 10,000 transfers again).
    const spec: NodeSpec = { name: 'restarter', dataDir, bootstrap: [validators[0] as RunningNode, reference], sync: { stateSyncThresholdBlocks: 16 } }
    let full = await cluster.start(spec)
    await waitCaughtUp(full, reference, head(reference).height, 40_000)
    const before = head(full)
    await cluster.stop(full)

    const downUntil = before.height + 8
    await waitFor(`the chain to reach ${downUntil} while the node is down`, () => head(reference).height >= downUntil, 20_000)
    // Restarted with the default threshold (64 blocks): the ~8 missed blocks are imported one by one.
    full = await cluster.start({ ...spec, sync: {} })
    // The store kept its chain: the old head is still canonical.
    assert.ok(head(full).height >= before.height)
    assert.equal(canonicalAt(full, before.height), before.hash)
    const recorder = recordSync(full)
    const target = head(reference).height
    await waitCaughtUp(full, reference, target, 30_000)
    recorder.stop()
    assert.ok(recorder.samples.length > 0)
    assert.deepEqual([...new Set(recorder.samples.map((status) => status.mode))], ['blocks'], 'block sync only, no state sync')
    const imported = Math.max(...recorder.samples.map((status) => status.blocksImported))
    assert.ok(imported >= 1, `blocks imported by sync: ${imported}`)
    assert.equal(head(full).stateRoot, toHexKey((reference.node.chain.getHeader(Buffer.from(head(full).hash, 'hex')) as Header).stateRoot))
    // Every block between the old head and the new one is stored with its body (replayed, not state-synced).
    for (let height = before.height + 1; height <= target; height++) {
      assert.ok(full.node.chain.hasBlock(full.node.chain.getCanonicalHash(height) as Uint8Array), `block ${height} imported`)
    }
    await cluster.stop(full)
  })
})

// ---------------------------------------------------------------- partition

describe('a 2+2 validator partition heals onto one chain', { timeout: 90_000 }, () => {
  const cluster = new Cluster(devnet())
  after(() => cluster.stopAll(), { timeout: 30_000 })

  it('both halves produce their own chain, then reconverge on one head and state root once connected', { timeout: 80_000 }, async () => {
    // v0 + v1 hold 700 of 1,000 stake, v2 + v3 hold 300; neither half dials across.
    const v0 = await cluster.start({ name: 'p0', key: 0 })
    const v1 = await cluster.start({ name: 'p1', key: 1, bootstrap: [v0] })
    const v2 = await cluster.start({ name: 'p2', key: 2 })
    const v3 = await cluster.start({ name: 'p3', key: 3, bootstrap: [v2] })
    const all = [v0, v1, v2, v3]
    await waitFor('each half to be connected inside', () => admitted(v0, v1) && admitted(v1, v0) && admitted(v2, v3) && admitted(v3, v2), 15_000)

    // Both halves produce: each reaches height 3 on a chain the other half does not have.
    await waitFor('both halves to grow apart', () => head(v0).height >= 3 && head(v2).height >= 3 && canonicalAt(v0, 1) !== canonicalAt(v2, 1), 40_000, 50)
    assert.equal(net(v0).admittedPeers().length, 1, 'no connection across the partition')
    assert.equal(net(v2).admittedPeers().length, 1, 'no connection across the partition')
    const split = { a: head(v0), b: head(v2), aFirst: canonicalAt(v0, 1), bFirst: canonicalAt(v2, 1) }

    await net(v0).dial(net(v2).listenAddresses()[0] as string)
    await net(v1).dial(net(v3).listenAddresses()[0] as string)

    const converged = await waitFor(
      'all four validators to report the same head',
      () => {
        const heads = all.map(head)
        const first = heads[0] as ReturnType<typeof head>
        return heads.every((other) => other.hash === first.hash && other.height === first.height) && first.height > Math.max(split.a.height, split.b.height)
          ? heads
          : undefined
      },
      40_000,
      10,
    )
    const roots = new Set(converged.map((entry) => entry.stateRoot))
    assert.equal(roots.size, 1, 'one state root')
    // One half's branch was abandoned: everyone agrees on block 1, which is one of the two halves'.
    const firstBlocks = new Set(all.map((node) => canonicalAt(node, 1)))
    assert.equal(firstBlocks.size, 1)
    const winner = [...firstBlocks][0]
    assert.ok(winner === split.aFirst || winner === split.bFirst)
    const losers = winner === split.aFirst ? [v2, v3] : [v0, v1]
    const losingHead = winner === split.aFirst ? split.b : split.a
    for (const node of losers) assert.notEqual(canonicalAt(node, losingHead.height), losingHead.hash, 'the losing branch is no longer canonical')
  })
})

// ---------------------------------------------------------------- mempool reconciliation

/**
 * Disconnects two nodes and makes each forget the other's addresses: any later request (a status
 * round picked before the hang-up, say) would otherwise dial the peer again by its id.
 */
async function cutOff(x: RunningNode, y: RunningNode): Promise<void> {
  const xId = net(x).libp2p.peerId
  const yId = net(y).libp2p.peerId
  const connected = () => net(x).libp2p.getConnections(yId).length > 0 || net(y).libp2p.getConnections(xId).length > 0
  for (let attempt = 0; attempt < 5; attempt++) {
    await net(x).libp2p.hangUp(yId)
    await net(x).libp2p.peerStore.delete(yId)
    await net(y).libp2p.peerStore.delete(xId)
    await sleep(300)
    if (!connected()) break
  }
  await waitFor('the two nodes to be cut off', () => !connected() && !admitted(x, y) && !admitted(y, x), 10_000)
}

describe('mempool reconciliation', { timeout: 60_000 }, () => {
  const cluster = new Cluster(devnet())
  after(() => cluster.stopAll(), { timeout: 30_000 })

  it('a transaction submitted while a node was cut off reaches it by reconciliation, not gossip', { timeout: 50_000 }, async () => {
    // Full nodes only: no one produces, so the transaction stays pending everywhere.
    const a = await cluster.start({ name: 'm-a', sync: { statusIntervalMs: 300 } })
    const b = await cluster.start({ name: 'm-b', bootstrap: [a], sync: { statusIntervalMs: 300 } })
    const c = await cluster.start({ name: 'm-c', sync: { statusIntervalMs: 300 } })
    await net(c).dial(net(a).listenAddresses()[0] as string)
    await waitFor('a, b and c to be connected', () => admitted(b, a) && admitted(c, a) && admitted(a, c), 15_000)

    await cutOff(c, a)

    const signed: SignedTx = signTransfer({ chainId: cluster.genesis.chainId, from: devKeypair(7), to: devKeypair(900).publicKey, amount: 42n, fee: 2n, nonce: 0 })
    const txid = await a.node.submitTx(signed.bytes)
    assert.equal(txid, toHex(signed.id))
    await waitFor('b to hear of the transaction by gossip', () => b.node.mempool.has(signed.idHex), 10_000)
    await sleep(500)
    assert.equal(c.node.mempool.has(signed.idHex), false, 'c is cut off')
    const before = syncOf(c).status().mempoolTxsFetched

    await net(c).dial(net(a).listenAddresses()[0] as string)
    await waitFor('c to get the transaction', () => c.node.mempool.has(signed.idHex), 20_000)
    const status = syncOf(c).status()
    assert.ok(status.mempoolTxsFetched >= before + 1, JSON.stringify(status))
    assert.ok(status.mempoolRepairs >= 1)
    assert.equal(head(c).height, 0, 'nothing was produced: it came from the mempool')
    assert.ok(bytesEqual(c.node.mempoolDigest(), a.node.mempoolDigest()), 'the mempools now agree')
  })
})
