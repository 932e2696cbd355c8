/**
 * Finality lag under load (docs/benchmarks.md, "Finality lag"): an in-process devnet of
 * `--validators` validators (fully meshed over libp2p on 127.0.0.1) receives `--tps` transfers
 * per second for `--seconds`; at every head move of every node the lag head − finalized (blocks)
 * is sampled. Prints p50, p99 and max, and the blocks' fill.
 *
 *   npx tsx scripts/bench/finality-lag.ts [--validators 4] [--slot-ms 500] [--tps 200] [--seconds 30]
 */
import '../../src/polyfill.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { devnetGenesis } from '../../src/ledger/genesis.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import { type RunningNode, runNode } from '../../src/node/run.ts'
import { silentLogger } from '../../src/util/logger.ts'

function arg(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? Number(process.argv[index + 1] ?? fallback) : fallback
}

const VALIDATORS = arg('validators', 4)
const SLOT_MS = arg('slot-ms', 500)
const TPS = arg('tps', 200)
const SECONDS = arg('seconds', 30)
const SENDERS = 100

const genesis = devnetGenesis({ validatorCount: VALIDATORS, genesisTime: Date.now(), slotMs: SLOT_MS })
const nodes: RunningNode[] = []
for (let i = 0; i < VALIDATORS; i++) {
  nodes.push(await runNode({ genesis, key: devKeypair(i), rpcPort: 0, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false, network: { inboundConnectionThreshold: 10_000 }, log: silentLogger() }))
}
for (let a = 0; a < VALIDATORS; a++) {
  for (let b = a + 1; b < VALIDATORS; b++) {
    const address = nodes[b]?.network?.listenAddresses()[0]
    if (address !== undefined) await nodes[a]?.network?.dial(address)
  }
}
const lags: number[] = []
let txsIncluded = 0
let blocks = 0
for (const running of nodes) {
  running.node.events.on('head', (change) => lags.push(change.head.header.height - running.node.chain.finalized.height))
}
;(nodes[0] as RunningNode).node.events.on('head', (change) => {
  for (const block of change.added) {
    blocks++
    txsIncluded += block.txs.length
  }
})
const nonces = new Array<number>(SENDERS).fill(0)
const started = Date.now()
let sent = 0
while (Date.now() - started < SECONDS * 1000) {
  const due = Math.floor(((Date.now() - started) / 1000) * TPS)
  while (sent < due) {
    const sender = sent % SENDERS
    const signed = signTransfer({ chainId: genesis.chainId, from: devKeypair(sender), to: devKeypair(5_000 + (sent % 1_000)).publicKey, amount: 1n, fee: 1n, nonce: (nonces[sender] as number) })
    nonces[sender] = (nonces[sender] as number) + 1
    const node = nodes[sent % VALIDATORS] as RunningNode
    await node.node.submitTx(signed.bytes).catch(() => undefined)
    sent++
  }
  await new Promise((resolve) => setTimeout(resolve, 10))
}
await Promise.all(nodes.map((running) => running.stop()))
lags.sort((a, b) => a - b)
const pick = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] ?? 0
process.stdout.write(
  `finality lag on ${VALIDATORS} validators, slot ${SLOT_MS} ms, ${TPS} tx/s offered for ${SECONDS} s: ` +
    `${lags.length} head moves sampled, lag p50 ${pick(0.5)} blocks, p99 ${pick(0.99)}, max ${lags[lags.length - 1] ?? 0}; ` +
    `${blocks} blocks, ${txsIncluded} txs included\n`,
)
process.exit(0)
