/**
 * The attackers of scripts/bench/attacks.ts, in a process of their own, so that their CPU does not
 * stand in for the victim's (the devnet's process measures only the nodes). Driven over IPC:
 *
 *   parent → { kind, count, victimAddress, genesisHashHex, chainId, status, stateRoot }  (argv[2], JSON, hex bytes)
 *   child  → { peers: [peerId…] }          every attacker dialled the victim
 *   parent → { go: true }                  start attacking
 *   parent → { status, stateRoot }         the victim's head moved (sent every 250 ms)
 *   parent → { stop: true }                stop, hang up, exit
 *   child  → { cpuPercent }                this process's CPU while attacking
 */
import '../../src/polyfill.ts'
import { randomBytes } from 'node:crypto'
import { INV_TX, MAX_INV_ITEMS, type StatusMessage, type SyncRequest, decodeStatus, encodeStatus } from '../../src/codec/wire.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { transfer } from '../../test/helpers/chain.ts'
import { RawPeer, sleep } from '../../test/helpers/net.ts'

export type AttackKind = 'inv' | 'sync' | 'unread' | 'unfunded' | 'churn'

export interface AttackerArgs {
  kind: AttackKind
  count: number
  victimAddress: string
  genesisHashHex: string
  chainId: string
  /** Hex of encodeStatus(victim status). */
  status: string
  /** Hex of the victim's head state root. */
  stateRoot: string
}

/** Status and state root as hex, for IPC. */
export function encodeView(status: StatusMessage, stateRoot: Uint8Array): { status: string; stateRoot: string } {
  return { status: Buffer.from(encodeStatus(status)).toString('hex'), stateRoot: Buffer.from(stateRoot).toString('hex') }
}

const hex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'))

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as AttackerArgs
  let status = decodeStatus(hex(args.status))
  let stateRoot = hex(args.stateRoot)
  let running = true
  let go: () => void = () => undefined
  const started = new Promise<void>((resolve) => (go = resolve))
  let stopped: () => void = () => undefined
  const stopping = new Promise<void>((resolve) => (stopped = resolve))
  process.on('message', (message: { go?: boolean; stop?: boolean; status?: string; stateRoot?: string }) => {
    if (message.status !== undefined) status = decodeStatus(hex(message.status))
    if (message.stateRoot !== undefined) stateRoot = hex(message.stateRoot)
    if (message.go === true) go()
    if (message.stop === true) {
      running = false
      stopped()
    }
  })
  process.on('disconnect', () => {
    running = false
    stopped()
  })

  // Each attacker dials from its own loopback /16 (the victim caps unstaked peers per group).
  const hostOf = (i: number) => `127.${10 + i}.0.1`
  const startPeer = (i: number) => RawPeer.start({ genesisHashHex: args.genesisHashHex, status: () => ({ ...status, mempoolSize: 0 }), host: hostOf(i) })
  // churn: no standing identities; each host brings fresh ones once the attack starts.
  const raws = args.kind === 'churn' ? [] : await Promise.all(Array.from({ length: args.count }, (_, i) => startPeer(i)))
  // Redialled until in: fresh hosts share the victim's node-wide handshake budget (HANDSHAKE_BUDGET).
  const victims = await Promise.all(raws.map((raw) => raw.dialUntilConnected(args.victimAddress, 30_000)))
  process.send?.({ peers: raws.map((raw) => raw.peerId) })
  await Promise.race([started, stopping])
  const cpuAtGo = process.cpuUsage()
  const wallAtGo = Date.now()

  const loop = (body: () => Promise<void>) =>
    (async () => {
      while (running) await body().catch(() => sleep(20))
    })()
  const bigLeaves = (): SyncRequest => ({ type: 'getLeaves', subtree: stateRoot, depth: 0, startAfter: undefined, max: 65_536 })
  const loops: Array<Promise<void>> = []
  if (args.kind === 'churn') {
    // A fresh identity from each host, one after another: a handshake (and whatever the victim does
    // for a new connection) per identity; each hangs up once connected and the next one dials.
    for (let i = 0; i < args.count; i++) {
      loops.push(
        loop(async () => {
          const raw = await startPeer(i)
          try {
            await raw.dial(args.victimAddress, 3_000)
          } finally {
            await raw.stop()
          }
        }),
      )
    }
  }
  for (const [i, raw] of raws.entries()) {
    const victim = victims[i] as (typeof victims)[number]
    switch (args.kind) {
      case 'inv':
        loops.push(
          loop(async () => {
            const pool = new Uint8Array(randomBytes(32 * MAX_INV_ITEMS))
            await raw.send(victim, { type: 'inv', items: Array.from({ length: MAX_INV_ITEMS }, (_, k) => ({ kind: INV_TX, hash: pool.subarray(32 * k, 32 * (k + 1)) })) })
            await sleep(10)
          }),
        )
        break
      case 'sync':
        for (let k = 0; k < 4; k++) loops.push(loop(async () => void (await raw.syncRequest(victim, bigLeaves(), 3_000))))
        break
      case 'unread':
        loops.push(
          loop(async () => {
            await raw.requestAndNeverRead(victim, bigLeaves())
            await sleep(100)
          }),
        )
        break
      case 'unfunded': {
        // 500 distinct unfunded txs, signed once and cycled: the same ones come round again (duplicates).
        const unfunded = Array.from({ length: 500 }, (_, k) => transfer(9_000 + k, devKeypair(7_001).publicKey, 1n, 0, 1n, args.chainId))
        let n = 0
        loops.push(
          loop(async () => {
            const txs = Array.from({ length: 256 }, () => unfunded[n++ % unfunded.length] as (typeof unfunded)[number])
            await raw.send(victim, { type: 'txs', solicited: false, txs })
            await sleep(5)
          }),
        )
        break
      }
    }
  }
  await stopping
  await Promise.all(loops)
  // What attacking cost this process (it competes with the victim for the machine's cores).
  const cpu = process.cpuUsage(cpuAtGo)
  process.send?.({ cpuPercent: Math.round((100 * (cpu.user + cpu.system)) / 1000 / Math.max(1, Date.now() - wallAtGo)) })
  await Promise.allSettled(raws.map((raw) => raw.stop()))
  process.exit(0)
}

if (process.argv[1]?.endsWith('attacker.ts')) await main()
