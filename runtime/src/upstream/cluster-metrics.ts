/**
 * The metric children of one cluster, resolved once when the cluster is built so the hot
 * path only increments fields (see observability/metrics.ts).
 */
import type { CounterChild, GaugeChild, HistogramChild, MetricsRegistry } from '../observability/metrics.ts'
import { UpstreamErrorCode } from './types.ts'

export interface ClusterMetrics {
  requests: CounterChild
  /** Indexed by `statusCode / 100 | 0` (1..5); index 0 collects anything odd. */
  responses: CounterChild[]
  errors: Record<UpstreamErrorCode, CounterChild>
  retries: CounterChild
  /** Requests sent on the trailer-capable path (node:http/node:http2, see trailer-call.ts). */
  trailerRequests: CounterChild
  overflows: CounterChild
  ejections: CounterChild
  healthChecksOk: CounterChild
  healthChecksFailed: CounterChild
  activeRequests: GaugeChild
  activeConnections: GaugeChild
  availableEndpoints: GaugeChild
  responseSeconds: HistogramChild
}

/** Registers (or finds) the upstream metric families and returns the children for `cluster`. */
export function clusterMetrics(registry: MetricsRegistry, cluster: string): ClusterMetrics {
  const responses = registry.counter(
    'omnirelay_upstream_responses_total',
    'Upstream responses by status class',
    ['cluster', 'class'],
  )
  const errors = registry.counter('omnirelay_upstream_errors_total', 'Upstream requests that failed, by code', [
    'cluster',
    'code',
  ])
  const checks = registry.counter('omnirelay_upstream_health_checks_total', 'Active health check results', [
    'cluster',
    'result',
  ])
  const errorChildren = {} as Record<UpstreamErrorCode, CounterChild>
  for (const code of Object.values(UpstreamErrorCode)) errorChildren[code] = errors.labels(cluster, code)
  return {
    requests: registry.counter('omnirelay_upstream_requests_total', 'Requests sent to a cluster', ['cluster']).labels(cluster),
    responses: ['other', '1xx', '2xx', '3xx', '4xx', '5xx'].map((c) => responses.labels(cluster, c)),
    errors: errorChildren,
    retries: registry.counter('omnirelay_upstream_retries_total', 'Retries attempted', ['cluster']).labels(cluster),
    trailerRequests: registry
      .counter('omnirelay_upstream_trailer_requests_total', 'Requests that may carry request trailers, sent with node:http/node:http2 instead of undici', ['cluster'])
      .labels(cluster),
    overflows: registry
      .counter('omnirelay_upstream_overflow_total', 'Requests refused by the circuit breaker', ['cluster'])
      .labels(cluster),
    ejections: registry
      .counter('omnirelay_upstream_ejections_total', 'Endpoints ejected by outlier detection', ['cluster'])
      .labels(cluster),
    healthChecksOk: checks.labels(cluster, 'success'),
    healthChecksFailed: checks.labels(cluster, 'failure'),
    activeRequests: registry
      .gauge('omnirelay_upstream_requests_active', 'Requests in flight to a cluster', ['cluster'])
      .labels(cluster),
    activeConnections: registry
      .gauge('omnirelay_upstream_connections_active', 'Open connections to a cluster', ['cluster'])
      .labels(cluster),
    availableEndpoints: registry
      .gauge('omnirelay_upstream_endpoints_available', 'Endpoints healthy and not ejected', ['cluster'])
      .labels(cluster),
    responseSeconds: registry
      .histogram('omnirelay_upstream_response_seconds', 'Time from dispatch to upstream response headers', ['cluster'])
      .labels(cluster),
  }
}

/** The class child for a status code. */
export function responseClass(m: ClusterMetrics, status: number): CounterChild {
  const c = (status / 100) | 0
  return m.responses[c >= 1 && c <= 5 ? c : 0]!
}
