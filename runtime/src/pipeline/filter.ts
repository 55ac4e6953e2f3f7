/**
 * The filter contract: the one interface every extension host (wasm, quickjs, native)
 * implements and the pipeline drives. Modelled on Envoy's stream filters and the
 * proxy-wasm context model:
 *
 * - a `FilterFactory` is built once per configured filter (config parsed and validated,
 *   module compiled, instances warmed) and shared by every request;
 * - `createStream()` gives a per-request `StreamFilter` (cheap: hosts pool instances);
 * - each hook returns a `FilterStatus`; data crosses on demand through `HttpStream`.
 */
import type { HeaderMap } from './header-map.ts'
import type { FilterStatus } from './phases.ts'

/** What happens to a request when a filter fails (trap, fuel, memory, timeout, thrown error). */
export type FailurePolicy =
  /** Local 5xx with a stable error body; the default. */
  | 'fail-closed'
  /** Skip the filter for the rest of this request, count it, go on. */
  | 'fail-open'
  /** This request fails closed; the host builds a fresh instance, with exponential backoff. */
  | 'reload'

/** How a filter's state lives across requests. */
export type Isolation =
  /** proxy-wasm semantics: one instance, state persists across requests. */
  | 'shared'
  /** Memory and globals restored from a post-start snapshot before each request. */
  | 'per-request'

/** Everything a filter may be granted. A module needing more than its grant is refused at load. */
export const CAPABILITIES = [
  'headers:read',
  'headers:write',
  'body:read',
  'body:write',
  'local-reply',
  'properties',
  'metrics',
  'shared-data',
  'shared-queue',
  'timers',
  'http-callout',
  'log',
] as const
export type Capability = (typeof CAPABILITIES)[number]

/** Per-filter resource limits. Absent fields take the host defaults. */
export interface Quotas {
  /** Deterministic step budget per request (sum over all hooks of one request). */
  fuel?: number
  /** Hard cap on the sandbox's memory, in bytes (rounded up to 64 KiB Wasm pages). */
  memoryBytes?: number
  /** Wall-clock limit for one hook call, in milliseconds: the second line of defence. */
  timeoutMs?: number
  /** Largest body this filter may buffer, in bytes. */
  maxBodyBytes?: number
}

/** A filter as written in config, after schema validation. */
export interface FilterDefinition {
  /** Unique name within the config; used in metrics, logs and local replies. */
  name: string
  kind: 'wasm' | 'quickjs' | 'native'
  /** A signed bundle: a path or URL, pinned by sha256 digest. */
  bundle?: { path: string; digest?: string }
  /** A plain module file: only with `allowUnsigned` in host config. */
  module?: string
  /** Filter configuration handed to the filter (proxy-wasm plugin configuration); JSON. */
  config?: unknown
  failurePolicy: FailurePolicy
  isolation: Isolation
  quotas: Quotas
  /** What the operator grants; the effective grant is the intersection with the bundle's. */
  capabilities: Capability[]
  /** Clusters this filter may call out to (needs 'http-callout'). */
  calloutClusters?: string[]
  /** Optional narrowing of the phases the filter is called for. */
  phases?: number
}

/** A module's bytes after loading (and, for bundles, verification). */
export interface LoadedArtifact {
  kind: FilterDefinition['kind']
  /** The module: wasm bytes, JS source as UTF-8, or for native a file path in `entry`. */
  bytes: Uint8Array
  /** sha256 hex of `bytes` (compiled modules are cached by it). */
  digest: string
  /** For native filters: the module file to import. */
  entry?: string
  /** Bundle identity when loaded from a bundle. */
  bundle?: { name: string; version: string; digest: string; signer: string }
  /** Capabilities the bundle (or, unsigned, the config alone) allows. */
  capabilities: Capability[]
  /**
   * Bundles only: the effective quotas (config over the manifest's defaults, checked against
   * the manifest's and publisher's maximums). Hosts should prefer these over `def.quotas`.
   */
  quotas?: Quotas
  /** Whether this artifact was loaded without signature verification (development only). */
  unsigned: boolean
}

/** Facts about one stream, readable by filters as properties and written into the access log. */
export interface StreamInfo {
  readonly requestId: string
  /** Monotonic start time (performance.now()) and wall-clock start (Date.now()). */
  readonly startMonotonic: number
  readonly startTime: number
  /** 'HTTP/1.1' | 'HTTP/2' */
  readonly protocol: string
  readonly scheme: 'http' | 'https'
  readonly downstreamRemoteAddress: string
  readonly downstreamRemotePort: number
  readonly downstreamLocalAddress: string
  readonly downstreamLocalPort: number
  /** TLS facts of the downstream connection, when there is one. */
  readonly tls?: { version: string; sni?: string; peerIdentity?: string; peerCertificatePresented: boolean }
  /** The epoch of the config this stream runs under (fixed for the stream's whole life). */
  readonly epoch: number
  /** Set once routing is done. */
  routeName: string | undefined
  clusterName: string | undefined
  upstreamAddress: string | undefined
  /** The response status once known. */
  responseCode: number
  /** Whether a local reply (rather than an upstream) produced the response, and why. */
  localReplyDetails: string | undefined
  bytesReceived: number
  bytesSent: number
}

/** One header value or body as a filter hands it back. */
export type Bytes = string | Uint8Array

/** The request/response as a filter sees it, valid from `createStream()` until `onDone()`. */
export interface HttpStream {
  readonly info: StreamInfo
  /** Request headers with `:method`, `:path`, `:authority`, `:scheme`. Mutable until upstream headers are sent. */
  readonly requestHeaders: HeaderMap
  /** Empty until the ResponseHeaders phase; contains `:status`. */
  readonly responseHeaders: HeaderMap
  /** Request/response trailers; empty maps when there are none. */
  readonly requestTrailers: HeaderMap
  readonly responseTrailers: HeaderMap
  /**
   * The body buffer the current body hook sees: the bytes this filter has buffered so far.
   * Setting it replaces those bytes (proxy-wasm `set_buffer_bytes`). Empty outside body hooks.
   */
  requestBody: Uint8Array
  responseBody: Uint8Array
  /**
   * Ends the stream with a local response; the pipeline stops calling request filters.
   * Later calls on a stream that already replied are ignored (returns false).
   */
  sendLocalReply(status: number, body?: Bytes, headers?: readonly [string, string][], details?: string): boolean
  /** Continues a stream a hook paused. Safe to call once; later calls do nothing. */
  resume(): void
}

/**
 * A per-request filter. Every hook is optional: a missing hook is the same as returning
 * Continue, and the pipeline does not call phases the factory did not subscribe to.
 * Hooks may throw: the pipeline applies the filter's failure policy (a `FilterError`
 * carries the reason code).
 */
export interface StreamFilter {
  onRequestHeaders?(endOfStream: boolean): FilterStatus
  /** `stream.requestBody` holds what this filter has buffered (this chunk plus earlier paused chunks). */
  onRequestBody?(bodySize: number, endOfStream: boolean): FilterStatus
  onRequestTrailers?(): FilterStatus
  onResponseHeaders?(endOfStream: boolean): FilterStatus
  onResponseBody?(bodySize: number, endOfStream: boolean): FilterStatus
  onResponseTrailers?(): FilterStatus
  /** After the response is complete (or the stream was reset); for logging and accounting. */
  onLog?(): void
  /** Called exactly once, last, whatever happened; release pooled instances here. Must not throw. */
  onDone?(): void
}

/** A configured filter, ready to serve requests. Built once per config epoch (or reused across epochs when unchanged). */
export interface FilterFactory {
  readonly name: string
  readonly kind: FilterDefinition['kind']
  /** Bitmask of `Phase` values this filter is called for. */
  readonly phases: number
  readonly failurePolicy: FailurePolicy
  /** Bundle identity, for per-version telemetry. */
  readonly version?: string
  /** Creates the per-request filter. May return a failing filter but must not throw for healthy hosts. */
  createStream(stream: HttpStream): StreamFilter
  /** Releases instances, timers and compiled code. */
  close(): Promise<void>
}

/** Stable reason codes for filter failures; they appear in metrics labels and local reply bodies. */
export const FilterErrorCode = {
  FuelExhausted: 'fuel_exhausted',
  MemoryExceeded: 'memory_exceeded',
  Timeout: 'timeout',
  Trap: 'trap',
  StackOverflow: 'stack_overflow',
  Thrown: 'thrown',
  Unavailable: 'unavailable',
  BodyTooLarge: 'body_too_large',
} as const
export type FilterErrorCode = (typeof FilterErrorCode)[keyof typeof FilterErrorCode]

/** Raised by a host when a filter fails; the pipeline maps it to the failure policy. */
export class FilterError extends Error {
  readonly code: FilterErrorCode
  readonly filter: string
  constructor(filter: string, code: FilterErrorCode, message: string, options?: { cause?: unknown }) {
    super(`filter "${filter}": ${message}`, options)
    this.name = 'FilterError'
    this.code = code
    this.filter = filter
  }
}
