#!/usr/bin/env node
// The `grapevine` command: registers tsx so the TypeScript sources run directly, loads the
// Promise.withResolvers polyfill (libp2p 3 on Node 20), then hands over to src/cli/main.ts.
import { register } from 'tsx/esm/api'

register()
await import('../src/polyfill.ts')
const { main } = await import('../src/cli/main.ts')
await main(process.argv)
