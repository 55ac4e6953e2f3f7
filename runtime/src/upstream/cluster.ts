/**
 * One cluster: its endpoints, load balancer, health checker, outlier detector, circuit
 * breaker counters and metrics. Built once per cluster config; `request()` is the hot path.
 */
import type { Logger } from '../observability/logger.ts'
import type { MetricsRegistry } from '../observability/metrics.ts'
import { clusterMetrics, type ClusterMetrics } from './cluster-metrics.ts'
import { Endpoint, endpointPoolKey } from './endpoint.ts'
import { HealthChecker } from './health-checker.ts'
import { createLoadBalancer, type LoadBalancer } from './load-balancer.ts'
import { OutlierDetector } from './outlier-detector.ts'
import { upgrade, type UpgradeRequest } from './upgrade-call.ts'
import { TrailerCall } from './trailer-call.ts'
import { UpstreamCall } from './upstream-call.ts'
import {
  UpstreamError,
  UpstreamErrorCode,
  type Cluster as ClusterContract,
  type ClusterConfig,
  type UpgradeResult,
  type UpstreamRequest,
  type UpstreamResponse,
} from './types.ts'

export interface ClusterDeps {
  log: Logger
  metrics: MetricsRegistry
}

export class Cluster implements ClusterContract {
  readonly name: string
  readonly config: ClusterConfig
  readonly endpoints: readonly Endpoint[]
  /** @internal read by calls */
  readonly m: ClusterMetrics
  /** @internal */
  readonly outlier: OutlierDetector | undefined
  /** @internal requests in flight (circuit breaker `maxConcurrent`). */
  active = 0
  /** @internal tries dispatched and still waiting for a connection (`maxPending`). */
  pending = 0
  /** @internal calls that have retried and are not finished (the retry budget). */
  retriesInFlight = 0

  #available: Endpoint[]
  readonly #lb: LoadBalancer
  readonly #health: HealthChecker | undefined
  readonly #log: Logger
  #closing: Promise<void> | undefined

  /**
   * @param previous the cluster of the same name in the previous config: endpoints whose
   *   connection settings are unchanged are taken over with their pool, health and ejection state.
   */
  constructor(config: ClusterConfig, deps: ClusterDeps, previous?: Cluster) {
    this.name = config.name
    this.config = config
    this.#log = deps.log.child({ cluster: config.name })
    this.m = clusterMetrics(deps.metrics, config.name)
    const reusable = new Map<string, Endpoint>()
    if (previous) for (const e of previous.endpoints) if (e.owner === previous) reusable.set(e.poolKey, e)
    this.endpoints = config.endpoints.map((e) => {
      const old = reusable.get(endpointPoolKey(e, config))
      if (old === undefined) {
        const ep = new Endpoint(e, config, this.m.activeConnections)
        ep.owner = this
        return ep
      }
      reusable.delete(old.poolKey)
      old.owner = this
      old.weight = e.weight !== undefined && e.weight > 0 ? e.weight : 1
      old.currentWeight = 0
      if (!config.healthCheck) old.healthy = true
      if (!config.outlierDetection && old.ejected) {
        old.ejected = false
        old.ejectedBy = undefined
        if (old.ejectionTimer) clearTimeout(old.ejectionTimer)
        old.ejectionTimer = undefined
      }
      return old
    })
    this.#available = this.endpoints.filter((e) => e.available)
    this.#lb = createLoadBalancer(config)
    const onChange = () => this.#refresh()
    this.outlier = config.outlierDetection
      ? new OutlierDetector(config.outlierDetection, this.endpoints, onChange, this.m, this.#log)
      : undefined
    this.#health = config.healthCheck
      ? new HealthChecker(config, config.healthCheck, this.endpoints, onChange, this.m, this.#log)
      : undefined
    this.m.availableEndpoints.set(this.#available.length)
    this.#health?.start()
  }

  /**
   * Sends a request to one endpoint; resolves at response headers with a streaming body.
   * Rejects with an `UpstreamError` (`upstream_overflow` immediately when a breaker is full).
   *
   * @example
   * const res = await cluster.request({ method: 'GET', path: '/', headers: ['host', 'api'], body: null,
   *   policy: { requestTimeoutMs: 15_000, idleTimeoutMs: 60_000 } })
   * res.body.pipe(downstream)
   */
  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const m = this.m
    m.requests.inc()
    const cb = this.config.circuitBreaker
    if (this.active >= cb.maxConcurrent || this.pending >= cb.maxPending) {
      m.overflows.inc()
      m.errors[UpstreamErrorCode.Overflow].inc()
      return Promise.reject(new UpstreamError(UpstreamErrorCode.Overflow, `cluster ${this.name}: circuit breaker open`))
    }
    // Only requests that can carry trailers leave undici (it cannot send them): one check here.
    if (req.trailers !== undefined) return new TrailerCall(this, req).start()
    return new UpstreamCall(this, req).start()
  }

  upgrade(req: UpgradeRequest): Promise<UpgradeResult> {
    if (this.active >= this.config.circuitBreaker.maxConcurrent) {
      this.m.overflows.inc()
      return Promise.reject(new UpstreamError(UpstreamErrorCode.Overflow, `cluster ${this.name}: circuit breaker open`))
    }
    return upgrade(this, req)
  }

  /** @internal the endpoint for the next try, or undefined when none is available. */
  pick(): Endpoint | undefined {
    return this.#lb.pick(this.#available)
  }

  /**
   * Stops health checks and ejection timers, then closes the pools once their requests
   * finish; after `graceMs` (if given) the pools are destroyed, aborting what still runs.
   */
  close(graceMs?: number): Promise<void> {
    this.#closing ??= (async () => {
      this.outlier?.stop()
      await this.#health?.stop()
      // Endpoints adopted by a newer config keep their pools open.
      const own = this.endpoints.filter((e) => e.owner === this)
      const graceful = Promise.all(own.map((e) => Promise.all([e.pool.close().catch(() => {}), e.closeTrailers()])))
      if (graceMs === undefined) return void (await graceful)
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          const err = new UpstreamError(UpstreamErrorCode.Reset, 'cluster closed before the request finished')
          for (const e of own) e.destroyTrailers()
          void Promise.all(own.map((e) => e.pool.destroy(err).catch(() => {}))).then(() => resolve())
        }, graceMs)
      })
      await Promise.race([graceful, deadline])
      clearTimeout(timer)
    })()
    return this.#closing
  }

  /** Health or ejection changed: rebuild the list the balancer picks from (rare, off the hot path). */
  #refresh(): void {
    const next: Endpoint[] = []
    for (const e of this.endpoints) if (e.available) next.push(e)
    this.#available = next
    this.m.availableEndpoints.set(next.length)
    if (next.length === 0) this.#log.warn('no healthy upstream endpoint')
  }
}
