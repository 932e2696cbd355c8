/**
 * Key files and key arguments. A key file is JSON `{ "address": "0x…", "secretKey": "0x<32-byte seed>" }`
 * written with mode 0600. A key argument is a key file path, or `dev:<i>` for devnet key i
 * (public, devnets only).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { fromHex, toHex } from '../codec/bytes.ts'
import { type Keypair, devKeypair, keypairFromSeed } from './keys.ts'

const MAX_KEY_FILE_BYTES = 4096

export class KeyFileError extends Error {
  override name = 'KeyFileError'
}

export interface KeyFileJson {
  address: string
  secretKey: string
}

export function keyToJson(keypair: Keypair): KeyFileJson {
  return { address: toHex(keypair.publicKey), secretKey: toHex(keypair.seed) }
}

export function writeKeyFile(path: string, keypair: Keypair): void {
  writeFileSync(path, JSON.stringify(keyToJson(keypair), null, 2) + '\n', { mode: 0o600, flag: 'wx' })
}

export function readKeyFile(path: string): Keypair {
  let size: number
  try {
    size = statSync(path).size
  } catch (error) {
    throw new KeyFileError(`cannot read key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  if (size > MAX_KEY_FILE_BYTES) throw new KeyFileError(`key file ${path} is larger than ${MAX_KEY_FILE_BYTES} bytes`)
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    throw new KeyFileError(`key file ${path} is not valid JSON`)
  }
  const secret = (json as Partial<KeyFileJson> | null)?.secretKey
  if (typeof secret !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(secret)) {
    throw new KeyFileError(`key file ${path} needs "secretKey": 0x followed by 64 hex digits`)
  }
  const keypair = keypairFromSeed(fromHex(secret, { expectedBytes: 32 }))
  const address = (json as Partial<KeyFileJson>).address
  if (address !== undefined && address.toLowerCase() !== toHex(keypair.publicKey)) {
    throw new KeyFileError(`key file ${path}: address does not match the secret key`)
  }
  return keypair
}

/** Resolves a `--key` argument: `dev:<i>` or a key file path. */
export function resolveKeyArgument(argument: string): Keypair {
  const dev = /^dev:(\d{1,9})$/.exec(argument)
  if (dev !== null) return devKeypair(Number(dev[1]))
  return readKeyFile(argument)
}
