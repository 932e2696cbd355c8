/**
 * Finality lag on a running devnet (docs/benchmarks.md, "Finality lag"): polls every node's
 * `node_status` over JSON-RPC every `--interval-ms` for `--seconds` and samples the lag
 * height − finalizedHeight (blocks). Run it beside `npm run devnet` and `npm run load`; it samples
 * in wall-clock time (not at head moves, as finality-lag.ts does), so a sample taken just before a
 * head move and one just after both count.
 *
 *   npx tsx scripts/bench/finality-lag-devnet.ts [--devnet .devnet/devnet.json] [--seconds 120] [--interval-ms 200]
 */
import '../../src/polyfill.ts'
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import type { DevnetFile } from '../../src/cli/devnet.ts'
import type { NodeStatusView } from '../../src/rpc/backend.ts'
import { RpcClient } from '../../src/rpc/client.ts'

function arg(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback
}

const devnet = JSON.parse(readFileSync(arg('devnet', '.devnet/devnet.json'), 'utf8')) as DevnetFile
const SECONDS = Number(arg('seconds', '120'))
const INTERVAL_MS = Number(arg('interval-ms', '200'))

const clients = devnet.nodes.map((node) => new RpcClient(node.rpc.startsWith('http') ? node.rpc : `http://${node.rpc}`, 5_000))
const lags: number[][] = devnet.nodes.map(() => [])
const loads: number[] = []
let firstHeight: number | undefined
let lastHeight = 0
let failures = 0
let stop = false
process.on('SIGINT', () => {
  stop = true
})
const started = Date.now()
while (!stop && Date.now() - started < SECONDS * 1000) {
  const tick = Date.now()
  await Promise.all(
    clients.map(async (client, index) => {
      try {
        const status = await client.call<NodeStatusView>('node_status')
        ;(lags[index] as number[]).push(status.height - status.finalizedHeight)
        firstHeight ??= status.height
        lastHeight = Math.max(lastHeight, status.height)
      } catch {
        failures++
      }
    }),
  )
  if (loads.length < (Date.now() - started) / 10_000) loads.push(loadavg()[0] ?? 0)
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, INTERVAL_MS - (Date.now() - tick))))
}

const quantiles = (values: number[]): string => {
  const sorted = [...values].sort((a, b) => a - b)
  const pick = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return `p50 ${pick(0.5)}, p99 ${pick(0.99)}, max ${sorted.at(-1) ?? 0} (${sorted.length} samples)`
}
const all = lags.flat()
process.stdout.write(
  `finality lag (head − finalized, blocks) on the devnet, ${devnet.nodes.length} nodes polled every ${INTERVAL_MS} ms for ${((Date.now() - started) / 1000).toFixed(0)} s, ` +
    `heights ${firstHeight ?? '?'}–${lastHeight}, load avg (1 min) ${loads.map((l) => l.toFixed(1)).join(' ')}, ${failures} failed polls\n`,
)
devnet.nodes.forEach((node, index) => process.stdout.write(`  ${node.name}: ${quantiles(lags[index] as number[])}\n`))
process.stdout.write(`  all nodes: ${quantiles(all)}\n`)
process.exit(0)
