/**
 * Connection and sync-target attacks on real libp2p: 120 zero-stake identities from 40 address
 * groups fill a validator's inbound slots while the other validators restart (they must get back
 * in within seconds); fresh identities from 20 hosts connecting and hanging up (a few handshakes
 * a second get through, a restarting validator is not held up); a joiner whose bootstrap peers lie about their head (it must still sync
 * from the honest validators and rule the liars out); and a reconnect-to-reset-score loop (the
 * score survives reconnects, and the offender stays out).
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { toHexKey } from '../../src/codec/bytes.ts'
import { decodeSignedTx } from '../../src/codec/objects.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { transfer } from '../helpers/chain.ts'
import { rpcCall } from '../helpers/process.ts'
import { admittedRaw, blocksBy, cutOff, freshHost, honestTxReachesAll, startDevnet } from '../helpers/attack.ts'
import { RawPeer, isAdmitted, net, peerSet, sleep, startNode, statusLike, stopAll, waitFor } from '../helpers/net.ts'

const withPeerId = (address: string, peerId: string) => (address.includes('/p2p/') ? address : `${address}/p2p/${peerId}`)

const nodes: RunningNode[] = []
const raws: RawPeer[] = []
after(() => stopAll(nodes, raws))

describe('eclipse by Sybils', { timeout: 110_000 }, () => {
  it('120 zero-stake identities fill the inbound slots; restarted validators get back in within seconds', async () => {
    const devnet = await startDevnet(4, { slotMs: 500 })
    nodes.push(...devnet.nodes)
    const { victim, genesis } = devnet
    const victimAddress = net(victim).listenAddresses()[0] as string
    // 120 Sybils, 3 per address group (127.10.0.1 … 127.49.2.1): they hold every unstaked slot.
    const sybils = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        RawPeer.start({ genesisHashHex: toHexKey(victim.node.chain.genesisHash), status: () => statusLike(victim.node), host: `127.${10 + (i % 40)}.${Math.floor(i / 40)}.1` }),
      ),
    )
    raws.push(...sybils)
    // They all dial at once and keep redialling until admitted: fresh hosts get a few handshakes a
    // second node-wide (HANDSHAKE_BUDGET), a refused dial is held until it gives up (1 s here).
    // Those left out (or evicted for the validators) keep trying while the test runs: the pressure
    // the restarting validators meet.
    const filling = Date.now()
    let attacking = true
    const dialUntilIn = async (sybil: RawPeer) => {
      while (attacking && Date.now() - filling < 20_000 && !isAdmitted(net(victim), sybil.peerId)) {
        await sybil.dial(victimAddress, 1_000).catch(() => undefined)
        await sleep(50)
      }
    }
    const dialling = Promise.all(sybils.map(dialUntilIn))
    await waitFor('the inbound slots full of Sybils', () => net(victim).admittedPeers().filter((s) => s.stake === 0n).length >= 30, { timeoutMs: 20_000 })
    const admittedSybils = net(victim).admittedPeers().filter((s) => s.stake === 0n).length
    assert.ok(admittedSybils <= 38, `unstaked inbound peers capped: ${admittedSybils}`)

    // The three other validators restart (fresh in-memory nodes, same keys) and dial the victim.
    const heightBefore = victim.node.chain.head.header.height
    await Promise.all(devnet.nodes.slice(1).map((running) => running.stop()))
    const restartedAt = Date.now()
    const restarted: RunningNode[] = []
    for (let i = 1; i < 4; i++) restarted.push(await startNode({ genesis, key: devKeypair(i), name: `v${i}'`, bootstrap: [withPeerId(victimAddress, net(victim).peerId)] }))
    nodes.push(...restarted)
    await waitFor('every restarted validator admitted by the victim', () => restarted.every((r) => isAdmitted(net(victim), net(r).peerId)), { timeoutMs: 15_000 })
    const backInMs = Date.now() - restartedAt
    assert.ok(backInMs < 10_000, `validators back in ${backInMs} ms`)
    const evictions = (await victim.metrics.evictions.get()).values.find((v) => v.labels.reason === 'EVICTED_FOR_STAKED')?.value ?? 0
    assert.ok(evictions > 0 || net(victim).admittedPeers().length < 50, 'validators took the place of Sybils')

    // Honest transactions reach every node and the victim's blocks land on the honest chain.
    await waitFor('restarted validators caught up', () => restarted.every((r) => r.node.chain.head.header.height >= heightBefore), { timeoutMs: 20_000 })
    await honestTxReachesAll([victim, ...restarted], restarted[0] as RunningNode, 62, 0, 15_000)
    const from = (restarted[0] as RunningNode).node.chain.head.header.height
    await waitFor('a victim block on the restarted validators\u2019 chain', () => blocksBy(restarted[0] as RunningNode, 0, from) > 0, { timeoutMs: 15_000 })
    // Memory stays bounded: sessions at most maxPeers (+ handshakes).
    assert.ok(net(victim).admittedPeers().length <= 50)
    attacking = false
    await dialling
  })
})

describe('fresh identities, connecting and hanging up', { timeout: 110_000 }, () => {
  it('HANDSHAKE_BUDGET: a few handshakes a second reach the victim; a restarting validator and honest txs are unaffected', async () => {
    const devnet = await startDevnet(3, { slotMs: 500 })
    nodes.push(...devnet.nodes)
    const { victim, genesis } = devnet
    const victimAddress = net(victim).listenAddresses()[0] as string
    const budgetRefusals = async () => (await victim.metrics.refusals.get()).values.find((v) => v.labels.reason === 'HANDSHAKE_BUDGET')?.value ?? 0
    // From 20 hosts, one fresh identity after another: each dials (a handshake, if let through),
    // hangs up, and the next one dials. Nothing can be charged: every identity is new.
    let running = true
    let handshakes = 0
    const churn = async (host: string) => {
      while (running) {
        const raw = await RawPeer.start({ genesisHashHex: toHexKey(victim.node.chain.genesisHash), status: () => statusLike(victim.node), host })
        try {
          await raw.dial(victimAddress, 500)
          handshakes++
        } catch {
          // Refused on its address: held until the dial gave up.
        } finally {
          await raw.stop()
        }
      }
    }
    const started = Date.now()
    const churning = Promise.all(Array.from({ length: 20 }, () => churn(freshHost())))
    try {
      // Meanwhile a validator restarts (same key, a fresh in-memory node) and dials the victim.
      await sleep(1_000)
      await (devnet.nodes[2] as RunningNode).stop()
      const restartedAt = Date.now()
      const restarted = await startNode({ genesis, key: devKeypair(2), name: "v2'", bootstrap: [withPeerId(victimAddress, net(victim).peerId)] })
      nodes.push(restarted)
      await waitFor('the restarted validator admitted by the victim', () => isAdmitted(net(victim), net(restarted).peerId), { timeoutMs: 10_000 })
      assert.ok(Date.now() - restartedAt < 10_000)
      // Honest transactions still reach every node.
      await honestTxReachesAll([victim, devnet.nodes[1] as RunningNode, restarted], devnet.nodes[1] as RunningNode, 64, 0, 10_000)
      await sleep(Math.max(0, 6_000 - (Date.now() - started)))
    } finally {
      running = false
      await churning
    }
    const seconds = (Date.now() - started) / 1_000
    // The budget: a burst of 16, then 8 a second (FRESH_HANDSHAKES); the restarted validator's host is trusted.
    assert.ok(handshakes <= 16 + 8 * Math.ceil(seconds), `${handshakes} handshakes in ${seconds.toFixed(1)} s`)
    assert.ok((await budgetRefusals()) > 0, 'the rest were refused before their handshake (HANDSHAKE_BUDGET)')
    // The victim kept producing blocks on the honest chain.
    const from = (devnet.nodes[1] as RunningNode).node.chain.head.header.height
    await waitFor('a victim block on the honest chain', () => blocksBy(devnet.nodes[1] as RunningNode, 0, from) > 0, { timeoutMs: 15_000 })
  })
})

describe('a joiner whose bootstrap peers lie about their head', { timeout: 110_000 }, () => {
  it('SYNC_PROMISE_BROKEN: it syncs from the honest validators and rules the liars out', async () => {
    const devnet = await startDevnet(2, { slotMs: 300 })
    nodes.push(...devnet.nodes)
    await waitFor('some chain to sync', () => devnet.victim.node.chain.head.header.height >= 10, { timeoutMs: 10_000 })
    // Three liars: a head 1,000 blocks higher, and no sync protocol at all.
    const liars = await Promise.all(
      Array.from({ length: 3 }, () =>
        RawPeer.start({
          genesisHashHex: toHexKey(devnet.victim.node.chain.genesisHash),
          status: () => statusLike(devnet.victim.node, { headHeight: devnet.victim.node.chain.head.header.height + 1_000, headHash: new Uint8Array(32).fill(7) }),
        }),
      ),
    )
    raws.push(...liars)
    const bootstrap = [...liars.map((liar) => `${liar.libp2p.getMultiaddrs()[0]?.toString()}`), withPeerId(net(devnet.victim).listenAddresses()[0] as string, net(devnet.victim).peerId)]
    const joiner = await startNode({ genesis: devnet.genesis, name: 'joiner', bootstrap })
    nodes.push(joiner)
    const sync = joiner.sync
    assert.ok(sync !== undefined)
    await waitFor('the joiner synced to the honest head', () => joiner.node.chain.head.header.height >= 10, { timeoutMs: 20_000, detail: () => sync.status() })
    // Each liar ends out of the running: ruled out after its broken promises, or graylisted by the
    // other offences its silence costs (a graylisted peer is never a sync target either).
    const outOfTheRunning = (peerId: string) => sync.isRuledOut(peerId) || peerSet(joiner).scores.isGraylisted(peerId, Date.now())
    await waitFor('the liars ruled out', () => liars.every((liar) => outOfTheRunning(liar.peerId)), { timeoutMs: 45_000, detail: () => liars.map((l) => peerSet(joiner).scores.reasons(l.peerId)) })
    for (const liar of liars) assert.ok((peerSet(joiner).scores.reasons(liar.peerId).SYNC_PROMISE_BROKEN ?? 0) >= 1)
    await waitFor('synced (no peer left ahead that is not ruled out)', () => sync.isSynced(), { timeoutMs: 15_000, detail: () => sync.status() })
    // Not redialled as bootstrap peers while ruled out.
    await sleep(4_000)
    for (const liar of liars) assert.equal(isAdmitted(net(joiner), liar.peerId), false, 'a liar is not re-admitted')
  })
})

describe('a reconnect-to-reset-score loop', { timeout: 60_000 }, () => {
  it('the score survives reconnects; the offender is refused while low and ends banned', async () => {
    const devnet = await startDevnet(1)
    nodes.push(...devnet.nodes)
    const victim = devnet.victim
    const host = freshHost()
    const { raw, victimId } = await admittedRaw(victim, { host })
    raws.push(raw)
    const forged = (i: number): SignedTx => {
      const bytes = new Uint8Array(transfer(80 + i, devKeypair(7_100).publicKey, 1n, 0).bytes)
      bytes[bytes.length - 64] = (bytes[bytes.length - 64] as number) ^ 1
      return decodeSignedTx(bytes)
    }
    let sent = 0
    for (let round = 0; round < 4; round++) {
      // Offend until hung up (two forged messages: −60), then reconnect and try again.
      for (let i = 0; i < 2; i++) await raw.send(victimId, { type: 'txs', solicited: false, txs: [forged(sent++)] }).catch(() => undefined)
      await waitFor('hung up', () => !isAdmitted(net(victim), raw.peerId), { timeoutMs: 5_000 })
      const score = peerSet(victim).score(raw.peerId)
      assert.ok(score <= -50, `the score did not reset: ${score}`)
      await raw.dial(net(victim).listenAddresses()[0] as string, 1_000).catch(() => undefined)
      await sleep(500)
      assert.equal(isAdmitted(net(victim), raw.peerId), false, 'refused on reconnect while its score is low')
      if (peerSet(victim).isBanned(raw.peerId)) break
    }
    assert.ok(cutOff(victim, raw.peerId))
    await honestTxReachesAll([victim], victim, 63, 0)

    // Its host now cools down: the next dial from there is refused before the Noise handshake
    // (it would cost the victim three Diffie-Hellmans each time), even with a fresh identity;
    // another host still gets in at once.
    const cooldownRefusals = async () => (await victim.metrics.refusals.get()).values.find((v) => v.labels.reason === 'ADDRESS_COOLDOWN')?.value ?? 0
    const address = net(victim).listenAddresses()[0] as string
    // Refused on its address if the host still cools down (held until the dial gives up), else
    // after its handshake (which may look complete to the dialler an instant before it is closed).
    await raw.dial(address, 300).catch(() => undefined)
    await waitFor('the banned identity refused', () => !raw.connectedTo(net(victim).peerId) && !isAdmitted(net(victim), raw.peerId), { timeoutMs: 5_000 })
    const before = await cooldownRefusals()
    await assert.rejects(raw.dial(address, 300), 'and again, now on its address alone (held unread until the dial gives up)')
    const sibling = await RawPeer.start({ genesisHashHex: toHexKey(victim.node.chain.genesisHash), status: () => statusLike(victim.node), host })
    raws.push(sibling)
    await assert.rejects(sibling.dial(address, 300), 'a fresh identity from the cooling host waits too')
    assert.equal((await cooldownRefusals()) - before, 2, 'both refused before the handshake (ADDRESS_COOLDOWN)')
    const bans = (await rpcCall(victim.rpcUrl, 'net_bans')).result as Array<{ kind: string; host?: string }>
    assert.ok(
      bans.some((record) => record.kind === 'hostCooldown' && record.host === `ip4:${host}`),
      `net_bans lists the cooling host: ${JSON.stringify(bans)}`,
    )
    const other = await admittedRaw(victim)
    raws.push(other.raw)
  })

  it('a host shared with a peer in good standing does not cool down: only the offender is refused', async () => {
    const devnet = await startDevnet(1)
    nodes.push(...devnet.nodes)
    const victim = devnet.victim
    const host = freshHost()
    const good = await admittedRaw(victim, { host })
    const bad = await admittedRaw(victim, { host })
    raws.push(good.raw, bad.raw)
    // Two forged signatures (high, −30 each) hang it up: the first leaves it above the graylist,
    // so the second is decoded and seen however the victim's work is timed.
    for (let i = 0; i < 2; i++) {
      const bytes = new Uint8Array(transfer(90 + i, devKeypair(7_100).publicKey, 1n, 0).bytes)
      bytes[bytes.length - 64] = (bytes[bytes.length - 64] as number) ^ 1
      await bad.raw.send(bad.victimId, { type: 'txs', solicited: false, txs: [decodeSignedTx(bytes)] })
    }
    await waitFor('the offender hung up', () => !isAdmitted(net(victim), bad.raw.peerId), { timeoutMs: 5_000 })
    await bad.raw.dial(net(victim).listenAddresses()[0] as string).catch(() => undefined)
    await sleep(300)
    assert.equal(isAdmitted(net(victim), bad.raw.peerId), false, 'the offender is still refused (after its handshake)')
    // Its neighbour behind the same address (a NAT, a machine running several nodes) gets in at once.
    const third = await admittedRaw(victim, { host })
    raws.push(third.raw)
    assert.equal(isAdmitted(net(victim), good.raw.peerId), true)
  })
})
