/**
 * One endpoint of a cluster: its undici pool and the state load balancing, health checking
 * and outlier detection read and write. Plain mutable fields: they are touched per request.
 */
import { isIP } from 'node:net'
import { Pool } from 'undici'
import { canonical } from '../config/canonical.ts'
import { tlsClientOptions, type ClusterConfig, type EndpointConfig } from './types.ts'
import type { GaugeChild } from '../observability/metrics.ts'
import { TrailerTransport } from './trailer-transport.ts'

export class Endpoint {
  /** `host:port`, reported as `UpstreamResponse.endpoint`. */
  readonly address: string
  readonly host: string
  readonly port: number
  readonly origin: string
  /** Mutable: a config change of only the weight keeps the endpoint. */
  weight: number
  readonly pool: Pool
  /** What the pool was built from; endpoints with the same key can move to a new cluster config. */
  readonly poolKey: string
  /** The cluster that closes this pool (changes when a new cluster config adopts it). */
  owner: object | undefined
  /**
   * TLS server name sent with every request. undici otherwise derives it per request from
   * the Host header and drops the connection whenever it changes; a fixed name keeps the
   * pool warm. Undefined only for an IP endpoint without `tls.servername` (then the Host
   * header decides, which is undici's own behaviour).
   */
  readonly servername: string | undefined

  /** Connections for requests that carry trailers (undici cannot send them); made on first use. */
  #trailers: TrailerTransport | undefined = undefined
  readonly #cluster: ClusterConfig
  readonly #connections: GaugeChild

  /** Attempts dispatched to this endpoint and not yet finished (least-request reads it). */
  inflight = 0
  /** Smooth weighted round-robin state. */
  currentWeight = 0

  /** Active health: false after `unhealthyThreshold` failed checks. */
  healthy = true
  hcFailures = 0
  hcSuccesses = 0

  /** Outlier detection. */
  ejected = false
  ejectionCount = 0
  lastUnejectedAt = 0
  consecutive5xx = 0
  consecutiveConnectFailures = 0
  ejectionTimer: NodeJS.Timeout | undefined
  ejectedUntil = 0
  /** The detector whose timer will restore this endpoint. */
  ejectedBy: object | undefined

  constructor(cfg: EndpointConfig, cluster: ClusterConfig, connections: GaugeChild) {
    const host = cfg.host.includes(':') && !cfg.host.startsWith('[') ? `[${cfg.host}]` : cfg.host
    this.address = `${host}:${cfg.port}`
    this.host = cfg.host
    this.port = cfg.port
    this.#cluster = cluster
    this.#connections = connections
    this.origin = `${cluster.tls ? 'https' : 'http'}://${this.address}`
    this.servername = cluster.tls ? (cluster.tls.servername ?? (isIP(cfg.host) ? undefined : cfg.host)) : undefined
    this.weight = cfg.weight !== undefined && cfg.weight > 0 ? cfg.weight : 1
    this.poolKey = endpointPoolKey(cfg, cluster)
    this.pool = new Pool(this.origin, poolOptions(cluster))
    this.pool.on('connect', () => connections.inc())
    this.pool.on('disconnect', () => connections.dec())
  }

  /** The node:http / node:http2 connections of this endpoint for requests with trailers. */
  trailerTransport(): TrailerTransport {
    return (this.#trailers ??= new TrailerTransport(this, this.#cluster, this.#connections))
  }

  /** Closes the trailer connections once their calls finish (nothing to do when never used). */
  closeTrailers(): Promise<void> {
    return this.#trailers?.close() ?? Promise.resolve()
  }

  /** Closes the trailer connections now. */
  destroyTrailers(): void {
    this.#trailers?.destroy()
  }

  /** Usable for new requests. */
  get available(): boolean {
    return this.healthy && !this.ejected
  }
}

/** Everything that shapes an endpoint's connections. */
export function endpointPoolKey(cfg: EndpointConfig, cluster: ClusterConfig): string {
  return canonical([cfg.host, cfg.port, cluster.http2, cluster.tls, cluster.maxConnectionsPerEndpoint, cluster.connectTimeoutMs])
}

/** undici options shared by the traffic pool and the health-check client of an endpoint. */
export function poolOptions(cluster: ClusterConfig): Pool.Options {
  const tls = cluster.tls
  // Cleartext HTTP/2 is h2c with prior knowledge: there is no ALPN to negotiate it.
  const connect: Record<string, unknown> = tls ? { ...tlsClientOptions(tls, tls.servername) } : cluster.http2 ? { useH2c: true } : {}
  return {
    connections: Math.max(1, cluster.maxConnectionsPerEndpoint),
    // On HTTP/2 one connection carries many streams; on HTTP/1.1 no pipelining (head-of-line).
    pipelining: cluster.http2 ? 100 : 1,
    allowH2: cluster.http2,
    connectTimeout: cluster.connectTimeoutMs,
    connect,
    // Per-request timeouts are set on each dispatch from the route policy.
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 4_000,
  } as Pool.Options
}
