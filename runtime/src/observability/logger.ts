/**
 * Structured JSON logging, one object per line. The access log and the host's own log
 * share this shape so one pipeline can collect both.
 *
 * @example
 * const log = createLogger({ level: 'info' })
 * log.warn('config rejected', { path: 'routes[2].cluster', reason: 'unknown cluster "api"' })
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger
  isEnabled(level: LogLevel): boolean
}

export interface LoggerOptions {
  level?: LogLevel
  /** Where lines go; defaults to stderr so stdout stays free for the access log. */
  write?: (line: string) => void
  fields?: Record<string, unknown>
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = ORDER[opts.level ?? 'info']
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'))
  const base = opts.fields ?? {}
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }, errorReplacer))
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...opts, fields: { ...base, ...fields } }),
    isEnabled: (level) => ORDER[level] >= min,
  }
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = createLogger({ level: 'error', write: () => {} })

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code
    return code === undefined ? { name: value.name, message: value.message } : { name: value.name, code, message: value.message }
  }
  return typeof value === 'bigint' ? value.toString() : value
}
