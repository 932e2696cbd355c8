#!/usr/bin/env node
// npm run sim -- --nodes N --txs T --adversary F … (see --help)
import { simMain } from '../src/sim/cli.ts'

const code = await simMain(process.argv.slice(2), (line) => process.stdout.write(`${line}\n`), process.stderr)
process.exit(code)
