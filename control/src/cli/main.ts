/**
 * The `meshkit` command: `meshkit central ...` runs central (config API, registry, xDS);
 * `meshkit registry ...` is the registry's own CLI. Exit codes: 0 ok, 1 failed, 2 usage.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createLogger } from '@omnirelay/runtime/observability/logger.ts'
import type { TokenGrant } from '@meshkit/registry'
import { rolloutCli } from '../rollout/cli.ts'
import { startCentralWithRollouts } from '../rollout/serve.ts'

export const HELP = `meshkit — the MeshKit control plane

Usage:
  meshkit central --data DIR [--port 7080] [--xds-port 18000] [--registry-port 7070] [--host 127.0.0.1]
                  [--trust-policy FILE] [--token ID:TOKEN]... [--registry-url URL] [--log-level info]
      Run central: the config API (HTTP/JSON, /v1), the registry, and the xDS server that
      OmniRelay data planes connect to (omnirelay run --xds HOST:PORT). State lives in DIR
      (SQLite + the registry's blobs). --trust-policy defaults to DIR/trust-policy.yaml.
      --token installs a registry token with read and publish scopes (or add tokens with
      "meshkit registry token add ID --data DIR/registry").

  meshkit rollout start|status|pause|resume|promote|abort|history|rollback ...
  meshkit kill|unkill --scope filter|bundle|signer TARGET
      Filter rollouts by traffic steps, judged by telemetry; see "meshkit rollout --help"
      and docs/rollouts.md. Data planes report telemetry to central's xDS address (gRPC).

  meshkit registry ...
      The registry's own commands (serve, ls, show, publish, yank, revoke, audit, token);
      see "meshkit registry --help".

  meshkit audit [verify] (--data DIR | --url URL) [--json]
      The append-only, hash-chained audit log of every publish, refusal, yank and revoke;
      "verify" recomputes the chain and names the first edited or deleted entry.

  meshkit --help | --version

Config API and data-plane setup: docs/central.md. Registry: docs/registry.md.
`

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

async function central(argv: string[]): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        data: { type: 'string' },
        port: { type: 'string', default: '7080' },
        'xds-port': { type: 'string', default: '18000' },
        'registry-port': { type: 'string', default: '7070' },
        'registry-url': { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        'trust-policy': { type: 'string' },
        token: { type: 'string', multiple: true },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }))
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${HELP}`)
    return 2
  }
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  if (!values.data) {
    process.stderr.write(`meshkit central needs --data DIR\n\n${HELP}`)
    return 2
  }
  const ports = ['port', 'xds-port', 'registry-port'] as const
  const num: Record<string, number> = {}
  for (const p of ports) {
    const n = Number(values[p])
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      process.stderr.write(`--${p} must be a port number\n`)
      return 2
    }
    num[p] = n
  }
  const tokens: TokenGrant[] = []
  for (const t of values.token ?? []) {
    const i = t.indexOf(':')
    if (i <= 0) {
      process.stderr.write(`--token ${t.slice(0, 8)}...: expected ID:TOKEN\n`)
      return 2
    }
    tokens.push({ id: t.slice(0, i), token: t.slice(i + 1), scopes: ['read', 'publish'] })
  }
  const level = values['log-level']
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    process.stderr.write('--log-level must be debug, info, warn or error\n')
    return 2
  }
  const log = createLogger({ level: level as 'info' })
  let running
  try {
    running = await startCentralWithRollouts({
      dataDir: values.data,
      port: num.port,
      xdsPort: num['xds-port'],
      registryPort: num['registry-port'],
      host: values.host,
      tokens,
      log,
      ...(values['trust-policy'] ? { trustPolicy: values['trust-policy'] } : {}),
      ...(values['registry-url'] ? { registryPublicUrl: values['registry-url'] } : {}),
    })
  } catch (e) {
    const err = e as Error & { code?: string }
    process.stderr.write(`meshkit central failed to start${err.code ? ` (${err.code})` : ''}: ${err.message}\n`)
    return 1
  }
  log.info('meshkit central started', { api: running.url, xds: running.xdsAddress, telemetry: running.telemetryAddress, registry: running.registryUrl, epoch: running.central.epoch })
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      log.info('stopping', { signal: sig })
      void running.close().finally(done)
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  return 0
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'central':
      return central(rest)
    case 'rollout':
    case 'kill':
    case 'unkill':
      return rolloutCli(argv)
    case 'registry': {
      const { registryCommand } = await import('@meshkit/registry')
      return registryCommand(rest)
    }
    // The audit log is central's as much as the registry's: `meshkit audit verify --data DIR`.
    case 'audit': {
      const { registryCommand } = await import('@meshkit/registry')
      return registryCommand(['audit', ...rest])
    }
    case '--version':
    case '-v':
      process.stdout.write(`meshkit ${version()}\n`)
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
