/** Shared CLI plumbing: argument parsers that fail with one clear line. */
import { InvalidArgumentError } from 'commander'

export class CliError extends Error {
  override name = 'CliError'
}

export function parseHostPort(text: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text)
  if (match === null) throw new InvalidArgumentError('expected HOST:PORT, e.g. 127.0.0.1:8545')
  const port = Number(match[2])
  if (port > 65535) throw new InvalidArgumentError('port must be at most 65535')
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port }
}

export function parseAmount(text: string): bigint {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) throw new InvalidArgumentError('expected a non-negative integer amount')
  const value = BigInt(text)
  if (value >= 1n << 64n) throw new InvalidArgumentError('amount must fit in 64 bits')
  return value
}

export function parseCount(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new InvalidArgumentError('expected a non-negative integer')
  return Number(text)
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** Normalises an RPC argument: `HOST:PORT` or a URL. */
export function rpcUrl(text: string): string {
  return /^https?:\/\//.test(text) ? text : `http://${text}`
}
