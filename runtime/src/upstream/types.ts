/**
 * The contract between the proxy (routing, pipeline) and upstream clusters.
 * The proxy hands a request to a named cluster; the cluster picks an endpoint (load
 * balancing, health, outlier ejection), enforces circuit breakers and timeouts, retries
 * when the policy allows, and returns a streaming response.
 */
import type { Duplex, Readable } from 'node:stream'

export interface EndpointConfig {
  /** Host name or IP literal. */
  host: string
  port: number
  /** Relative weight for load balancing (default 1). */
  weight?: number
}

export interface HealthCheckConfig {
  /** Path to GET, e.g. '/healthz'. */
  path: string
  intervalMs: number
  timeoutMs: number
  /** Consecutive failures before an endpoint is marked unhealthy / successes before healthy again. */
  unhealthyThreshold: number
  healthyThreshold: number
  /** Status codes that count as healthy (default 200-399). */
  expectedStatuses?: [number, number]
}

export interface OutlierDetectionConfig {
  /** Consecutive 5xx responses that eject an endpoint. */
  consecutive5xx: number
  /** Consecutive connect failures that eject an endpoint. */
  consecutiveConnectFailures: number
  /** First ejection time; doubles with each further ejection of the same endpoint. */
  baseEjectionMs: number
  /** Never eject more than this share of endpoints (0-100). */
  maxEjectionPercent: number
}

export interface CircuitBreakerConfig {
  /** Requests in flight to the cluster at once. */
  maxConcurrent: number
  /** Requests waiting for a connection. */
  maxPending: number
}

export interface ClusterConfig {
  name: string
  endpoints: EndpointConfig[]
  loadBalancing: 'round-robin' | 'least-request'
  /** Speak HTTP/2 to the endpoints (required for gRPC), else HTTP/1.1 keep-alive. */
  http2: boolean
  /** TLS to the endpoints. */
  tls?: UpstreamTls
  /** Connections per endpoint. */
  maxConnectionsPerEndpoint: number
  connectTimeoutMs: number
  healthCheck?: HealthCheckConfig
  outlierDetection?: OutlierDetectionConfig
  circuitBreaker: CircuitBreakerConfig
}

export interface RetryPolicy {
  /** Retries after the first try (0 = none). Only idempotent requests with a replayable body are retried. */
  maxRetries: number
  /** What is retried: connect failures, resets, 502/503/504 responses. */
  retryOn: Array<'connect-failure' | 'reset' | '5xx' | 'gateway-error'>
  /** Retries in flight may be at most this share (0-100) of active requests: the retry budget. */
  budgetPercent: number
  /** Minimum retries always allowed regardless of the budget. */
  minRetryConcurrency: number
  /** Base backoff between tries (jittered, doubled per try). */
  backoffMs: number
}

/** Per-route upstream behaviour. */
export interface RoutePolicy {
  /** Whole request, headers to end of response (0 = none). */
  requestTimeoutMs: number
  /** No bytes either way for this long ends the stream (0 = none). */
  idleTimeoutMs: number
  retry?: RetryPolicy
}

export interface UpstreamRequest {
  method: string
  /** Path with query. */
  path: string
  /** Flat `[name, value, ...]` wire headers, lower-case, no pseudo-headers, hop-by-hop already removed, `host` set. */
  headers: string[]
  /**
   * null: no body. Uint8Array: a buffered body (replayable, so retries are possible).
   * A stream: forwarded as it arrives (not replayable: never retried after bytes were sent).
   */
  body: null | Uint8Array | Readable | AsyncIterable<Uint8Array>
  policy: RoutePolicy
  /** Aborts the upstream request (downstream went away). */
  signal?: AbortSignal
  /**
   * Set when request trailers may follow the body. The cluster then sends the request on a
   * path that can carry them (undici cannot: see docs/upstream.md) and calls this once, after
   * `body` has ended, for the trailers to send: flat `[name, value, ...]`, lower-case, maybe
   * empty. Fields that must not travel in trailers (RFC 9110 §6.5.1) are dropped. Such a
   * request is never retried.
   */
  trailers?: () => readonly string[] | PromiseLike<readonly string[]>
}

export interface UpstreamResponse {
  statusCode: number
  /** Flat `[name, value, ...]`, lower-case names. */
  headers: string[]
  body: Readable
  /** Filled when `body` has ended: flat trailers (gRPC status travels here). */
  trailers(): string[]
  /** `host:port` of the endpoint that answered. */
  endpoint: string
}

/**
 * The upstream's answer to an upgrade. On 101, `socket` is the raw upgraded connection. On
 * any other status (a refusal such as 401 or 426), `socket` is a stream carrying that
 * response's body, which ends after it: relay status, headers and body, then close.
 */
export interface UpgradeResult {
  statusCode: number
  headers: string[]
  socket: Duplex
  endpoint: string
}

/** Why an upstream request failed; the proxy maps each code to a local reply. */
export const UpstreamErrorCode = {
  NoHealthyUpstream: 'no_healthy_upstream', // 503
  Overflow: 'upstream_overflow', // 503, circuit breaker open
  ConnectFailure: 'upstream_connect_failure', // 502 (or 503)
  Reset: 'upstream_reset', // 502
  Timeout: 'upstream_timeout', // 504
  Idle: 'upstream_idle_timeout', // 504
  UnknownCluster: 'unknown_cluster', // 500
  /** 400: the request cannot be sent as is (e.g. duplicate `host`/`content-length`, `expect`). */
  InvalidRequest: 'upstream_invalid_request', // 400
} as const
export type UpstreamErrorCode = (typeof UpstreamErrorCode)[keyof typeof UpstreamErrorCode]

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode
  constructor(code: UpstreamErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UpstreamError'
    this.code = code
  }
}

export interface Cluster {
  readonly name: string
  readonly config: ClusterConfig
  request(req: UpstreamRequest): Promise<UpstreamResponse>
  /** Opens an upgraded connection (WebSocket) to one endpoint, with the same picking rules. */
  upgrade(req: Omit<UpstreamRequest, 'body' | 'policy'> & { connectTimeoutMs?: number }): Promise<UpgradeResult>
}

/** All clusters of a config. Updating keeps pools and health state of clusters whose config did not change. */
export interface ClusterManager {
  get(name: string): Cluster | undefined
  update(configs: ClusterConfig[]): void
  /**
   * Stops health checks and closes pools; in-flight requests finish first. With `graceMs`,
   * requests still running after that long are aborted (their bodies error), so shutdown
   * cannot hang on an endless stream.
   */
  close(graceMs?: number): Promise<void>
}

/** TLS to a cluster's endpoints, as configured. */
export interface UpstreamTls {
  servername?: string
  ca?: string
  rejectUnauthorized?: boolean
  cert?: string
  key?: string
}

/**
 * The TLS client options every upstream connection path passes to node (undici's connector,
 * the https agent and http2 sessions of the trailer path): only what is configured, with
 * `servername` the endpoint's SNI name when there is one.
 */
export function tlsClientOptions(tls: UpstreamTls, servername: string | undefined): UpstreamTls {
  const o: UpstreamTls = {}
  if (servername !== undefined) o.servername = servername
  if (tls.ca !== undefined) o.ca = tls.ca
  if (tls.cert !== undefined) o.cert = tls.cert
  if (tls.key !== undefined) o.key = tls.key
  if (tls.rejectUnauthorized !== undefined) o.rejectUnauthorized = tls.rejectUnauthorized
  return o
}
