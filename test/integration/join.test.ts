/**
 * Join from a certificate (docs/protocol.md, "Join from a certificate") over real libp2p on
 * 127.0.0.1: a serving node holds a long chain of empty blocks signed by the devnet keys and a
 * certificate signed by more than 2/3 of the dev validators' stake; a fresh node joins from that
 * one certificate (state sync of the certified block's root, then only the blocks after it),
 * fetching no header below the certificate. Then the same join with 20 zero-stake peers that
 * advertise a higher head and no certificate: none is chosen as the state-sync target.
 *
 * Last, a peer that offers a forged certificate (a higher height, signatures that do not verify)
 * is refused and banned (CERT_FORGED, fatal) and the join completes from the honest certificate.
 *
 * History length: JOIN_TEST_HEIGHT (default 10,000, which builds in a few seconds here; the
 * 100,000-block figure is measured by scripts/bench/join.ts).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { bytesEqual, toHexKey } from '../../src/codec/bytes.ts'
import { appendEmptyBlocks, devCertificate } from '../../src/chain/history.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import type { Genesis } from '../../src/ledger/types.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { RawPeer, connect, isAdmitted, net, peerSet, startNode, statusLike, stopAll, waitFor } from '../helpers/net.ts'

const HEIGHT = Number(process.env['JOIN_TEST_HEIGHT'] ?? 10_000)
const SLOT_MS = 1_000
/** The certificate sits this far below the head: the joiner imports exactly these blocks after it. */
const BLOCKS_AFTER_CERTIFICATE = 5

describe(`join from a certificate on a ${HEIGHT}-block chain`, { timeout: 180_000 }, () => {
  const nodes: RunningNode[] = []
  const raws: RawPeer[] = []
  let genesis: Genesis
  let server: RunningNode
  const certifiedHeight = HEIGHT - BLOCKS_AFTER_CERTIFICATE

  before(async () => {
    // Slot HEIGHT started 30 s ago: the whole history is in the past, and no validator runs.
    genesis = devnetGenesis({ validatorCount: 4, genesisTime: Date.now() - (HEIGHT + 30) * SLOT_MS, slotMs: SLOT_MS })
    server = await startNode({ genesis, name: 'server', produce: false, pruning: { archive: true } })
    nodes.push(server)
    const started = Date.now()
    await appendEmptyBlocks(server.node.chain, HEIGHT)
    const result = await server.node.chain.applyCertificate(devCertificate(server.node.chain, certifiedHeight))
    assert.equal(result.status, 'finalized')
    process.stderr.write(`# built ${HEIGHT} blocks and a certificate in ${Date.now() - started} ms\n`)
  })
  after(() => stopAll(nodes, raws))

  it('a fresh node joins from one certificate and fetches no header below it', { timeout: 60_000 }, async () => {
    const joiner = await startNode({ genesis, name: 'joiner' })
    nodes.push(joiner)
    await connect(joiner, server)
    await waitFor('the joiner at the server head', () => bytesEqual(joiner.node.chain.head.hash, server.node.chain.head.hash), {
      timeoutMs: 45_000,
      detail: () => joiner.sync?.status(),
    })
    const view = joiner.sync?.status()
    assert.ok(view !== undefined)
    assert.equal(view.certified, true, 'the pivot came from a certificate')
    assert.equal(view.pivotHeight, certifiedHeight)
    // O(1) headers below the certificate: none; only the blocks after it were fetched.
    assert.equal(view.headersFetched, BLOCKS_AFTER_CERTIFICATE)
    assert.equal(view.blocksImported, BLOCKS_AFTER_CERTIFICATE)
    const chain = joiner.node.chain
    assert.equal(chain.getCanonicalHash(1), undefined, 'no header below the pivot is stored')
    assert.equal(chain.finalized.height, certifiedHeight)
    assert.ok(chain.finalizedCertificate !== undefined)
    assert.ok(bytesEqual(chain.head.header.stateRoot, server.node.chain.head.header.stateRoot))
    assert.equal(joiner.node.status().finalizedHeight, certifiedHeight)
  })

  it('20 zero-stake peers advertising a higher head without a certificate are not the state-sync target', { timeout: 90_000 }, async () => {
    const joiner = await startNode({ genesis, name: 'joiner2' })
    nodes.push(joiner)
    const address = net(joiner).listenAddresses()[0] as string
    const fakeHead = { headHeight: HEIGHT + 10_000, headHash: new Uint8Array(32).fill(0xee) }
    for (let i = 0; i < 20; i++) {
      // Each from its own loopback /16, so the inbound per-group cap does not keep them out.
      const raw = await RawPeer.start({
        genesisHashHex: toHexKey(genesis === undefined ? new Uint8Array(0) : server.node.chain.genesisHash),
        status: () => statusLike(server.node, { ...fakeHead, finalizedHeight: 0, finalizedHash: server.node.chain.genesisBlock }),
        host: `127.${20 + i}.0.1`,
      })
      raws.push(raw)
    }
    // The Sybils are admitted first: they alone cannot start a state sync.
    await Promise.all(raws.map((raw) => raw.dialUntilConnected(address)))
    await waitFor('the Sybils admitted', () => raws.every((raw) => isAdmitted(net(joiner), raw.peerId)))
    assert.equal(joiner.node.chain.head.header.height, 0, 'no sync from peers without a certificate or stake')
    await connect(joiner, server)
    await waitFor('the joiner at the honest head', () => bytesEqual(joiner.node.chain.head.hash, server.node.chain.head.hash), {
      timeoutMs: 60_000,
      detail: () => joiner.sync?.status(),
    })
    const view = joiner.sync?.status()
    assert.equal(view?.certified, true)
    assert.equal(view?.pivotHeight, certifiedHeight)
    assert.equal(joiner.node.chain.finalized.height, certifiedHeight)
    assert.equal(joiner.node.chain.getCanonicalHash(1), undefined)
  })

  it('a forged certificate is refused and penalised (CERT_FORGED), and the join completes from the honest one', { timeout: 90_000 }, async () => {
    const joiner = await startNode({ genesis, name: 'joiner3' })
    nodes.push(joiner)
    const chain = server.node.chain
    // A real header above the honest certificate, with a certificate of enough stake whose signatures are garbage.
    const forgedHeight = HEIGHT - 1
    const forgedHash = chain.getCanonicalHash(forgedHeight) as Uint8Array
    const honest = devCertificate(chain, forgedHeight)
    const forged = { ...honest, signatures: honest.signatures.map((entry) => ({ validatorIndex: entry.validatorIndex, signature: new Uint8Array(64).fill(7) })) }
    const header = chain.getHeader(forgedHash)
    assert.ok(header !== undefined)
    const forger = await RawPeer.start({
      genesisHashHex: toHexKey(chain.genesisHash),
      status: () => statusLike(server.node),
      onSync: (_from, request) =>
        request.type === 'getFinality' ? { type: 'finality', proof: { certificate: forged, header } } : { type: 'error', message: 'nothing here' },
    })
    raws.push(forger)
    await forger.dial(net(joiner).listenAddresses()[0] as string)
    // On admission the joiner is far behind the forger's head and asks it for its certificate at once.
    await waitFor('the forger asked for its certificate', () => forger.syncRequests.some((request) => request.type === 'getFinality'))
    await connect(joiner, server)
    await waitFor('the joiner at the honest head', () => bytesEqual(joiner.node.chain.head.hash, server.node.chain.head.hash), {
      timeoutMs: 60_000,
      detail: () => joiner.sync?.status(),
    })
    assert.ok(forger.syncRequests.some((request) => request.type === 'getFinality'), 'the forger was asked for its certificate')
    assert.equal(joiner.sync?.status().pivotHeight, certifiedHeight, 'the pivot is the honest certificate, not the forged higher one')
    assert.equal(joiner.node.chain.finalized.height, certifiedHeight)
    const reasons = peerSet(joiner).scores.reasons(forger.peerId)
    assert.ok((reasons.CERT_FORGED ?? 0) >= 1, `CERT_FORGED recorded: ${JSON.stringify(reasons)}`)
    assert.ok(peerSet(joiner).isBanned(forger.peerId), 'a forged certificate is fatal')
  })
})
