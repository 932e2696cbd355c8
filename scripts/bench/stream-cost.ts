/**
 * What one inbound connection, one inbound stream, and one dropped connection cost a node's event
 * loop.
 *
 * A listener takes STREAMS streams from CONNECTIONS identities that dial it from a child process
 * (so that their CPU is not counted), WAVE streams per identity at once, and prints its own CPU
 * time per stream; then it drops every connection and prints the CPU per drop. The handler reads
 * one byte and closes: what is measured is libp2p's work per stream (Yamux, multistream-select,
 * the peer store's merge of the protocol, logging, Noise) — what every sync request of an
 * attacker costs before the node's own code reads it.
 *
 * Variants, each in a fresh process: `built` is the listener as the node builds it
 * (src/net/libp2p.ts: the quiet logger, the protocol memo and noise on node:crypto's raw-key
 * path; identify and ping; connections dropped by abort, as SessionTable.hangUp does); `defaults`
 * is libp2p with the same transports and its defaults (connections dropped by libp2p's graceful
 * `hangUp`); `memo`, `quiet` and `noise` add one of the three. A connection's cost is the
 * listener's CPU while the identities dial it, one at a time (handshake, muxer, identify).
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
import { noiseCrypto } from '../../src/net/noise-crypto.ts'
import { sleep } from '../../test/helpers/net.ts'
import { intOption, parseOptions, printJson } from './util.ts'

const PROTOCOL = '/stream-cost/1'
const VARIANTS = ['defaults', 'quiet', 'memo', 'noise', 'built'] as const
type Variant = (typeof VARIANTS)[number]

/** What a process forked by this script does (its options stay in argv): measure one variant, or dial. */
type Role = { role: 'variant'; variant: Variant } | { role: 'client'; address: string }
const ROLE_ENV = 'STREAM_COST_ROLE'

/** Forks this script in `role` with the same options. */
function forkRole(role: Role, stdio: 'inherit' | ['ignore', 'pipe', 'inherit', 'ipc']) {
  return fork(fileURLToPath(import.meta.url), process.argv.slice(2).filter((arg) => arg !== '--json'), { execArgv: process.execArgv, stdio, env: { ...process.env, [ROLE_ENV]: JSON.stringify(role) } })
}

async function plain(quiet: boolean, fastNoise = false): Promise<Libp2p> {
  return createLibp2p({
    ...(quiet ? { logger: QUIET_LOGGER } : {}),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [fastNoise ? noise({ crypto: noiseCrypto }) : noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    connectionManager: { inboundConnectionThreshold: 10_000, maxConnections: 1_000 },
  })
}

async function listener(variant: Variant): Promise<Libp2p> {
  if (variant === 'built') {
    return buildLibp2p({ privateKey: await generateKeyPair('Ed25519'), protocols: protocolIds('00'.repeat(32)), listen: ['/ip4/127.0.0.1/tcp/0'], maxConnections: 1_000, inboundConnectionThreshold: 10_000, dht: false })
  }
  const node = await plain(variant === 'quiet', variant === 'noise')
  if (variant === 'memo') rememberStreamProtocols(node)
  return node
}

/** Runs one variant in this process: the listener here, the dialling identities in a child. */
type Costs = { perConnectionUs: number; perStreamUs: number; perDropUs: number }

async function server(variant: Variant, streams: number): Promise<Costs> {
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
  const child = forkRole({ role: 'client', address }, 'inherit')
  const fromChild = () =>
    new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', (code) => reject(new Error(`the dialling process exited (${code}) before it was ready`)))
    })
  await fromChild() // its libp2p nodes are up
  await sleep(300)
  const beforeDials = process.cpuUsage()
  child.send({ dial: true })
  await fromChild() // every identity has dialled
  await sleep(300) // identify and the rest of each connection's start settle
  const dialled = process.cpuUsage(beforeDials)
  const connected = node.getPeers().length
  const perConnectionUs = (dialled.user + dialled.system) / Math.max(1, connected)
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
  return { perConnectionUs, perStreamUs, perDropUs }
}

async function client(address: string, connections: number, wave: number, streams: number): Promise<void> {
  const nodes = await Promise.all(Array.from({ length: connections }, () => plain(true)))
  await Promise.all(nodes.map((node) => node.start()))
  process.send?.({ started: true })
  await new Promise<void>((resolve) => process.once('message', () => resolve()))
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
  --json           also print one JSON object as the last line`

async function main(): Promise<void> {
  const { numbers, flags } = parseOptions(USAGE, { numbers: { streams: 4_000, connections: 20, wave: 4, repeat: 3 } })
  const streams = intOption(numbers, 'streams')
  const connections = intOption(numbers, 'connections')
  const wave = intOption(numbers, 'wave')
  const repeat = intOption(numbers, 'repeat')
  const role = process.env[ROLE_ENV] === undefined ? undefined : (JSON.parse(process.env[ROLE_ENV]) as Role)
  if (role?.role === 'client') {
    await client(role.address, connections, wave, streams)
    return
  }
  if (role?.role === 'variant') {
    const result = await server(role.variant, streams)
    process.stdout.write(`${JSON.stringify(result)}\n`)
    process.exit(0)
  }
  const results = new Map<Variant, Costs[]>()
  for (let round = 0; round < repeat; round++) {
    for (const variant of VARIANTS) {
      const out = await new Promise<string>((resolve) => {
        const child = forkRole({ role: 'variant', variant }, ['ignore', 'pipe', 'inherit', 'ipc'])
        let text = ''
        child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()))
        child.on('exit', () => resolve(text))
      })
      const line = out.trim().split('\n').pop() ?? ''
      if (!line.startsWith('{')) throw new Error(`${variant}: no result`)
      const parsed = JSON.parse(line) as Costs
      results.set(variant, [...(results.get(variant) ?? []), parsed])
      process.stderr.write(`round ${round + 1} ${variant}: ${parsed.perConnectionUs.toFixed(0)} µs/connection, ${parsed.perStreamUs.toFixed(0)} µs/stream, ${parsed.perDropUs.toFixed(0)} µs/drop\n`)
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
  const medians = (variant: Variant) => {
    const rows = results.get(variant) ?? []
    return { perConnectionUs: Math.round(median(rows.map((r) => r.perConnectionUs))), perStreamUs: Math.round(median(rows.map((r) => r.perStreamUs))), perDropUs: Math.round(median(rows.map((r) => r.perDropUs))) }
  }
  process.stdout.write(`\n${streams} streams from ${connections} identities, ${wave} at once each; listener CPU, median of ${repeat} rounds\n\n| listener | CPU per inbound connection (µs) | CPU per inbound stream (µs) | CPU per dropped connection (µs) |\n|---|---|---|---|\n`)
  for (const variant of VARIANTS) process.stdout.write(`| ${variant} | ${medians(variant).perConnectionUs} | ${medians(variant).perStreamUs} | ${medians(variant).perDropUs} |\n`)
  if (flags['json']) printJson({ streams, connections, wave, repeat, ...Object.fromEntries(VARIANTS.map((variant) => [variant, medians(variant)])) })
}

await main()
