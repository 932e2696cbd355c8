/**
 * Real libp2p nodes on 127.0.0.1 in one process: rumor gossip across a sparse mesh, repair of a
 * node that missed a rumor, a silent announcer, no echo to the sender, refusal of another
 * network, and the networking surfaces of RPC and /metrics. Raw libp2p peers (test/helpers/net.ts)
 * play the misbehaving or recording side. In-memory stores, free ports, DHT off.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { bytesEqual, toHex, toHexKey } from '../../src/codec/bytes.ts'
import { INV_TX } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { Genesis, SignedTx } from '../../src/ledger/types.ts'
import type { PeerView } from '../../src/node/rpc-backend.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { Liveness } from '../../src/net/liveness.ts'
import { silentLogger } from '../../src/util/logger.ts'
import { transfer } from '../helpers/chain.ts'
import { RawPeer, connect, genesisStartingNow, hasTx, isAdmitted, isIncluded, net, peerViewsOf, services, sleep, startNode, statusLike, stopAll, waitFor } from '../helpers/net.ts'

const SLOT_MS = 400
/** Anti-entropy rounds are pushed out of the way where a test is about rumor gossip alone. */
const NO_ANTI_ENTROPY = { statusIntervalMs: 600_000 }
const RECIPIENT = devKeypair(7000).publicKey

function genesisNow(validatorCount: number, chainId?: string): Genesis {
  return genesisStartingNow(validatorCount, { slotMs: SLOT_MS, ...(chainId === undefined ? {} : { chainId }) })
}

/** A valid transfer from funded dev key `sender` (chainId grapevine-devnet). */
function freshTx(sender: number, amount = 1_000n): SignedTx {
  return transfer(sender, RECIPIENT, amount, 0)
}

interface RpcAnswer {
  result?: unknown
  error?: { code: number; message: string }
}

async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(10_000),
  })
  assert.equal(response.status, 200)
  const answer = (await response.json()) as RpcAnswer
  assert.equal(answer.error, undefined, `${method}: ${JSON.stringify(answer.error)}`)
  return answer.result as T
}

describe('an 8-node sparse mesh', { timeout: 60_000 }, () => {
  // Ring 0-1-…-7-0 plus chords 0-4 and 2-6: connected, degree 2-3, diameter 3.
  const EDGES: Array<[number, number]> = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7], [7, 0], [0, 4], [2, 6]]
  const nodes: RunningNode[] = []
  let genesis: Genesis

  before(async () => {
    genesis = genesisNow(4)
    for (let i = 0; i < 8; i++) {
      // Dev keys 0..3 are the validators; the rest are full nodes with random identities.
      nodes.push(await startNode({ genesis, name: `n${i}`, ...(i < 4 ? { key: devKeypair(i) } : {}) }))
    }
    await Promise.all(EDGES.map(([a, b]) => connect(nodes[a] as RunningNode, nodes[b] as RunningNode)))
  })

  after(() => stopAll(nodes))

  it('spreads a tx to every node, includes it in a block everywhere, and converges on one head and state root', { timeout: 40_000 }, async () => {
    for (const [i, node] of nodes.entries()) {
      const degree = EDGES.filter(([a, b]) => a === i || b === i).length
      assert.equal(net(node).admittedPeers().length, degree, `node ${i} has exactly its ${degree} mesh links`)
    }
    const signed = freshTx(20)
    // Submitted at a full node (not a validator), two hops from most of the mesh.
    const origin = nodes[5] as RunningNode
    assert.equal(await origin.node.submitTx(signed.bytes), toHex(signed.id))

    await waitFor('the tx at every node (pending or included)', () => nodes.every((running) => hasTx(running.node, signed.idHex)), {
      timeoutMs: 10_000,
      detail: () => nodes.map((running) => hasTx(running.node, signed.idHex)),
    })
    await waitFor('the tx included in a block on every node', () => nodes.every((running) => isIncluded(running.node, signed.idHex)), {
      timeoutMs: 15_000,
      detail: () => nodes.map((running) => running.node.chain.head.header.height),
    })
    // Leaders may briefly fork (two blocks carrying the tx on two branches); heads move every
    // slot, and within a few slots every node reports the same head, with the tx in its chain.
    await waitFor(
      'one head on every node',
      () => {
        const head = (nodes[0] as RunningNode).node.chain.head
        return nodes.every((running) => bytesEqual(running.node.chain.head.hash, head.hash) && isIncluded(running.node, signed.idHex))
      },
      { timeoutMs: 15_000, intervalMs: 5, detail: () => ({ heads: nodes.map((running) => [running.node.chain.head.header.height, toHex(running.node.chain.head.hash).slice(0, 10)]), n1: net(nodes[1] as RunningNode).admittedPeers().map((p) => ({ p: p.id.slice(-6), r: services(nodes[1] as RunningNode).peers.scores.reasons(p.id), s: services(nodes[1] as RunningNode).peers.scores.state(p.id, Date.now()) })), sync: (nodes[1] as RunningNode).sync?.status(), others: [0, 2].map((i) => services(nodes[i] as RunningNode).peers.scores.reasons(net(nodes[1] as RunningNode).localPeerId)) }) },
    )
    // (No I/O can run between the check above and these synchronous reads.)
    const locations = nodes.map((running) => running.node.getTx(signed.id))
    for (const location of locations) {
      assert.ok(location !== null && (location.status === 'included' || location.status === 'finalized'))
      assert.equal(location.blockHash, (locations[0] as { blockHash: string }).blockHash, 'the same block everywhere')
    }
    assert.ok(nodes.every((running) => !running.node.mempool.has(signed.idHex)), 'an included tx leaves every mempool')
    const heads = nodes.map((running) => running.node.status())
    for (const status of heads) {
      assert.ok(status.height >= 1)
      assert.equal(status.stateRoot, (heads[0] as { stateRoot: string }).stateRoot)
    }
    // Below the head, every node has the same canonical block and state root at every height.
    const height = Math.min(...nodes.map((running) => running.node.chain.head.header.height))
    for (let h = 1; h <= height; h++) {
      const reference = (nodes[0] as RunningNode).node.getBlock({ height: h }, false)
      assert.ok(reference !== null)
      for (const running of nodes) assert.deepEqual(running.node.getBlock({ height: h }, false), reference, `height ${h}`)
    }
    // The recipient's balance is the same everywhere.
    const balances = nodes.map((running) => running.node.getAccount(RECIPIENT, false).balance)
    assert.deepEqual(new Set(balances), new Set(['1000']))
  })

  it('net_peers and node_status over RPC show peer id, peers, listen addresses and per-peer counters; /metrics is Prometheus text', { timeout: 20_000 }, async () => {
    const running = nodes[0] as RunningNode
    const network = net(running)
    const neighbours = new Set([1, 7, 4].map((i) => net(nodes[i] as RunningNode).peerId))

    const status = await rpc<{ peerId: string; peers: number; listenAddresses: string[]; height: number; genesisHash: string }>(running.rpcUrl, 'node_status')
    assert.equal(status.peerId, network.peerId)
    assert.equal(status.peers, 3)
    assert.ok(status.listenAddresses.length > 0)
    for (const address of status.listenAddresses) assert.match(address, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3Koo/)
    assert.equal(status.genesisHash, toHex(running.node.chain.genesisHash))

    const peers = await rpc<PeerView[]>(running.rpcUrl, 'net_peers')
    assert.equal(peers.length, 3)
    assert.deepEqual(new Set(peers.map((peer) => peer.peerId)), neighbours)
    const validators = new Set([1].map((i) => toHex(devKeypair(i).publicKey)))
    for (const peer of peers) {
      assert.ok(peer.direction === 'inbound' || peer.direction === 'outbound')
      assert.ok(peer.addresses.length > 0)
      assert.ok(peer.bytesIn > 0 && peer.bytesOut > 0, `bytes counted for ${peer.peerId}`)
      const statusCounters = peer.protocols[network.protocols.status]
      const gossipCounters = peer.protocols[network.protocols.gossip]
      assert.ok(statusCounters !== undefined && statusCounters.messagesIn >= 1 && statusCounters.messagesOut >= 1, 'status exchanged')
      assert.ok(gossipCounters !== undefined && gossipCounters.messagesIn > 0 && gossipCounters.messagesOut > 0, 'gossip flowed both ways')
      // Per-protocol byte counters add up to the peer's totals.
      const sum = Object.values(peer.protocols).reduce((total, counters) => total + counters.bytesIn, 0)
      assert.equal(sum, peer.bytesIn)
      assert.ok(Object.keys(peer.messages).some((key) => key.startsWith('in:')), 'message types counted')
      assert.ok(peer.gossip !== undefined && typeof peer.gossip['blocksReceived'] === 'number')
      // Peer 1 is a validator (its peer id is its validator key); 4 and 7 are not.
      if (peer.validator !== undefined) {
        assert.ok(validators.has(peer.validator))
        assert.notEqual(peer.stake, '0')
      } else assert.equal(peer.stake, '0')
    }
    assert.equal(peers.filter((peer) => peer.validator !== undefined).length, 1)

    const response = await fetch(new URL('/metrics', running.rpcUrl), { signal: AbortSignal.timeout(10_000) })
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/)
    const text = await response.text()
    assert.match(text, /^# TYPE grapevine_net_bytes_total counter$/m)
    assert.match(text, /^grapevine_net_bytes_total\{direction="in",protocol="gossip"\} [1-9]\d*$/m)
    assert.match(text, /^grapevine_net_bytes_total\{direction="out",protocol="status"\} [1-9]\d*$/m)
    const head = /^grapevine_head_height (\d+)$/m.exec(text)
    assert.ok(head !== null, 'grapevine_head_height present')
    assert.ok(Number(head[1]) >= 1 && Number(head[1]) <= running.node.chain.head.header.height)
    assert.match(text, /^grapevine_peers 3$/m)
  })
})

describe('a node that missed the rumor', { timeout: 40_000 }, () => {
  const nodes: RunningNode[] = []
  after(() => stopAll(nodes))

  it('gets the tx from the block that includes it after reconnecting to a different node', { timeout: 35_000 }, async () => {
    const genesis = genesisNow(1)
    // A is the only validator; B and C are full nodes. First A-B and A-C.
    const a = await startNode({ genesis, key: devKeypair(0), name: 'A' })
    nodes.push(a)
    const b = await startNode({ genesis, name: 'B' })
    nodes.push(b)
    // C's outbound heartbeat is off: it would redial the validator A at once (its job), and this test needs C cut off.
    const c = await startNode({ genesis, name: 'C', compose: { heartbeatMs: 0 } })
    nodes.push(c)
    await connect(a, b)
    await connect(c, a)
    await waitFor('C following A', () => c.node.chain.head.header.height >= 1 && bytesEqual(c.node.chain.head.hash, a.node.chain.head.hash))

    // C drops off.
    await net(c).disconnect(net(a).peerId)
    await waitFor('C disconnected', () => net(c).admittedPeers().length === 0 && !isAdmitted(net(a), net(c).peerId))
    const cHeightWhenCut = c.node.chain.head.header.height

    const signed = freshTx(21)
    await a.node.submitTx(signed.bytes)
    await waitFor('the tx included at B', () => isIncluded(b.node, signed.idHex), { timeoutMs: 10_000 })
    // Let a few more blocks pass without C.
    const target = b.node.chain.head.header.height + 2
    await waitFor('B two blocks further', () => b.node.chain.head.header.height >= target, { timeoutMs: 10_000 })
    assert.equal(hasTx(c.node, signed.idHex), false, 'C cannot have heard of it')
    assert.ok(c.node.chain.head.header.height < target, `C stayed behind (height ${cHeightWhenCut})`)

    // C comes back through B, not A.
    await connect(c, b)
    assert.equal(isAdmitted(net(c), net(a).peerId), false)
    await waitFor('the tx included at C', () => isIncluded(c.node, signed.idHex), { timeoutMs: 15_000 })
    const atA = a.node.getTx(signed.id)
    const atC = c.node.getTx(signed.id)
    assert.ok(atA !== null && atA.status !== 'pending' && atC !== null && atC.status !== 'pending')
    assert.equal(atC.blockHash, atA.blockHash, 'the same block on both sides')
    assert.equal(c.node.getAccount(RECIPIENT, false).balance, '1000')
    // And C keeps following the chain through B.
    const next = a.node.chain.head.header.height + 1
    await waitFor('C at A’s next block', () => c.node.chain.head.header.height >= next && c.node.chain.getCanonicalHash(next) !== undefined, { timeoutMs: 10_000 })
    assert.ok(bytesEqual(c.node.chain.getCanonicalHash(next) as Uint8Array, a.node.chain.getCanonicalHash(next) as Uint8Array))
  })
})

describe('a silent announcer', { timeout: 30_000 }, () => {
  const nodes: RunningNode[] = []
  const raws: RawPeer[] = []
  after(() => stopAll(nodes, raws))

  it('times out and the next announcer is asked', { timeout: 25_000 }, async () => {
    // Nobody produces blocks (the only validator key is not running), so the tx can only travel by gossip.
    const genesis = genesisNow(1)
    const victim = await startNode({ genesis, name: 'victim', gossip: { requestTimeoutMs: 300 }, sync: NO_ANTI_ENTROPY })
    nodes.push(victim)
    const honest = await startNode({ genesis, name: 'honest', sync: NO_ANTI_ENTROPY })
    nodes.push(honest)
    const silent = await RawPeer.start({ genesisHashHex: toHexKey(victim.node.chain.genesisHash), status: () => statusLike(victim.node) })
    raws.push(silent)
    await connect(victim, honest)
    const victimId = await silent.dial(net(victim).listenAddresses()[0] as string)
    const honestId = await silent.dial(net(honest).listenAddresses()[0] as string)
    await waitFor('the silent peer admitted by both nodes', () => isAdmitted(net(victim), silent.peerId) && isAdmitted(net(honest), silent.peerId))

    const signed = freshTx(22)
    // 1. The silent peer announces the tx to the victim, and never answers the getdata.
    await silent.send(victimId, { type: 'inv', items: [{ kind: INV_TX, hash: signed.id }] })
    await waitFor('the victim asking the silent peer', () => silent.mentions(victimId.toString(), signed.idHex).some((message) => message.type === 'getdata'))
    // 2. The honest node gets the tx (pushed by the silent peer) and, relaying it, announces it to the victim.
    await silent.send(honestId, { type: 'txs', solicited: false, txs: [signed] })
    const engine = services(victim).engine
    await waitFor('the honest announcement at the victim', () => (engine.counters(net(honest).peerId)?.announcementsReceived ?? 0) >= 1)
    // It arrived while the silent peer's request was still out: the honest node is the *next* announcer.
    assert.equal(engine.counters(silent.peerId)?.requestTimeouts, 0)
    assert.equal(victim.node.mempool.has(signed.idHex), false)

    await waitFor('the tx at the victim', () => victim.node.mempool.has(signed.idHex), { timeoutMs: 5_000 })
    const silentCounters = engine.counters(silent.peerId)
    const honestCounters = engine.counters(net(honest).peerId)
    assert.ok(silentCounters !== undefined && honestCounters !== undefined)
    assert.equal(silentCounters.requestsSent, 1)
    assert.equal(silentCounters.requestTimeouts, 1, 'the silent peer timed out')
    assert.equal(silentCounters.txsReceived, 0)
    assert.equal(honestCounters.requestsSent, 1)
    assert.equal(honestCounters.txsReceived, 1, 'the tx came from the honest node')
    assert.equal(honestCounters.requestTimeouts, 0)
    // The silent peer was asked exactly once.
    assert.equal(silent.mentions(victimId.toString(), signed.idHex).filter((message) => message.type === 'getdata').length, 1)
  })
})

describe('no echo', { timeout: 30_000 }, () => {
  const nodes: RunningNode[] = []
  const raws: RawPeer[] = []
  after(() => stopAll(nodes, raws))

  it('a tx is never sent back to the peer it came from', { timeout: 25_000 }, async () => {
    const genesis = genesisNow(1)
    const relay = await startNode({ genesis, name: 'relay', sync: NO_ANTI_ENTROPY })
    nodes.push(relay)
    const other = await startNode({ genesis, name: 'other', sync: NO_ANTI_ENTROPY })
    nodes.push(other)
    const source = await RawPeer.start({ genesisHashHex: toHexKey(relay.node.chain.genesisHash), status: () => statusLike(relay.node) })
    raws.push(source)
    await connect(relay, other)
    const relayId = await source.dial(net(relay).listenAddresses()[0] as string)
    await waitFor('the source admitted', () => isAdmitted(net(relay), source.peerId))

    // The source pushes a tx to relay; relay passes it on to other (the only other way out).
    const first = freshTx(23)
    await source.send(relayId, { type: 'txs', solicited: false, txs: [first] })
    await waitFor('the tx at the other node', () => other.node.mempool.has(first.idHex))
    // Give any echo time to happen: many announcement windows and ticks.
    await sleep(500)
    assert.deepEqual(source.mentions(relayId.toString(), first.idHex), [], 'no inv or txs for it back to the source')
    const towardSource = services(relay).engine.counters(source.peerId)
    assert.ok(towardSource !== undefined)
    assert.equal(towardSource.announcementsSent, 0)
    assert.equal(towardSource.pushesSent, 0)
    assert.ok(services(relay).engine.peerKnows(source.peerId, first.idHex))
    // Same on the next link: other got it from relay and sends nothing about it back.
    assert.equal(services(other).engine.counters(net(relay).peerId)?.announcementsSent, 0)
    assert.equal(services(other).engine.counters(net(relay).peerId)?.pushesSent, 0)
    const otherSeenByRelay = peerViewsOf(relay).find((view) => view.peerId === net(other).peerId)
    assert.ok(otherSeenByRelay !== undefined)
    assert.equal(otherSeenByRelay.messages['in:inv'] ?? 0, 0)
    assert.equal(otherSeenByRelay.messages['in:txs'] ?? 0, 0)
    const sourceSeenByRelay = peerViewsOf(relay).find((view) => view.peerId === source.peerId)
    assert.ok(sourceSeenByRelay !== undefined)
    assert.equal(sourceSeenByRelay.messages['out:inv'] ?? 0, 0)
    assert.equal(sourceSeenByRelay.messages['out:txs'] ?? 0, 0)

    // Control: a tx from elsewhere does reach the source (as an announcement), so the silence above is meaningful.
    const second = freshTx(24)
    await other.node.submitTx(second.bytes)
    await waitFor('an announcement of the second tx at the source', () => source.mentions(relayId.toString(), second.idHex).some((message) => message.type === 'inv'))
    assert.deepEqual(
      source.mentions(relayId.toString(), second.idHex).map((message) => message.type),
      ['inv'],
      'a relayed tx is announced, not pushed',
    )
    assert.deepEqual(source.mentions(relayId.toString(), first.idHex), [])
  })
})

describe('a peer on another network', { timeout: 30_000 }, () => {
  const nodes: RunningNode[] = []
  const raws: RawPeer[] = []
  after(() => stopAll(nodes, raws))

  /**
   * Watches `node` for `peerId`: connection events and admission (through the network's peer
   * hooks, which fire exactly when a peer is admitted). Set up before dialing, so a connection
   * that opens and closes between two polls is still seen.
   */
  function watch(node: RunningNode, peerId: string) {
    const seen = { connected: false, disconnected: false, admitted: false }
    const libp2p = net(node).libp2p
    libp2p.addEventListener('peer:connect', (event) => {
      if (event.detail.toString() === peerId) seen.connected = true
    })
    libp2p.addEventListener('peer:disconnect', (event) => {
      if (event.detail.toString() === peerId) seen.disconnected = true
    })
    services(node).peers.events.on('admitted', (peer) => {
      if (peer.id === peerId) seen.admitted = true
    })
    return seen
  }

  /** The peer connected, was never admitted, and is gone: no connection, no session, for good. */
  async function expectRefused(node: RunningNode, peerId: string, seen: ReturnType<typeof watch>): Promise<void> {
    const connectedTo = () => net(node).libp2p.getConnections().some((connection) => connection.remotePeer.toString() === peerId)
    await waitFor('the connection opened and closed again', () => seen.connected && seen.disconnected && !connectedTo() && net(node).session(peerId) === undefined, {
      detail: () => ({ ...seen, connected: connectedTo(), session: net(node).session(peerId) !== undefined }),
    })
    // Nothing reopens it.
    await sleep(300)
    assert.equal(seen.admitted, false, 'never admitted')
    assert.equal(net(node).admittedPeers().length, 0)
    assert.equal(net(node).session(peerId), undefined)
    assert.equal(connectedTo(), false)
  }

  it('is refused: a node with a different genesis is never admitted and the connection is closed', { timeout: 15_000 }, async () => {
    const ours = await startNode({ genesis: genesisNow(1), name: 'ours' })
    nodes.push(ours)
    const theirs = await startNode({ genesis: genesisNow(1, 'other-devnet'), name: 'theirs' })
    nodes.push(theirs)
    assert.notEqual(net(ours).protocols.gossip, net(theirs).protocols.gossip)
    const oursSaw = watch(ours, net(theirs).peerId)
    const theirsSaw = watch(theirs, net(ours).peerId)
    await net(theirs).dial(net(ours).listenAddresses()[0] as string)
    await expectRefused(ours, net(theirs).peerId, oursSaw)
    await expectRefused(theirs, net(ours).peerId, theirsSaw)
  })

  it('is refused: a peer speaking our protocol ids but reporting another genesis in status', { timeout: 15_000 }, async () => {
    const ours = nodes[0] as RunningNode
    const lying = () => statusLike(ours.node, { genesisHash: new Uint8Array(32).fill(0xab) })
    const genesisHashHex = toHexKey(ours.node.chain.genesisHash)

    // A passive liar: we ask for its status on connect, see the other genesis and hang up.
    const passive = await RawPeer.start({ genesisHashHex, status: lying })
    raws.push(passive)
    const sawPassive = watch(ours, passive.peerId)
    await passive.dial(net(ours).listenAddresses()[0] as string)
    await expectRefused(ours, passive.peerId, sawPassive)
    assert.ok(passive.statusRequests >= 1, 'we asked for its status before refusing it')
    assert.equal(passive.received.length, 0, 'no gossip was sent to it')

    // An eager liar asks for our status first (as a node does on connect): refused all the same.
    const eager = await RawPeer.start({ genesisHashHex, status: lying })
    raws.push(eager)
    const sawEager = watch(ours, eager.peerId)
    const oursId = await eager.dial(net(ours).listenAddresses()[0] as string)
    await eager.requestStatus(oursId).catch(() => undefined)
    await expectRefused(ours, eager.peerId, sawEager)
    assert.equal(eager.received.length, 0, 'no gossip was sent to it')
  })
})

describe('seed addresses in the genesis file', { timeout: 30_000 }, () => {
  const nodes: RunningNode[] = []
  after(() => stopAll(nodes))

  it('a node with no --bootstrap dials the genesis seeds and is admitted; the seeds do not change the network', { timeout: 25_000 }, async () => {
    const genesis = genesisNow(2)
    const seed = await startNode({ genesis, name: 'seed', key: devKeypair(0) })
    nodes.push(seed)
    const withSeeds: Genesis = { ...genesis, seeds: [net(seed).listenAddresses()[0] as string] }
    const fresh = await startNode({ genesis: withSeeds, name: 'fresh' })
    nodes.push(fresh)
    assert.equal(toHex(fresh.node.chain.genesisHash), toHex(seed.node.chain.genesisHash), 'seeds are not hashed: the same network')
    await waitFor('the fresh node admitted by the seed, and the seed by it', () => isAdmitted(net(fresh), net(seed).localPeerId) && isAdmitted(net(seed), net(fresh).localPeerId), { timeoutMs: 15_000 })
  })
})

describe('connection liveness (spread pings)', { timeout: 30_000 }, () => {
  const nodes: RunningNode[] = []
  const raws: RawPeer[] = []
  after(() => stopAll(nodes, raws))

  it('a peer that answers pings gets a round trip; one whose pings go unanswered is hung up on', { timeout: 25_000 }, async () => {
    const genesis = genesisStartingNow(2)
    const a = await startNode({ genesis, key: devKeypair(0), name: 'a' })
    const b = await startNode({ genesis, key: devKeypair(1), name: 'b' })
    nodes.push(a, b)
    await connect(b, a)
    // A peer that takes the ping protocol and never echoes.
    const silent = await RawPeer.start({ genesisHashHex: toHexKey(a.node.chain.genesisHash), status: () => statusLike(a.node) })
    raws.push(silent)
    await silent.libp2p.handle('/ipfs/ping/1.0.0', () => undefined)
    await silent.dial(net(a).listenAddresses()[0] as string)
    await waitFor('the silent peer admitted', () => isAdmitted(net(a), silent.peerId))
    // A faster schedule than the node's own (10 s) on a's libp2p, so the test is short.
    const liveness = new Liveness(net(a).libp2p, silentLogger(), { intervalMs: 400, timeoutMs: 400, tickMs: 50 })
    liveness.start()
    try {
      await waitFor('b has a measured round trip', () => net(a).latencyMs(net(b).localPeerId) !== undefined, { timeoutMs: 5_000 })
      await waitFor('the silent peer hung up on', () => !net(a).libp2p.getConnections().some((connection) => connection.remotePeer.toString() === silent.peerId), { timeoutMs: 5_000 })
      assert.equal(isAdmitted(net(a), net(b).localPeerId), true, 'the answering peer stays')
    } finally {
      liveness.stop()
    }
  })
})
