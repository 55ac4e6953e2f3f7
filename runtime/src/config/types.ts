/**
 * The proxy's configuration after validation and defaults: what every other part of the
 * host reads. The file format (YAML or JSON) is documented in docs/configuration.md; the
 * validator in `validate.ts` turns a parsed file into a `ProxyConfig` or a list of issues.
 */
import type { FilterSplitConfig } from '../rollout/filter-splits.ts'
import type { FilterDefinition } from '../pipeline/filter.ts'
import type { ClusterConfig, RoutePolicy } from '../upstream/types.ts'

/** What a listener is for. One pipeline serves all three; the mode changes forwarding headers and labels. */
export type ListenerMode = 'edge' | 'sidecar-inbound' | 'sidecar-outbound'

export interface TlsConfig {
  /** PEM file paths (resolved against the config file's directory). */
  cert: string
  key: string
  /** Optional CA bundle for client certificates. */
  ca?: string
  requestClientCert: boolean
}

export interface ListenerConfig {
  name: string
  address: string
  /** 0 picks a free port (tests). */
  port: number
  mode: ListenerMode
  /** With `tls`: offer h2 through ALPN next to HTTP/1.1. Without: h2c (HTTP/2 with prior knowledge only). */
  http2: boolean
  tls?: TlsConfig
  /** Filters run for every request on this listener, before the route's own filters. */
  filters: string[]
}

export type HostMatch = { exact: string } | { suffix: string } | { any: true }

export type PathMatch = { exact: string } | { prefix: string } | { regex: string }

export interface HeaderMatch {
  name: string
  exact?: string
  regex?: string
  present?: boolean
  /** Inverts the match. */
  invert: boolean
}

export interface RouteMatch {
  /** Lower-case host patterns: `api.example.com`, `*.example.com`, or `*`. Empty = any host. */
  hosts: string[]
  path: PathMatch
  /** Upper-case methods; empty = any. */
  methods: string[]
  headers: HeaderMatch[]
}

export interface DirectResponse {
  status: number
  body: string
  headers: [string, string][]
}

export interface Redirect {
  /** 301, 302, 303, 307 or 308. */
  status: number
  scheme?: 'http' | 'https'
  host?: string
  /** Replaces the whole path (the query is kept unless `stripQuery`). */
  path?: string
  stripQuery: boolean
}

export interface WeightedCluster {
  cluster: string
  weight: number
}

export interface RouteConfig {
  name: string
  /** Listener names this route belongs to; empty = every listener. */
  listeners: string[]
  match: RouteMatch
  /** Exactly one of `cluster`, `weightedClusters`, `directResponse`, `redirect`. */
  cluster?: string
  weightedClusters?: WeightedCluster[]
  directResponse?: DirectResponse
  redirect?: Redirect
  policy: RoutePolicy
  /** Route-level filters, run after the listener's. */
  filters: string[]
  /** Optional rewrite of the path prefix matched by `match.path.prefix`. */
  prefixRewrite?: string
  /** Optional rewrite of the Host header sent upstream. */
  hostRewrite?: string
}

export interface AdminConfig {
  address: string
  port: number
}

export interface AccessLogConfig {
  /** 'stdout', 'stderr', 'off', or a file path. */
  target: string
}

export interface Limits {
  /** Largest request head (request line + headers) accepted; larger gets 431. */
  maxHeaderBytes: number
  /** Largest body a filter may make the host buffer; requests beyond get 413. */
  maxBodyBytes: number
  /** Time a client has to send the full request head (slowloris guard); 408 after. */
  headersTimeoutMs: number
  /** Time a client has to send the whole request; 408 after. */
  requestTimeoutMs: number
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number
  /** Graceful shutdown: in-flight requests get this long before connections are destroyed. */
  drainTimeoutMs: number
  /** A filter that pauses a stream longer than this fails with code `timeout`. */
  filterPauseTimeoutMs: number
}

/** The MeshKit registry this node follows for revocations (see docs/configuration.md). */
export interface RegistryConfig {
  /** Registry base URL, e.g. `http://registry:7070`. */
  url: string
  /** Read token when the registry protects reads (else env `OMNIRELAY_REGISTRY_TOKEN`). */
  token?: string
  /** How often the revocation list is polled (a 304 when unchanged). */
  pollIntervalMs: number
  /** Where the last list is kept across restarts (resolved against the config's directory). */
  revocationsFile: string
}

export interface ProxyConfig {
  /** Development only: load plain, unsigned filter modules. Announced loudly at start and in /metrics. */
  allowUnsigned: boolean
  /**
   * Load trusted native filters (`kind: native`): in-process and NOT sandboxed. Off by default;
   * announced loudly at start and in /metrics.
   */
  allowNative: boolean
  /** Path to the trust policy used to verify signed bundles. */
  trustPolicy?: string
  /** Follow a registry's revocation list: revoked bundles and signers are refused and stopped. */
  registry?: RegistryConfig
  /** Filters running two versions by weight (rollouts; usually from the control plane). */
  filterSplits?: FilterSplitConfig[]
  /** 'auto' = one worker per core; 1 = run in this process. */
  workers: 'auto' | number
  listeners: ListenerConfig[]
  routes: RouteConfig[]
  clusters: ClusterConfig[]
  filters: FilterDefinition[]
  admin?: AdminConfig
  accessLog: AccessLogConfig
  limits: Limits
  logLevel: 'debug' | 'info' | 'warn' | 'error'
  /** Directory relative paths resolve against (the config file's directory). Not part of the file. */
  baseDir: string
}
