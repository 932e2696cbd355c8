/**
 * A misbehaving peer against one real node on 127.0.0.1. The peer is a bare libp2p node
 * (test/helpers/net.ts RawPeer) that passes the status handshake honestly and then sends what no
 * honest node sends: transactions with forged signatures, bytes that are not a gossip message, a
 * frame header announcing more than the frame limit, an undecodable sync request, and a block
 * from a proposer who does not lead its slot. Each offence must cost the score the protocol
 * names (docs/protocol.md, Peer scoring), past the thresholds the peer is disconnected or banned,
 * and none of it may reach the node's mempool or chain or stop it from producing blocks and
 * accepting honest transactions.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { PeerId } from '@libp2p/interface'
import { fixedPacker } from '../../src/chain/chain.ts'
import { toHexKey } from '../../src/codec/bytes.ts'
import { decodeSignedTx, headerHash } from '../../src/codec/objects.ts'
import { MAX_GOSSIP_FRAME_BYTES, MAX_SYNC_FRAME_BYTES } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { frame } from '../../src/net/framing.ts'
import { PENALTY } from '../../src/peers/scores.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { freshHost } from '../helpers/attack.ts'
import { transfer } from '../helpers/chain.ts'
import { RawPeer, genesisStartingNow, hasTx, isAdmitted, isIncluded, net, peerSet, rejectedCount, sleep, startNode, statusLike, stopAll, waitFor } from '../helpers/net.ts'

const RECIPIENT = devKeypair(7100).publicKey

/** A copy of `signed` with one bit of its signature's R flipped: well formed, provably invalid. */
function forgedSignature(signed: SignedTx): SignedTx {
  const bytes = new Uint8Array(signed.bytes)
  const at = bytes.length - 64
  bytes[at] = (bytes[at] as number) ^ 0x01
  return decodeSignedTx(bytes)
}

describe('a misbehaving peer', { timeout: 90_000 }, () => {
  const nodes: RunningNode[] = []
  const raws: RawPeer[] = []
  let victim: RunningNode

  before(async () => {
    // The only validator: it produces a block every slot, so "still healthy" is observable.
    victim = await startNode({ genesis: genesisStartingNow(1), key: devKeypair(0), name: 'victim' })
    nodes.push(victim)
  })
  after(() => stopAll(nodes, raws))

  const score = (peerId: string) => peerSet(victim).score(peerId)
  const connected = (peerId: string) => net(victim).libp2p.getConnections().some((connection) => connection.remotePeer.toString() === peerId)

  /**
   * A raw peer that answers status like an honest node, dialed in and admitted by the victim. Each
   * dials from a host of its own: a host whose peer was cut off cools down (AddressCooldowns).
   */
  async function admittedRawPeer(): Promise<{ raw: RawPeer; victimId: PeerId }> {
    const raw = await RawPeer.start({ genesisHashHex: toHexKey(victim.node.chain.genesisHash), status: () => statusLike(victim.node), host: freshHost() })
    raws.push(raw)
    const victimId = await raw.dial(net(victim).listenAddresses()[0] as string)
    await waitFor('the raw peer admitted', () => isAdmitted(net(victim), raw.peerId))
    return { raw, victimId }
  }

  /** The victim still produces blocks and includes an honest transaction sent over its RPC path. */
  async function stillHealthy(sender: number): Promise<void> {
    const height = victim.node.chain.head.header.height
    const honest = transfer(sender, RECIPIENT, 5n, 0)
    await victim.node.submitTx(honest.bytes)
    await waitFor('an honest tx included', () => isIncluded(victim.node, honest.idHex), { timeoutMs: 10_000 })
    assert.ok(victim.node.chain.head.header.height > height, 'blocks kept coming')
  }

  it('forged signatures cost one high penalty per message, never enter the mempool, and get the peer disconnected at the threshold', { timeout: 30_000 }, async () => {
    const { raw, victimId } = await admittedRawPeer()
    const forged = [forgedSignature(transfer(40, RECIPIENT, 1n, 0)), forgedSignature(transfer(41, RECIPIENT, 1n, 0))]

    // One message of two bad transactions: one offence.
    await raw.send(victimId, { type: 'txs', solicited: false, txs: forged })
    await waitFor('the first penalty', () => score(raw.peerId) < 0)
    await sleep(200)
    assert.ok(Math.abs(score(raw.peerId) - PENALTY.high) < 0.5, `one high penalty, score ${score(raw.peerId)}`)
    for (const tx of forged) assert.equal(hasTx(victim.node, tx.idHex), false, 'a forged tx is not pending')
    assert.ok(isAdmitted(net(victim), raw.peerId), 'one offence does not disconnect')

    // One more: past DISCONNECT_SCORE (−50), the victim hangs up (not a ban: −60 > −100). One
    // high offence leaves the peer above the graylist, so this message is decoded and seen.
    await raw.send(victimId, { type: 'txs', solicited: false, txs: [forgedSignature(transfer(42, RECIPIENT, 1n, 0))] })
    await waitFor('the peer disconnected', () => !isAdmitted(net(victim), raw.peerId) && !connected(raw.peerId))
    assert.deepEqual(peerSet(victim).scores.reasons(raw.peerId), { TX_REJECTED: 2 })
    assert.equal(await rejectedCount(victim, 'TX_BAD_SIGNATURE'), 3, 'all three refused for their signature')
    assert.equal(peerSet(victim).isBanned(raw.peerId), false)

    await stillHealthy(50)
  })

  it('bytes that are not a sync request or a gossip message each cost a high penalty (two disconnect); an oversized frame costs one and closes the stream', { timeout: 30_000 }, async () => {
    const { raw, victimId } = await admittedRawPeer()

    // An undecodable sync request: penalised, and answered with nothing. First, while the peer is
    // in good standing: a graylisted peer's requests are not even decoded.
    await assert.rejects(raw.exchange(victimId, raw.protocols.sync, frame(new Uint8Array([0x2f, 0xff])), MAX_SYNC_FRAME_BYTES))
    await waitFor('the undecodable-sync-request penalty', () => (peerSet(victim).scores.reasons(raw.peerId).SYNC_UNDECODABLE_REQUEST ?? 0) === 1)

    // A well-framed message of an unknown type.
    await raw.sendRaw(victimId, frame(new Uint8Array([0x7f, 1, 2, 3])))
    await waitFor('the undecodable-message penalty', () => (peerSet(victim).scores.reasons(raw.peerId).GOSSIP_UNDECODABLE ?? 0) === 1)
    assert.ok(Math.abs(score(raw.peerId) - 2 * PENALTY.high) < 0.5, `two high penalties, score ${score(raw.peerId)}`)

    // −60: disconnected, not banned.
    await waitFor('the peer disconnected', () => !isAdmitted(net(victim), raw.peerId) && !connected(raw.peerId))
    assert.equal(peerSet(victim).isBanned(raw.peerId), false)

    // Another peer: a frame header announcing more than the limit is refused before a byte of it
    // is buffered, and the stream closed.
    const big = await admittedRawPeer()
    const header = new Uint8Array(4)
    new DataView(header.buffer).setUint32(0, MAX_GOSSIP_FRAME_BYTES + 1)
    await big.raw.sendRaw(big.victimId, header)
    await waitFor('the frame-too-large penalty', () => (peerSet(victim).scores.reasons(big.raw.peerId).FRAME_TOO_LARGE ?? 0) === 1)
    assert.ok(Math.abs(score(big.raw.peerId) - PENALTY.high) < 0.5, `one high penalty, score ${score(big.raw.peerId)}`)
    await waitFor('its gossip stream closed', () => !big.raw.gossipStreamOpen(big.victimId))

    await stillHealthy(51)
  })

  it('a block from a proposer who does not lead its slot is fatal: banned, hung up, refused when it dials again', { timeout: 30_000 }, async () => {
    const { raw, victimId } = await admittedRawPeer()
    const chain = victim.node.chain
    // Built on the victim's head with a valid body and state root, signed by a key that leads nothing.
    const slot = Math.max(chain.head.header.slot + 1, chain.schedule.slotAt(Date.now()))
    const timestamp = Math.max(Date.now(), chain.schedule.slotStart(slot))
    const { block } = chain.buildBlock(slot, timestamp, devKeypair(9), fixedPacker([]))
    await raw.send(victimId, { type: 'block', solicited: false, block })

    await waitFor('the peer banned', () => peerSet(victim).isBanned(raw.peerId))
    assert.deepEqual(peerSet(victim).scores.reasons(raw.peerId), { BLOCK_REJECTED: 1 })
    assert.equal(await rejectedCount(victim, 'BLOCK_WRONG_LEADER'), 1, 'refused for its proposer')
    await waitFor('the peer hung up on', () => !isAdmitted(net(victim), raw.peerId) && !connected(raw.peerId))
    assert.equal(victim.node.chain.hasBlock(headerHash(block.header)), false, 'the forged block is not stored')

    // It comes back: the connection is closed again and it is never admitted.
    await raw.dial(net(victim).listenAddresses()[0] as string).catch(() => undefined)
    await sleep(500)
    assert.equal(isAdmitted(net(victim), raw.peerId), false, 'a banned peer is not admitted')
    await waitFor('the banned peer hung up on again', () => !connected(raw.peerId))

    await stillHealthy(52)
  })
})
