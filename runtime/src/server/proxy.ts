/**
 * A running proxy in this process: listeners, clusters, filters and the admin server for
 * one config, swapped atomically on reload. Reloads are serialized; a reload that fails
 * (bad config, filter that will not build, port that will not bind) leaves the running
 * epoch untouched.
 */
import { applyFilterSplits, type VariantObserver } from '../rollout/index.ts'
import type { AddressInfo } from 'node:net'
import { ConfigError, ConfigErrorCode } from '../config/errors.ts'
import { redactConfig } from '../config/redact.ts'
import type { ListenerConfig, ProxyConfig } from '../config/types.ts'
import { AdminServer } from '../admin/admin-server.ts'
import type { FactoryOptions, HostServices, SharedData, SharedQueues } from '../hosts/host-services.ts'
import { createAccessLog, type AccessLog } from '../observability/access-log.ts'
import { createLogger, type Logger } from '../observability/logger.ts'
import { MetricsRegistry } from '../observability/metrics.ts'
import { ProxyMetrics } from '../observability/proxy-metrics.ts'
import { NO_FILTERS, retiredFactories, SERVE_FAILED_STARTS } from '../pipeline/build-filters.ts'
import { buildFiltersWithout } from '../pipeline/build-without-revoked.ts'
import { pollerForConfig, type RevocationPoller } from '../bundles/revocation-poller.ts'
import { findRevokedFilters, type RevokedFilters } from '../bundles/revoked-filters.ts'
import { createClusterManager, createHttpCaller } from '../upstream/index.ts'
import type { ClusterManager } from '../upstream/types.ts'
import type { ServeContext } from './exchange.ts'
import type { ForwardOptions } from './forward-headers.ts'
import { Listener } from './listener.ts'
import { Snapshot } from './snapshot.ts'

/** How filters build for `meter: false`: as usual (failed starts served by policy), without fuel. */
const UNMETERED: FactoryOptions = { ...SERVE_FAILED_STARTS, meter: false }

export interface ProxyOptions {
  log?: Logger
  metrics?: MetricsRegistry
  /** Run the admin server from config (default true; workers leave it to the primary). */
  admin?: boolean
  /** Epoch of the first config (workers take the primary's numbering). Default 1. */
  epoch?: number
  /** Extra text appended to /metrics (the primary adds its workers' metrics). */
  extraMetrics?: () => Promise<string>
  /** Extra `key: value` lines for /ready (the xDS layer says whether it serves last-known-good). */
  readyDetails?: () => Record<string, string | number | boolean>
  /** Told which version of a split filter each request ran, and how it ended (rollout telemetry). */
  splitObserver?: VariantObserver
  /**
   * The revocation list to enforce, kept current by its owner (the xDS layer passes one it
   * polls). Default: one polled from `config.registry`, when set.
   */
  revocations?: RevocationPoller
  /**
   * Start with the filters the revocation list covers replaced by their stand-ins (as after a
   * list change) instead of refusing the config: a worker re-forked to join workers that
   * already run this config. Default false.
   */
  startWithoutRevoked?: boolean
  /** Fuel-instrument Wasm and QuickJS filters (default true); see FactoryOptions.meter. */
  meter?: boolean
}

const VIA = '1.1 omnirelay'

function forwardOptions(mode: ListenerConfig['mode']): ForwardOptions {
  return { appendXff: mode !== 'sidecar-outbound', setProto: mode === 'edge', via: VIA }
}

let sharedState: Promise<{ sharedData: SharedData; sharedQueues: SharedQueues }> | undefined
function loadSharedState() {
  sharedState ??= import('../hosts/shared-state/index.ts').then((m) => ({ sharedData: m.createSharedData(), sharedQueues: m.createSharedQueues() }))
  return sharedState
}

export class Proxy {
  readonly log: Logger
  readonly metrics: MetricsRegistry
  readonly pm: ProxyMetrics
  #config!: ProxyConfig
  #snapshot!: Snapshot
  #epoch: number
  readonly #clusters: ClusterManager
  readonly #listeners = new Map<string, Listener>()
  #admin: AdminServer | undefined
  #accessLog: AccessLog
  readonly #opts: ProxyOptions
  #reloading: Promise<unknown> = Promise.resolve()
  #closed = false
  #services!: HostServices
  #revocations: RevocationPoller | undefined
  #ownsRevocations = false
  /** Filters of the running epoch replaced by a stand-in because their bundle or signer is revoked. */
  #revoked: RevokedFilters = new Map()
  readonly #revokedGauge

  private constructor(config: ProxyConfig, opts: ProxyOptions) {
    this.#opts = opts
    this.log = opts.log ?? createLogger({ level: config.logLevel })
    this.metrics = opts.metrics ?? new MetricsRegistry()
    this.pm = new ProxyMetrics(this.metrics)
    this.#epoch = (opts.epoch ?? 1) - 1
    this.#clusters = createClusterManager(config.clusters, { log: this.log, metrics: this.metrics })
    this.#accessLog = createAccessLog(config.accessLog.target)
    this.#revokedGauge = this.metrics.gauge('omnirelay_filters_revoked', 'Configured filters not running because their bundle or signer is revoked').labels()
  }

  /**
   * Starts listeners, clusters, filters and the admin server for `config`.
   * @throws ConfigError when a filter does not build; Error (EADDRINUSE...) when a port will not bind
   */
  static async start(config: ProxyConfig, opts: ProxyOptions = {}): Promise<Proxy> {
    const p = new Proxy(config, opts)
    try {
      await p.#followRevocations(config, opts.revocations)
      const revoked = opts.startWithoutRevoked && p.#revocations ? await findRevokedFilters(config.filters, config.baseDir, p.#revocations.list) : undefined
      await p.#apply(config, opts.epoch, revoked)
      if (config.admin && opts.admin !== false) {
        p.#admin = new AdminServer({
          ready: () => !p.#closed && p.#listeners.size > 0,
          metrics: async () => p.metrics.render() + (opts.extraMetrics ? await opts.extraMetrics() : ''),
          config: () => p.runningConfig(),
          ...(opts.readyDetails ? { readyDetails: opts.readyDetails } : {}),
        })
        await p.#admin.listen(config.admin.port, config.admin.address)
      }
    } catch (e) {
      await p.close(0)
      throw e
    }
    return p
  }

  get epoch(): number {
    return this.#snapshot.epoch
  }

  get config(): ProxyConfig {
    return this.#config
  }

  runningConfig(): { epoch: number; config: unknown } {
    return { epoch: this.#snapshot.epoch, config: redactConfig(this.#config) }
  }

  /** The bound address of a listener (the first one by default). */
  address(listener?: string): AddressInfo {
    const l = listener === undefined ? this.#listeners.values().next().value : this.#listeners.get(listener)
    if (!l) throw new Error(`no listener ${listener ?? ''}`)
    return l.address()
  }

  adminAddress(): AddressInfo | undefined {
    return this.#admin?.address()
  }

  /**
   * Applies a new config: new requests take it, in-flight ones finish on the old one.
   * On failure the running config keeps serving and the error is rethrown.
   * @returns the new epoch
   */
  reload(config: ProxyConfig, epoch?: number): Promise<number> {
    const next = this.#reloading.then(() => this.#apply(config, epoch))
    this.#reloading = next.catch(() => {})
    return next.then(
      (e) => {
        this.pm.reloads.inc()
        this.log.info('config applied', { epoch: e })
        return e
      },
      (err: unknown) => {
        this.rejected(err)
        throw err
      },
    )
  }

  /**
   * The list changed: when it now covers filters of the running config, rebuild that config
   * with those filters replaced by a stand-in that fails every request (their failure policy
   * decides: fail-closed 503, fail-open skip). Explicit configs (start, reload, xDS) that name
   * a revoked bundle are refused instead.
   */
  async revocationsChanged(): Promise<void> {
    const list = this.#revocations?.list
    if (!list || this.#closed) return
    const next = this.#reloading.then(async () => {
      const revoked = await findRevokedFilters(this.#config.filters, this.#config.baseDir, list)
      if (sameKeys(revoked, this.#revoked)) return
      this.log.error('revoked filters taken out of the running config', { filters: Object.fromEntries(revoked) })
      return this.#apply(this.#config, undefined, revoked)
    })
    this.#reloading = next.catch(() => {})
    await next.then(
      (e) => {
        if (e !== undefined) this.pm.reloads.inc()
      },
      (err: unknown) => this.rejected(err),
    )
  }

  async #followRevocations(config: ProxyConfig, given: RevocationPoller | undefined): Promise<void> {
    if (given) {
      this.#revocations = given
      return
    }
    const poller = pollerForConfig(config, this.log, this.metrics, () => this.revocationsChanged())
    if (!poller) return
    await poller.loadPersisted()
    this.#revocations = poller
    this.#ownsRevocations = true
  }

  /** Logs and counts a config that will not be applied (unreadable, invalid, or failed to build). */
  rejected(err: unknown): void {
    this.pm.reloadFailures.inc()
    this.log.error('config rejected; the running config keeps serving', {
      epoch: this.#snapshot?.epoch,
      code: (err as { code?: string }).code,
      issues: err instanceof ConfigError ? err.issues : undefined,
      err,
    })
  }

  async #apply(config: ProxyConfig, epoch?: number, revoked: RevokedFilters = new Map()): Promise<number> {
    if (this.#closed) throw new Error('proxy is closed')
    const nextEpoch = epoch ?? this.#epoch + 1
    const old = this.#snapshot
    const shared = config.filters.length ? await loadSharedState() : undefined
    const services: HostServices = {
      log: this.log.child({ epoch: nextEpoch }),
      metrics: this.metrics,
      httpCall: createHttpCaller(this.#clusters),
      sharedData: shared?.sharedData as SharedData,
      sharedQueues: shared?.sharedQueues as SharedQueues,
      epoch: nextEpoch,
      allowNative: config.allowNative,
    }
    const load = this.#revocations ? { revocations: this.#revocations.list } : {}
    const built = await buildFiltersWithout(config, services, old?.filters ?? NO_FILTERS, revoked, load, this.#opts.meter === false ? UNMETERED : undefined)
    const filters = applyFilterSplits(built, config.filterSplits ?? [], this.#opts.splitObserver ? { observer: this.#opts.splitObserver } : {})
    if (old) this.#clusters.update(config.clusters)
    const snap = new Snapshot(nextEpoch, config, filters, this.#clusters, this.pm)

    // Listeners: unchanged ones take the new state in place; changed/new ones bind first so
    // a port that will not bind rejects the reload before anything is swapped.
    const started: Listener[] = []
    const moved: Listener[] = []
    const replace = new Map<string, Listener>()
    const accessLog = old && config.accessLog.target === this.#config.accessLog.target ? this.#accessLog : createAccessLog(config.accessLog.target)
    try {
      for (const lc of config.listeners) {
        const cur = this.#listeners.get(lc.name)
        if (cur && sameListener(cur.config, lc) && sameServerLimits(this.#config, config)) continue
        const ctx: ServeContext = {
          state: snap.listeners.get(lc.name)!,
          name: lc.name,
          scheme: lc.tls ? 'https' : 'http',
          fwd: forwardOptions(lc.mode),
          metrics: this.pm,
          accessLog,
          limits: config.limits,
          draining: false,
          log: this.log,
        }
        let l: Listener
        try {
          l = new Listener(lc, ctx, config.baseDir, this.log, this.metrics)
        } catch (e) {
          // Unreadable or malformed TLS material: say which listener and file, like a schema error.
          const i = config.listeners.indexOf(lc)
          const err = e as NodeJS.ErrnoException
          const file = err.path ? ` ${err.path}` : ''
          throw new ConfigError(ConfigErrorCode.Invalid, [{ path: `listeners[${i}].tls`, message: `cannot load certificate or key${file}: ${err.code ?? err.message}` }], { cause: e })
        }
        // Same address and port: free it first. A listener moving elsewhere keeps serving until
        // the new one is bound and swapped in, so a port that will not bind costs nothing.
        const samePort = cur !== undefined && lc.port !== 0 && cur.config.port === lc.port && cur.config.address === lc.address
        if (cur && samePort) await cur.close(config.limits.drainTimeoutMs)
        else if (cur) moved.push(cur)
        await l.listen()
        started.push(l)
        replace.set(lc.name, l)
      }
    } catch (e) {
      await Promise.all(started.map((l) => l.close(0)))
      if (accessLog !== this.#accessLog) await accessLog.close()
      if (old) this.#clusters.update(this.#config.clusters)
      await Promise.allSettled(retiredFactories(filters, old?.filters ?? NO_FILTERS).map((f) => f.close()))
      throw e
    }

    // Swap.
    for (const lc of config.listeners) {
      const l = replace.get(lc.name) ?? this.#listeners.get(lc.name)!
      l.ctx.state = snap.listeners.get(lc.name)!
      l.ctx.limits = config.limits
      l.ctx.accessLog = accessLog
      this.#listeners.set(lc.name, l)
    }
    for (const l of moved) void l.close(config.limits.drainTimeoutMs)
    for (const [name, l] of this.#listeners) {
      if (!snap.listeners.has(name)) {
        this.#listeners.delete(name)
        void l.close(config.limits.drainTimeoutMs)
      }
    }
    const oldLog = this.#accessLog
    this.#accessLog = accessLog
    this.#config = config
    this.#snapshot = snap
    this.#epoch = nextEpoch
    this.#services = services
    this.#revoked = revoked
    this.#revokedGauge.set(revoked.size)
    this.pm.epoch.set(nextEpoch)
    this.pm.allowUnsigned.set(config.allowUnsigned ? 1 : 0)
    this.pm.allowNative.set(config.allowNative ? 1 : 0)
    if (config.allowNative) {
      this.log.warn('!!! allowNative is ON: native filters run unsandboxed inside the proxy process. Load only modules you trust. !!!', {
        epoch: nextEpoch,
      })
    }
    if (config.allowUnsigned) {
      this.log.warn('!!! allowUnsigned is ON: unsigned filter modules may load. Development only: never run this in production. !!!', {
        epoch: nextEpoch,
      })
    }
    if (this.#ownsRevocations && !old) this.#revocations!.start()
    if (old) {
      const retired = retiredFactories(old.filters, filters)
      old.retire(() => {
        for (const f of retired) void f.close().catch((err: unknown) => this.log.warn('filter close failed', { filter: f.name, err }))
        if (oldLog !== accessLog) void oldLog.close()
      })
    }
    return nextEpoch
  }

  /** Drains listeners (in-flight requests get `drainMs`), then closes clusters and filters. */
  async close(drainMs?: number): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#ownsRevocations) await this.#revocations?.stop()
    const ms = drainMs ?? this.#config?.limits.drainTimeoutMs ?? 0
    await Promise.all([...this.#listeners.values()].map((l) => l.close(ms)))
    this.#listeners.clear()
    await this.#admin?.close()
    // Upstream calls still running (a filter's callout, a stream that never ends) get the same
    // deadline as downstream requests, then are aborted: shutdown cannot hang on them.
    await this.#clusters.close(ms)
    const filters = this.#snapshot?.filters ?? NO_FILTERS
    await Promise.allSettled([...filters.values()].map((b) => b.entry.factory.close()))
    await this.#accessLog.close()
  }
}

function sameKeys(a: RevokedFilters, b: RevokedFilters): boolean {
  if (a.size !== b.size) return false
  for (const k of a.keys()) if (!b.has(k)) return false
  return true
}

function sameListener(a: ListenerConfig, b: ListenerConfig): boolean {
  return (
    a.address === b.address &&
    a.port === b.port &&
    a.mode === b.mode &&
    a.http2 === b.http2 &&
    JSON.stringify(a.tls ?? null) === JSON.stringify(b.tls ?? null)
  )
}

/** Limits baked into node's servers at creation: a change needs a new listener. */
function sameServerLimits(a: ProxyConfig, b: ProxyConfig): boolean {
  const x = a.limits
  const y = b.limits
  return x.maxHeaderBytes === y.maxHeaderBytes && x.headersTimeoutMs === y.headersTimeoutMs && x.requestTimeoutMs === y.requestTimeoutMs && x.keepAliveTimeoutMs === y.keepAliveTimeoutMs
}
