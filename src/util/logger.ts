/**
 * Structured logs (pino): human-readable on a terminal, JSON lines otherwise. One child logger
 * per component (`component: 'sync'`) with the node's name, so multi-node logs can be told apart.
 */
import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }

export interface LoggerOptions {
  level?: string
  /** Short name prefixed to every line, e.g. `node2`. */
  name?: string
  /** Force pretty or JSON output; default: pretty when stderr is a TTY. */
  pretty?: boolean
  /** Where lines go; default stderr (fd 2) so stdout stays clean for command output. */
  destination?: NodeJS.WritableStream
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env['GRAPEVINE_LOG_LEVEL'] ?? 'info'
  const usePretty = options.pretty ?? Boolean(process.stderr.isTTY)
  const base = options.name === undefined ? {} : { node: options.name }
  if (usePretty) {
    const stream = pretty({
      colorize: Boolean(process.stderr.isTTY),
      destination: 2,
      sync: true,
      translateTime: 'HH:MM:ss.l',
      ignore: 'pid,hostname',
    })
    return pino({ level, base }, options.destination ?? stream)
  }
  return pino({ level, base }, options.destination ?? pino.destination({ fd: 2, sync: false }))
}

/** A logger that drops everything: tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
