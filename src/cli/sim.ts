/** `grapevine sim …`: the discrete-event simulator (src/sim/cli.ts parses its own options). */
import type { Command } from 'commander'
import { SIM_USAGE, simMain } from '../sim/cli.ts'

export function registerSimCommand(program: Command): void {
  program
    .command('sim')
    .description('simulate N nodes on virtual time: the real gossip engine, peer scores and ingress (npm run sim -- --help)')
    .helpOption(false)
    .allowUnknownOption(true)
    .argument('[options...]', SIM_USAGE)
    .action(async (args: string[]) => {
      const code = await simMain(args, (line) => process.stdout.write(`${line}\n`), process.stderr)
      if (code !== 0) process.exit(code)
    })
}
