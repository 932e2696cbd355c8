/**
 * Child-process helpers for integration tests: free ports, running the `grapevine` CLI, starting
 * a node process and waiting for its RPC, and stopping children within a bounded time.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

/** The repository root (where package.json and scripts/ live). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The `grapevine` entry point, run as `node scripts/grapevine.mjs …`. */
export const CLI_SCRIPT = 'scripts/grapevine.mjs'

/** A TCP port on 127.0.0.1 that was free a moment ago (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port assigned')
  return address.port
}

/** Keeps the last `maxBytes` of a stream's text: enough for a failure message, bounded. */
export class TailBuffer {
  private text = ''

  constructor(private readonly maxBytes = 64 * 1024) {}

  push(chunk: Buffer | string): void {
    this.text += chunk.toString()
    if (this.text.length > this.maxBytes) this.text = this.text.slice(-this.maxBytes)
  }

  toString(): string {
    return this.text
  }
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs `grapevine <args>` to completion; SIGKILLs it after `timeoutMs` (the result then has a signal). */
export function runCli(args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_SCRIPT, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: '0', ...options.env },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(killer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      clearTimeout(killer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Resolves with the exit code/signal once the child has exited (at once if it already has). */
export function waitForExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}

/**
 * Stops a child: `signal`, then SIGKILL after `graceMs`. Resolves with how it exited and whether
 * it had to be killed.
 */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 10_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; forced: boolean }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode, forced: false }
  const exited = waitForExit(child)
  child.kill(signal)
  let forced = false
  const timer = setTimeout(() => {
    forced = true
    child.kill('SIGKILL')
  }, graceMs)
  const result = await exited
  clearTimeout(timer)
  return { ...result, forced }
}

/** One JSON-RPC call over fetch; returns the raw response object (result or error). */
export async function rpcCall(
  url: string,
  method: string,
  params: unknown[] | Record<string, unknown> = [],
  timeoutMs = 5_000,
): Promise<{ result?: unknown; error?: { code: number; message: string; data?: unknown } }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  })
  return (await response.json()) as { result?: unknown; error?: { code: number; message: string; data?: unknown } }
}

/**
 * Polls `node_status` until it answers. Fails early, with the child's stderr tail, if `child`
 * exits first; fails after `timeoutMs`.
 */
export async function waitForRpc(url: string, options: { timeoutMs?: number; child?: ChildProcess; stderr?: TailBuffer } = {}): Promise<unknown> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000)
  let lastError: unknown
  for (;;) {
    const child = options.child
    if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`node exited (${child.signalCode ?? child.exitCode}) before its RPC answered; stderr:\n${options.stderr?.toString() ?? ''}`)
    }
    try {
      const answer = await rpcCall(url, 'node_status', [], 1_000)
      if (answer.result !== undefined) return answer.result
      lastError = answer.error
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) {
      throw new Error(`${url} did not answer node_status within the timeout (${String(lastError)}); stderr:\n${options.stderr?.toString() ?? ''}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
