import type { Command } from 'commander'
import { keyToJson, writeKeyFile } from '../crypto/keyfile.ts'
import { devKeypair, generateKeypair } from '../crypto/keys.ts'
import { CliError, parseCount } from './util.ts'

export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('create and show ed25519 keys')
  keys
    .command('new')
    .description('generate a new key; prints {address, secretKey} or writes it to --out (mode 0600)')
    .option('--out <file>', 'write the key file here instead of printing the secret')
    .action((options: { out?: string }) => {
      const keypair = generateKeypair()
      if (options.out !== undefined) {
        try {
          writeKeyFile(options.out, keypair)
        } catch (error) {
          throw new CliError(`cannot write ${options.out}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
        }
        process.stdout.write(`${keyToJson(keypair).address}\n`)
        return
      }
      process.stdout.write(JSON.stringify(keyToJson(keypair), null, 2) + '\n')
    })
  keys
    .command('dev')
    .description('show deterministic devnet key <i> (PUBLIC: anyone can derive it; devnets only)')
    .argument('<i>', 'key index', parseCount)
    .action((index: number) => {
      process.stderr.write('warning: devnet keys are public; never use them outside a local devnet\n')
      process.stdout.write(JSON.stringify(keyToJson(devKeypair(index)), null, 2) + '\n')
    })
}
