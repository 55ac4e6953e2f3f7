/**
 * `omnirelay run --xds ADDRESS | --bootstrap FILE`: the proxy configured by a control plane.
 *
 *   omnirelay run --xds 127.0.0.1:18000 [--bootstrap FILE] [--data DIR] [--node-id ID] [--label k=v]...
 *                 [--trust-policy FILE] [--admin HOST:PORT] [--access-log stdout|stderr|off|FILE] [--protocol delta|sotw]
 *                 [--registry URL]   (revocations; token from env OMNIRELAY_REGISTRY_TOKEN)
 *                 [--workers auto|N] (worker processes serve; this one keeps the control-plane side)
 *
 * The bootstrap file (gRPC's layout, see `loadXdsBootstrap`) may also carry OmniRelay's local
 * settings under `omnirelay`: `data_dir`, `trust_policy`, `admin` ("host:port"), `access_log`,
 * `log_level`, `registry`, `workers` ("auto" or a number). Flags win over the file.
 */
import { hostname } from 'node:os'
import { parseArgs } from 'node:util'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { createLogger } from '../../observability/logger.ts'
import { parseXdsBootstrap, type XdsBootstrap } from '../client/bootstrap.ts'
import type { LocalSettings } from '../mapping/proxy-doc.ts'
import { workerCount } from '../../server/workers.ts'
import { startXdsProxy } from './xds-proxy.ts'

export const XDS_USAGE = `usage: omnirelay run --xds HOST:PORT [--bootstrap FILE] [--data DIR] [--node-id ID] [--label KEY=VALUE]...
                     [--trust-policy FILE] [--admin HOST:PORT] [--access-log TARGET] [--protocol delta|sotw]
                     [--registry URL] [--workers auto|N]
`

function hostPort(v: string): { address: string; port: number } | undefined {
  const i = v.lastIndexOf(':')
  const port = Number(v.slice(i + 1))
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) return undefined
  return { address: v.slice(0, i).replace(/^\[|\]$/g, ''), port }
}

/** Runs until SIGINT/SIGTERM. Exit codes: 0 ok, 1 failed, 2 usage. */
export async function runXds(argv: string[]): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        xds: { type: 'string' },
        bootstrap: { type: 'string' },
        data: { type: 'string' },
        'node-id': { type: 'string' },
        label: { type: 'string', multiple: true },
        'trust-policy': { type: 'string' },
        admin: { type: 'string' },
        'access-log': { type: 'string' },
        'log-level': { type: 'string' },
        protocol: { type: 'string' },
        workers: { type: 'string' },
        registry: { type: 'string' },
      },
      strict: true,
    }))
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${XDS_USAGE}`)
    return 2
  }
  let boot: XdsBootstrap
  let extra: Record<string, unknown> = {}
  let baseDir = process.cwd()
  try {
    if (values.bootstrap) {
      const file = resolve(values.bootstrap)
      const json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>
      if (values.xds) json.xds_servers = [{ server_uri: values.xds, channel_creds: [{ type: 'insecure' }] }]
      boot = parseXdsBootstrap(json)
      extra = (json.omnirelay as Record<string, unknown> | undefined) ?? {}
      baseDir = dirname(file)
    } else if (values.xds) {
      boot = { address: values.xds, node: { id: values['node-id'] ?? hostname() }, protocol: 'delta', capabilities: {} }
    } else {
      process.stderr.write(XDS_USAGE)
      return 2
    }
  } catch (e) {
    const err = e as Error & { code?: string }
    process.stderr.write(`error${err.code ? ` (${err.code})` : ''}: ${err.message}\n`)
    return 1
  }
  if (values['node-id']) boot.node.id = values['node-id']
  if (values.protocol === 'delta' || values.protocol === 'sotw') boot.protocol = values.protocol
  else if (values.protocol !== undefined) {
    process.stderr.write('--protocol must be delta or sotw\n')
    return 2
  }
  const labels: Record<string, string> = {}
  for (const l of values.label ?? []) {
    const i = l.indexOf('=')
    if (i <= 0) {
      process.stderr.write(`--label ${l}: expected KEY=VALUE\n`)
      return 2
    }
    labels[l.slice(0, i)] = l.slice(i + 1)
  }
  boot.node.metadata = { ...boot.node.metadata, ...labels }

  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined)
  const workersArg = values.workers ?? (typeof extra.workers === 'number' ? String(extra.workers) : str(extra.workers))
  const workers = workersArg === undefined ? 1 : workersArg === 'auto' ? workerCount('auto') : Number(workersArg)
  if (!Number.isInteger(workers) || workers < 1) {
    process.stderr.write('--workers must be auto or a positive integer\n')
    return 2
  }
  const local: LocalSettings = {}
  const trust = values['trust-policy'] ?? str(extra.trust_policy)
  if (trust) local.trustPolicy = resolve(values['trust-policy'] ? process.cwd() : baseDir, trust)
  const adminText = values.admin ?? str(extra.admin) ?? '127.0.0.1:9901'
  if (adminText !== 'off') {
    const a = hostPort(adminText)
    if (!a) {
      process.stderr.write(`--admin ${adminText}: expected HOST:PORT or off\n`)
      return 2
    }
    local.admin = a
  }
  local.accessLog = values['access-log'] ?? str(extra.access_log) ?? 'stdout'
  const level = values['log-level'] ?? str(extra.log_level) ?? 'info'
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    process.stderr.write('--log-level must be debug, info, warn or error\n')
    return 2
  }
  local.logLevel = level as LocalSettings['logLevel']
  const dataDir = values.data ?? str(extra.data_dir) ?? 'omnirelay-data'
  const log = createLogger({ level: local.logLevel! })

  const registry = values.registry ?? str(extra.registry)
  const dp = await startXdsProxy({
    bootstrap: boot,
    dataDir: resolve(values.data ? process.cwd() : baseDir, dataDir),
    local,
    log,
    workers,
    ...(registry ? { registry: { url: registry } } : {}),
  })
  log.info('omnirelay started over xDS', { controlPlane: boot.address, node: boot.node.id, protocol: boot.protocol, workers, source: dp.source, epoch: dp.epoch ?? null })
  void dp.serving.then(() => {
    const admin = dp.adminAddress()
    log.info('serving', { source: dp.source, epoch: dp.epoch, workers, admin: admin ? `${admin.address}:${admin.port}` : null })
  })
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      log.info('draining', { signal: sig })
      void dp.close().finally(done)
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  return 0
}
