// The real node composition (domain facade, gossip engine, sync manager, ingress, producer) on a
// virtual network and virtual time: many complete nodes in one process, no sockets, no real timers.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { Genesis, SignedTx } from '../../src/ledger/types.ts'
import { type SimNode, SimCluster } from '../../src/sim/cluster.ts'

const GENESIS_TIME = 1_700_000_000_000
const SLOT_MS = 1_000
const RECIPIENT = devKeypair(7_000).publicKey

function genesis(): Genesis {
  return devnetGenesis({ validatorCount: 4, genesisTime: GENESIS_TIME, slotMs: SLOT_MS, fundedCount: 200 })
}

function transfer(g: Genesis, sender: number, nonce = 0, amount = 5n): SignedTx {
  return signTransfer({ chainId: g.chainId, from: devKeypair(sender), to: RECIPIENT, amount, fee: g.limits.minFee, nonce })
}

function holds(node: SimNode, tx: SignedTx): boolean {
  return node.node.mempool.has(tx.idHex) || node.node.store.getTxLocation(tx.id) !== undefined
}

function included(node: SimNode, tx: SignedTx): boolean {
  return node.node.store.getTxLocation(tx.id) !== undefined
}

/** A cluster of `validators` validators (dev keys 0..) and `full` full nodes, `degree` random links each. */
async function cluster(options: { seed: number; validators?: number; full: number; degree: number; produce?: boolean; statusIntervalMs?: number }): Promise<SimCluster> {
  const sim = new SimCluster({ genesis: genesis(), seed: options.seed, sync: { statusIntervalMs: options.statusIntervalMs ?? 2_000 } })
  for (let i = 0; i < (options.validators ?? 4); i++) await sim.addNode({ validatorIndex: i, ...(options.produce === undefined ? {} : { produce: options.produce }) })
  for (let i = 0; i < options.full; i++) await sim.addNode()
  sim.connectRandom(options.degree)
  await sim.time.runFor(500)
  return sim
}

const distinct = (values: string[]): number => new Set(values).size

describe('virtual network: the real engines on virtual time', { timeout: 120_000 }, () => {
  it('50 nodes (4 validators): a transaction sent to one node reaches all 50 and is included everywhere', async () => {
    const sim = await cluster({ seed: 1, full: 46, degree: 4 })
    try {
      assert.ok(sim.nodes.every((node) => node.services.peers.size >= 1), 'every node has admitted peers')
      const tx = transfer(sim.options.genesis, 10)
      const origin = sim.nodes[17] as SimNode
      await origin.node.submitTx(tx.bytes)
      assert.ok(await sim.time.runUntilTrue(() => sim.nodes.every((node) => holds(node, tx)), 5_000), 'the tx reached every node')
      assert.ok(await sim.time.runUntilTrue(() => sim.nodes.every((node) => included(node, tx)), 10 * SLOT_MS), 'the tx is included on every node')
      const locations = sim.nodes.map((node) => node.node.store.getTxLocation(tx.id)?.blockHash)
      assert.equal(distinct(locations.map((hash) => Buffer.from(hash ?? []).toString('hex'))), 1, 'in the same block everywhere')
    } finally {
      await sim.stop()
    }
  })

  it('blocks produced by the validators reach every node: one head, and every validator produced', async () => {
    const sim = await cluster({ seed: 2, full: 46, degree: 4 })
    try {
      await sim.time.runFor(30 * SLOT_MS)
      // Let the last block of the window spread.
      await sim.time.runFor(SLOT_MS / 2)
      const heads = sim.heads()
      assert.ok((heads[0]?.height ?? 0) >= 25, `about one block per slot, head at ${heads[0]?.height}`)
      assert.equal(distinct(heads.map((head) => head.hash)), 1, `one head on all 50 nodes: ${JSON.stringify(heads.slice(0, 3))}`)
      const chain = (sim.nodes[0] as SimNode).node.chain
      const proposers = new Set<string>()
      for (let height = 1; height <= chain.head.header.height; height++) {
        const hash = chain.getCanonicalHash(height)
        const header = hash === undefined ? undefined : chain.getHeader(hash)
        if (header !== undefined) proposers.add(Buffer.from(header.proposer).toString('hex'))
      }
      assert.equal(proposers.size, 4, 'each validator has blocks on the chain')
    } finally {
      await sim.stop()
    }
  })

  it('a node added 200 virtual blocks later catches up by state sync', async () => {
    const sim = await cluster({ seed: 3, full: 4, degree: 3 })
    try {
      const g = sim.options.genesis
      // Traffic while the chain grows, so the state differs from genesis.
      for (let slot = 0; slot < 200; slot++) {
        if (slot % 4 === 0) await (sim.nodes[slot % sim.nodes.length] as SimNode).node.submitTx(transfer(g, 20 + (slot % 150), Math.floor(slot / 600)).bytes)
        await sim.time.runFor(SLOT_MS)
      }
      const reference = sim.nodes[0] as SimNode
      assert.ok(reference.node.chain.head.header.height >= 190, `chain at ${reference.node.chain.head.header.height}`)
      const late = await sim.addNode()
      for (const peer of sim.nodes.slice(0, 3)) sim.connect(late, peer)
      const caughtUp = await sim.time.runUntilTrue(
        () => late.node.chain.head.header.height >= reference.node.chain.head.header.height - 1 && late.services.sync.status().catchUps >= 1,
        60_000,
      )
      const status = late.services.sync.status()
      assert.ok(caughtUp, `caught up: late at ${late.node.chain.head.header.height}, reference at ${reference.node.chain.head.header.height}, ${JSON.stringify(status)}`)
      assert.equal(status.mode, 'state', 'far behind: state sync, not block by block')
      assert.ok(status.stateNodesFetched + status.stateEntriesFetched > 0, 'state came over the network')
      assert.ok(status.blocksImported < 50, `only the blocks after the pivot were imported (${status.blocksImported})`)
      await sim.time.runFor(3 * SLOT_MS)
      const head = late.node.chain.head
      assert.deepEqual(reference.node.chain.getCanonicalHash(head.header.height), head.hash, 'on the same chain')
    } finally {
      await sim.stop()
    }
  })

  it('two halves partitioned for 60 virtual seconds reconverge on one head and state root after healing', async () => {
    const sim = await cluster({ seed: 4, full: 16, degree: 4 })
    try {
      const g = sim.options.genesis
      // Validators 0 and 1 with half of the full nodes on the left; 2 and 3 with the rest on the right.
      const left = [sim.nodes[0], sim.nodes[1], ...sim.nodes.slice(4, 12)] as SimNode[]
      const right = [sim.nodes[2], sim.nodes[3], ...sim.nodes.slice(12)] as SimNode[]
      const cut = sim.partition(left, right)
      assert.ok(cut.length > 0, 'links crossed the cut')
      await (left[3] as SimNode).node.submitTx(transfer(g, 30).bytes)
      await (right[3] as SimNode).node.submitTx(transfer(g, 31).bytes)
      await sim.time.runFor(60_000)
      const during = sim.heads()
      assert.ok(distinct(during.map((head) => head.hash)) >= 2, 'the halves diverged while cut')
      sim.heal(cut)
      const converged = await sim.time.runUntilTrue(() => {
        const heads = sim.heads()
        return distinct(heads.map((head) => head.hash)) === 1
      }, 30_000)
      // The head keeps moving: compare at a slot boundary plus propagation time.
      const heads = sim.heads()
      assert.ok(converged, `one head after healing: ${JSON.stringify(heads.map((head) => head.height))}`)
      assert.equal(distinct(heads.map((head) => head.stateRoot)), 1, 'one state root')
      const tx30 = transfer(g, 30)
      const tx31 = transfer(g, 31)
      await sim.time.runFor(5 * SLOT_MS)
      assert.ok(sim.nodes.every((node) => included(node, tx30) && included(node, tx31)), 'both halves\' transactions are on the merged chain')
    } finally {
      await sim.stop()
    }
  })

  it('a tx sent while a node was cut off reaches it through mempool reconciliation', async () => {
    // No block production: the tx stays pending, so only the mempool can carry it.
    const sim = await cluster({ seed: 5, full: 8, degree: 3, produce: false })
    try {
      const g = sim.options.genesis
      const isolated = sim.nodes[6] as SimNode
      const others = sim.nodes.filter((node) => node !== isolated)
      const cut = sim.partition([isolated], others)
      const tx = transfer(g, 40)
      await (sim.nodes[1] as SimNode).node.submitTx(tx.bytes)
      assert.ok(await sim.time.runUntilTrue(() => others.every((node) => holds(node, tx)), 5_000), 'the rest of the network has it')
      await sim.time.runFor(5_000)
      assert.equal(holds(isolated, tx), false, 'the cut-off node missed the rumor')
      sim.heal(cut)
      assert.ok(await sim.time.runUntilTrue(() => holds(isolated, tx), 20_000), 'reconciliation brought it')
      assert.ok(isolated.services.sync.status().mempoolTxsFetched >= 1, 'fetched by mempool reconciliation, not by rumor')
    } finally {
      await sim.stop()
    }
  })

  it('a link reports its round trip as the peer\'s latency (eviction protects the lowest)', async () => {
    const sim = new SimCluster({ genesis: genesis(), seed: 5, latencyMs: 30 })
    const a = await sim.addNode()
    const b = await sim.addNode()
    sim.network.connect(a.id, b.id)
    await sim.time.runFor(500)
    assert.equal(a.transport.latencyMs(b.id), 60)
    assert.equal(a.transport.latencyMs('nobody'), undefined)
    await sim.stop()
  })

  it('the same seed gives the same trace and state; another seed another trace', async () => {
    async function run(seed: number): Promise<{ trace: string; heads: string[]; events: number }> {
      const sim = await cluster({ seed, full: 16, degree: 3 })
      try {
        const g = sim.options.genesis
        for (let i = 0; i < 10; i++) {
          await (sim.nodes[(i * 7) % sim.nodes.length] as SimNode).node.submitTx(transfer(g, 50 + i).bytes)
          await sim.time.runFor(700)
        }
        await sim.time.runFor(5 * SLOT_MS)
        return { trace: sim.network.traceHash(), heads: sim.heads().map((head) => head.hash), events: sim.time.eventsRun }
      } finally {
        await sim.stop()
      }
    }
    const first = await run(11)
    const again = await run(11)
    const other = await run(12)
    assert.ok(first.events > 1_000, `a busy run (${first.events} events)`)
    assert.equal(again.trace, first.trace, 'same seed, same delivered-message log')
    assert.equal(again.events, first.events)
    assert.deepEqual(again.heads, first.heads, 'same seed, same final state')
    assert.notEqual(other.trace, first.trace, 'another seed, another trace')
  })
})
