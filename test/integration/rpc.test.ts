/**
 * JSON-RPC 2.0 over real HTTP: a GrapevineNode (in-memory store, one validator, an injected clock
 * so blocks are produced exactly when the test says) behind an RpcServer on 127.0.0.1, plus a
 * small fake backend for internal errors and body/batch limits.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { fromHex, toHex } from '../../src/codec/bytes.ts'
import { genesisHash, toSignedTx } from '../../src/codec/objects.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { TxError } from '../../src/ledger/errors.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { SignedTx } from '../../src/ledger/types.ts'
import { silentLogger } from '../../src/util/logger.ts'
import { GrapevineNode } from '../../src/node/node.ts'
import { rpcBackend } from '../../src/node/rpc-backend.ts'
import type { AccountView, NodeStatusView, RpcBackend, TxLookupView } from '../../src/rpc/backend.ts'
import { RpcServer } from '../../src/rpc/server.ts'
import type { BlockView, HeaderView, TxView } from '../../src/rpc/views.ts'
import { EMPTY_ROOT, MemoryNodeStore, ProofError, applyUpdates, verifyAccountProof } from '../../src/state/trie.ts'
import { testGenesis, transfer } from '../helpers/chain.ts'

const TEST_TIMEOUT_MS = 60_000
const SLOT_MS = 1_000
const INITIAL_BALANCE = 1_000_000_000_000n

interface RpcErrorObject {
  code: number
  message: string
  data?: unknown
}

interface RpcAnswer {
  jsonrpc: string
  id: unknown
  result?: unknown
  error?: RpcErrorObject
}

interface HttpAnswer {
  status: number
  headers: Headers
  text: string
}

async function postRaw(url: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<HttpAnswer> {
  const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) })
  return { status: response.status, headers: response.headers, text: await response.text() }
}

/** POSTs a JSON value; expects HTTP 200 with a JSON body. */
async function postJson(url: string, payload: unknown): Promise<unknown> {
  const answer = await postRaw(url, JSON.stringify(payload))
  assert.equal(answer.status, 200, `HTTP ${answer.status}: ${answer.text}`)
  assert.match(answer.headers.get('content-type') ?? '', /application\/json/)
  return JSON.parse(answer.text)
}

async function call(url: string, method: string, params?: unknown, id: unknown = 1): Promise<RpcAnswer> {
  const request: Record<string, unknown> = { jsonrpc: '2.0', id, method }
  if (params !== undefined) request['params'] = params
  const answer = (await postJson(url, request)) as RpcAnswer
  assert.equal(answer.jsonrpc, '2.0')
  return answer
}

/** Calls and returns the result, failing on an error answer. */
async function result<T>(url: string, method: string, params?: unknown): Promise<T> {
  const answer = await call(url, method, params)
  assert.equal(answer.error, undefined, `${method} failed: ${JSON.stringify(answer.error)}`)
  assert.ok('result' in answer, `${method}: answer without result`)
  return answer.result as T
}

/** Calls and returns the error, failing on a success answer. */
async function errorOf(url: string, method: string, params?: unknown, id: unknown = 7): Promise<RpcErrorObject> {
  const answer = await call(url, method, params, id)
  assert.ok(answer.error !== undefined, `${method}(${JSON.stringify(params)}) should fail, got ${JSON.stringify(answer.result)}`)
  assert.equal(answer.result, undefined)
  assert.deepEqual(answer.id, id)
  assert.equal(typeof answer.error.message, 'string')
  return answer.error
}

function withSignature(signed: SignedTx, signature: Uint8Array): SignedTx {
  return toSignedTx({ ...signed.tx, signature })
}

function checkProof(account: AccountView, address: Uint8Array, stateRoot: string): { balance: bigint; nonce: number } | undefined {
  const proof = account.proof
  assert.ok(proof !== undefined, 'proof requested but missing')
  assert.equal(proof.stateRoot, stateRoot)
  assert.equal(proof.keyHash, toHex(sha256(address)))
  return verifyAccountProof(fromHex(proof.stateRoot), fromHex(proof.keyHash), proof.nodes.map((node) => fromHex(node)))
}

// The tests below share one node and run in order: each builds on the chain the previous ones left.
describe('JSON-RPC over HTTP against a real node', () => {
  const genesis = testGenesis({ validators: 1, slotMs: SLOT_MS })
  const validator = devKeypair(0)
  let now = genesis.genesisTime + 10
  let node: GrapevineNode | undefined
  let server: RpcServer | undefined
  let url = ''

  const sender = devKeypair(10)
  const recipient = devKeypair(5000).publicKey
  const neverSeen = devKeypair(5001).publicKey
  const first = transfer(10, recipient, 1234n, 0, 5n)
  let firstBlockHash = ''

  /** Moves the clock to the next slot and has the (only) validator produce a block. */
  async function produceBlock(): Promise<void> {
    now += SLOT_MS
    const block = await (node as GrapevineNode).produceNow()
    assert.ok(block !== undefined, 'the only validator should produce in every slot')
  }

  before(async () => {
    node = await GrapevineNode.open({ genesis, key: validator, clock: () => now })
    server = new RpcServer(rpcBackend({ node }), { host: '127.0.0.1', port: 0, log: silentLogger() })
    const listening = await server.listen()
    assert.ok(listening.port > 0, 'a real port was picked')
    url = listening.url
  }, { timeout: TEST_TIMEOUT_MS })

  after(async () => {
    await server?.close()
    await node?.stop()
  })

  it('node_status describes the genesis head, with positional, named or no params', { timeout: TEST_TIMEOUT_MS }, async () => {
    const status = await result<NodeStatusView>(url, 'node_status', [])
    assert.equal(status.chainId, genesis.chainId)
    assert.equal(status.genesisHash, toHex(genesisHash(genesis)))
    assert.equal(status.height, 0)
    assert.equal(status.headHash, toHex((node as GrapevineNode).chain.genesisBlock))
    const funded = genesis.accounts.map((account) => ({ keyHash: sha256(account.address), account: { balance: account.balance, nonce: 0 } }))
    assert.equal(status.stateRoot, toHex(applyUpdates(new MemoryNodeStore(), EMPTY_ROOT, funded).root))
    assert.equal(status.mempoolSize, 0)
    assert.equal(status.mempoolBytes, 0)
    assert.equal(status.validator, toHex(validator.publicKey))
    assert.deepEqual(await result(url, 'node_status', {}), status)
    assert.deepEqual(await result(url, 'node_status'), status)
  })

  it('tx_send returns the txid; tx_get says pending, then included after a block, null when unknown', { timeout: TEST_TIMEOUT_MS }, async () => {
    const txid = await result<string>(url, 'tx_send', [toHex(first.bytes)])
    assert.equal(txid, toHex(first.id))

    const pending = await result<TxLookupView>(url, 'tx_get', [txid])
    assert.equal(pending.status, 'pending')
    assert.equal(pending.height, undefined)
    assert.equal(pending.blockHash, undefined)
    const view: TxView = pending.tx
    assert.equal(view.txid, txid)
    assert.equal(view.chainId, genesis.chainId)
    assert.equal(view.from, toHex(sender.publicKey))
    assert.equal(view.to, toHex(recipient))
    assert.equal(view.amount, '1234')
    assert.equal(view.fee, '5')
    assert.equal(view.nonce, 0)
    assert.equal(view.raw, toHex(first.bytes))

    const status = await result<NodeStatusView>(url, 'node_status')
    assert.equal(status.mempoolSize, 1)
    assert.equal(status.mempoolBytes, first.bytes.length)
    const beforeBlock = await result<AccountView>(url, 'state_getAccount', [toHex(sender.publicKey)])
    assert.equal(beforeBlock.nonce, 0)
    assert.equal(beforeBlock.pendingNonce, 1)
    assert.equal(beforeBlock.balance, INITIAL_BALANCE.toString())
    assert.equal(beforeBlock.proof, undefined, 'no proof unless asked for')

    await produceBlock()
    const head = await result<HeaderView>(url, 'chain_getHead')
    assert.equal(head.height, 1)
    assert.equal(head.txCount, 1)
    firstBlockHash = head.hash

    const included = await result<TxLookupView>(url, 'tx_get', { txid })
    assert.ok(included.status === 'included' || included.status === 'finalized', included.status)
    assert.equal(included.height, 1)
    assert.equal(included.blockHash, head.hash)
    assert.deepEqual(included.tx, view)
    assert.equal((await result<NodeStatusView>(url, 'node_status')).mempoolSize, 0)

    assert.equal(await result(url, 'tx_get', [toHex(sha256(new Uint8Array([1, 2, 3])))]), null)
  })

  it('state_getAccount proves existing and never-seen accounts against the head state root', { timeout: TEST_TIMEOUT_MS }, async () => {
    const head = await result<HeaderView>(url, 'chain_getHead')
    const block = await result<BlockView>(url, 'chain_getBlock', [head.height])
    assert.equal(block.stateRoot, head.stateRoot)

    const senderView = await result<AccountView>(url, 'state_getAccount', { address: toHex(sender.publicKey), proof: true })
    assert.equal(senderView.address, toHex(sender.publicKey))
    assert.equal(senderView.balance, (INITIAL_BALANCE - 1234n - 5n).toString())
    assert.equal(senderView.nonce, 1)
    assert.equal(senderView.pendingNonce, 1)
    assert.equal(senderView.proof?.blockHash, head.hash)
    assert.equal(senderView.proof?.height, head.height)
    assert.deepEqual(checkProof(senderView, sender.publicKey, head.stateRoot), { balance: INITIAL_BALANCE - 1239n, nonce: 1 })

    const recipientView = await result<AccountView>(url, 'state_getAccount', [toHex(recipient), true])
    assert.equal(recipientView.balance, '1234')
    assert.deepEqual(checkProof(recipientView, recipient, block.stateRoot), { balance: 1234n, nonce: 0 })

    const proposerView = await result<AccountView>(url, 'state_getAccount', [toHex(validator.publicKey), true])
    assert.equal(proposerView.balance, (INITIAL_BALANCE + 5n).toString(), 'the fee goes to the proposer')
    assert.deepEqual(checkProof(proposerView, validator.publicKey, head.stateRoot), { balance: INITIAL_BALANCE + 5n, nonce: 0 })

    const absent = await result<AccountView>(url, 'state_getAccount', { address: toHex(neverSeen), proof: true })
    assert.equal(absent.balance, '0')
    assert.equal(absent.nonce, 0)
    assert.ok((absent.proof?.nodes.length ?? 0) > 0, 'an exclusion proof still walks from the root')
    assert.equal(checkProof(absent, neverSeen, head.stateRoot), undefined, 'the proof shows the key is absent')

    // The proofs bind to the root: against another root (genesis) they are refused.
    const genesisRoot = (await result<BlockView>(url, 'chain_getBlock', [0])).stateRoot
    assert.notEqual(genesisRoot, head.stateRoot)
    const proof = senderView.proof
    assert.ok(proof !== undefined, 'sender proof')
    assert.throws(() => verifyAccountProof(fromHex(genesisRoot), fromHex(proof.keyHash), proof.nodes.map((n) => fromHex(n))), ProofError)
    // And a proof for one key proves nothing about another key: refused, or shown absent.
    let other: unknown
    try {
      other = verifyAccountProof(fromHex(head.stateRoot), sha256(recipient), proof.nodes.map((n) => fromHex(n)))
    } catch (error) {
      assert.ok(error instanceof ProofError, String(error))
      other = 'refused'
    }
    assert.ok(other === 'refused' || other === undefined, `a foreign proof must not yield an account: ${String(other)}`)
  })

  it('chain_getHead and chain_getBlock by height and by hash, with and without full transactions', { timeout: TEST_TIMEOUT_MS }, async () => {
    // A second block with two transactions, so bodies have more than one entry.
    const second = transfer(10, recipient, 1n, 1, 2n)
    const third = transfer(11, devKeypair(5002).publicKey, 7n, 0, 3n)
    for (const signed of [second, third]) assert.equal(await result(url, 'tx_send', [toHex(signed.bytes)]), toHex(signed.id))
    await produceBlock()

    const head = await result<HeaderView>(url, 'chain_getHead')
    assert.equal(head.height, 2)
    assert.equal(head.parentHash, firstBlockHash)
    assert.equal(head.chainId, genesis.chainId)
    assert.equal(head.proposer, toHex(validator.publicKey))
    assert.equal(head.txCount, 2)
    assert.equal(head.slot, 2)
    assert.match(head.signature, /^0x[0-9a-f]{128}$/)
    const status = await result<NodeStatusView>(url, 'node_status')
    assert.equal(status.headHash, head.hash)
    assert.equal(status.height, 2)
    assert.equal(status.stateRoot, head.stateRoot)

    const byHeight = await result<BlockView>(url, 'chain_getBlock', [2])
    const byHash = await result<BlockView>(url, 'chain_getBlock', { block: head.hash })
    assert.deepEqual(byHash, byHeight)
    const { transactions, ...headerPart } = byHeight
    // chain_getHead is the head's header plus the finalized pointer.
    const { finalizedHeight, finalizedHash, ...headHeader } = head as HeaderView & { finalizedHeight: number; finalizedHash: string }
    assert.ok(finalizedHeight <= head.height)
    assert.match(finalizedHash, /^0x[0-9a-f]{64}$/)
    assert.deepEqual(headerPart, headHeader)
    assert.deepEqual(new Set(transactions as string[]), new Set([toHex(second.id), toHex(third.id)]))

    const full = await result<BlockView>(url, 'chain_getBlock', [head.hash, true])
    const fullTxs = full.transactions as TxView[]
    assert.equal(fullTxs.length, 2)
    assert.deepEqual(fullTxs.map((tx) => tx.txid), transactions)
    for (const tx of fullTxs) {
      const original = [second, third].find((signed) => toHex(signed.id) === tx.txid)
      assert.ok(original !== undefined, `unexpected tx ${tx.txid}`)
      assert.equal(tx.raw, toHex(original.bytes))
      assert.equal(tx.amount, original.tx.amount.toString())
    }
    const notFull = await result<BlockView>(url, 'chain_getBlock', { block: 2, fullTransactions: false })
    assert.deepEqual(notFull.transactions, transactions)

    const genesisBlock = await result<BlockView>(url, 'chain_getBlock', [0, true])
    assert.equal(genesisBlock.height, 0)
    assert.equal(genesisBlock.hash, toHex((node as GrapevineNode).chain.genesisBlock))
    assert.deepEqual(genesisBlock.transactions, [])
    assert.equal((await result<BlockView>(url, 'chain_getBlock', [1])).hash, firstBlockHash)

    assert.equal(await result(url, 'chain_getBlock', [3]), null, 'one past the head')
    assert.equal(await result(url, 'chain_getBlock', [1_000_000, true]), null)
    assert.equal(await result(url, 'chain_getBlock', [toHex(sha256(new Uint8Array([9])))]), null)
  })

  it('rpc_discover lists every method the node answers, and only those', { timeout: TEST_TIMEOUT_MS }, async () => {
    const doc = await result<{ openrpc: string; info: { title: string }; methods: Array<{ name: string; params: Array<{ name: string; required: boolean; schema: unknown }> }> }>(
      url,
      'rpc_discover',
    )
    assert.match(doc.openrpc, /^1\.\d+\.\d+$/)
    assert.equal(typeof doc.info.title, 'string')
    const names = doc.methods.map((method) => method.name)
    assert.equal(new Set(names).size, names.length, 'no duplicates')
    for (const expected of ['node_status', 'tx_send', 'tx_get', 'state_getAccount', 'chain_getHead', 'chain_getBlock', 'net_peers', 'rpc_discover']) {
      assert.ok(names.includes(expected), `${expected} missing from rpc_discover`)
    }
    const tx = doc.methods.find((method) => method.name === 'state_getAccount')
    assert.deepEqual(tx?.params.map((param) => [param.name, param.required]), [['address', true], ['proof', false]])
    // Every listed method exists; an optional one (sync_status) is listed exactly when it answers.
    for (const name of [...names, 'sync_status']) {
      const answer = await call(url, name, [])
      const missing = answer.error?.code === -32601
      assert.equal(missing, !names.includes(name), `${name}: listed=${names.includes(name)} but answer ${JSON.stringify(answer.error)}`)
    }
  })

  it('batches answer in order with ids preserved, omit notifications, and mix results and errors', { timeout: TEST_TIMEOUT_MS }, async () => {
    const answers = (await postJson(url, [
      { jsonrpc: '2.0', id: 'a', method: 'chain_getHead' },
      { jsonrpc: '2.0', method: 'node_status' },
      { jsonrpc: '2.0', id: 2, method: 'no_such_method' },
      { jsonrpc: '2.0', id: null, method: 'tx_get', params: ['0x12'] },
      7,
      { jsonrpc: '2.0', method: 'no_such_method' },
      { jsonrpc: '2.0', id: 3, method: 'state_getAccount', params: [toHex(recipient)] },
    ])) as RpcAnswer[]
    assert.ok(Array.isArray(answers), 'a batch gets an array')
    assert.deepEqual(answers.map((answer) => answer.id), ['a', 2, null, null, 3])
    assert.equal((answers[0]?.result as HeaderView).height, 2)
    assert.equal(answers[1]?.error?.code, -32601)
    assert.equal(answers[2]?.error?.code, -32602)
    assert.equal(answers[3]?.error?.code, -32600)
    assert.equal((answers[4]?.result as AccountView).balance, '1235')
    for (const answer of answers) assert.equal(answer.jsonrpc, '2.0')
  })

  it('a batch of only notifications (and a single notification) gets HTTP 204 and no body', { timeout: TEST_TIMEOUT_MS }, async () => {
    const batch = await postRaw(url, JSON.stringify([{ jsonrpc: '2.0', method: 'node_status' }, { jsonrpc: '2.0', method: 'nope', params: [] }]))
    assert.equal(batch.status, 204)
    assert.equal(batch.text, '')
    const single = await postRaw(url, JSON.stringify({ jsonrpc: '2.0', method: 'chain_getHead' }))
    assert.equal(single.status, 204)
    assert.equal(single.text, '')
  })

  it('an empty batch is -32600 with id null', { timeout: TEST_TIMEOUT_MS }, async () => {
    const answer = (await postJson(url, [])) as RpcAnswer
    assert.ok(!Array.isArray(answer), 'one error object, not a batch answer')
    assert.equal(answer.id, null)
    assert.equal(answer.error?.code, -32600)
  })

  it('-32700 for bodies that are not JSON', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const body of ['{"jsonrpc":"2.0","id":1,', 'not json', '', '[{"jsonrpc":"2.0","id":1,"method":"node_status"},]']) {
      const answer = await postRaw(url, body)
      assert.equal(answer.status, 200, body)
      const parsed = JSON.parse(answer.text) as RpcAnswer
      assert.equal(parsed.error?.code, -32700, body)
      assert.equal(parsed.id, null)
      assert.equal(parsed.result, undefined)
    }
  })

  it('-32600 for requests of the wrong shape', { timeout: TEST_TIMEOUT_MS }, async () => {
    const cases: Array<[string, unknown, unknown]> = [
      ['a number', 42, null],
      ['a string', 'node_status', null],
      ['null', null, null],
      ['wrong jsonrpc', { jsonrpc: '1.0', id: 5, method: 'node_status' }, 5],
      ['missing jsonrpc', { id: 6, method: 'node_status' }, 6],
      ['object id', { jsonrpc: '2.0', id: { x: 1 }, method: 'node_status' }, null],
      ['boolean id', { jsonrpc: '2.0', id: true, method: 'node_status' }, null],
      ['array id', { jsonrpc: '2.0', id: [1], method: 'node_status' }, null],
      ['method not a string', { jsonrpc: '2.0', id: 8, method: 42 }, 8],
      ['method missing', { jsonrpc: '2.0', id: 9 }, 9],
      ['params a number', { jsonrpc: '2.0', id: 10, method: 'node_status', params: 7 }, 10],
      ['params a string', { jsonrpc: '2.0', id: 11, method: 'tx_get', params: '0x00' }, 11],
      ['params null', { jsonrpc: '2.0', id: 12, method: 'node_status', params: null }, 12],
    ]
    for (const [label, request, id] of cases) {
      const answer = (await postJson(url, request)) as RpcAnswer
      assert.equal(answer.error?.code, -32600, `${label}: ${JSON.stringify(answer)}`)
      assert.deepEqual(answer.id, id, label)
      assert.equal(answer.result, undefined, label)
    }
    // Inside a batch, each bad element gets its own -32600.
    const answers = (await postJson(url, [1, { jsonrpc: '2.0', id: 'ok', method: 'chain_getHead' }, 'x'])) as RpcAnswer[]
    assert.deepEqual(answers.map((answer) => answer.error?.code), [-32600, undefined, -32600])
    assert.equal(answers[1]?.id, 'ok')
  })

  it('-32601 for unknown methods, keeping the id', { timeout: TEST_TIMEOUT_MS }, async () => {
    assert.equal((await errorOf(url, 'eth_blockNumber', [], 'req-1')).code, -32601)
    assert.equal((await errorOf(url, 'constructor', [])).code, -32601)
    assert.equal((await errorOf(url, '__proto__', [])).code, -32601)
    assert.equal((await errorOf(url, 'x'.repeat(5000), [])).message.length < 200, true, 'the echoed name is bounded')
  })

  it('-32602 for missing, mistyped, extra and malformed params', { timeout: TEST_TIMEOUT_MS }, async () => {
    const address = toHex(recipient)
    const cases: Array<[string, string, unknown]> = [
      ['missing txid', 'tx_get', []],
      ['missing named address', 'state_getAccount', { proof: true }],
      ['missing tx', 'tx_send', {}],
      ['txid a number', 'tx_get', [5]],
      ['tx a number', 'tx_send', [123]],
      ['tx not hex', 'tx_send', ['0xzz']],
      ['tx odd hex', 'tx_send', ['0xabc']],
      ['proof not boolean', 'state_getAccount', [address, 'yes']],
      ['fullTransactions not boolean', 'chain_getBlock', [0, 1]],
      ['block a boolean', 'chain_getBlock', [true]],
      ['negative height', 'chain_getBlock', [-1]],
      ['fractional height', 'chain_getBlock', [1.5]],
      ['extra named param', 'state_getAccount', { address, proof: false, extra: 1 }],
      ['extra positional param', 'tx_get', [toHex(first.id), true]],
      ['params to a method without params', 'chain_getHead', [1]],
      ['bad address (short)', 'state_getAccount', ['0x1234']],
      ['bad address (no 0x)', 'state_getAccount', [address.slice(2)]],
      ['bad address (not a string)', 'state_getAccount', [12]],
      ['bad hash (short)', 'tx_get', ['0xabcd']],
      ['bad hash (non-hex)', 'tx_get', ['0x' + 'g'.repeat(64)]],
      ['bad block hash', 'chain_getBlock', ['0x' + '0'.repeat(63)]],
    ]
    for (const [label, method, params] of cases) {
      const error = await errorOf(url, method, params)
      assert.equal(error.code, -32602, `${label}: ${JSON.stringify(error)}`)
    }
  })

  it('-32001 carries the reject code for refused transactions', { timeout: TEST_TIMEOUT_MS }, async () => {
    const badSignature = first.tx.signature.slice()
    badSignature[0] = (badSignature[0] as number) ^ 0x01
    const fresh = transfer(12, recipient, 10n, 0, 1n)
    const cases: Array<[string, SignedTx | string]> = [
      ['TX_BAD_SIGNATURE', withSignature(fresh, new Uint8Array(64))],
      ['TX_BAD_SIGNATURE', withSignature(transfer(13, recipient, 10n, 0, 1n), badSignature)],
      ['TX_NONCE_TOO_LOW', transfer(10, recipient, 999n, 0, 1n)],
      ['TX_WRONG_CHAIN', signTransfer({ chainId: 'another-chain', from: devKeypair(12), to: recipient, amount: 1n, fee: 1n, nonce: 0 })],
      ['TX_INSUFFICIENT_FUNDS', transfer(4000, recipient, 1n, 0, 1n)],
      ['TX_FEE_TOO_LOW', transfer(14, recipient, 1n, 0, 0n)],
      ['TX_ALREADY_KNOWN', first],
      ['TX_MALFORMED', '0x0102030405'],
      ['TX_TOO_LARGE', '0x' + '00'.repeat(4096)],
    ]
    for (const [code, tx] of cases) {
      const hex = typeof tx === 'string' ? tx : toHex(tx.bytes)
      const error = await errorOf(url, 'tx_send', [hex])
      assert.equal(error.code, -32001, `${code}: ${JSON.stringify(error)}`)
      assert.equal((error.data as { code?: string } | undefined)?.code, code, JSON.stringify(error))
      assert.equal(typeof (error.data as { message?: unknown }).message, 'string')
    }
    // None of the refused transactions reached the mempool.
    assert.equal((await result<NodeStatusView>(url, 'node_status')).mempoolSize, 0)
    // The same transaction, correctly signed, is accepted: the refusals were about the tx, not the sender.
    assert.equal(await result(url, 'tx_send', [toHex(fresh.bytes)]), toHex(fresh.id))
  })

  it('GET / serves the dashboard; other GET paths are 405 (POST only); other methods too', { timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-type') ?? '', /text\/html/)
    await page.text()
    const get = await fetch(`${url}/nothing-here`, { signal: AbortSignal.timeout(5_000) })
    assert.equal(get.status, 405)
    assert.match(get.headers.get('allow') ?? '', /POST/)
    const body = JSON.parse(await get.text()) as RpcAnswer
    assert.equal(body.error?.code, -32600)
    const put = await fetch(url, { method: 'PUT', body: '{}', signal: AbortSignal.timeout(5_000) })
    assert.equal(put.status, 405)
    await put.text()
    const getOther = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })
    assert.equal(getOther.status, 405, 'no GET routes were configured')
    await getOther.text()
  })
})

// ----------------------------------------------------------------------------------------------
// Internal errors and limits, over a small fake backend that counts what reaches it.

class FakeBackend implements RpcBackend {
  calls = 0

  status(): NodeStatusView {
    this.calls++
    throw new Error('disk on fire')
  }

  submitTx(): string {
    this.calls++
    throw new TxError('MEMPOOL_FULL', 'mempool is full', 'ignore')
  }

  getTx(): TxLookupView | null {
    this.calls++
    throw new TypeError('cannot read properties of undefined')
  }

  getAccount(address: Uint8Array): AccountView {
    this.calls++
    return { address: toHex(address), balance: '0', nonce: 0, pendingNonce: 0 }
  }

  getHead(): HeaderView {
    this.calls++
    return {
      hash: toHex(new Uint8Array(32)),
      chainId: 'fake',
      height: 0,
      slot: 0,
      parentHash: toHex(new Uint8Array(32)),
      timestamp: 0,
      proposer: toHex(new Uint8Array(32)),
      txRoot: toHex(new Uint8Array(32)),
      stateRoot: toHex(new Uint8Array(32)),
      txCount: 0,
      signature: toHex(new Uint8Array(64)),
    }
  }

  getBlock(): BlockView | null {
    this.calls++
    return null
  }
}

interface RawAnswer {
  status: number
  head: string
  body: string
}

/**
 * Speaks HTTP/1.1 by hand over a socket: writes `head`, then each body chunk `chunkDelayMs` apart,
 * and stops writing as soon as the server starts answering. Resolves when the server closes.
 */
function rawRequest(port: number, head: string, chunks: string[], chunkDelayMs: number): Promise<RawAnswer & { chunksWritten: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    let chunksWritten = 0
    let timer: NodeJS.Timeout | undefined
    const guard = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no complete answer within 10 s; got ${JSON.stringify(received.slice(0, 200))}`))
    }, 10_000)
    const writeNext = () => {
      if (received.length > 0 || chunksWritten >= chunks.length || socket.destroyed) return
      socket.write(chunks[chunksWritten] as string)
      chunksWritten++
      timer = setTimeout(writeNext, chunkDelayMs)
    }
    socket.on('connect', () => {
      socket.write(head)
      timer = setTimeout(writeNext, chunkDelayMs)
    })
    socket.on('data', (data: Buffer) => (received += data.toString('latin1')))
    // A reset after the answer arrived is fine: the server closes a refused request's connection.
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(guard)
      if (timer !== undefined) clearTimeout(timer)
      const split = received.indexOf('\r\n\r\n')
      if (split < 0) return reject(new Error(`connection closed without an HTTP answer: ${JSON.stringify(received.slice(0, 200))}`))
      const headText = received.slice(0, split)
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1])
      const rawBody = received.slice(split + 4)
      const body = /^transfer-encoding: *chunked/im.test(headText) ? dechunk(rawBody) : rawBody
      resolve({ status, head: headText, body, chunksWritten })
    })
  })
}

/** Decodes an HTTP/1.1 chunked body (ASCII only, as our JSON answers are). */
function dechunk(text: string): string {
  let out = ''
  let offset = 0
  for (;;) {
    const lineEnd = text.indexOf('\r\n', offset)
    if (lineEnd < 0) throw new Error('truncated chunked body')
    const size = Number.parseInt(text.slice(offset, lineEnd), 16)
    if (!Number.isFinite(size)) throw new Error('bad chunk size')
    if (size === 0) return out
    out += text.slice(lineEnd + 2, lineEnd + 2 + size)
    offset = lineEnd + 2 + size + 2
  }
}

describe('JSON-RPC internal errors and limits (fake backend)', () => {
  const MAX_BODY_BYTES = 1024
  const MAX_BATCH = 4
  const backend = new FakeBackend()
  let server: RpcServer | undefined
  let url = ''
  let port = 0

  before(async () => {
    server = new RpcServer(backend, { host: '127.0.0.1', port: 0, maxBodyBytes: MAX_BODY_BYTES, maxBatch: MAX_BATCH, log: silentLogger() })
    const listening = await server.listen()
    url = listening.url
    port = listening.port
  })

  after(async () => {
    await server?.close()
  })

  it('-32603 when the backend throws a plain error, without leaking its message', { timeout: TEST_TIMEOUT_MS }, async () => {
    const status = await errorOf(url, 'node_status', [], 'i1')
    assert.equal(status.code, -32603)
    assert.doesNotMatch(status.message, /disk on fire/)
    assert.equal(status.data, undefined)
    const lookup = await errorOf(url, 'tx_get', [toHex(new Uint8Array(32))], 'i2')
    assert.equal(lookup.code, -32603)
    // A TxError from the backend is an application error, not an internal one.
    const full = await errorOf(url, 'tx_send', [toHex(new Uint8Array(16).fill(0xab))])
    assert.equal(full.code, -32001)
    assert.equal((full.data as { code?: string }).code, 'MEMPOOL_FULL')
    // The server keeps answering after handler failures.
    assert.equal((await result<HeaderView>(url, 'chain_getHead')).chainId, 'fake')
    // Internal errors inside a batch stay per-element.
    const answers = (await postJson(url, [
      { jsonrpc: '2.0', id: 1, method: 'node_status' },
      { jsonrpc: '2.0', id: 2, method: 'chain_getHead' },
    ])) as RpcAnswer[]
    assert.deepEqual(answers.map((answer) => answer.error?.code), [-32603, undefined])
  })

  it('a batch larger than maxBatch is one -32600 and runs none of its calls', { timeout: TEST_TIMEOUT_MS }, async () => {
    const callsBefore = backend.calls
    const oversized = Array.from({ length: MAX_BATCH + 1 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'chain_getHead' }))
    const answer = (await postJson(url, oversized)) as RpcAnswer
    assert.ok(!Array.isArray(answer), 'one error object, not a batch answer')
    assert.equal(answer.error?.code, -32600)
    assert.equal(answer.id, null)
    assert.equal(backend.calls, callsBefore)
    const atLimit = (await postJson(url, oversized.slice(0, MAX_BATCH))) as RpcAnswer[]
    assert.equal(atLimit.length, MAX_BATCH)
    assert.equal(backend.calls, callsBefore + MAX_BATCH)
  })

  it('a body of exactly maxBodyBytes is accepted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const callsBefore = backend.calls
    const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'chain_getHead' })
    const body = request + ' '.repeat(MAX_BODY_BYTES - request.length)
    assert.equal(Buffer.byteLength(body), MAX_BODY_BYTES)
    const answer = await postRaw(url, body)
    assert.equal(answer.status, 200)
    assert.equal((JSON.parse(answer.text) as RpcAnswer).id, 1)
    assert.equal(backend.calls, callsBefore + 1)
  })

  it('HTTP 413 on a Content-Length over the limit, answered before any body byte is sent', { timeout: TEST_TIMEOUT_MS }, async () => {
    const callsBefore = backend.calls
    const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'chain_getHead' })
    const body = request + ' '.repeat(MAX_BODY_BYTES + 1 - request.length)
    const head = `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`
    // The body would follow 500 ms later; the answer must come first.
    const answer = await rawRequest(port, head, [body], 500)
    assert.equal(answer.status, 413, answer.head)
    assert.equal(answer.chunksWritten, 0, 'refused on the header alone')
    const parsed = JSON.parse(answer.body) as RpcAnswer
    assert.equal(parsed.error?.code, -32600)
    assert.equal(backend.calls, callsBefore, 'the valid request inside was never run')
  })

  it('HTTP 413 on a chunked body that grows past the limit, without waiting for its end', { timeout: TEST_TIMEOUT_MS }, async () => {
    const callsBefore = backend.calls
    const piece = ' '.repeat(300)
    const chunk = `${piece.length.toString(16)}\r\n${piece}\r\n`
    const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'chain_getHead' })
    const opening = `${request.length.toString(16)}\r\n${request}\r\n`
    // Ten chunks would be ~3 KiB; the server must stop after crossing 1 KiB. The terminating chunk is never sent.
    const chunks = [opening, ...Array.from({ length: 10 }, () => chunk)]
    const head = 'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
    const answer = await rawRequest(port, head, chunks, 60)
    assert.equal(answer.status, 413, answer.head)
    assert.ok(answer.chunksWritten >= 4 && answer.chunksWritten < chunks.length, `answered after ${answer.chunksWritten} chunks`)
    assert.equal((JSON.parse(answer.body) as RpcAnswer).error?.code, -32600)
    assert.equal(backend.calls, callsBefore, 'the valid request at the start was never run')
    // The server is still fine for the next client.
    assert.equal((await result<HeaderView>(url, 'chain_getHead')).chainId, 'fake')
  })
})
