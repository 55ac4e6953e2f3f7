/**
 * The `omnirelay` command. Exit codes: 0 ok, 1 invalid config or failed start, 2 usage.
 */
import { readFileSync } from 'node:fs'
import { ConfigError } from '../config/errors.ts'
import { loadConfigFile } from '../config/load.ts'
import { createLogger } from '../observability/logger.ts'
import { startProxy } from '../index.ts'
import { HELP } from './help.ts'

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name)
  if (i >= 0) return args[i + 1]
  const eq = args.find((a) => a.startsWith(`${name}=`))
  return eq?.slice(name.length + 1)
}

function printIssues(err: unknown): void {
  if (err instanceof ConfigError) {
    process.stderr.write(`invalid config (${err.code}):\n`)
    for (const i of err.issues) process.stderr.write(`  ${i.path ? `${i.path}: ` : ''}${i.message}\n`)
  } else {
    const e = err as Error & { code?: string }
    process.stderr.write(`error${e.code ? ` (${e.code})` : ''}: ${e.message ?? String(err)}\n`)
  }
}

async function validate(args: string[]): Promise<number> {
  const file = args[0]
  if (!file) {
    process.stderr.write('usage: omnirelay validate FILE [--build]\n')
    return 2
  }
  try {
    const cfg = await loadConfigFile(file)
    process.stdout.write(
      `ok: ${cfg.listeners.length} listener(s), ${cfg.routes.length} route(s), ${cfg.clusters.length} cluster(s), ${cfg.filters.length} filter(s)\n`,
    )
    if (cfg.allowUnsigned) process.stdout.write('warning: allowUnsigned is on (development only)\n')
    if (cfg.allowNative) process.stdout.write('warning: allowNative is on (native filters run unsandboxed in the proxy)\n')
    if (args.includes('--build') && cfg.filters.length) {
      const { buildFiltersOnce } = await import('./build-check.ts')
      await buildFiltersOnce(cfg)
      process.stdout.write(`ok: ${cfg.filters.length} filter(s) loaded, verified and built\n`)
    }
    return 0
  } catch (e) {
    printIssues(e)
    return 1
  }
}

async function run(args: string[]): Promise<number> {
  if (args.some((a) => a === '--xds' || a === '--bootstrap' || a.startsWith('--xds=') || a.startsWith('--bootstrap='))) {
    const { runXds } = await import('../xds/apply/cli.ts')
    return runXds(args)
  }
  const file = flag(args, '--config') ?? flag(args, '-c')
  if (!file) {
    process.stderr.write('usage: omnirelay run --config FILE\n')
    return 2
  }
  let cfg
  try {
    cfg = await loadConfigFile(file)
  } catch (e) {
    printIssues(e)
    return 1
  }
  const log = createLogger({ level: cfg.logLevel })
  const workersFlag = flag(args, '--workers')
  let proxy
  try {
    const workers = workersFlag === undefined ? undefined : workersFlag === 'auto' ? 'auto' : Number(workersFlag)
    if (workers !== undefined && workers !== 'auto' && !(Number.isInteger(workers) && workers >= 1)) {
      process.stderr.write('--workers must be auto or a positive integer\n')
      return 2
    }
    proxy = await startProxy(file, { watch: !args.includes('--no-watch'), sighup: true, workers: true, workersOverride: workers, log })
  } catch (e) {
    printIssues(e)
    return 1
  }
  const listening = cfg.listeners.map((l) => `${l.name}=${l.tls ? 'https' : 'http'}://${proxy.address(l.name).address}:${proxy.address(l.name).port}`)
  const admin = proxy.adminAddress()
  log.info('omnirelay started', { epoch: proxy.epoch, listeners: listening, admin: admin ? `${admin.address}:${admin.port}` : null })
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      log.info('draining', { signal: sig })
      void proxy.close().finally(done)
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  return 0
}

async function bundle(args: string[]): Promise<number> {
  let mod: { bundleCommand?: (argv: string[]) => Promise<number> }
  try {
    mod = (await import('../bundles/cli.ts')) as typeof mod
  } catch {
    process.stderr.write('bundle commands are unavailable in this build\n')
    return 1
  }
  if (typeof mod.bundleCommand !== 'function') {
    process.stderr.write('bundle commands are unavailable in this build\n')
    return 1
  }
  return mod.bundleCommand(args)
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'run':
      return run(rest)
    case 'validate':
      return validate(rest)
    case 'bundle':
      return bundle(rest)
    case '--version':
    case '-v':
      process.stdout.write(`omnirelay ${version()}\n`)
      return 0
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP)
      return 0
    default:
      process.stderr.write(`unknown command "${cmd}"\n\n${HELP}`)
      return 2
  }
}

process.exitCode = await main(process.argv.slice(2))
