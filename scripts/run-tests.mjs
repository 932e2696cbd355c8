#!/usr/bin/env node
// Runs the test suite with node:test through tsx: unit, then integration and adversarial.
// Usage: node scripts/run-tests.mjs [substring...]   (only files whose path contains a substring)
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const filters = process.argv.slice(2)

function collect(dir) {
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...collect(path))
    else if (name.endsWith('.test.ts')) out.push(relative(root, path))
  }
  return out
}

const files = collect(join(root, 'test')).filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
if (files.length === 0) {
  console.error('no test files match', filters)
  process.exit(1)
}
// Bounds: a test that hangs asynchronously fails after 5 minutes; the whole run is killed after
// 45 minutes (CI allows 90), so nothing can hang a CI job.
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--import', './test/setup.ts', '--test', '--test-concurrency=2', '--test-timeout=300000', '--test-reporter=spec', ...files],
  {
    cwd: root,
    stdio: 'inherit',
    timeout: 45 * 60 * 1000,
    killSignal: 'SIGKILL',
    env: { ...process.env, GRAPEVINE_LOG_LEVEL: process.env.GRAPEVINE_LOG_LEVEL ?? 'silent' },
  },
)
if (result.error !== undefined) console.error(`test run aborted: ${result.error.message}`)
process.exit(result.status ?? 1)
