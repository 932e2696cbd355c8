/**
 * What one inbound stream, and one dropped connection, cost a node's event loop.
 *
 * A listener takes STREAMS streams from CONNECTIONS identities that dial it from a child process
 * (so that their CPU is not counted), WAVE streams per identity at once, and prints its own CPU
 * time per stream; then it drops every connection and prints the CPU per drop. The handler reads
 * one byte and closes: what is measured is libp2p's work per stream (Yamux, multistream-select,
 * the peer store's merge of the protocol, logging, Noise) — what every sync request of an
 * attacker costs before the node's own code reads it.
 *
 * Variants, each in a fresh process: `built` is the listener as the node builds it
 * (src/net/libp2p.ts: the quiet logger and the protocol memo; connections dropped by abort, as
 * SessionTable.hangUp does); `defaults` is libp2p with the same transports and its defaults
 * (connections dropped by libp2p's graceful `hangUp`); `memo` and `quiet` add one of the two.
 *
 *   node --import tsx scripts/bench/stream-cost.ts [--streams 4000] [--connections 20] [--wave 4] [--repeat 3] [--json]
 */
import '../../src/polyfill.ts'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { type Libp2p, createLibp2p } from 'libp2p'
import { QUIET_LOGGER, buildLibp2p, protocolIds, rememberStreamProtocols } from '../../src/net/libp2p.ts'

const PROTOCOL = '/stream-cost/1'
const VARIANTS = ['defaults', 'quiet', 'memo', 'built'] as const
type Variant = (typeof VARIANTS)[number]

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function plain(quiet: boolean): Promise<Libp2p> {
  return createLibp2p({
    ...(quiet ? { logger: QUIET_LOGGER } : {}),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    connectionManager: { inboundConnectionThreshold: 10_000, maxConnections: 1_000 },
  })
}

async function listener(variant: Variant): Promise<Libp2p> {
  if (variant === 'built') {
    return buildLibp2p({ privateKey: await generateKeyPair('Ed25519'), protocols: protocolIds('00'.repeat(32)), listen: ['/ip4/127.0.0.1/tcp/0'], maxConnections: 1_000, inboundConnectionThreshold: 10_000, dht: false })
  }
  const node = await plain(variant === 'quiet')
  if (variant === 'memo') rememberStreamProtocols(node)
  return node
}

/** Runs one variant in this process: the listener here, the dialling identities in a child. */
async function server(variant: Variant, streams: number, connections: number, wave: number): Promise<{ perStreamUs: number; perDropUs: number }> {
  const node = await listener(variant)
  await node.start()
  let handled = 0
  await node.handle(
    PROTOCOL,
    async (stream: Stream) => {
      handled++
      await stream.close().catch(() => undefined)
    },
    { maxInboundStreams: 64 },
  )
  const address = node.getMultiaddrs()[0]?.toString() ?? ''
  const child = fork(fileURLToPath(import.meta.url), ['--client', address, String(connections), String(wave), String(streams)], { execArgv: process.execArgv, stdio: 'inherit' })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`the dialling process exited (${code}) before it was ready`)))
  })
  await sleep(300)
  const before = process.cpuUsage()
  child.send({ go: true })
  const deadline = Date.now() + 120_000
  while (handled < streams && Date.now() < deadline) await sleep(2)
  const used = process.cpuUsage(before)
  const perStreamUs = (used.user + used.system) / handled
  await sleep(300)
  const peers = node.getPeers()
  const beforeDrop = process.cpuUsage()
  for (const peer of peers) {
    if (variant === 'built') for (const connection of node.getConnections(peer)) connection.abort(new Error('dropped'))
    else await node.hangUp(peer).catch(() => undefined)
  }
  while (node.getConnections().length > 0 && Date.now() < deadline) await sleep(1)
  const dropped = process.cpuUsage(beforeDrop)
  const perDropUs = (dropped.user + dropped.system) / Math.max(1, peers.length)
  child.kill()
  await node.stop()
  return { perStreamUs, perDropUs }
}

async function client(address: string, connections: number, wave: number, streams: number): Promise<void> {
  const nodes = await Promise.all(Array.from({ length: connections }, () => plain(true)))
  await Promise.all(nodes.map((node) => node.start()))
  // One at a time: libp2p's defaults refuse more than 10 handshakes in progress at once.
  for (const node of nodes) await node.dial(multiaddr(address))
  process.send?.({ ready: true })
  await new Promise<void>((resolve) => process.once('message', () => resolve()))
  let left = streams
  await Promise.all(
    nodes.map(async (node) => {
      while (left > 0) {
        const batch = Math.min(wave, left)
        left -= batch
        await Promise.all(
          Array.from({ length: batch }, async () => {
            const stream = await node.dialProtocol(multiaddr(address), PROTOCOL)
            stream.send(new Uint8Array([1]))
            await stream.close().catch(() => undefined)
          }),
        ).catch(() => undefined)
      }
    }),
  )
  await sleep(60_000)
}

const USAGE = `usage: node --import tsx scripts/bench/stream-cost.ts [--streams N] [--connections N] [--wave N] [--repeat N] [--json]
  --streams N      inbound streams per variant (default 4000)
  --connections N  dialling identities (default 20)
  --wave N         streams each identity opens at once (default 4)
  --repeat N       rounds of every variant; medians are printed (default 3)
  --json           also print one JSON object as the last line
`

async function main(): Promise<void> {
  if (process.argv.includes('--help')) {
    process.stdout.write(USAGE)
    return
  }
  const at = process.argv.indexOf('--client')
  if (at >= 0) {
    const [address = '', connections, wave, streams] = process.argv.slice(at + 1)
    await client(address, Number(connections), Number(wave), Number(streams))
    return
  }
  const variantAt = process.argv.indexOf('--variant')
  const streams = flag('streams', 4_000)
  const connections = flag('connections', 20)
  const wave = flag('wave', 4)
  if (variantAt >= 0) {
    const result = await server(process.argv[variantAt + 1] as Variant, streams, connections, wave)
    process.stdout.write(`${JSON.stringify(result)}\n`)
    process.exit(0)
  }
  const repeat = flag('repeat', 3)
  const results = new Map<Variant, Array<{ perStreamUs: number; perDropUs: number }>>()
  for (let round = 0; round < repeat; round++) {
    for (const variant of VARIANTS) {
      const out = await new Promise<string>((resolve) => {
        const child = fork(fileURLToPath(import.meta.url), ['--variant', variant, '--streams', String(streams), '--connections', String(connections), '--wave', String(wave)], { execArgv: process.execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
        let text = ''
        child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()))
        child.on('exit', () => resolve(text))
      })
      const line = out.trim().split('\n').pop() ?? ''
      if (!line.startsWith('{')) throw new Error(`${variant}: no result`)
      const parsed = JSON.parse(line) as { perStreamUs: number; perDropUs: number }
      results.set(variant, [...(results.get(variant) ?? []), parsed])
      process.stderr.write(`round ${round + 1} ${variant}: ${parsed.perStreamUs.toFixed(0)} µs/stream, ${parsed.perDropUs.toFixed(0)} µs/drop\n`)
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
  process.stdout.write(`\n${streams} streams from ${connections} identities, ${wave} at once each; listener CPU, median of ${repeat} rounds\n\n| listener | CPU per inbound stream (µs) | CPU per dropped connection (µs) |\n|---|---|---|\n`)
  for (const variant of VARIANTS) {
    const rows = results.get(variant) ?? []
    process.stdout.write(`| ${variant} | ${median(rows.map((r) => r.perStreamUs)).toFixed(0)} | ${median(rows.map((r) => r.perDropUs)).toFixed(0)} |\n`)
  }
  if (process.argv.includes('--json')) {
    const summary = Object.fromEntries(VARIANTS.map((variant) => {
      const rows = results.get(variant) ?? []
      return [variant, { perStreamUs: Math.round(median(rows.map((r) => r.perStreamUs))), perDropUs: Math.round(median(rows.map((r) => r.perDropUs))) }]
    }))
    process.stdout.write(`${JSON.stringify({ streams, connections, wave, repeat, ...summary })}\n`)
  }
}

await main()
