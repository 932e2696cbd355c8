/**
 * The devnet page server (`grapevine devnet`): serves the devnet page's static files and the list
 * of nodes at /devnet/nodes.json. The page itself talks to each node's own WebSocket, so this
 * server handles GET only and holds no state.
 */
import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dashboardFiles } from './dashboard.ts'

export interface DevnetPageNode {
  name: string
  /** The node's RPC URL (http://host:port); its WebSocket is on the same port. */
  rpc: string
}

export interface DevnetPage {
  url: string
  close(): Promise<void>
}

export async function startDevnetPage(options: { nodes: DevnetPageNode[]; host?: string; port?: number }): Promise<DevnetPage> {
  const files = dashboardFiles('devnet')
  const nodesJson = Buffer.from(JSON.stringify(options.nodes.map((node) => ({ name: node.name, rpc: node.rpc }))))
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/'
    if (request.method !== 'GET') {
      response.writeHead(405, { allow: 'GET' })
      response.end()
      return
    }
    if (path === '/devnet/nodes.json') {
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' })
      response.end(nodesJson)
      return
    }
    const file = files.get(path)
    if (file === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain' })
      response.end('not found')
      return
    }
    response.writeHead(200, { 'content-type': file.contentType, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' })
    response.end(file.body)
  })
  server.requestTimeout = 30_000
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${host}:${port}/`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
