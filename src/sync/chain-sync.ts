/**
 * Chain reconciliation, headers first (docs/protocol.md, "Chain sync"):
 *
 * 1. Fork point in O(log h) hashes: a locator of our canonical hashes (the last ten, then
 *    exponentially spaced back to genesis); the peer answers with its headers after the first
 *    locator hash on its canonical chain.
 * 2. Every header is verified before any body is fetched: linkage, signature, leader schedule,
 *    slots and timestamps (the same rules as block import). A peer serving a forged header is
 *    reported and dropped.
 * 3. Bodies come from several peers in parallel (bounded in flight), are checked against the
 *    verified headers, and are imported strictly in order; a longer chain reorgs the node.
 */
import { bytesEqual, toHexKey } from '../codec/bytes.ts'
import { MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_PER_RESPONSE } from '../codec/wire.ts'
import { headerHash } from '../codec/objects.ts'
import type { Chain } from '../chain/chain.ts'
import { validateHeader } from '../chain/execute.ts'
import { BlockError } from '../ledger/errors.ts'
import type { Block, Header } from '../ledger/types.ts'
import { type Timers, sleep } from '../util/clock.ts'
import { RequestScheduler } from './scheduler.ts'
import type { SyncPeerPool, SyncTransport } from './interfaces.ts'
import { RATE_LIMITED_ANSWER } from '../peers/rate-limit.ts'
import { BadAnswerError, PeerBusyError } from './state-sync.ts'

export interface VerifiedHeader {
  header: Header
  hash: Uint8Array
}

/** Hashes of our canonical chain: head, head-1, … head-9, then gaps doubling, ending at genesis. */
export function buildLocator(chain: Chain): Uint8Array[] {
  const locator: Uint8Array[] = []
  let height = chain.head.header.height
  let step = 1
  while (height > 0 && locator.length < 63) {
    const hash = chain.getCanonicalHash(height)
    if (hash !== undefined) locator.push(hash)
    if (locator.length >= 10) step *= 2
    height -= step
  }
  locator.push(chain.genesisBlock)
  return locator
}

export interface ChainSyncOptions {
  headersPerRequest: number
  blocksPerRequest: number
  /** Body requests in flight per peer. */
  maxInFlightPerPeer: number
  requestTimeoutMs: number
}

/** A header request refused as rate limited is asked again after this long, at most this many times. */
const BUSY_RETRY_MS = 1_000
const MAX_BUSY_RETRIES = 10

export const DEFAULT_CHAIN_SYNC_OPTIONS: ChainSyncOptions = {
  headersPerRequest: MAX_HEADERS_PER_RESPONSE,
  blocksPerRequest: 32,
  maxInFlightPerPeer: 2,
  requestTimeoutMs: 15_000,
}

export interface ChainSyncDeps {
  chain: Chain
  transport: SyncTransport
  peers: SyncPeerPool
  now: () => number
  timers: Timers
  /** Imports one block (full validation); throws BlockError. */
  importBlock: (block: Block) => Promise<void>
  onProgress?: (event: { headers?: number; blocks?: number; bytes?: number }) => void
}

export class ChainSync {
  readonly options: ChainSyncOptions

  constructor(
    private readonly deps: ChainSyncDeps,
    options: Partial<ChainSyncOptions> = {},
  ) {
    this.options = { ...DEFAULT_CHAIN_SYNC_OPTIONS, ...options }
    if (this.options.blocksPerRequest > MAX_BLOCKS_PER_REQUEST) this.options.blocksPerRequest = MAX_BLOCKS_PER_REQUEST
  }

  /**
   * Downloads and verifies `peerId`'s headers after our fork point up to `targetHeight`.
   * `locator` defaults to our canonical chain's. Throws BadAnswerError for a forged chain.
   */
  async fetchHeaders(peerId: string, targetHeight: number, locator: Uint8Array[] = buildLocator(this.deps.chain)): Promise<VerifiedHeader[]> {
    const { chain, transport } = this.deps
    const out: VerifiedHeader[] = []
    let currentLocator = locator
    let parent: VerifiedHeader | undefined
    let busy = 0
    while (out.length === 0 || (out[out.length - 1] as VerifiedHeader).header.height < targetHeight) {
      const response = await transport.request(peerId, { type: 'getHeaders', locator: currentLocator, max: this.options.headersPerRequest }, this.options.requestTimeoutMs)
      if (response.type === 'error' && response.message === RATE_LIMITED_ANSWER) {
        // The peer's node-wide quota is spent for now: ask again shortly, a few times.
        if (++busy > MAX_BUSY_RETRIES) throw new PeerBusyError('peer keeps refusing header requests (rate limited)')
        await sleep(this.deps.timers, BUSY_RETRY_MS)
        continue
      }
      if (response.type !== 'headers') throw new BadAnswerError(`expected headers, got ${response.type}`, 'forged', 'SYNC_FORGED_CHAIN')
      if (response.headers.length === 0) break
      for (const header of response.headers) {
        const hash = headerHash(header)
        const parentHeader = parent?.header ?? chain.getHeader(header.parentHash)
        const parentHash = parent?.hash ?? header.parentHash
        // The first header must attach to a header we know; later ones to their predecessor.
        if (parentHeader === undefined || !bytesEqual(header.parentHash, parentHash)) {
          throw new BadAnswerError(`header at height ${header.height} does not link to a known parent`, 'forged', 'SYNC_FORGED_CHAIN')
        }
        try {
          validateHeader(header, parentHeader, { genesis: chain.genesis, schedule: chain.schedule, now: this.deps.now() })
        } catch (error) {
          if (error instanceof BlockError) throw new BadAnswerError(`invalid header at height ${header.height}: ${error.code}`, 'forged', 'SYNC_FORGED_CHAIN')
          throw error
        }
        parent = { header, hash }
        out.push(parent)
      }
      this.deps.onProgress?.({ headers: response.headers.length })
      if (response.headers.length < this.options.headersPerRequest) break
      currentLocator = [(parent as VerifiedHeader).hash]
    }
    return out
  }

  /**
   * Fetches the bodies of `headers` (in chain order) from the pool's peers in parallel and imports
   * them in order. Returns the number of blocks imported.
   */
  async fetchAndImport(headers: VerifiedHeader[], signal?: AbortSignal): Promise<number> {
    const { transport, peers } = this.deps
    const queue: Array<{ start: number; end: number }> = []
    for (let start = 0; start < headers.length; start += this.options.blocksPerRequest) {
      queue.push({ start, end: Math.min(headers.length, start + this.options.blocksPerRequest) })
    }
    /** Bounded by the header count: blocks received but not yet imported, and who sent each. */
    const received = new Map<number, Block>()
    const servedBy = new Map<number, string>()
    const scheduler = new RequestScheduler(this.deps.timers, this.options.maxInFlightPerPeer)
    let nextImport = 0
    let importing: Promise<void> | undefined
    let failure: Error | undefined

    /** A sender's body failed against its verified header: drop what it sent and requeue the rest. */
    const dropSender = (sender: string) => {
      for (const [index, from] of [...servedBy]) {
        if (from === sender) {
          received.delete(index)
          servedBy.delete(index)
        }
      }
      queue.length = 0
      for (let index = nextImport; index < headers.length; ) {
        if (received.has(index)) {
          index++
          continue
        }
        let end = index + 1
        while (end < headers.length && end - index < this.options.blocksPerRequest && !received.has(end)) end++
        queue.push({ start: index, end })
        index = end
      }
    }

    const importLoop = async () => {
      try {
        while (received.has(nextImport)) {
          const block = received.get(nextImport) as Block
          const sender = servedBy.get(nextImport)
          received.delete(nextImport)
          servedBy.delete(nextImport)
          try {
            await this.deps.importBlock(block)
          } catch (error) {
            if (!(error instanceof BlockError)) throw error
            if (error.code !== 'BLOCK_ALREADY_KNOWN') {
              if (error.action !== 'reject' || sender === undefined) throw error
              // The header was verified, so a body that fails is the sender's forgery.
              scheduler.exclude(sender)
              peers.reportBad(sender, `invalid block body at height ${block.header.height}: ${error.code}`, 'forged', 'SYNC_FORGED_CHAIN')
              dropSender(sender)
              break
            }
          }
          nextImport++
          this.deps.onProgress?.({ blocks: 1 })
        }
      } catch (error) {
        failure = error as Error
      }
    }
    const importReady = () => {
      if (importing !== undefined) return
      importing = importLoop().finally(() => {
        importing = undefined
        scheduler.wake()
      })
    }

    const fetchChunk = (peerId: string, chunk: { start: number; end: number }): Promise<unknown> => {
      const wanted = headers.slice(chunk.start, chunk.end)
      return transport
        .request(peerId, { type: 'getBlocks', hashes: wanted.map((entry) => entry.hash) }, this.options.requestTimeoutMs)
        .then((response) => {
          if (scheduler.isExcluded(peerId)) return
          if (response.type === 'error' && response.message === RATE_LIMITED_ANSWER) throw new PeerBusyError('peer is rate limiting our requests')
          if (response.type !== 'blocks') throw new BadAnswerError(`expected blocks, got ${response.type}`, 'useless')
          const requested = new Set(wanted.map((entry) => toHexKey(entry.hash)))
          const byHash = new Map<string, Block>()
          for (const block of response.blocks) {
            const hex = toHexKey(headerHash(block.header))
            // A block nobody asked for cannot be an honest answer.
            if (!requested.has(hex)) throw new BadAnswerError('blocks that were not asked for', 'forged', 'SYNC_FORGED_CHAIN')
            byHash.set(hex, block)
          }
          // Use the contiguous run from the chunk's start; a peer may lack some (state-synced below its pivot).
          let got = 0
          for (let i = chunk.start; i < chunk.end; i++) {
            const block = byHash.get(toHexKey((headers[i] as VerifiedHeader).hash))
            if (block === undefined) break
            received.set(i, block)
            servedBy.set(i, peerId)
            got++
          }
          if (got === 0) throw new BadAnswerError('peer has none of the requested blocks', 'useless')
          if (chunk.start + got < chunk.end) queue.unshift({ start: chunk.start + got, end: chunk.end })
          importReady()
        })
        .catch((error: unknown) => {
          queue.unshift(chunk)
          if (error instanceof PeerBusyError) return
          if (error instanceof BadAnswerError) {
            scheduler.exclude(peerId)
            peers.reportBad(peerId, error.message, error.kind, error.code)
          } else {
            peers.reportFailure(peerId, (error as Error).message)
          }
        })
    }

    while (nextImport < headers.length) {
      if (failure !== undefined) throw failure
      if (signal?.aborted === true) throw new Error('chain sync aborted')
      scheduler.fill(peers.candidates(), () => queue.shift(), fetchChunk)
      if (nextImport >= headers.length) break
      await scheduler.waitForWake(1_000)
    }
    while (importing !== undefined) await importing
    if (failure !== undefined) throw failure
    return nextImport
  }
}
