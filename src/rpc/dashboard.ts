/**
 * The dashboard's static files: a fixed list read once from src/rpc/dashboard/ (shipped in the
 * package, no build step) and uPlot's browser build from node_modules. Only these paths are
 * served, so no request path ever reaches the file system.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

export interface StaticFile {
  contentType: string
  body: Buffer
}

export type StaticFiles = ReadonlyMap<string, StaticFile>

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
}

/** URL path → file: the dashboard's own files, then the chart library. */
const DASHBOARD_DIR = fileURLToPath(new URL('./dashboard/', import.meta.url))
const ROUTES: Array<[string, string]> = [
  ['/dashboard/app.js', 'app.js'],
  ['/dashboard/devnet.js', 'devnet.js'],
  ['/dashboard/common.js', 'common.js'],
  ['/dashboard/style.css', 'style.css'],
  ['/dashboard/favicon.svg', 'favicon.svg'],
]
const VENDOR: Array<[string, string]> = [
  ['/vendor/uPlot.iife.min.js', 'uplot/dist/uPlot.iife.min.js'],
  ['/vendor/uPlot.min.css', 'uplot/dist/uPlot.min.css'],
]

/** One map per page: a node's dashboard, or the devnet page (`grapevine devnet`). */
const cached = new Map<'node' | 'devnet', StaticFiles>()

function typeOf(path: string): string {
  return TYPES[path.slice(path.lastIndexOf('.') + 1)] ?? 'application/octet-stream'
}

/** The files of a page, read on first use (about 100 kB, kept for the process). */
export function dashboardFiles(page: 'node' | 'devnet' = 'node'): StaticFiles {
  const known = cached.get(page)
  if (known !== undefined) return known
  const files = new Map<string, StaticFile>()
  const index = page === 'node' ? 'index.html' : 'devnet.html'
  for (const [route, name] of [['/', index], ['/index.html', index], ...ROUTES] as Array<[string, string]>) {
    files.set(route, { contentType: typeOf(name), body: readFileSync(DASHBOARD_DIR + name) })
  }
  const require = createRequire(import.meta.url)
  for (const [route, module] of VENDOR) files.set(route, { contentType: typeOf(module), body: readFileSync(require.resolve(module)) })
  cached.set(page, files)
  return files
}
