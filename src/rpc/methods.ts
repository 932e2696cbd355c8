/**
 * The method table: each method declares its params (by position or by name), validates them
 * and calls the backend. `rpc_discover` returns an OpenRPC document generated from this table.
 */
import { HexTooLongError, fromHex } from '../codec/bytes.ts'
import { MAX_TX_BYTES } from '../codec/limits.ts'
import { parseAddress } from '../crypto/keys.ts'
import { TxError } from '../ledger/errors.ts'
import type { RpcBackend } from './backend.ts'
import { RpcError, TX_REJECTED, invalidParams } from './errors.ts'

function peerIdParam(value: unknown): string {
  if (typeof value !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{20,128}$/.test(value)) throw invalidParams('peerId must be a base58 libp2p peer id')
  return value
}

type JsonSchema = Record<string, unknown>

export interface ParamSpec {
  name: string
  required: boolean
  schema: JsonSchema
  description: string
}

export interface MethodSpec {
  name: string
  summary: string
  params: ParamSpec[]
  result: { name: string; schema: JsonSchema }
  handler: (params: Record<string, unknown>, backend: RpcBackend) => unknown
  /** Present only when the backend supports it. */
  available?: (backend: RpcBackend) => boolean
  /** Admin method: registered only when an admin token is configured, and called only with it. */
  admin?: boolean
}

const HASH_SCHEMA = { type: 'string', pattern: '^0x[0-9a-fA-F]{64}$' }
const HEX_SCHEMA = { type: 'string', pattern: '^0x([0-9a-fA-F]{2})*$' }
const AMOUNT_SCHEMA = { type: 'string', pattern: '^(0|[1-9][0-9]*)$', description: 'u64 as a decimal string' }

function hashParam(value: unknown, name: string): Uint8Array {
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(value)) throw invalidParams(`${name} must be 0x followed by 64 hex digits`)
  return fromHex(value, { expectedBytes: 32 })
}

function booleanParam(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalidParams(`${name} must be a boolean`)
  return value
}

const HEADER_SCHEMA = {
  type: 'object',
  properties: {
    hash: HASH_SCHEMA,
    chainId: { type: 'string' },
    height: { type: 'integer' },
    slot: { type: 'integer' },
    parentHash: HASH_SCHEMA,
    timestamp: { type: 'integer' },
    proposer: HASH_SCHEMA,
    txRoot: HASH_SCHEMA,
    stateRoot: HASH_SCHEMA,
    txCount: { type: 'integer' },
    signature: HEX_SCHEMA,
  },
}

export const METHODS: MethodSpec[] = [
  {
    name: 'node_status',
    summary: 'Chain id, genesis hash, head, state root, mempool size and (with networking) peer id, peers and listen addresses.',
    params: [],
    result: { name: 'status', schema: { type: 'object' } },
    handler: (_params, backend) => backend.status(),
  },
  {
    name: 'tx_send',
    summary: 'Submits a hex-encoded signed transaction; returns its txid. Rejections carry the reject code in error.data.code.',
    params: [{ name: 'tx', required: true, schema: HEX_SCHEMA, description: 'canonical transaction encoding, 0x hex' }],
    result: { name: 'txid', schema: HASH_SCHEMA },
    handler: (params, backend) => {
      const raw = params['tx']
      if (typeof raw !== 'string') throw invalidParams('tx must be a 0x hex string')
      let bytes: Uint8Array
      try {
        bytes = fromHex(raw, { maxBytes: MAX_TX_BYTES })
      } catch (error) {
        // An oversized or non-hex payload is the transaction's fault: report it with the tx code.
        if (error instanceof HexTooLongError) {
          throw new RpcError(TX_REJECTED, 'transaction rejected: too large', { code: 'TX_TOO_LARGE', message: (error as Error).message })
        }
        throw invalidParams(`tx: ${(error as Error).message}`)
      }
      const rejected = (error: unknown): never => {
        if (error instanceof TxError) throw new RpcError(TX_REJECTED, `transaction rejected: ${error.message}`, { code: error.code, message: error.message })
        throw error
      }
      try {
        return Promise.resolve(backend.submitTx(bytes)).catch(rejected)
      } catch (error) {
        return rejected(error)
      }
    },
  },
  {
    name: 'tx_get',
    summary: 'Looks up a transaction by txid: pending (in the mempool), included or finalized (with height and block hash); null if unknown.',
    params: [{ name: 'txid', required: true, schema: HASH_SCHEMA, description: 'transaction id, 0x hex' }],
    result: { name: 'transaction', schema: { oneOf: [{ type: 'object' }, { type: 'null' }] } },
    handler: (params, backend) => backend.getTx(hashParam(params['txid'], 'txid')),
  },
  {
    name: 'state_getAccount',
    summary: 'Balance and nonce of an address at the head; with proof=true, a Merkle proof against the head state root.',
    params: [
      { name: 'address', required: true, schema: HASH_SCHEMA, description: 'account address (ed25519 public key), 0x hex' },
      { name: 'proof', required: false, schema: { type: 'boolean' }, description: 'include an inclusion proof (default false)' },
    ],
    result: {
      name: 'account',
      schema: { type: 'object', properties: { address: HASH_SCHEMA, balance: AMOUNT_SCHEMA, nonce: { type: 'integer' }, proof: { type: 'object' } } },
    },
    handler: (params, backend) => {
      let address: Uint8Array
      try {
        address = parseAddress(params['address'] as string)
      } catch (error) {
        throw invalidParams(`address: ${(error as Error).message}`)
      }
      return backend.getAccount(address, booleanParam(params['proof'], 'proof', false))
    },
  },
  {
    name: 'chain_getHead',
    summary: 'The header of the current head block, with finalizedHeight and finalizedHash.',
    params: [],
    result: { name: 'header', schema: HEADER_SCHEMA },
    handler: (_params, backend) => backend.getHead(),
  },
  {
    name: 'chain_getBlock',
    summary: 'A canonical block by height, or any known block by hash; null if unknown.',
    params: [
      { name: 'block', required: true, schema: { oneOf: [{ type: 'integer', minimum: 0 }, HASH_SCHEMA] }, description: 'height or block hash' },
      { name: 'fullTransactions', required: false, schema: { type: 'boolean' }, description: 'full transactions instead of txids (default false)' },
    ],
    result: { name: 'block', schema: { oneOf: [HEADER_SCHEMA, { type: 'null' }] } },
    handler: (params, backend) => {
      const ref = params['block']
      const full = booleanParam(params['fullTransactions'], 'fullTransactions', false)
      if (typeof ref === 'number') {
        if (!Number.isSafeInteger(ref) || ref < 0) throw invalidParams('block height must be a non-negative integer')
        return backend.getBlock({ height: ref }, full)
      }
      return backend.getBlock({ hash: hashParam(ref, 'block') }, full)
    },
  },
  {
    name: 'chain_getFinality',
    summary: 'The finality certificate of the latest finalized block ("latest", the default) or of a finalized height; null if none is kept.',
    params: [
      { name: 'block', required: false, schema: { oneOf: [{ const: 'latest' }, { type: 'integer', minimum: 0 }] }, description: '"latest" or a finalized height' },
    ],
    result: { name: 'certificate', schema: { oneOf: [{ type: 'object' }, { type: 'null' }] } },
    handler: (params, backend) => {
      const ref = params['block'] ?? 'latest'
      if (ref !== 'latest' && (typeof ref !== 'number' || !Number.isSafeInteger(ref) || ref < 0)) throw invalidParams('block must be "latest" or a non-negative integer')
      return backend.getFinality?.(ref) ?? null
    },
    available: (backend) => typeof backend.getFinality === 'function',
  },
  {
    name: 'chain_getEvidence',
    summary: 'Equivocation evidence on record (two votes by one validator at one height for different blocks), oldest first.',
    params: [],
    result: { name: 'evidence', schema: { type: 'array', items: { type: 'object' } } },
    handler: (_params, backend) => backend.getEvidence?.() ?? [],
    available: (backend) => typeof backend.getEvidence === 'function',
  },
  {
    name: 'net_peers',
    summary: 'Connected peers: id, direction, stake, addresses, bytes in/out and per-protocol message counters.',
    params: [],
    result: { name: 'peers', schema: { type: 'array', items: { type: 'object' } } },
    handler: (_params, backend) => backend.peers?.() ?? [],
    available: (backend) => typeof backend.peers === 'function',
  },
  {
    name: 'net_bans',
    summary: 'Bans: peer ids (with until, repeat count, address group) and banned address groups, which survive restarts; then hosts cooling down (refused before their handshake for bringing refused identities; in memory only).',
    params: [],
    result: { name: 'bans', schema: { type: 'array', items: { type: 'object' } } },
    handler: (_params, backend) => backend.bans?.() ?? [],
    available: (backend) => typeof backend.bans === 'function',
  },
  {
    name: 'net_ban',
    summary: 'Admin: bans a peer id now (growing duration on repeats) and hangs up on it. Needs the admin token.',
    params: [{ name: 'peerId', required: true, schema: { type: 'string' }, description: 'libp2p peer id' }],
    result: { name: 'banned', schema: { type: 'boolean' } },
    handler: (params, backend) => backend.ban?.(peerIdParam(params['peerId'])) ?? false,
    available: (backend) => typeof backend.ban === 'function',
    admin: true,
  },
  {
    name: 'net_unban',
    summary: 'Admin: lifts a peer id\'s ban (its score is left to decay). Needs the admin token.',
    params: [{ name: 'peerId', required: true, schema: { type: 'string' }, description: 'libp2p peer id' }],
    result: { name: 'unbanned', schema: { type: 'boolean' } },
    handler: (params, backend) => backend.unban?.(peerIdParam(params['peerId'])) ?? false,
    available: (backend) => typeof backend.unban === 'function',
    admin: true,
  },
  {
    name: 'net_addPeer',
    summary: 'Admin: dials a multiaddr (with /p2p/<id>); true once connected. Needs the admin token.',
    params: [{ name: 'address', required: true, schema: { type: 'string' }, description: 'multiaddr, e.g. /ip4/1.2.3.4/tcp/9000/p2p/12D3…' }],
    result: { name: 'connected', schema: { type: 'boolean' } },
    handler: (params, backend) => {
      const address = params['address']
      if (typeof address !== 'string' || !address.startsWith('/') || address.length > 512) throw invalidParams('address must be a multiaddr string')
      return backend.addPeer?.(address) ?? false
    },
    available: (backend) => typeof backend.addPeer === 'function',
    admin: true,
  },
  {
    name: 'sync_status',
    summary: 'Catch-up progress: phase (headers / state / blocks / synced), target height, items and bytes fetched, rate, ETA.',
    params: [],
    result: { name: 'sync', schema: { type: 'object' } },
    handler: (_params, backend) => backend.syncStatus?.() ?? null,
    available: (backend) => typeof backend.syncStatus === 'function',
  },
]

export function methodsFor(backend: RpcBackend, options: { admin?: boolean } = {}): Map<string, MethodSpec> {
  const table = new Map<string, MethodSpec>()
  for (const method of METHODS) {
    if (method.admin === true && options.admin !== true) continue
    if (method.available === undefined || method.available(backend)) table.set(method.name, method)
  }
  table.set('rpc_discover', {
    name: 'rpc_discover',
    summary: 'This node\'s OpenRPC document.',
    params: [],
    result: { name: 'openrpc', schema: { type: 'object' } },
    handler: () => openRpcDocument([...table.values()]),
  })
  return table
}

export function openRpcDocument(methods: MethodSpec[]): Record<string, unknown> {
  return {
    openrpc: '1.2.6',
    info: { title: 'Grapevine JSON-RPC', version: '1.0.0', description: 'JSON-RPC 2.0 over HTTP POST. Amounts are decimal strings; bytes are 0x hex.' },
    methods: methods.map((method) => ({
      name: method.name,
      summary: method.summary,
      paramStructure: 'either',
      params: method.params.map((param) => ({ name: param.name, required: param.required, description: param.description, schema: param.schema })),
      result: method.result,
    })),
  }
}

/** Maps positional or named params onto the method's declared names; rejects extras. */
export function bindParams(method: MethodSpec, params: unknown): Record<string, unknown> {
  const bound: Record<string, unknown> = {}
  if (params === undefined) {
    // no params
  } else if (Array.isArray(params)) {
    if (params.length > method.params.length) throw invalidParams(`${method.name} takes at most ${method.params.length} params`)
    params.forEach((value, index) => {
      bound[(method.params[index] as ParamSpec).name] = value
    })
  } else if (typeof params === 'object' && params !== null) {
    for (const [name, value] of Object.entries(params)) {
      if (!method.params.some((param) => param.name === name)) throw invalidParams(`unknown param ${JSON.stringify(name)}`)
      bound[name] = value
    }
  } else {
    throw invalidParams('params must be an array or an object')
  }
  for (const param of method.params) {
    if (param.required && bound[param.name] === undefined) throw invalidParams(`missing required param ${param.name}`)
  }
  return bound
}
