/**
 * Attack benchmark: a 3-validator devnet on loopback (real libp2p, one process), node 0 the
 * victim. For each attack, honest transactions are sent through node 1 while the attack runs;
 * printed: honest delivery ratio (every node has the tx within 10 s), p50/p99 propagation latency
 * against the baseline, the victim's share of its leader slots that land on the chain, the time
 * until every attacker is cut off (graylisted, disconnected or banned), and the process's peak RSS
 * and CPU (all nodes share the process: the figures bound the victim's). The attackers run in the
 * same process too: they precompute what they can (signed txs, random txids in one draw) so their
 * own CPU steals as little as possible from the victim. An attack runs while the honest txs are
 * measured, and on until every attacker is cut off or WINDOW_MS (12 s, past the longest answer
 * deadline) have passed. The victim runs libp2p's default inbound connection threshold, as a real
 * node does (the other nodes raise it: they all share 127.0.0.1).
 *
 *   node --import tsx --import ./test/setup.ts scripts/bench/attacks.ts [--txs 40] [--only 'inv flood']
 */
import { randomBytes } from 'node:crypto'
import { INV_TX, MAX_INV_ITEMS, type SyncRequest } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import type { RunningNode } from '../../src/node/run.ts'
import { transfer } from '../../test/helpers/chain.ts'
import { type Devnet, admittedRaw, blocksBy, cutOff, startDevnet } from '../../test/helpers/attack.ts'
import { type RawPeer, hasTx, sleep, stopAll } from '../../test/helpers/net.ts'

const TXS = Number(process.argv[process.argv.indexOf('--txs') + 1] || 40)
/** `--only <substring>`: run the baseline and the attacks whose name contains it (profiling one attack). */
const ONLY = process.argv.includes('--only') ? (process.argv[process.argv.indexOf('--only') + 1] ?? '') : undefined
/** Least attack window when an attacker is not yet cut off: above the 10 s maximal answer deadline. */
const WINDOW_MS = 12_000
/**
 * Every leaf of the victim's state (its head's state root: 8,000 funded accounts, a ~384 KB answer
 * that takes the victim tens of ms to collect). A zero subtree would only earn an `error` answer.
 */
const bigLeaves = (devnet: Devnet): SyncRequest => ({ type: 'getLeaves', subtree: devnet.victim.node.chain.head.header.stateRoot, depth: 0, startAfter: undefined, max: 65_536 })

interface Attack {
  name: string
  /** Starts the attack; returns the attackers and a stop function. */
  start(devnet: Devnet): Promise<{ attackers: RawPeer[]; stop: () => Promise<void> }>
}

function loop(body: () => Promise<void>): () => Promise<void> {
  let running = true
  const done = (async () => {
    while (running) await body().catch(() => sleep(20))
  })()
  return async () => {
    running = false
    await done
  }
}

async function raws(devnet: Devnet, count: number) {
  return Promise.all(Array.from({ length: count }, () => admittedRaw(devnet.victim)))
}

const ATTACKS: Attack[] = [
  { name: 'baseline (no attack)', start: async () => ({ attackers: [], stop: async () => undefined }) },
  {
    name: 'inv flood, getdata never answered (1 peer)',
    start: async (devnet) => {
      const [a] = await raws(devnet, 1)
      const { raw, victimId } = a as Awaited<ReturnType<typeof admittedRaw>>
      const stop = loop(async () => {
        // Fresh random txids every message, drawn in one call (the attacker shares our process: 4,096
        // separate randomBytes calls per message cost it more CPU than the victim spends on the flood).
        const pool = new Uint8Array(randomBytes(32 * MAX_INV_ITEMS))
        await raw.send(victimId, { type: 'inv', items: Array.from({ length: MAX_INV_ITEMS }, (_, i) => ({ kind: INV_TX, hash: pool.subarray(32 * i, 32 * (i + 1)) })) })
        await sleep(10)
      })
      return { attackers: [raw], stop }
    },
  },
  ...[1, 20].map(
    (count): Attack => ({
      name: `sync-request spam, getLeaves 65,536 (${count} peer${count > 1 ? 's' : ''})`,
      start: async (devnet) => {
        const peers = await raws(devnet, count)
        const stops = peers.flatMap(({ raw, victimId }) => Array.from({ length: 4 }, () => loop(async () => void (await raw.syncRequest(victimId, bigLeaves(devnet), 3_000)))))
        return { attackers: peers.map((p) => p.raw), stop: async () => void (await Promise.all(stops.map((s) => s()))) }
      },
    }),
  ),
  {
    name: 'ask and never read (4 peers)',
    start: async (devnet) => {
      const peers = await raws(devnet, 4)
      const stops = peers.map(({ raw, victimId }) =>
        loop(async () => {
          await raw.requestAndNeverRead(victimId, bigLeaves(devnet))
          await sleep(100)
        }),
      )
      return { attackers: peers.map((p) => p.raw), stop: async () => void (await Promise.all(stops.map((s) => s()))) }
    },
  },
  {
    name: 'unfunded valid-signature txs + duplicates (1 peer)',
    start: async (devnet) => {
      const [a] = await raws(devnet, 1)
      const { raw, victimId } = a as Awaited<ReturnType<typeof admittedRaw>>
      let n = 0
      const chainId = devnet.victim.node.genesis.chainId
      // The 500 distinct unfunded txs, signed once: the same ones come round again and again (the
      // duplicates). Signing them afresh for every message would spend our shared process's CPU
      // on the attacker's side.
      const unfunded = Array.from({ length: 500 }, (_, i) => transfer(9_000 + i, devKeypair(7_001).publicKey, 1n, 0, 1n, chainId))
      const stop = loop(async () => {
        const txs = Array.from({ length: 256 }, () => unfunded[n++ % unfunded.length] as (typeof unfunded)[number])
        await raw.send(victimId, { type: 'txs', solicited: false, txs })
        await sleep(5)
      })
      return { attackers: [raw], stop }
    },
  },
]

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

async function run(attack: Attack, sender: number): Promise<Record<string, string | number>> {
  // The victim keeps libp2p's default inbound connection threshold (5 per second per host), as a
  // real node does; the loopback devnet raises it for every node only because honest nodes all
  // share 127.0.0.1 (each attacker here dials from its own 127.x.0.1).
  const devnet = await startDevnet(3, { fundedCount: 8_000, slotMs: 400, victim: { network: {} } })
  const attackRaws: RawPeer[] = []
  try {
    const victim = devnet.victim
    const via = devnet.nodes[1] as RunningNode
    await sleep(1_000)
    let peakRss = process.memoryUsage().rss
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100)
    const cpuBefore = process.cpuUsage()
    const wallBefore = Date.now()
    const startHeight = via.node.chain.head.header.height
    const startSlot = victim.node.chain.schedule.slotAt(Date.now())
    const started = Date.now()
    const { attackers, stop } = await attack.start(devnet)
    attackRaws.push(...attackers)
    let cutOffMs: number | undefined
    const watch = setInterval(() => {
      if (cutOffMs === undefined && attackers.length > 0 && attackers.every((raw) => cutOff(victim, raw.peerId))) cutOffMs = Date.now() - started
    }, 20)
    const latencies: number[] = []
    let delivered = 0
    await Promise.all(
      Array.from({ length: TXS }, async (_, i) => {
        await sleep(i * 100)
        const signed = transfer(sender, devKeypair(7_777).publicKey, 1n, i, 1n, via.node.genesis.chainId)
        const sentAt = Date.now()
        await via.node.submitTx(signed.bytes).catch(() => undefined)
        while (Date.now() - sentAt < 10_000) {
          if (devnet.nodes.every((node) => hasTx(node.node, signed.idHex))) {
            delivered++
            latencies.push(Date.now() - sentAt)
            return
          }
          await sleep(5)
        }
      }),
    )
    await sleep(1_500)
    // The window covers the longest answer deadline (10 s) with margin: the attack runs until every
    // attacker is cut off or WINDOW_MS have passed since it started, so a cut-off by deadline shows.
    while (attackers.length > 0 && cutOffMs === undefined && Date.now() - started < WINDOW_MS) await sleep(50)
    const endSlot = victim.node.chain.schedule.slotAt(Date.now()) - 2
    let led = 0
    const victimAddress = Buffer.from(devKeypair(0).publicKey).toString('hex')
    for (let slot = startSlot + 1; slot <= endSlot; slot++) if (Buffer.from(victim.node.chain.schedule.leaderFor(slot).address).toString('hex') === victimAddress) led++
    const landed = blocksBy(via, 0, startHeight)
    clearInterval(watch)
    clearInterval(sampler)
    const cpu = process.cpuUsage(cpuBefore)
    const wall = Date.now() - wallBefore
    await stop()
    return {
      attack: attack.name,
      delivery: `${((100 * delivered) / TXS).toFixed(1)}%`,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      victimSlotsLanded: `${landed}/${led}`,
      cutOffMs: attackers.length === 0 ? '-' : (cutOffMs ?? 'not cut off'),
      peakRssMiB: Math.round(peakRss / (1024 * 1024)),
      cpuPercent: Math.round((100 * (cpu.user + cpu.system)) / 1000 / wall),
    }
  } finally {
    await stopAll(devnet.nodes, attackRaws)
  }
}

const rows: Array<Record<string, string | number>> = []
let sender = 50
for (const attack of ATTACKS) {
  if (ONLY !== undefined && attack !== ATTACKS[0] && !attack.name.includes(ONLY)) continue
  rows.push(await run(attack, sender++))
  process.stdout.write(`${JSON.stringify(rows[rows.length - 1])}\n`)
}
const baseline = rows[0]?.p99Ms as number
process.stdout.write('\n| attack | delivery | p50 ms | p99 ms | p99 vs baseline | victim slots landed | cut off (ms) | peak RSS MiB | CPU % |\n|---|---|---|---|---|---|---|---|---|\n')
for (const row of rows) {
  const ratio = typeof row.p99Ms === 'number' && baseline > 0 ? `${(row.p99Ms / baseline).toFixed(2)}×` : '-'
  process.stdout.write(`| ${row.attack} | ${row.delivery} | ${row.p50Ms} | ${row.p99Ms} | ${ratio} | ${row.victimSlotsLanded} | ${row.cutOffMs} | ${row.peakRssMiB} | ${row.cpuPercent} |\n`)
}
process.exit(0)
