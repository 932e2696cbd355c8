// What libp2p's connection monitor costs, measured for the simulator (src/sim/cpu-costs.ts,
// PING_* constants): every `pingInterval` (10 s by default) a libp2p node pings every connection
// it has (a new Yamux stream, multistream-select of /ipfs/ping/1.0.0, 32 bytes each way, close),
// all of them at once. In propagation.ts's one process the 16 nodes' monitors fire within a
// second of each other, a burst of ≈ 100 pings on the one event loop.
//
//   node --import tsx scripts/bench/sim-calibrate-ping.ts [--nodes 8] [--rounds 40] [--json]
//
// `nodes` libp2p nodes as the node builds them (src/net/libp2p.ts: TCP, Noise, Yamux, identify,
// ping), all in this process and fully connected; a round is what the monitors do: every node
// pings every peer at once (nodes × (nodes − 1) pings). Measured per ping (both ends, one process,
// as in propagation.ts): the main thread's CPU time (/proc; what the simulator's CPU queue stands
// for), the bytes written on the sockets (both directions) and the socket writes; and how long a
// round holds the loop. The idle process over the same time is measured and subtracted.
import '../../src/polyfill.ts'
import type { Socket } from 'node:net'
import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import type { Connection } from '@libp2p/interface'
import { byteStream } from '@libp2p/utils'
import type { Libp2p } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'
import { devKeypair } from '../../src/crypto/keys.ts'
import { libp2pKeyFrom } from '../../src/net/identity.ts'
import { buildLibp2p, protocolIds } from '../../src/net/libp2p.ts'
import { CALIBRATED_PING } from '../../src/sim/cpu-costs.ts'
import { fmt, mainThreadCpuMs, parseOptions, printJson, printTable, round, socketCollector } from './util.ts'

const USAGE = `usage: node --import tsx scripts/bench/sim-calibrate-ping.ts [--nodes N] [--rounds N] [--json]
  --nodes N    libp2p nodes, fully connected (default 8: 56 pings a round)
  --rounds N   rounds of every node pinging every peer at once (default 40)
  --json       also print one JSON object as the last line`
const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function bytesWritten(sockets: Set<Socket>): number {
  let total = 0
  for (const socket of sockets) total += socket.bytesWritten
  return total
}

async function main(): Promise<void> {
  const { numbers, flags } = parseOptions(USAGE, { numbers: { nodes: 8, rounds: 40 } })
  const count = numbers['nodes'] as number
  const rounds = numbers['rounds'] as number
  const sockets = new Set<Socket>()
  const protocols = protocolIds('00'.repeat(32))
  const nodes: Libp2p[] = []
  for (let i = 0; i < count; i++) {
    nodes.push(
      await buildLibp2p({
        privateKey: await libp2pKeyFrom(devKeypair(9000 + i)),
        protocols,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        maxConnections: 1_000,
        inboundConnectionThreshold: 10_000,
        dht: false,
        transportMetrics: socketCollector(sockets),
      }),
    )
  }
  for (let a = 0; a < count; a++) for (let b = a + 1; b < count; b++) await (nodes[a] as Libp2p).dial(multiaddr((nodes[b] as Libp2p).getMultiaddrs()[0]?.toString() ?? ''))
  // What libp2p's ConnectionMonitor does on each heartbeat (libp2p/dist/src/connection-monitor.js), for every connection of every node at once.
  const pingOnce = async (connection: Connection): Promise<void> => {
    const stream = await connection.newStream(PING_PROTOCOL, { runOnLimitedConnection: true })
    const bytes = byteStream(stream)
    await Promise.all([bytes.write(crypto.getRandomValues(new Uint8Array(32))), bytes.read({ bytes: 32 })])
    await stream.close()
  }
  const round_ = () => Promise.all(nodes.flatMap((node) => node.getConnections().map((connection) => pingOnce(connection))))
  for (let i = 0; i < 5; i++) await round_() // warm-up: JIT, stream machinery
  const pingsPerRound = nodes.reduce((sum, node) => sum + node.getConnections().length, 0)

  // Idle baseline: the same nodes connected and silent for as long as the measured rounds take.
  const measure = async (work: () => Promise<number[]>) => {
    const cpu = mainThreadCpuMs()
    const bytes = bytesWritten(sockets)
    const start = performance.now()
    const roundMs = await work()
    return { cpuMs: mainThreadCpuMs() - cpu, bytes: bytesWritten(sockets) - bytes, wallMs: performance.now() - start, roundMs }
  }
  const busy = await measure(async () => {
    const times: number[] = []
    for (let r = 0; r < rounds; r++) {
      const start = performance.now()
      await round_()
      times.push(performance.now() - start)
      await sleep(20)
    }
    return times
  })
  const idle = await measure(async () => {
    await sleep(busy.wallMs)
    return []
  })
  const pings = rounds * pingsPerRound
  const cpuPerPingMs = (busy.cpuMs - idle.cpuMs) / pings
  const bytesPerPing = (busy.bytes - idle.bytes) / pings
  const sortedRounds = [...busy.roundMs].sort((a, b) => a - b)
  const medianRoundMs = sortedRounds[Math.floor(sortedRounds.length / 2)] ?? Number.NaN
  console.log(`sim calibration of libp2p's connection monitor: ${count} nodes fully connected, ${rounds} rounds of ${pingsPerRound} pings at once; load average (1 min) ${loadavg()[0]?.toFixed(2)}`)
  printTable(
    ['measure', 'now', 'committed (src/sim/cpu-costs.ts)'],
    [
      ['main-thread CPU per ping, both ends (ms)', round(cpuPerPingMs, 4).toString(), CALIBRATED_PING.cpuMs.toString()],
      ['bytes written per ping, both directions', round(bytesPerPing, 1).toString(), CALIBRATED_PING.wireBytes.toString()],
      ['a round of pings at once: median wall (ms)', round(medianRoundMs, 1).toString(), ''],
      ['  … per ping (ms)', round(medianRoundMs / pingsPerRound, 4).toString(), ''],
      ['main-thread CPU: rounds / idle (ms)', `${fmt(busy.cpuMs)} / ${fmt(idle.cpuMs)}`, ''],
    ],
  )
  if (flags['json']) printJson({ nodes: count, rounds, pingsPerRound, cpuPerPingMs, bytesPerPing, medianRoundMs, load: loadavg()[0] })
  for (const node of nodes) await node.stop()
  process.exit(0)
}

await main()
