/**
 * What the proxy offers extension hosts: the only door from a sandbox to the outside.
 * A host hands a filter only the parts its capabilities grant.
 */
import type { Logger } from '../observability/logger.ts'
import type { MetricsRegistry } from '../observability/metrics.ts'
import type { FilterDefinition, FilterFactory, LoadedArtifact } from '../pipeline/filter.ts'

/** An outbound request a filter makes to a configured cluster (proxy-wasm `proxy_http_call`). */
export interface HttpCallRequest {
  cluster: string
  /** Must include `:method`, `:path`; `:authority` defaults to the cluster name. */
  headers: readonly [string, string][]
  body?: Uint8Array
  trailers?: readonly [string, string][]
  timeoutMs: number
}

export interface HttpCallResponse {
  /** Includes `:status`. */
  headers: [string, string][]
  body: Uint8Array
  trailers: [string, string][]
}

/** Process-wide key/value store with compare-and-swap (proxy-wasm shared data). */
export interface SharedData {
  /** The value and its CAS token, or undefined when absent. */
  get(key: string): { value: Uint8Array; cas: number } | undefined
  /** Sets `key`; when `cas` is non-zero it must match the current token, else returns false. */
  set(key: string, value: Uint8Array, cas: number): boolean
}

/** Process-wide named FIFO queues (proxy-wasm shared queues). */
export interface SharedQueues {
  /** Registers (or finds) a queue owned by `vmId`; returns its id. */
  register(vmId: string, name: string): number
  /** The id of an existing queue, or undefined. */
  resolve(vmId: string, name: string): number | undefined
  /** Appends; returns false when the queue does not exist. */
  enqueue(id: number, data: Uint8Array): boolean
  /** Removes the oldest item; undefined when empty. Throws nothing for a missing queue: returns null. */
  dequeue(id: number): Uint8Array | undefined | null
  /** Called when an item is enqueued on a queue owned by the listener's vm. Returns an unsubscribe. */
  onEnqueue(id: number, listener: () => void): () => void
}

export interface HostServices {
  log: Logger
  metrics: MetricsRegistry
  /** Performs a callout to a configured cluster. Rejects with an Error whose `code` says why. */
  httpCall(req: HttpCallRequest): Promise<HttpCallResponse>
  sharedData: SharedData
  sharedQueues: SharedQueues
  /** The epoch of the config being built (filters built for an epoch keep it). */
  epoch: number
  /**
   * Whether the host config enables trusted native filters (unsandboxed, in-process). The
   * native host refuses to load anything unless this is true. Absent means false.
   */
  allowNative?: boolean
}

/** How a factory is built. */
export interface FactoryOptions {
  /**
   * What a valid module that fails while starting (trap, fuel, watchdog, a start hook
   * returning false, a QuickJS top-level throw) does to `createFactory`:
   * - `'reject'` (default): it rejects with the failure's code, as for a broken module (the
   *   registry's admission smoke run, `validate --build`);
   * - `'serve'`: it resolves with a factory in a failed state that answers by the filter's
   *   failure policy (see hosts/start-failure.ts): what the proxy does.
   */
  startFailure?: 'reject' | 'serve'
  /**
   * Instrument filters for fuel (Wasm, QuickJS). Default true. False only for benchmarks and
   * trusted code: no CPU quota at all, so a runaway filter holds its worker until the
   * watchdog's after-the-fact check, which never comes for a call that does not return.
   */
  meter?: boolean
}

/** One kind of extension host (wasm, quickjs, native): builds factories from definitions. */
export interface ExtensionHost {
  readonly kind: FilterDefinition['kind']
  /**
   * Builds a ready factory: compiles (or takes from the digest cache), checks imports
   * against the effective capabilities, instantiates and warms. Rejects with a clear
   * error naming what is wrong; never leaves half-built state behind.
   */
  createFactory(def: FilterDefinition, artifact: LoadedArtifact, services: HostServices, opts?: FactoryOptions): Promise<FilterFactory>
}
