/**
 * The dashboards in a real browser: headless Chromium (Debian's `chromium`, driven by
 * puppeteer-core) opens a node's dashboard and the devnet page while a 3-node devnet runs in
 * process. Checks the head on the page advances, a transaction sent during the test shows up in
 * the charts and the recent blocks, and on the devnet page reaches every node; saves screenshots
 * under the test's temp dir (kept when GRAPEVINE_KEEP_SCREENSHOTS=1). Skipped without Chromium.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import { toHex } from '../../src/codec/bytes.ts'
import { devKeypair } from '../../src/crypto/keys.ts'
import { signTransfer } from '../../src/ledger/transfer.ts'
import type { RunningNode } from '../../src/node/run.ts'
import type { NodeStatusView } from '../../src/rpc/backend.ts'
import { RpcClient } from '../../src/rpc/client.ts'
import { type DevnetPage, startDevnetPage } from '../../src/rpc/devnet-page.ts'
import { connect, genesisStartingNow, startNode, stopAll } from '../helpers/net.ts'

const CHROMIUM = '/usr/bin/chromium'
const TEST_TIMEOUT_MS = 90_000
const skip = existsSync(CHROMIUM) ? false : `headless browser test skipped: ${CHROMIUM} not found (apt-get install chromium; .ci/run installs it)`

async function launch(userDataDir: string): Promise<Browser> {
  const puppeteer = await import('puppeteer-core')
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${userDataDir}`,
    ],
  })
}

/** Sends a transfer from dev key `from` to node `client`'s chain; returns the txid. */
async function sendTransfer(client: RpcClient, from: number, nonce: number): Promise<string> {
  const status = await client.call<NodeStatusView>('node_status')
  const signed = signTransfer({ chainId: status.chainId, from: devKeypair(from), to: devKeypair(from + 1).publicKey, amount: 1_000n, fee: BigInt(status.minFee), nonce })
  return client.call<string>('tx_send', [toHex(signed.bytes)])
}

describe('dashboards in headless Chromium', { skip, timeout: TEST_TIMEOUT_MS }, () => {
  let nodes: RunningNode[] = []
  let devnetPage: DevnetPage | undefined
  let browser: Browser | undefined
  let dir = ''
  const pageErrors: string[] = []

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'grapevine-dashboard-'))
    const genesis = genesisStartingNow(3, { slotMs: 500 })
    nodes = await Promise.all([0, 1, 2].map((i) => startNode({ genesis, key: devKeypair(i), name: `node${i}` })))
    await connect(nodes[1] as RunningNode, nodes[0] as RunningNode)
    await connect(nodes[2] as RunningNode, nodes[0] as RunningNode)
    await connect(nodes[2] as RunningNode, nodes[1] as RunningNode)
    devnetPage = await startDevnetPage({ nodes: nodes.map((node, i) => ({ name: `node${i}`, rpc: node.rpcUrl })) })
    browser = await launch(join(dir, 'chromium-profile'))
  })

  after(async () => {
    await browser?.close().catch(() => undefined)
    await devnetPage?.close()
    await stopAll(nodes)
    rmSync(join(dir, 'chromium-profile'), { recursive: true, force: true })
    if (process.env['GRAPEVINE_KEEP_SCREENSHOTS'] === '1') process.stderr.write(`screenshots kept in ${dir}\n`)
    else rmSync(dir, { recursive: true, force: true })
  })

  async function open(url: string): Promise<Page> {
    const page = await (browser as Browser).newPage()
    page.on('pageerror', (error) => pageErrors.push(String(error)))
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text())
    })
    await page.setViewport({ width: 1440, height: 1000, deviceScaleFactor: 1 })
    await page.goto(url, { waitUntil: 'load', timeout: 15_000 })
    return page
  }

  it("a node's dashboard: the head advances, a new transaction reaches the charts and the recent blocks", async () => {
    const page = await open((nodes[0] as RunningNode).rpcUrl)
    const headOnPage = `Number((document.getElementById('head-height')?.textContent ?? '').replace(/,/g, ''))`
    await page.waitForFunction(`${headOnPage} > 0`, { timeout: 15_000 })
    const first = Number(await page.evaluate(headOnPage))
    await page.waitForFunction(`${headOnPage} > ${first}`, { timeout: 15_000 })
    // Sent to another node: it reaches this one by gossip, so the dashboard sees it pending, then included.
    await sendTransfer(new RpcClient((nodes[1] as RunningNode).rpcUrl), 10, 0)
    await page.waitForFunction(`Number(document.getElementById('tx-note')?.dataset.included ?? '0') >= 1`, { timeout: 20_000 })
    await page.waitForFunction(`Number(document.getElementById('latency-note')?.dataset.samples ?? '0') >= 1`, { timeout: 10_000 })
    await page.waitForSelector('#recent-blocks tbody tr[data-txcount="1"]', { timeout: 10_000 })
    // Peers listed with their direction; both other nodes.
    const peerRows = await page.$$eval('#peers tbody tr[data-peer]', (rows) => rows.length)
    assert.equal(peerRows, 2)
    // A few more blocks, so the charts have history and the page settles.
    await sendTransfer(new RpcClient((nodes[2] as RunningNode).rpcUrl), 12, 0)
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    const shot = join(dir, 'node-dashboard.png')
    await page.screenshot({ path: shot, fullPage: true })
    assert.ok(existsSync(shot))
    await page.close()
    assert.deepEqual(pageErrors, [], 'no errors in the page')
  })

  it('the devnet page: every node side by side, the connection graph, a transaction reaching all nodes', async () => {
    const page = await open((devnetPage as DevnetPage).url)
    await page.waitForFunction(`document.querySelectorAll('.node-card[data-height]:not([data-height=""])').length === 3`, { timeout: 15_000 })
    await page.waitForFunction(`Number(document.getElementById('graph')?.dataset.edges ?? '0') >= 3`, { timeout: 15_000 })
    const txid = await sendTransfer(new RpcClient((nodes[2] as RunningNode).rpcUrl), 14, 0)
    try {
      await page.waitForFunction(`document.getElementById('txid')?.value === '${txid}'`, { timeout: 10_000 })
      await page.waitForFunction(`document.querySelectorAll('#tx-table tbody tr[data-status="included"], #tx-table tbody tr[data-status="finalized"]').length === 3`, { timeout: 20_000 })
    } catch (error) {
      await page.screenshot({ path: join(dir, 'devnet-page-failed.png'), fullPage: true })
      throw error
    }
    const heights = await page.$$eval('.node-card', (cards) => cards.map((card) => Number(card.getAttribute('data-height'))))
    assert.equal(heights.length, 3)
    assert.ok(heights.every((height) => height > 0))
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const shot = join(dir, 'devnet-page.png')
    await page.screenshot({ path: shot, fullPage: true })
    assert.ok(existsSync(shot))
    await page.close()
    assert.deepEqual(pageErrors, [], 'no errors in the page')
  })
})
