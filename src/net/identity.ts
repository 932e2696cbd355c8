/**
 * A node's libp2p identity. A validator's identity IS its validator key (an ed25519 libp2p key
 * from the same seed), so peers learn its stake from its authenticated peer id. Other nodes keep
 * a persistent node key in their data directory so their peer id survives restarts.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { readKeyFile, writeKeyFile } from '../crypto/keyfile.ts'
import { type Keypair, generateKeypair } from '../crypto/keys.ts'

export async function libp2pKeyFrom(keypair: Keypair): Promise<PrivateKey> {
  return generateKeyPairFromSeed('Ed25519', keypair.seed)
}

/** The key in `<dataDir>/node-key.json`, created (mode 0600) on first use. */
export function loadOrCreateNodeKey(dataDir: string): Keypair {
  const path = join(dataDir, 'node-key.json')
  if (existsSync(path)) return readKeyFile(path)
  const keypair = generateKeypair()
  writeKeyFile(path, keypair)
  return keypair
}

/** The raw 32-byte ed25519 public key behind a peer id, if it has one inline. */
export function peerPublicKey(peerId: PeerId): Uint8Array | undefined {
  if (peerId.type !== 'Ed25519') return undefined
  return peerId.publicKey.raw
}
