/**
 * Active HTTP health checks: each endpoint is probed with `GET path` every `intervalMs` (+ up to 10 % jitter)
 * on its own connection (not the traffic pool, so a saturated pool cannot fail checks).
 * `unhealthyThreshold` consecutive failures take it out of rotation, `healthyThreshold`
 * consecutive successes bring it back. Endpoints start healthy so a fresh cluster serves
 * at once; the first probe runs immediately.
 */
import { Client, type Dispatcher } from 'undici'
import type { Logger } from '../observability/logger.ts'
import type { ClusterMetrics } from './cluster-metrics.ts'
import { poolOptions, type Endpoint } from './endpoint.ts'
import type { ClusterConfig, HealthCheckConfig } from './types.ts'

export class HealthChecker {
  readonly #cluster: ClusterConfig
  readonly #cfg: HealthCheckConfig
  readonly #endpoints: readonly Endpoint[]
  readonly #onChange: () => void
  readonly #m: ClusterMetrics
  readonly #log: Logger
  readonly #clients = new Map<Endpoint, Client>()
  readonly #timers = new Map<Endpoint, NodeJS.Timeout>()
  readonly #headers: string[]
  #stopped = false

  constructor(
    cluster: ClusterConfig,
    cfg: HealthCheckConfig,
    endpoints: readonly Endpoint[],
    onChange: () => void,
    m: ClusterMetrics,
    log: Logger,
  ) {
    this.#cluster = cluster
    this.#cfg = cfg
    this.#endpoints = endpoints
    this.#onChange = onChange
    this.#m = m
    this.#log = log
    // Envoy's default: the cluster name as the Host of health checks.
    this.#headers = ['host', cluster.name, 'user-agent', 'omnirelay-health-check']
  }

  start(): void {
    const { connections: _c, ...opts } = poolOptions(this.#cluster)
    for (const ep of this.#endpoints) {
      this.#clients.set(ep, new Client(ep.origin, { ...opts, pipelining: 1 } as Client.Options))
      this.#schedule(ep, 0)
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
    await Promise.all([...this.#clients.values()].map((c) => c.destroy().catch(() => {})))
    this.#clients.clear()
  }

  #schedule(ep: Endpoint, ms: number): void {
    if (this.#stopped) return
    const t = setTimeout(() => void this.#check(ep), ms)
    t.unref()
    this.#timers.set(ep, t)
  }

  async #check(ep: Endpoint): Promise<void> {
    const client = this.#clients.get(ep)
    if (!client || this.#stopped) return
    const cfg = this.#cfg
    const [lo, hi] = cfg.expectedStatuses ?? [200, 399]
    let ok = false
    let detail: unknown
    try {
      const opts = {
        method: 'GET',
        path: cfg.path,
        headers: this.#headers,
        servername: ep.servername,
        signal: AbortSignal.timeout(cfg.timeoutMs),
        headersTimeout: cfg.timeoutMs,
        bodyTimeout: cfg.timeoutMs,
      } as Dispatcher.RequestOptions
      const res = await client.request(opts)
      ok = res.statusCode >= lo && res.statusCode <= hi
      detail = res.statusCode
      await res.body.dump()
    } catch (err) {
      detail = (err as { code?: string }).code ?? (err as Error).name
    }
    if (this.#stopped) return
    this.#record(ep, ok, detail)
    // Up to 10 % jitter, so the checks of many endpoints (and proxies) drift apart.
    this.#schedule(ep, cfg.intervalMs + Math.random() * cfg.intervalMs * 0.1)
  }

  #record(ep: Endpoint, ok: boolean, detail: unknown): void {
    if (ok) {
      this.#m.healthChecksOk.inc()
      ep.hcFailures = 0
      if (!ep.healthy && ++ep.hcSuccesses >= Math.max(1, this.#cfg.healthyThreshold)) {
        ep.healthy = true
        ep.hcSuccesses = 0
        this.#log.info('upstream endpoint healthy', { cluster: this.#cluster.name, endpoint: ep.address })
        this.#onChange()
      }
      return
    }
    this.#m.healthChecksFailed.inc()
    ep.hcSuccesses = 0
    if (ep.healthy && ++ep.hcFailures >= Math.max(1, this.#cfg.unhealthyThreshold)) {
      ep.healthy = false
      ep.hcFailures = 0
      this.#log.warn('upstream endpoint unhealthy', { cluster: this.#cluster.name, endpoint: ep.address, detail })
      this.#onChange()
    }
  }
}
