// Sync benchmark: full state sync, state repair and block catch-up between two nodes over libp2p.
//
//   node --import tsx scripts/bench/sync.ts [--part a|b|c|all] [--accounts 1000000] [--blocks 1000]
//        [--txs-per-block 20] [--seed 1] [--json]
//   (experiments: [--node-cache N] [--leaves-depth N] [--leaves-page N] [--in-flight N] [--all-repairs];
//    SYNC_BENCH_DEBUG=1 prints each process's heap and longest event-loop stall every 5 s)
//
// Two real nodes (GrapevineNode on LevelDB in temp dirs + Network: TCP, Noise, Yamux, node
// defaults) on 127.0.0.1, in two processes so each has its own event loop, as two machines would:
//
//   node A (child process, `--role server`): holds the data and serves the sync protocol.
//   node B (this process): fresh, syncs from A, which is its bootstrap peer (so, like a real node,
//   it redials A if libp2p drops the connection; drops are counted and printed). B's libp2p gets
//   a Metrics stub that only collects the raw TCP sockets: "wire" bytes are socket.bytesRead +
//   socket.bytesWritten on B's side (both directions, everything: Noise, Yamux,
//   multistream-select, pings). "Payload" bytes are the sync protocol's frames, both directions
//   (encoding + 4-byte length prefix: requests counted by the bench, responses by Network).
//
// (a) Full state sync of --accounts accounts. A's state is built DIRECTLY into A's LevelDB
//     (buildSubtree over seeded random sorted key hashes, nodes written through ChainStore
//     batches, before A opens, so A's node cache starts cold): a 1M-account genesis would not do,
//     because B opens the same genesis and would build that state itself instead of syncing it.
//     No header points at this root: B runs the real StateSyncEngine + driveStateSync (default
//     options, through a SyncTransport over A's Network) — the SyncManager's state phase minus the
//     header download. Reported: seconds, wire and payload bytes, bytes per raw account record
//     (48 B = 32-byte key hash + 8-byte balance + 8-byte nonce; target <= 1.5), and sync time over
//     a LOCAL bulk load of the same sorted records (buildSubtree, then every node written into a
//     fresh LevelDB through ChainStore batches of the engine's commitBatchNodes: the write path of
//     the sync's commits; target <= 3). B's trie is then walked in full (every node's hash
//     checked, leaves counted) and its root compared with A's.
// (b) Repair: A changes d = 1, 10, 100, 1,000 existing accounts (applyUpdates on its current root,
//     new nodes committed); B, holding the previous root, reconciles to the new one with
//     StateSyncEngine. Each d runs twice, on a fresh change of d accounts each time: with the
//     engine's default options, then with leaf ranges off (leavesModeMinDepth 65: a pure
//     node-by-node Merkle descent). Once a default run has re-fetched the whole state, larger d
//     are not re-run with default options (printed as such; --all-repairs runs them). Reported:
//     wire and payload bytes, requests, deepest trie level fetched by hash, and wire bytes as % of
//     (a)'s (target: grows with d, not n; d = 100 under 1 %). The changed accounts are read back
//     from B's store at the new root.
// (c) Catch-up: A has a chain of --blocks blocks with --txs-per-block transfers each (built with
//     Chain.buildBlock/importOwnBlock by the slot leaders' dev keys, genesis time in the past);
//     a fresh node C at genesis runs headers-first block sync (ChainSync.fetchHeaders, then
//     fetchAndImport with full validation through GrapevineNode.importBlock). Reported: seconds
//     (headers, bodies + import, total), blocks/s, bytes. C's head must equal A's.
//
// --part b needs (a)'s synced state, so it runs (a) first. Progress goes to stderr; figures to
// stdout (--json: one JSON object on the last line). Temp dirs are removed at the end (also on
// Ctrl-C). Memory: up to ≈ 2 GiB RSS per process at 1M accounts. Default run ≈ 4–5 min on 2 cores.
import '../../src/polyfill.ts'
import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import type { Socket } from 'node:net'
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fixedPacker } from '../../src/chain/chain.ts'
import { ChainSync } from '../../src/sync/chain-sync.ts'
import { bytesEqual, toHex, toHexKey } from '../../src/codec/bytes.ts'
import { type SyncRequest, type SyncResponse, encodeSyncRequest } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { Genesis, SignedTx } from '../../src/ledger/types.ts'
import type { Network } from '../../src/net/network.ts'
import { systemRuntime, systemTimers } from '../../src/util/clock.ts'
import { PacedTransport } from '../../src/sync/pacing.ts'
import { GrapevineNode } from '../../src/node/node.ts'
import { decodeNode, nodeHash } from '../../src/state/nodes.ts'
import { type AccountUpdate, EMPTY_ROOT, applyUpdates, buildSubtree, getAccount } from '../../src/state/trie.ts'
import { ChainStore } from '../../src/store/chain-store.ts'
import { seededRandom } from '../../src/util/random.ts'
import { leaderOf, socketCollector, startBenchNetwork } from './util.ts'
import { LevelStore } from '../../src/store/level.ts'
import {
  DEFAULT_STATE_SYNC_OPTIONS,
  type StateSyncOptions,
  type StateSyncStore,
  StateSyncEngine,
  type SyncPeerPool,
  type SyncTransport,
  chainStoreTarget,
  driveStateSync,
} from '../../src/sync/state-sync.ts'

// ---------------------------------------------------------------- options

type Part = 'a' | 'b' | 'c' | 'all'

interface Args {
  part: Part
  accounts: number
  blocks: number
  txsPerBlock: number
  seed: number
  json: boolean
  /** Internal: the child process serving as node A. */
  role: 'client' | 'server'
  genesisTime: number
  /** Run (b)'s default-options repair for every d, even after one re-fetched the whole state. */
  allRepairs: boolean
  /** Part (c)'s client keeps everything (no pruning): isolates the import from the prune runs. */
  clientArchive: boolean
  /** StateSyncEngine options for (a) and (b) (--leaves-depth, --leaves-page, --in-flight). */
  state: Partial<StateSyncOptions>
  /** nodeCacheEntries of nodes A, B and C (default: the node's default). */
  nodeCache: number | undefined
}

const USAGE =
  'usage: node --import tsx scripts/bench/sync.ts [--part a|b|c|all] [--accounts 1000000] [--blocks 1000] [--txs-per-block 20] [--seed 1]\n       [--node-cache N] [--leaves-depth N] [--leaves-page N] [--in-flight N] [--all-repairs] [--client-archive] [--json]'

function parseArgs(argv: string[]): Args {
  const args: Args = { part: 'all', accounts: 1_000_000, blocks: 1_000, txsPerBlock: 20, seed: 1, json: false, role: 'client', genesisTime: 0, nodeCache: undefined, state: {}, allRepairs: false, clientArchive: false }
  const number = (flag: string, text: string | undefined, min: number): number => {
    const value = Number((text ?? '').replaceAll('_', ''))
    if (!Number.isSafeInteger(value) || value < min) fail(`${flag} needs an integer >= ${min}`)
    return value
  }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string
    const value = argv[i + 1]
    if (flag === '--json' || flag === '--all-repairs' || flag === '--client-archive') {
      if (flag === '--json') args.json = true
      else if (flag === '--client-archive') args.clientArchive = true
      else args.allRepairs = true
      continue
    }
    if (flag === '--help') {
      console.log(USAGE)
      process.exit(0)
    }
    if (flag === '--part') {
      if (value !== 'a' && value !== 'b' && value !== 'c' && value !== 'all') fail('--part must be a, b, c or all')
      args.part = value
    } else if (flag === '--accounts') args.accounts = number(flag, value, 0)
    else if (flag === '--blocks') args.blocks = number(flag, value, 0)
    else if (flag === '--txs-per-block') args.txsPerBlock = number(flag, value, 0)
    else if (flag === '--seed') args.seed = number(flag, value, 0)
    else if (flag === '--role') args.role = value === 'server' ? 'server' : 'client'
    else if (flag === '--genesis-time') args.genesisTime = number(flag, value, 0)
    else if (flag === '--node-cache') args.nodeCache = number(flag, value, 1)
    else if (flag === '--leaves-depth') args.state.leavesModeMinDepth = number(flag, value, 1)
    else if (flag === '--leaves-page') args.state.leavesPerRequest = number(flag, value, 1)
    else if (flag === '--in-flight') args.state.maxInFlightPerPeer = number(flag, value, 1)
    else fail(`unknown option ${flag}`)
    i++
  }
  if (args.role === 'client' && args.part !== 'c' && args.accounts < 2) fail('--accounts must be at least 2')
  if (args.role === 'client' && (args.part === 'c' || args.part === 'all') && args.blocks < 1) fail('--blocks must be at least 1')
  return args
}

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`)
  process.exit(2)
}

// ---------------------------------------------------------------- shared fixtures

const SLOT_MS = 1_000
const VALIDATORS = 4
/** Raw size of one account record: key hash + balance + nonce. */
const RAW_RECORD_BYTES = 32 + 8 + 8
const REPAIR_SIZES = [1, 10, 100, 1_000]
/** ChainStore's default nodeCacheEntries. */
const NODE_DEFAULT_CACHE = 500_000


/** Both processes build the same genesis: 4 validators (dev keys 0..3) and the transfer senders. */
function benchGenesis(args: Args): Genesis {
  return devnetGenesis({
    validatorCount: VALIDATORS,
    genesisTime: args.genesisTime,
    slotMs: SLOT_MS,
    fundedCount: VALIDATORS + args.txsPerBlock,
    chainId: 'grapevine-bench-sync',
  })
}

/**
 * `count` accounts with uniformly random 32-byte key hashes (as SHA-256 of addresses are), sorted
 * by key, with random balances and nonces. Deterministic in `seed`.
 */
function makeRecords(count: number, seed: number): AccountUpdate[] {
  const random = seededRandom(seed)
  const raw = new Uint8Array(32 * count)
  const view = new DataView(raw.buffer)
  for (let i = 0; i < 8 * count; i++) view.setUint32(4 * i, Math.floor(random() * 4294967296))
  // Sort by the first 6 bytes (a number), ties by the whole key.
  const prefix = new Float64Array(count)
  for (let i = 0; i < count; i++) prefix[i] = view.getUint32(32 * i) * 65536 + view.getUint16(32 * i + 4)
  const order = Array.from({ length: count }, (_, i) => i)
  const key = (i: number) => raw.subarray(32 * i, 32 * i + 32)
  order.sort((a, b) => (prefix[a] as number) - (prefix[b] as number) || Buffer.compare(key(a), key(b)))
  const sorted = new Uint8Array(32 * count)
  const records: AccountUpdate[] = []
  for (let rank = 0; rank < count; rank++) {
    sorted.set(key(order[rank] as number), 32 * rank)
    const keyHash = sorted.subarray(32 * rank, 32 * rank + 32)
    if (rank > 0 && Buffer.compare(records[rank - 1]?.keyHash as Uint8Array, keyHash) === 0) throw new Error('duplicate random key')
    const balance = BigInt(Math.floor(random() * 2 ** 40)) + 1n
    records.push({ keyHash, account: { balance, nonce: Math.floor(random() * 1_000) } })
  }
  return records
}


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve))
const now = () => performance.now()

/** Temp dirs of this process: removed on exit, also after Ctrl-C or a kill. */
const tempDirs = new Set<string>()

function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `grapevine-bench-sync-${label}-`))
  tempDirs.add(dir)
  return dir
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

/** SYNC_BENCH_DEBUG=1: every 5 s, each process prints its heap and longest event-loop stall. */
function startDebugMonitor(label: string): void {
  if (process.env['SYNC_BENCH_DEBUG'] !== '1') return
  const delay = monitorEventLoopDelay({ resolution: 20 })
  delay.enable()
  setInterval(() => {
    const memory = process.memoryUsage()
    process.stderr.write(
      `[debug ${label}] heap ${fmt(memory.heapUsed / 2 ** 20)} MiB, rss ${fmt(memory.rss / 2 ** 20)} MiB, longest event-loop stall ${fmt(delay.max / 1e6)} ms\n`,
    )
    delay.reset()
  }, 5_000).unref()
}

process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130))

// ---------------------------------------------------------------- IPC between B (parent) and A (child)

interface ServerReady {
  type: 'ready'
  peerId: string
  address: string
  stateRoot: Uint8Array | null
  stateNodes: number
  stateBuildMs: number
  chainHeight: number
  chainHead: Uint8Array
  chainTxs: number
  chainBuildMs: number
}

interface Mutated {
  type: 'mutated'
  root: Uint8Array
  newNodes: number
  updates: Array<{ keyHash: Uint8Array; balance: bigint; nonce: number }>
}

type FromServer = ServerReady | Mutated | { type: 'stopped' } | { type: 'error'; message: string }
type ToServer = { cmd: 'mutate'; d: number; seed: number } | { cmd: 'stop' }

class ServerChannel {
  private readonly inbox: FromServer[] = []
  private waiter: ((message: FromServer) => void) | undefined
  private exited: string | undefined

  constructor(readonly child: ChildProcess) {
    child.on('message', (message) => {
      const typed = message as FromServer
      if (this.waiter !== undefined) {
        const resolve = this.waiter
        this.waiter = undefined
        resolve(typed)
      } else this.inbox.push(typed)
    })
    child.on('exit', (code, signal) => {
      this.exited = `node A exited (code ${code}, signal ${signal})`
      this.waiter?.({ type: 'error', message: this.exited })
      this.waiter = undefined
    })
  }

  async next(): Promise<FromServer> {
    const queued = this.inbox.shift()
    if (queued !== undefined) return queued
    if (this.exited !== undefined) return { type: 'error', message: this.exited }
    return new Promise((resolve) => {
      this.waiter = resolve
    })
  }

  async ask<T extends FromServer['type']>(command: ToServer | undefined, expected: T): Promise<Extract<FromServer, { type: T }>> {
    if (command !== undefined) this.child.send(command)
    const answer = await this.next()
    if (answer.type === 'error') throw new Error(`node A: ${answer.message}`)
    if (answer.type !== expected) throw new Error(`node A answered ${answer.type}, expected ${expected}`)
    return answer as Extract<FromServer, { type: T }>
  }
}

// ---------------------------------------------------------------- node A (child process)

async function serverMain(args: Args): Promise<void> {
  const send = (message: FromServer) => process.send?.(message)
  const dir = tempDir('a')
  let node: GrapevineNode | undefined
  let network: Network | undefined
  try {
    const genesis = benchGenesis(args)
    let records: AccountUpdate[] = []
    let root = EMPTY_ROOT
    let stateNodes = 0
    let stateBuildMs = 0
    if (args.accounts > 0) {
      // The fixture is written into A's LevelDB before the node opens the same directory, so A
      // starts with a cold node cache (like a node that restarted).
      records = makeRecords(args.accounts, args.seed)
      const started = now()
      const built = buildSubtree(records, 0)
      root = built.root
      stateNodes = built.nodes.size
      await writeNodes(join(dir, 'chain'), built.nodes, 100_000)
      stateBuildMs = now() - started
    }
    // An archive node: part (c) fetches every body from height 1 (a pruned node keeps the last 128).
    node = await GrapevineNode.open({ genesis, dataDir: dir, pruning: { archive: true }, ...(args.nodeCache === undefined ? {} : { nodeCacheEntries: args.nodeCache }) })
    const store = node.store
    let chainTxs = 0
    let chainBuildMs = 0
    if (args.blocks > 0) {
      const started = now()
      const chain = node.chain
      const senders = Array.from({ length: args.txsPerBlock }, (_, i) => devKeypair(VALIDATORS + i))
      const validatorKeys = Array.from({ length: VALIDATORS }, (_, i) => devKeypair(i))
      const random = seededRandom(args.seed + 77)
      for (let height = 1; height <= args.blocks; height++) {
        const txs: SignedTx[] = []
        for (const [j, from] of senders.entries()) {
          const to = new Uint8Array(32)
          for (let k = 0; k < 32; k += 4) new DataView(to.buffer).setUint32(k, Math.floor(random() * 4294967296))
          txs.push(signTransfer({ chainId: genesis.chainId, from, to, amount: BigInt(1 + j), fee: 1n, nonce: height - 1 }))
        }
        const slot = chain.head.header.slot + 1
        const { block, execution } = chain.buildBlock(slot, chain.schedule.slotStart(slot) + 1, leaderOf(chain, validatorKeys, slot), fixedPacker(txs))
        if (block.txs.length !== txs.length) throw new Error(`block ${height} took ${block.txs.length} of ${txs.length} txs`)
        await chain.importOwnBlock(block, execution)
        chainTxs += block.txs.length
      }
      chainBuildMs = now() - started
    }
    const started = (await startBenchNetwork(node, devKeypair(9_001), { dht: false, targetPeers: 0 })).network
    network = started
    send({
      type: 'ready',
      peerId: started.peerId,
      address: started.listenAddresses()[0] as string,
      stateRoot: args.accounts > 0 ? root : null,
      stateNodes,
      stateBuildMs,
      chainHeight: node.chain.head.header.height,
      chainHead: node.chain.head.hash,
      chainTxs,
      chainBuildMs,
    })

    // Commands, one at a time.
    const commands: ToServer[] = []
    let wake: (() => void) | undefined
    process.on('message', (message) => {
      commands.push(message as ToServer)
      wake?.()
    })
    process.on('disconnect', () => {
      commands.push({ cmd: 'stop' })
      wake?.()
    })
    for (;;) {
      const command = commands.shift()
      if (command === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        wake = undefined
        continue
      }
      if (command.cmd === 'stop') break
      // mutate: d distinct existing accounts get a new balance and nonce.
      const random = seededRandom(command.seed)
      const chosen = new Set<number>()
      while (chosen.size < Math.min(command.d, records.length)) chosen.add(Math.floor(random() * records.length))
      const updates: AccountUpdate[] = []
      for (const index of chosen) {
        const record = records[index] as AccountUpdate
        const account = { balance: record.account.balance + 1_000n + BigInt(index % 997), nonce: record.account.nonce + 1 }
        records[index] = { keyHash: record.keyHash, account }
        updates.push({ keyHash: record.keyHash, account })
      }
      const { root: next, nodes } = applyUpdates(store, root, updates)
      await store.batch().putNodes(nodes).commit()
      root = next
      send({
        type: 'mutated',
        root,
        newNodes: nodes.size,
        updates: updates.map((u) => ({ keyHash: u.keyHash.slice(), balance: u.account.balance, nonce: u.account.nonce })),
      })
    }
  } catch (error) {
    send({ type: 'error', message: (error as Error).stack ?? String(error) })
  } finally {
    await network?.stop().catch(() => undefined)
    await node?.stop().catch(() => undefined)
    removeTempDir(dir)
  }
  send({ type: 'stopped' })
  process.disconnect?.()
}

// ---------------------------------------------------------------- node B side (this process)

/** A syncing node: GrapevineNode on LevelDB in a temp dir, Network with socket byte counters. */
interface Peer {
  node: GrapevineNode
  network: Network
  stopServices: () => void
  sockets: Set<Socket>
  dir: string
  /** Node A's peer id. */
  server: string
  /** Times the connection to A was lost (libp2p's connection monitor aborts it when a ping times out). */
  drops: number
  /** Sync request frames sent. */
  requestBytes: number
}

async function openPeer(genesis: Genesis, label: string, keyIndex: number, server: ServerReady, nodeCache: number | undefined, archive = false): Promise<Peer> {
  const dir = tempDir(label)
  // One signature worker per core, as `grapevine node` and `grapevine join` run.
  const node = await GrapevineNode.open({ genesis, dataDir: dir, verifyWorkers: availableParallelism(), ...(nodeCache === undefined ? {} : { nodeCacheEntries: nodeCache }), ...(archive ? { pruning: { archive: true } } : {}) })
  const sockets = new Set<Socket>()
  const { network, services } = await startBenchNetwork(
    node,
    devKeypair(keyIndex),
    // A as bootstrap peer: like a real node, the network redials it (every 3 s) if the connection drops.
    { dht: false, bootstrap: [server.address], targetPeers: 1, transportMetrics: socketCollector(sockets) },
  )
  const peer: Peer = { node, network, stopServices: services.stop, sockets, dir, server: server.peerId, drops: 0, requestBytes: 0 }
  services.peers.events.on('removed', (peerId: string) => {
    if (peerId !== server.peerId || stopping) return
    peer.drops++
    progress(`node ${label}: connection to node A lost (the network redials it)`)
  })
  // Admitted on our side, then on A's (a sync request from a peer A has not admitted is refused).
  for (let tries = 0; ; tries++) {
    if (network.session(server.peerId)?.admitted === true) {
      const probe = await network
        .request(server.peerId, { type: 'getHeaders', locator: [node.chain.genesisBlock], max: 1 }, 2_000)
        .catch(() => undefined)
      if (probe?.type === 'headers') break
    }
    if (tries > 100) throw new Error('node A did not admit us')
    await sleep(100)
  }
  return peer
}

async function closePeer(peer: Peer): Promise<void> {
  peer.stopServices()
  await peer.network.stop().catch(() => undefined)
  await peer.node.stop().catch(() => undefined)
  removeTempDir(peer.dir)
}

interface ByteCounters {
  wire: number
  payload: number
  responses: number
}

function counters(peer: Peer): ByteCounters {
  let wire = 0
  for (const socket of peer.sockets) wire += socket.bytesRead + socket.bytesWritten
  const responses = peer.network.syncBytesReceived()
  return { wire, payload: peer.requestBytes + responses, responses }
}

/**
 * The Network as a SyncTransport, counting request frames (encoding + 4-byte length prefix, as
 * Network counts them); responses are counted by Network.syncBytesReceived(). Both survive a
 * reconnection (Network's per-session counters do not).
 */
function countingTransport(peer: Peer): SyncTransport {
  return {
    request: (peerId, request, timeoutMs) => {
      peer.requestBytes += encodeSyncRequest(request).length + 4
      return peer.network.request(peerId, request, timeoutMs)
    },
  }
}

/** Paced like a node's sync manager: never past the serving node's per-peer quotas (src/sync/pacing.ts). */
function pacedTransport(peer: Peer): PacedTransport {
  return new PacedTransport({ ...countingTransport(peer), syncBytesReceived: () => peer.network.syncBytesReceived() }, systemRuntime)
}

function since(before: ByteCounters, after: ByteCounters): ByteCounters {
  return { wire: after.wire - before.wire, payload: after.payload - before.payload, responses: after.responses - before.responses }
}

/** Serves the one peer (A); a bad answer or repeated failures abort the run. */
function singlePeerPool(peer: Peer, abort: AbortController): SyncPeerPool & { failures: string[] } {
  const failures: string[] = []
  return {
    failures,
    candidates: () => (peer.network.session(peer.server)?.admitted === true ? [peer.server] : []),
    reportBad: (_peerId, reason, kind) => abort.abort(new Error(`node A answered badly (${kind}): ${reason}`)),
    reportFailure: (_peerId, reason) => {
      progress(`request failed: ${reason}`)
      failures.push(reason)
      if (failures.length > 50) abort.abort(new Error(`too many failed requests: ${reason}`))
    },
  }
}

function stateStore(store: ChainStore): StateSyncStore {
  return chainStoreTarget(store)
}

interface StateSyncRun {
  ms: number
  bytes: ByteCounters
  requests: number
  nodeRequests: number
  leafRequests: number
  nodesFetched: number
  leavesFetched: number
  bytesFetched: number
  nodesCommitted: number
  failures: number
  /** Connection drops during the run. */
  drops: number
  /** Deepest trie level (nibbles from the root) of a node fetched by hash. */
  depth: number
}

/** Runs StateSyncEngine + driveStateSync against A until B holds `root`. */
async function stateSync(peer: Peer, root: Uint8Array, options: Partial<StateSyncOptions> = {}, localRoot?: Uint8Array): Promise<StateSyncRun> {
  const fetched = new Set<string>()
  const counted = pacedTransport(peer)
  let nodeRequests = 0
  let leafRequests = 0
  const transport: SyncTransport = {
    request: async (peerId: string, request: SyncRequest, timeoutMs: number): Promise<SyncResponse> => {
      const response = await counted.request(peerId, request, timeoutMs)
      if (request.type === 'getNodes') {
        nodeRequests++
        if (response.type === 'nodes') {
          request.hashes.forEach((hash, i) => {
            if ((response.nodes[i]?.length ?? 0) > 0) fetched.add(toHexKey(hash))
          })
        }
      } else if (request.type === 'getLeaves') leafRequests++
      return response
    },
  }
  const abort = new AbortController()
  const pool = singlePeerPool(peer, abort)
  // B names the root it already holds, as SyncManager does with its head's state root.
  const engine = new StateSyncEngine(root, stateStore(peer.node.store), options, localRoot)
  const before = counters(peer)
  const dropsBefore = peer.drops
  const started = now()
  let reportedAt = started
  const onProgress = () => {
    if (now() - reportedAt < 10_000) return
    reportedAt = now()
    const p = engine.progress
    progress(`  ${fmt(p.leavesFetched)} leaves + ${fmt(p.nodesFetched)} nodes fetched, ${fmt(p.nodesCommitted)} nodes committed, ${fmt((reportedAt - started) / 1000, 0)} s`)
  }
  await driveStateSync(engine, transport, pool, { clock: Date.now, timers: systemTimers, signal: abort.signal, idleWaitMs: 50, onProgress }).catch((error: unknown) => {
    throw abort.signal.reason instanceof Error ? abort.signal.reason : error
  })
  const ms = now() - started
  const bytes = since(before, counters(peer))
  if (!peer.node.store.hasNode(root)) throw new Error('state sync finished without the root in the store')
  return {
    ms,
    bytes,
    requests: engine.progress.requests,
    nodeRequests,
    leafRequests,
    nodesFetched: engine.progress.nodesFetched,
    leavesFetched: engine.progress.leavesFetched,
    bytesFetched: engine.progress.bytesFetched,
    nodesCommitted: engine.progress.nodesCommitted,
    failures: pool.failures.length,
    drops: peer.drops - dropsBefore,
    depth: fetchedDepth(peer.node.store, root, fetched),
  }
}

/** Walks down from the root through the nodes fetched by hash; returns the deepest level reached. */
function fetchedDepth(store: ChainStore, root: Uint8Array, fetched: Set<string>): number {
  let deepest = -1
  const stack: Array<[Uint8Array, number]> = [[root, 0]]
  while (stack.length > 0) {
    const [hash, depth] = stack.pop() as [Uint8Array, number]
    if (!fetched.has(toHexKey(hash))) continue
    deepest = Math.max(deepest, depth)
    const bytes = store.getNode(hash)
    if (bytes === undefined) continue
    const node = decodeNode(bytes)
    if (node.kind === 'branch') for (const child of node.children) if (child !== undefined) stack.push([child, depth + 1])
  }
  return deepest
}

/** Reads the whole trie under `root` from the store, checking every node's hash; counts leaves. */
async function verifyTrie(store: ChainStore, root: Uint8Array): Promise<{ nodes: number; leaves: number }> {
  let nodes = 0
  let leaves = 0
  const stack: Uint8Array[] = [root]
  while (stack.length > 0) {
    const hash = stack.pop() as Uint8Array
    const bytes = store.getNode(hash)
    if (bytes === undefined) throw new Error(`node ${toHex(hash)} is missing`)
    if (!bytesEqual(nodeHash(bytes), hash)) throw new Error(`node ${toHex(hash)} does not hash to its key`)
    const node = decodeNode(bytes)
    nodes++
    if (node.kind === 'leaf') leaves++
    else for (const child of node.children) if (child !== undefined) stack.push(child)
    // Keep the event loop (and the libp2p connection's pings) alive during the walk.
    if (nodes % 20_000 === 0) await yieldToLoop()
  }
  return { nodes, leaves }
}

/** The baseline: rebuild the trie from the sorted records and write it into a fresh LevelDB. */
async function localBulkLoad(records: AccountUpdate[], batchNodes: number): Promise<{ buildMs: number; writeMs: number; ms: number; nodes: number; root: Uint8Array }> {
  const dir = tempDir('local')
  try {
    const started = now()
    const built = buildSubtree(records, 0)
    const builtAt = now()
    await writeNodes(join(dir, 'chain'), built.nodes, batchNodes)
    const done = now()
    return { buildMs: builtAt - started, writeMs: done - builtAt, ms: done - started, nodes: built.nodes.size, root: built.root }
  } finally {
    removeTempDir(dir)
  }
}

/**
 * Writes trie nodes into a fresh LevelDB through ChainStore batches of `batchNodes`, in the given
 * (post-)order, with a node's default LevelStore and ChainStore settings: the write path the
 * state sync's commits take.
 */
async function writeNodes(path: string, nodes: Map<string, Uint8Array>, batchNodes: number): Promise<void> {
  const store = new ChainStore(await LevelStore.open(path))
  try {
    let batch = store.batch()
    for (const [hex, bytes] of nodes) {
      batch.putNode(Buffer.from(hex, 'hex'), bytes)
      if (batch.size >= batchNodes) {
        await batch.commit()
        batch = store.batch()
      }
    }
    await batch.commit()
  } finally {
    await store.close()
  }
}

// ---------------------------------------------------------------- output helpers

function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return String(value)
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function fmtBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${bytes} B`
}

/** Prints an aligned table; a row with a single cell is printed as is (a note spanning the row). */
function printTable(headers: string[], rows: string[][]): void {
  const cellRows = rows.filter((row) => row.length > 1)
  const widths = headers.map((header, col) => Math.max(header.length, ...cellRows.map((row) => (row[col] ?? '').length)))
  const line = (cells: string[]) =>
    '  ' +
    cells
      .map((cell, col) => (col === 0 ? cell.padEnd(widths[col] as number) : cell.padStart(widths[col] as number)))
      .join('  ')
      .trimEnd()
  console.log(line(headers))
  console.log('  ' + widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of rows) console.log(row.length > 1 ? line(row) : `  ${row[0] ?? ''}`)
}

const round = (value: number, digits = 3) => Math.round(value * 10 ** digits) / 10 ** digits
const benchStart = performance.now()
const progress = (text: string) => process.stderr.write(`[sync bench ${((performance.now() - benchStart) / 1000).toFixed(1)} s] ${text}\n`)
let stopping = false

// ---------------------------------------------------------------- main

async function clientMain(args: Args): Promise<void> {
  const runA = args.part === 'a' || args.part === 'b' || args.part === 'all'
  const runB = args.part === 'b' || args.part === 'all'
  const runC = args.part === 'c' || args.part === 'all'
  // Slots 1..blocks lie in the past, so block timestamps are valid now.
  args.genesisTime = Date.now() - (args.blocks + 120) * SLOT_MS
  const genesis = benchGenesis(args)
  const machine = { node: process.version, cores: cpus().length, cpu: cpus()[0]?.model.trim() ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), load1m: round(loadavg()[0] ?? 0, 2) }
  console.log(`Sync benchmark: two nodes over libp2p (TCP + Noise + Yamux) on 127.0.0.1, node A in a child process`)
  console.log(`  node ${machine.node}, ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB} GiB, load avg (1 min) ${machine.load1m}`)
  console.log(
    `  settings: part=${args.part} accounts=${runA ? fmt(args.accounts) : '-'} blocks=${runC ? fmt(args.blocks) : '-'} txs/block=${runC ? args.txsPerBlock : '-'} seed=${args.seed} node-cache=${fmt(args.nodeCache ?? NODE_DEFAULT_CACHE)}` +
      ` state-sync options: ${JSON.stringify({ ...DEFAULT_STATE_SYNC_OPTIONS, ...args.state })}`,
  )

  const self = fileURLToPath(import.meta.url)
  progress(`starting node A (building ${runA ? `${fmt(args.accounts)} accounts` : 'no state'}${runC ? ` and ${fmt(args.blocks)} blocks` : ''})`)
  const child = fork(
    self,
    [
      '--role', 'server',
      '--accounts', String(runA ? args.accounts : 0),
      '--blocks', String(runC ? args.blocks : 0),
      '--txs-per-block', String(args.txsPerBlock),
      '--seed', String(args.seed),
      '--genesis-time', String(args.genesisTime),
      ...(args.nodeCache === undefined ? [] : ['--node-cache', String(args.nodeCache)]),
    ],
    { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  )
  const channel = new ServerChannel(child)
  const peers: Peer[] = []
  const json: Record<string, unknown> = { machine, settings: { part: args.part, accounts: args.accounts, blocks: args.blocks, txsPerBlock: args.txsPerBlock, seed: args.seed } }
  try {
    const server = await channel.ask(undefined, 'ready')
    if (runA) progress(`node A: ${fmt(server.stateNodes)} trie nodes built and stored in ${fmt(server.stateBuildMs / 1000, 1)} s`)
    if (runC) progress(`node A: ${fmt(server.chainHeight)} blocks (${fmt(server.chainTxs)} txs) built in ${fmt(server.chainBuildMs / 1000, 1)} s`)

    let fullWire = Number.NaN
    if (runA) {
      const root = server.stateRoot as Uint8Array
      const records = makeRecords(args.accounts, args.seed)
      progress('local bulk load (baseline)')
      const local = await localBulkLoad(records, args.state.commitBatchNodes ?? DEFAULT_STATE_SYNC_OPTIONS.commitBatchNodes)
      progress(`local bulk load: ${fmt(local.ms / 1000, 1)} s`)
      if (!bytesEqual(local.root, root)) throw new Error('local rebuild does not match node A root')
      records.length = 0

      progress('part (a): full state sync')
      const peer = await openPeer(genesis, 'b', 9_002, server, args.nodeCache)
      peers.push(peer)
      const sync = await stateSync(peer, root, args.state)
      let heldRoot = root
      progress(`state sync: ${fmt(sync.ms / 1000, 1)} s`)
      const verified = await verifyTrie(peer.node.store, root)
      if (verified.leaves !== args.accounts) throw new Error(`B holds ${verified.leaves} accounts, expected ${args.accounts}`)
      const raw = args.accounts * RAW_RECORD_BYTES
      fullWire = sync.bytes.wire
      const wireRatio = sync.bytes.wire / raw
      const timeRatio = sync.ms / local.ms
      console.log(`\n(a) Full state sync: ${fmt(args.accounts)} accounts, ${fmt(server.stateNodes)} trie nodes, raw records ${fmtBytes(raw)} (${RAW_RECORD_BYTES} B each)`)
      printTable(
        ['metric', 'value', 'target'],
        [
          ['sync time (s)', fmt(sync.ms / 1000, 2), ''],
          ['accounts/s', fmt(args.accounts / (sync.ms / 1000)), ''],
          ['wire bytes (TCP, both directions)', `${fmt(sync.bytes.wire)} (${fmtBytes(sync.bytes.wire)})`, ''],
          ['sync-protocol payload bytes (both directions)', `${fmt(sync.bytes.payload)} (${fmtBytes(sync.bytes.payload)})`, ''],
          ['  of which responses', fmt(sync.bytes.responses), ''],
          ['wire bytes / raw record bytes', fmt(wireRatio, 3), '<= 1.5'],
          ['payload bytes / raw record bytes', fmt(sync.bytes.payload / raw, 3), ''],
          ['requests (getNodes + getLeaves)', `${fmt(sync.requests)} (${sync.nodeRequests} + ${sync.leafRequests})`, ''],
          ['failed requests / connection drops', `${fmt(sync.failures)} / ${fmt(sync.drops)}`, ''],
          ['nodes committed by B', fmt(sync.nodesCommitted), ''],
          ['local bulk load (s): build + write', `${fmt(local.ms / 1000, 2)} = ${fmt(local.buildMs / 1000, 2)} + ${fmt(local.writeMs / 1000, 2)}`, ''],
          ['sync time / local bulk load', fmt(timeRatio, 2), '<= 3'],
          ['B root = A root (full walk, hashes checked)', `yes (${fmt(verified.nodes)} nodes, ${fmt(verified.leaves)} leaves)`, ''],
        ],
      )
      json['a'] = {
        accounts: args.accounts,
        trieNodes: server.stateNodes,
        seconds: round(sync.ms / 1000),
        wireBytes: sync.bytes.wire,
        payloadBytes: sync.bytes.payload,
        responseBytes: sync.bytes.responses,
        rawBytes: raw,
        wirePerRaw: round(wireRatio),
        payloadPerRaw: round(sync.bytes.payload / raw),
        requests: sync.requests,
        leafRequests: sync.leafRequests,
        nodeRequests: sync.nodeRequests,
        failures: sync.failures,
        connectionDrops: sync.drops,
        localBulkLoadSeconds: round(local.ms / 1000),
        localBuildSeconds: round(local.buildMs / 1000),
        localWriteSeconds: round(local.writeMs / 1000),
        syncPerLocal: round(timeRatio),
        rootsEqual: true,
        targets: { wirePerRawMax: 1.5, syncPerLocalMax: 3, wireMet: wireRatio <= 1.5, timeMet: timeRatio <= 3 },
      }

      if (runB) {
        progress('part (b): repairs')
        const rows: string[][] = []
        const results: unknown[] = []
        let mutation = 0
        let fullRefetchAt: number | undefined
        for (const d of REPAIR_SIZES.filter((size) => size <= args.accounts)) {
          for (const variant of ['default', 'leaf ranges off'] as const) {
            if (variant === 'leaf ranges off' && (args.state.leavesModeMinDepth ?? 0) > 64) continue
            if (variant === 'default' && fullRefetchAt !== undefined && !args.allRepairs) {
              // More changed accounts cannot make the descent find more of the old trie: skip (~1 min).
              const reason = `not run: d = ${fmt(fullRefetchAt)} already re-fetched the whole state (--all-repairs runs it)`
              rows.push([`${fmt(d).padEnd(5)}  ${variant.padStart(15)}  ${reason}`])
              results.push({ d, variant, skipped: reason })
              continue
            }
            const changed = await channel.ask({ cmd: 'mutate', d, seed: args.seed * 1_000 + ++mutation }, 'mutated')
            const run = await stateSync(peer, changed.root, variant === 'default' ? args.state : { ...args.state, leavesModeMinDepth: 65 }, heldRoot)
            heldRoot = changed.root
            for (const update of changed.updates) {
              const account = getAccount(peer.node.store, changed.root, update.keyHash)
              if (account?.balance !== update.balance || account.nonce !== update.nonce) throw new Error(`B does not hold the changed account ${toHex(update.keyHash)}`)
            }
            if (variant === 'default' && run.leavesFetched >= 0.99 * args.accounts) fullRefetchAt ??= d
            const share = (100 * run.bytes.wire) / fullWire
            rows.push([
              fmt(d),
              variant,
              fmt(run.bytes.wire),
              fmt(run.bytes.payload),
              fmt(run.bytes.wire / d, 0),
              fmt(run.requests),
              `${run.nodeRequests}/${run.leafRequests}`,
              fmt(run.nodesFetched),
              fmt(run.leavesFetched),
              String(run.depth),
              fmt(run.ms, 0),
              `${share < 0.01 ? share.toFixed(4) : share.toFixed(2)} %`,
            ])
            results.push({
              d,
              variant,
              wireBytes: run.bytes.wire,
              payloadBytes: run.bytes.payload,
              wireBytesPerAccount: round(run.bytes.wire / d, 1),
              requests: run.requests,
              nodeRequests: run.nodeRequests,
              leafRequests: run.leafRequests,
              nodesFetched: run.nodesFetched,
              leavesFetched: run.leavesFetched,
              depth: run.depth,
              ms: round(run.ms, 1),
              percentOfFull: round(share, 4),
              newNodesAtA: changed.newNodes,
              failures: run.failures,
              connectionDrops: run.drops,
            })
          }
        }
        console.log(`\n(b) Repair of d changed accounts out of ${fmt(args.accounts)} (B holds the previous root; % = wire bytes / (a)'s wire bytes)`)
        printTable(['d', 'engine options', 'wire B', 'payload B', 'wire B/acct', 'requests', 'nodes/leaves req', 'nodes', 'leaves', 'depth', 'ms', '% of full'], rows)
        console.log('  target: bytes grow with d, not n; d = 100 under 1 % of the full transfer')
        const drops = results.reduce<number>((sum, r) => sum + (r as { connectionDrops: number }).connectionDrops, 0)
        if (drops > 0) console.log(`  connection drops during (b): ${drops} (the time of those runs includes the redial)`)
        json['b'] = results
      }
    }

    if (runC) {
      progress('part (c): block catch-up')
      const peer = await openPeer(genesis, 'c', 9_003, server, args.nodeCache, args.clientArchive)
      peers.push(peer)
      const chainSync = new ChainSync({
        chain: peer.node.chain,
        transport: pacedTransport(peer),
        peers: singlePeerPool(peer, new AbortController()),
        now: () => Date.now(),
        timers: systemTimers,
        importBlock: async (block) => {
          await peer.node.importBlock(block, { kind: 'sync', peerId: peer.server })
        },
      })
      const before = counters(peer)
      const dropsBefore = peer.drops
      const started = now()
      const headers = await chainSync.fetchHeaders(peer.server, server.chainHeight)
      const headersAt = now()
      const imported = await chainSync.fetchAndImport(headers)
      const done = now()
      const bytes = since(before, counters(peer))
      const head = peer.node.chain.head
      if (head.header.height !== server.chainHeight || !bytesEqual(head.hash, server.chainHead)) throw new Error('C did not reach A head')
      const seconds = (done - started) / 1000
      console.log(`\n(c) Block catch-up: ${fmt(server.chainHeight)} blocks × ${args.txsPerBlock} transfers, headers first, full validation (signatures checked)`)
      printTable(
        ['metric', 'value'],
        [
          ['headers fetched + verified (s)', fmt((headersAt - started) / 1000, 2)],
          ['bodies fetched + imported (s)', fmt((done - headersAt) / 1000, 2)],
          ['total (s)', fmt(seconds, 2)],
          ['blocks/s', fmt(imported / seconds, 0)],
          ['txs/s', fmt((imported * args.txsPerBlock) / seconds, 0)],
          ['wire bytes (TCP, both directions)', `${fmt(bytes.wire)} (${fmtBytes(bytes.wire)})`],
          ['sync-protocol payload bytes', `${fmt(bytes.payload)} (${fmtBytes(bytes.payload)})`],
          ['connection drops', fmt(peer.drops - dropsBefore)],
          ['C head = A head', 'yes'],
        ],
      )
      json['c'] = {
        blocks: imported,
        txsPerBlock: args.txsPerBlock,
        headersSeconds: round((headersAt - started) / 1000),
        bodiesSeconds: round((done - headersAt) / 1000),
        seconds: round(seconds),
        blocksPerSecond: round(imported / seconds, 1),
        wireBytes: bytes.wire,
        payloadBytes: bytes.payload,
        connectionDrops: peer.drops - dropsBefore,
      }
    }
  } finally {
    stopping = true
    for (const peer of peers) await closePeer(peer)
    if (child.connected) {
      child.send({ cmd: 'stop' } satisfies ToServer)
      const stopped = await Promise.race([channel.next(), sleep(15_000).then(() => undefined)])
      if (stopped?.type !== 'stopped') child.kill()
    }
    // A server that answered 'stopped' but is still up (a close left hanging) must not outlive us.
    if (child.exitCode === null) child.kill('SIGKILL')
  }
  if (args.json) console.log(JSON.stringify(json, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)))
}

const parsed = parseArgs(process.argv.slice(2))
startDebugMonitor(parsed.role === 'server' ? 'A' : 'B')
if (parsed.role === 'server') await serverMain(parsed)
else {
  await clientMain(parsed)
  // Stray timers (request timeouts, the driver's wake-ups) would keep the process up for seconds.
  process.exit(0)
}
