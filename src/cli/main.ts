/**
 * The `grapevine` command. Every failure prints one line to stderr and exits non-zero.
 */
import { Command } from 'commander'
import { registerDevnetCommand } from './devnet.ts'
import { registerJoinCommand } from './join.ts'
import { registerKeyCommands } from './keys.ts'
import { registerLoadCommand } from './load.ts'
import { registerNodeCommand } from './node.ts'
import { registerSimCommand } from './sim.ts'
import { registerStatusCommand } from './status.ts'
import { registerTxCommands } from './tx.ts'
import { CliError } from './util.ts'

export function buildProgram(): Command {
  const program = new Command()
  program
    .name('grapevine')
    .description('Grapevine: a peer-to-peer proof-of-stake node with rumor gossip and Merkle anti-entropy')
    .version('0.1.0')
    // Set before subcommands are added: they inherit it, so usage errors reach main() (exit 2).
    .exitOverride()
  registerKeyCommands(program)
  registerNodeCommand(program)
  registerTxCommands(program)
  registerStatusCommand(program)
  registerDevnetCommand(program)
  registerJoinCommand(program)
  registerLoadCommand(program)
  registerSimCommand(program)
  return program
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') process.exit(0)
    if (typeof code === 'string' && code.startsWith('commander.')) process.exit(2)
    const message = error instanceof CliError ? error.message : `${(error as Error).name}: ${(error as Error).message}`
    // One line: library errors sometimes carry multi-line details.
    process.stderr.write(`grapevine: ${message.split('\n')[0]}\n`)
    process.exit(1)
  }
}
