/**
 * OmniRelay's public API: start a proxy from a config (file or object), validate configs,
 * and run the same filter pipeline inside your own `node:http` server (in-proc mode).
 *
 * @example
 * import { startProxy } from '@omnirelay/runtime'
 * const proxy = await startProxy('omnirelay.yaml', { watch: true })
 * console.log(proxy.address('main').port)
 * await proxy.close()
 */
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { ConfigError } from './config/errors.ts'
import { loadConfigFile } from './config/load.ts'
import type { ProxyConfig } from './config/types.ts'
import { validateConfig } from './config/validate.ts'
import { watchConfig, type ConfigWatcher } from './config/watch.ts'
import type { Logger } from './observability/logger.ts'
import type { MetricsRegistry } from './observability/metrics.ts'
import { Proxy } from './server/proxy.ts'

export { ConfigError, ConfigErrorCode, type ConfigIssue } from './config/errors.ts'
export { loadConfigFile, parseConfig } from './config/load.ts'
export type { ProxyConfig, ListenerConfig, RouteConfig, Limits } from './config/types.ts'
export { createLogger, type Logger } from './observability/logger.ts'
export { MetricsRegistry } from './observability/metrics.ts'
export { createInProcPipeline, type InProcPipeline, type InProcOptions } from './inproc/middleware.ts'
export { PipelineStream, createStreamInfo } from './pipeline/stream.ts'
export { HeaderMap } from './pipeline/header-map.ts'
export * from './pipeline/filter.ts'
export { Phase, FilterStatus, ALL_PHASES } from './pipeline/phases.ts'

export interface StartOptions {
  /** Directory for relative paths when `config` is an object (default: cwd). */
  baseDir?: string
  /** Reload when the config file changes (only with a path). Default false. */
  watch?: boolean
  /** Reload on SIGHUP (only with a path). Default false. */
  sighup?: boolean
  log?: Logger
  metrics?: MetricsRegistry
  /** Honour `workers: auto | N` by forking (default true when started from the CLI; false here). */
  workers?: boolean
  /** Overrides `workers` from the config (the CLI's `--workers`). */
  workersOverride?: 'auto' | number
  /**
   * Fuel-instrument Wasm and QuickJS filters (default true). `false` is for benchmarks and
   * trusted filters only: no CPU quota. One process only (not with forked workers).
   */
  meter?: boolean
}

/** A running proxy. */
export interface ProxyHandle {
  /** Bound address of a listener (default: the first). */
  address(listener?: string): AddressInfo
  adminAddress(): AddressInfo | undefined
  /** The epoch of the running config. */
  readonly epoch: number
  /**
   * Applies a new config (object, path, or nothing = re-read the file it was started with).
   * Rejects with ConfigError when invalid; the running config keeps serving.
   */
  reload(config?: unknown): Promise<number>
  /** Graceful shutdown: in-flight requests finish (up to `limits.drainTimeoutMs`). */
  close(): Promise<void>
}

/**
 * Validates a config document (already parsed) or file.
 * @throws ConfigError listing every issue with its path
 * @example
 * try { await validateConfig('omnirelay.yaml') } catch (e) { for (const i of e.issues) console.log(i.path, i.message) }
 */
export async function checkConfig(configOrPath: string | object, baseDir = process.cwd()): Promise<ProxyConfig> {
  return typeof configOrPath === 'string' ? loadConfigFile(configOrPath) : validateConfig(stripBaseDir(configOrPath), baseDir)
}
export { checkConfig as validateConfig }

function stripBaseDir(doc: object): object {
  if (!('baseDir' in doc)) return doc
  const { baseDir: _ignored, ...rest } = doc as Record<string, unknown>
  return rest
}

async function resolveConfig(configOrPath: unknown, baseDir: string): Promise<ProxyConfig> {
  if (typeof configOrPath === 'string') return loadConfigFile(configOrPath)
  if (typeof configOrPath !== 'object' || configOrPath === null) throw new ConfigError('config_invalid', [{ path: '', message: 'must be an object or a file path' }])
  return validateConfig(stripBaseDir(configOrPath), baseDir)
}

/**
 * Starts OmniRelay in this process.
 *
 * @param configOrPath a config file path (YAML or JSON) or a config object
 * @example
 * const proxy = await startProxy({
 *   listeners: [{ name: 'main', port: 8080 }],
 *   clusters: [{ name: 'app', endpoints: ['127.0.0.1:3000'] }],
 *   routes: [{ match: { prefix: '/' }, cluster: 'app' }],
 * })
 * await proxy.reload({ ...changed })   // new epoch, zero downtime
 * await proxy.close()
 */
export async function startProxy(configOrPath: string | object, opts: StartOptions = {}): Promise<ProxyHandle> {
  const baseDir = opts.baseDir ?? process.cwd()
  const path = typeof configOrPath === 'string' ? resolve(configOrPath) : undefined
  const config = await resolveConfig(configOrPath, baseDir)
  if (opts.workersOverride !== undefined) config.workers = opts.workersOverride
  if (opts.workers && config.workers !== 1) {
    const { startPrimary } = await import('./server/workers.ts')
    return startPrimary(config, { path, log: opts.log, watch: opts.watch, sighup: opts.sighup })
  }
  const proxy = await Proxy.start(config, { log: opts.log, metrics: opts.metrics, meter: opts.meter })
  let watcher: ConfigWatcher | undefined
  const reload = async (next?: unknown): Promise<number> => {
    let cfg: ProxyConfig
    try {
      cfg = await resolveConfig(next ?? path, baseDir)
    } catch (e) {
      proxy.rejected(e)
      throw e
    }
    return proxy.reload(cfg)
  }
  if (path && (opts.watch || opts.sighup)) {
    watcher = watchConfig(path, () => void reload().catch(() => {}), { file: opts.watch ?? false, sighup: opts.sighup })
  }
  return {
    address: (l) => proxy.address(l),
    adminAddress: () => proxy.adminAddress(),
    get epoch() {
      return proxy.epoch
    },
    reload,
    async close() {
      watcher?.close()
      await proxy.close()
    },
  }
}
