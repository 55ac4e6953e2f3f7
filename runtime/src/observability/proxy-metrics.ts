/**
 * The proxy's own metric families (downstream side). Labelled children are resolved when
 * a config epoch is built (per listener and route), so a request only bumps fields.
 */
import type { CounterChild, GaugeChild, HistogramChild, MetricsRegistry } from './metrics.ts'

export const STATUS_CLASSES = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** Children for one (listener, route, cluster) combination. */
export interface RouteMetrics {
  requests: CounterChild
  /** Indexed by `status / 100 | 0` (1..5); 0 collects anything else. */
  responses: CounterChild[]
  duration: HistogramChild
}

export class ProxyMetrics {
  readonly registry: MetricsRegistry
  readonly activeRequests: GaugeChild
  readonly activeConnections: GaugeChild
  readonly epoch: GaugeChild
  readonly reloads: CounterChild
  readonly reloadFailures: CounterChild
  readonly allowUnsigned: GaugeChild
  readonly allowNative: GaugeChild
  readonly bytesReceived: CounterChild
  readonly bytesSent: CounterChild

  constructor(registry: MetricsRegistry) {
    this.registry = registry
    this.activeRequests = registry.gauge('omnirelay_requests_active', 'Downstream requests in flight').labels()
    this.activeConnections = registry.gauge('omnirelay_downstream_connections_active', 'Open downstream connections').labels()
    this.epoch = registry.gauge('omnirelay_config_epoch', 'Epoch of the config serving new requests').labels()
    this.reloads = registry.counter('omnirelay_config_reloads_total', 'Config reloads applied').labels()
    this.reloadFailures = registry.counter('omnirelay_config_reload_failures_total', 'Config reloads rejected (old config kept)').labels()
    this.allowUnsigned = registry
      .gauge('omnirelay_allow_unsigned', '1 when unsigned filter modules may load (development mode: never in production)')
      .labels()
    this.allowNative = registry.gauge('omnirelay_allow_native', '1 when trusted native filters (unsandboxed, in-process) may load').labels()
    this.bytesReceived = registry.counter('omnirelay_downstream_body_bytes_received_total', 'Request body bytes received').labels()
    this.bytesSent = registry.counter('omnirelay_downstream_body_bytes_sent_total', 'Response body bytes sent').labels()
  }

  route(listener: string, route: string, cluster: string): RouteMetrics {
    const r = this.registry
    const responses = r.counter('omnirelay_responses_total', 'Downstream responses by status class', ['listener', 'route', 'class'])
    return {
      requests: r.counter('omnirelay_requests_total', 'Downstream requests', ['listener', 'route']).labels(listener, route),
      responses: STATUS_CLASSES.map((c) => responses.labels(listener, route, c)),
      duration: r
        .histogram('omnirelay_request_duration_seconds', 'Downstream request duration, first byte in to last byte out', ['listener', 'route', 'cluster'])
        .labels(listener, route, cluster),
    }
  }
}

export function statusClass(status: number): number {
  const c = (status / 100) | 0
  return c >= 1 && c <= 5 ? c : 0
}
