/**
 * A configured Wasm filter: module compiled once (digest cache), checked against its grant,
 * initialized, and then serving streams.
 *
 * Isolation:
 * - `shared`: one instance serves every request (proxy-wasm semantics; one context per
 *   stream, state persists). After a failure the instance is dropped and the next request
 *   builds a fresh one (with `reload`, only after an exponential backoff).
 * - `per-request`: instances come from a pool; each starts from the snapshot (memory and
 *   mutable globals) taken right after initialization, so no state crosses requests. A new
 *   pool instance is instantiated and restored from the snapshot, never re-initialized.
 *   Timers and queue callbacks run on a separate root instance that serves no request.
 *
 * Failure policy: the hook throws a FilterError and the pipeline answers (fail-closed: 5xx,
 * fail-open: skip, reload: 5xx while the instance is rebuilt with backoff). Failures outside
 * a hook (a callout's response callback) apply the same policy here. Every failure counts in
 * `omnirelay_wasm_failures_total{filter,code}` and is logged (rate-limited: crash loops
 * produce one line per second with a suppressed count).
 *
 * A failed start (the start function, `_initialize`/`_start`, `proxy_on_vm_start` or
 * `proxy_on_configure` trapping, out of fuel, over the watchdog, or returning false) rejects
 * the factory by default; with `startFailure: 'serve'` (the proxy) the factory is built in a
 * failed state instead: every request gets a stream filter whose request headers hook throws
 * `unavailable`, hence the policy's answer; with `reload` a fresh instance is tried on a
 * request after each backoff step (see ../start-failure.ts).
 */
import type { Capability, FilterDefinition, FilterFactory, HttpStream, LoadedArtifact, StreamFilter } from '../../pipeline/filter.ts'
import { FilterError, FilterErrorCode } from '../../pipeline/filter.ts'
import { hostReply } from '../../pipeline/local-reply.ts'
import { FilterStatus, Phase } from '../../pipeline/phases.ts'
import type { CounterChild, GaugeChild, HistogramChild, Metric } from '../../observability/metrics.ts'
import { moduleCache, type ModuleCache, type PreparedModule } from '../../sandbox/module-cache.ts'
import { pagesFor } from '../../sandbox/memory-cap.ts'
import { FailureLogWindow } from '../failure-log.ts'
import type { FactoryOptions, HostServices } from '../host-services.ts'
import { FilterLoadError } from '../load-error.ts'
import { withEffectiveQuotas } from '../quotas.ts'
import { CONFIGURE_REJECTED, FAILED_START_PHASES, StartFailures, StartPhase } from '../start-failure.ts'
import { ABI_MARKERS } from './abi.ts'
import { assertImportsGranted } from './capabilities.ts'
import { GuestMetrics } from './guest-metrics.ts'
import { WasmVm, type Callbacks, type FilterEnv, type Snapshot, type StreamBinding } from './vm.ts'

/** Host defaults for absent quotas. */
export const WASM_DEFAULTS = {
  /**
   * About 5 ms of a tight loop on the reference machine, ~500 times what an AssemblyScript
   * header filter uses per request (≈ 20k).
   */
  fuel: 10_000_000,
  memoryBytes: 32 * 1024 * 1024,
  /**
   * Generous on purpose: fuel is the primary stop, and wall-clock time of a synchronous call
   * includes the OS descheduling us (a loaded machine would otherwise fail healthy filters).
   */
  timeoutMs: 500,
  /** Initialization gets this many request budgets. */
  initFuelFactor: 10,
  /** Per-request isolation: most live instances per filter, and most kept idle. */
  maxInstances: 256,
  maxIdle: 32,
  /** Largest body a module may write (proxy_set_buffer_bytes) without `quotas.maxBodyBytes`. */
  maxBodyBytes: 16 * 1024 * 1024,
  /** Module log lines per second per filter (burst the same); the rest are counted and dropped. */
  logLinesPerSecond: 200,
  /** Shared mode: fresh instances built per second at most (crash loops answer `unavailable` beyond). */
  maxRebuildsPerSecond: 10,
  backoffBaseMs: 100,
  backoffMaxMs: 30_000,
} as const

const FUEL_BUCKETS = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]

/** What a failed initialization reports: where, why (stable code), and the error. */
interface FailedStart {
  phase: StartPhase
  code: string
  error: FilterError
}

export interface WasmHostOptions extends FactoryOptions {
  cache?: ModuleCache
}

/**
 * A module refused at load. `code` is stable: invalid_module, unknown_import, capability_denied,
 * memory_exceeded, and (unless built with `startFailure: 'serve'`) configure_rejected or the
 * FilterError code of a failed initialization.
 */
export class WasmLoadError extends FilterLoadError {
  override name = 'WasmLoadError'
}

function configBytes(config: unknown): Uint8Array {
  if (config === undefined || config === null) return new Uint8Array(0)
  if (config instanceof Uint8Array) return config
  return new TextEncoder().encode(typeof config === 'string' ? config : JSON.stringify(config))
}

/** Builds a ready factory (see the file comment). Rejects with `WasmLoadError`. */
export async function createWasmFactory(
  def: FilterDefinition,
  artifact: LoadedArtifact,
  services: HostServices,
  opts: WasmHostOptions = {},
): Promise<FilterFactory> {
  def = withEffectiveQuotas(def, artifact)
  const meter = opts.meter ?? true
  const bundleCaps = new Set(artifact.capabilities)
  const grants = new Set<Capability>(def.capabilities.filter((c) => bundleCaps.has(c)))
  const maxPages = pagesFor(def.quotas.memoryBytes ?? WASM_DEFAULTS.memoryBytes)
  if (!WebAssembly.validate(artifact.bytes)) throw new WasmLoadError(def.name, 'invalid_module', 'not a valid WebAssembly module')

  let prepared: PreparedModule
  try {
    prepared = await (opts.cache ?? moduleCache).prepare(artifact.bytes, { fuel: meter, snapshot: def.isolation === 'per-request', maxPages })
  } catch (e) {
    const code = (e as { code?: string }).code === 'memory_exceeded' ? 'memory_exceeded' : 'invalid_module'
    throw new WasmLoadError(def.name, code, (e as Error).message, { cause: e })
  }
  try {
    assertImportsGranted(def.name, prepared.imports, grants)
  } catch (e) {
    throw new WasmLoadError(def.name, (e as { code: string }).code, (e as Error).message.replace(/^filter "[^"]*": /, ''), { cause: e })
  }
  const factory = new WasmFilterFactory(def, prepared, services, grants, artifact.bundle?.version)
  factory.start(opts.startFailure === 'serve')
  return factory
}

export class WasmFilterFactory implements FilterFactory {
  readonly name: string
  readonly kind = 'wasm' as const
  readonly phases: number
  readonly failurePolicy: FilterDefinition['failurePolicy']
  readonly version: string | undefined
  readonly env: FilterEnv
  readonly fuelBudget: number
  readonly metered: boolean
  readonly #def: FilterDefinition
  readonly #prepared: PreparedModule
  readonly #perRequest: boolean
  /** Shared mode: the serving instance. Per-request mode: the root (timers, queues). */
  #root: WasmVm | undefined
  #snapshot: Snapshot | undefined
  readonly #idle: WasmVm[] = []
  /** Every instance not yet dropped (root, idle, in use): for stats; changes only when instances come and go. */
  readonly #all = new Set<WasmVm>()
  #live = 0
  #closed = false
  // failure bookkeeping
  #consecutive = 0
  #lastFailureAt = 0
  #retryAt = 0
  readonly #failureLog = new FailureLogWindow()
  #rebuildWindowAt = 0
  #rebuilds = 0
  readonly #failures = new Map<string, CounterChild>()
  readonly #failureMetric: Metric<CounterChild>
  readonly fuelUsed: HistogramChild
  readonly #instances: GaugeChild
  readonly #created: CounterChild
  readonly #starts: StartFailures
  /** Inside `#initialize`: a failure there is a failed start, counted and logged by the start path. */
  #initializing = false

  constructor(def: FilterDefinition, prepared: PreparedModule, services: HostServices, grants: Set<Capability>, version?: string) {
    this.name = def.name
    this.failurePolicy = def.failurePolicy
    this.version = version
    this.#def = def
    this.#prepared = prepared
    this.#perRequest = def.isolation === 'per-request'
    this.metered = prepared.metered
    this.fuelBudget = Math.max(0, Math.floor(def.quotas.fuel ?? WASM_DEFAULTS.fuel))
    const m = services.metrics
    this.fuelUsed = m.histogram('omnirelay_filter_fuel_used', 'Fuel used per request by a filter', ['filter'], FUEL_BUCKETS).labels(def.name)
    this.#instances = m.gauge('omnirelay_wasm_instances', 'Live Wasm instances per filter', ['filter']).labels(def.name)
    this.#created = m.counter('omnirelay_wasm_instances_created_total', 'Wasm instances created (initial, pool growth, reloads)', ['filter']).labels(def.name)
    // Registered before any module runs: a module defining a metric with one of these names
    // (they share the omnirelay_wasm_ prefix) then gets BadArgument instead of breaking ours.
    this.#failureMetric = m.counter('omnirelay_wasm_failures_total', 'Wasm filter failures (instance discarded) by reason code', ['filter', 'code'])
    this.#logDroppedMetric = m.counter('omnirelay_wasm_log_dropped_total', 'Module log lines dropped by the per-filter rate limit', ['filter'])
    this.#starts = new StartFailures(def, 'wasm', m, services.log)
    this.env = {
      name: def.name,
      vmId: def.name,
      version,
      services,
      log: services.log.child({ filter: def.name, kind: 'wasm' }),
      grants,
      calloutClusters: new Set(grants.has('http-callout') ? (def.calloutClusters ?? []) : []),
      pluginConfig: configBytes(def.config),
      vmConfig: new Uint8Array(0),
      metrics: new GuestMetrics(m, def.name),
      fuelBudget: this.fuelBudget,
      initFuel: this.fuelBudget * WASM_DEFAULTS.initFuelFactor,
      timeoutMs: def.quotas.timeoutMs ?? WASM_DEFAULTS.timeoutMs,
      maxBodyBytes: def.quotas.maxBodyBytes ?? WASM_DEFAULTS.maxBodyBytes,
      allowLog: () => this.#allowLog(),
      onFailure: (vm, err, binding) => this.#onFailure(vm, err, binding),
    }
    const exported = new Set(prepared.exports.map((e) => e.name))
    if (!ABI_MARKERS.some((n) => exported.has(n))) {
      this.env.log.warn('module exports no proxy_abi_version_* marker; assuming ABI v0.2.1', { filter: def.name })
    }
    const body = grants.has('body:read')
    let phases = 0
    if (exported.has('proxy_on_request_headers')) phases |= Phase.RequestHeaders
    if (body && exported.has('proxy_on_request_body')) phases |= Phase.RequestBody
    if (exported.has('proxy_on_request_trailers')) phases |= Phase.RequestTrailers
    if (exported.has('proxy_on_response_headers')) phases |= Phase.ResponseHeaders
    if (body && exported.has('proxy_on_response_body')) phases |= Phase.ResponseBody
    if (exported.has('proxy_on_response_trailers')) phases |= Phase.ResponseTrailers
    if (exported.has('proxy_on_log')) phases |= Phase.Log
    this.phases = def.phases === undefined ? phases : phases & def.phases
  }

  #logTokens: number = WASM_DEFAULTS.logLinesPerSecond
  #logRefillAt = 0
  #logDropped: CounterChild | undefined
  readonly #logDroppedMetric: Metric<CounterChild>

  #allowLog(): boolean {
    const now = performance.now()
    if (now - this.#logRefillAt >= 1000) {
      this.#logTokens = WASM_DEFAULTS.logLinesPerSecond
      this.#logRefillAt = now
    }
    if (this.#logTokens > 0) {
      this.#logTokens--
      return true
    }
    this.#logDropped ??= this.#logDroppedMetric.labels(this.name)
    this.#logDropped.inc()
    return false
  }

  /**
   * Builds and initializes the first instance. Throws WasmLoadError when the module cannot be
   * instantiated, and when it fails to start unless `serve` (then the factory is left in the
   * failed state: see the file comment).
   */
  start(serve = false): void {
    let vm: WasmVm
    try {
      vm = this.#newVm(true)
    } catch (e) {
      this.close()
      throw new WasmLoadError(this.name, 'invalid_module', `initialization failed: ${(e as Error).message}`, { cause: e })
    }
    const failed = this.#initialize(vm)
    if (failed === undefined) return
    if (!serve) {
      this.close()
      throw new WasmLoadError(this.name, failed.code, `initialization failed: ${failed.error.message}`, { cause: failed.error })
    }
    if (this.#starts.retries) this.#backoff()
    this.#starts.fail(failed.phase, failed.code, failed.error.message, this.#starts.retries ? this.#retryAt - performance.now() : undefined)
    // Chains copy `phases` when they are built, which is after this.
    ;(this as { phases: number }).phases |= FAILED_START_PHASES
  }

  /**
   * Runs the module's initialization on `vm` and, when it succeeds, makes `vm` the root (and,
   * per-request, takes the snapshot). Returns what failed, or undefined.
   */
  #initialize(vm: WasmVm): FailedStart | undefined {
    // vm.initialize() calls these three, in this order, after the start function and
    // _initialize/_start: noting which one was entered last names the phase that failed,
    // without a hook in vm.ts. Only this call sees the wrappers (restored below).
    const fns = vm.fns
    const { onContextCreate, onVmStart, onConfigure } = fns
    let phase: StartPhase = StartPhase.Start
    if (onContextCreate) {
      fns.onContextCreate = (...a) => {
        phase = StartPhase.VmStart
        return onContextCreate(...a)
      }
    }
    if (onVmStart) {
      fns.onVmStart = (...a) => {
        phase = StartPhase.VmStart
        return onVmStart(...a)
      }
    }
    if (onConfigure) {
      fns.onConfigure = (...a) => {
        phase = StartPhase.Configure
        return onConfigure(...a)
      }
    }
    this.#initializing = true
    try {
      vm.initialize()
    } catch (e) {
      const error = e instanceof FilterError ? e : new FilterError(this.name, FilterErrorCode.Trap, `initialization failed: ${(e as Error)?.message ?? String(e)}`, { cause: e })
      if (!vm.broken) this.#drop(vm)
      return { phase, code: error.message.includes(CONFIGURE_REJECTED) ? CONFIGURE_REJECTED : error.code, error }
    } finally {
      fns.onContextCreate = onContextCreate
      fns.onVmStart = onVmStart
      fns.onConfigure = onConfigure
      this.#initializing = false
    }
    if (this.#perRequest && this.#snapshot === undefined) this.#snapshot = vm.snapshot()
    this.#root = vm
    this.#starts.started()
    return undefined
  }

  /**
   * The filter never started (or every restart failed): with `reload`, tries a fresh instance
   * once the backoff is over (and within the rebuild rate limit). Returns whether one started.
   */
  #restarted(): boolean {
    const starts = this.#starts
    if (!starts.retries || this.#closed || performance.now() < this.#retryAt || !this.#rebuildAllowed()) return false
    let vm: WasmVm
    try {
      vm = this.#newVm(true)
    } catch {
      this.#backoff()
      return false
    }
    const failed = this.#initialize(vm)
    if (failed !== undefined) {
      this.#backoff()
      starts.fail(failed.phase, failed.code, failed.error.message, this.#retryAt - performance.now())
      return false
    }
    this.#retryAt = 0
    return true
  }

  #newVm(isRoot: boolean): WasmVm {
    const vm = new WasmVm(this.#prepared, this.env, isRoot)
    this.#all.add(vm)
    this.#live++
    this.#instances.set(this.#live)
    this.#created.inc()
    return vm
  }

  #drop(vm: WasmVm): void {
    vm.dispose()
    if (!this.#all.delete(vm)) return
    this.#live--
    this.#instances.set(this.#live)
  }

  /** Live instances and their linear memory, for benchmarks and the admin API. */
  stats(): { instances: number; linearMemoryBytes: number } {
    let bytes = 0
    for (const vm of this.#all) bytes += vm.mem.byteLength
    return { instances: this.#all.size, linearMemoryBytes: bytes }
  }

  createStream(stream: HttpStream): StreamFilter {
    // Undefined for every filter that started: one field read per request.
    const failed = this.#starts.filter
    if (failed !== undefined && !this.#restarted()) return failed
    return new WasmStreamFilter(this, stream)
  }

  /** An instance for a new stream; throws FilterError (unavailable during backoff or at the instance limit). */
  acquire(): WasmVm {
    if (this.#closed) throw new FilterError(this.name, FilterErrorCode.Unavailable, 'filter was closed')
    // 0 once the backoff is over: a healthy filter reads no clock here (once per filter per request).
    if (this.#retryAt !== 0) {
      if (performance.now() < this.#retryAt) {
        throw new FilterError(this.name, FilterErrorCode.Unavailable, 'instance is being reloaded after a failure (backoff)')
      }
      this.#retryAt = 0
    }
    if (!this.#perRequest) {
      const cur = this.#root
      if (cur && !cur.broken) return cur
      return this.#rebuildShared()
    }
    const idle = this.#idle.pop()
    if (idle) {
      if (idle.dirty) idle.restore(this.#snapshot!)
      return idle
    }
    if (this.#live >= WASM_DEFAULTS.maxInstances) {
      throw new FilterError(this.name, FilterErrorCode.Unavailable, `instance limit reached (${WASM_DEFAULTS.maxInstances})`)
    }
    try {
      const vm = this.#newVm(false)
      vm.restore(this.#snapshot!)
      return vm
    } catch (e) {
      throw new FilterError(this.name, FilterErrorCode.Unavailable, `could not create an instance: ${(e as Error).message}`, { cause: e })
    }
  }

  /**
   * A module that fails every request would otherwise make every request pay for a full
   * initialization (up to the init fuel): rebuilds per second are capped whatever the policy.
   */
  #rebuildAllowed(): boolean {
    const now = performance.now()
    if (now - this.#rebuildWindowAt >= 1000) {
      this.#rebuildWindowAt = now
      this.#rebuilds = 0
    }
    return ++this.#rebuilds <= WASM_DEFAULTS.maxRebuildsPerSecond
  }

  #rebuildShared(): WasmVm {
    if (!this.#rebuildAllowed()) {
      throw new FilterError(this.name, FilterErrorCode.Unavailable, 'crash loop: instance rebuilds are rate-limited')
    }
    let vm: WasmVm
    try {
      vm = this.#newVm(true)
    } catch (e) {
      this.#backoff()
      throw new FilterError(this.name, FilterErrorCode.Unavailable, `could not create an instance: ${(e as Error).message}`, { cause: e })
    }
    const failed = this.#initialize(vm)
    if (failed !== undefined) {
      // Initialization failing again is a crash loop whatever the policy: back off. The filter
      // started once, so it is not put in the failed state: the next request after the backoff
      // tries again, as after any other failure.
      this.#backoff()
      this.#starts.count(failed.phase, failed.code, failed.error.message, this.#retryAt - performance.now())
      throw failed.error
    }
    if (this.#rebuilds === 1) this.env.log.info('wasm instance reloaded', { filter: this.name, failures: this.#consecutive })
    return vm
  }

  release(vm: WasmVm): void {
    if (!this.#perRequest) return
    if (vm.broken || this.#closed || this.#idle.length >= WASM_DEFAULTS.maxIdle) {
      if (!vm.broken) this.#drop(vm)
      return
    }
    this.#idle.push(vm)
  }

  #backoff(): void {
    const now = performance.now()
    if (now - this.#lastFailureAt > WASM_DEFAULTS.backoffMaxMs * 2) this.#consecutive = 0
    this.#consecutive++
    this.#lastFailureAt = now
    const delay = Math.min(WASM_DEFAULTS.backoffMaxMs, WASM_DEFAULTS.backoffBaseMs * 2 ** (this.#consecutive - 1))
    this.#retryAt = now + delay
  }

  #onFailure(vm: WasmVm, err: FilterError, binding: StreamBinding | undefined): void {
    let c = this.#failures.get(err.code)
    if (!c) {
      c = this.#failureMetric.labels(this.name, err.code)
      this.#failures.set(err.code, c)
    }
    c.inc()
    if (this.#initializing) {
      // A failed start: the start path backs off, counts it by phase and logs it once.
      this.#drop(vm)
      return
    }
    if (this.failurePolicy === 'reload') this.#backoff()
    // A broken instance is never reused: forget it (in-flight streams on it fail 'unavailable').
    if (vm === this.#root) {
      this.#root = undefined
      if (this.#perRequest && !this.#closed) this.#scheduleRootRebuild()
    }
    this.#drop(vm)
    this.#logFailure(err, binding)
  }

  #scheduleRootRebuild(): void {
    const delay = Math.max(WASM_DEFAULTS.backoffBaseMs, this.#retryAt - performance.now())
    setTimeout(() => {
      if (this.#closed || this.#root) return
      let failed: FailedStart | undefined
      try {
        failed = this.#initialize(this.#newVm(true))
      } catch {
        this.#backoff()
        this.#scheduleRootRebuild()
        return
      }
      if (failed === undefined) return
      this.#backoff()
      this.#starts.count(failed.phase, failed.code, failed.error.message, this.#retryAt - performance.now())
      this.#scheduleRootRebuild()
    }, delay).unref()
  }

  #logFailure(err: FilterError, binding: StreamBinding | undefined): void {
    const now = performance.now()
    const suppressed = this.#failureLog.take(now)
    if (suppressed === undefined) return
    this.env.log.warn('wasm filter failed; instance discarded', {
      filter: this.name,
      code: err.code,
      error: err.message,
      policy: this.failurePolicy,
      isolation: this.#def.isolation,
      requestId: binding?.stream.info.requestId,
      consecutiveFailures: this.#consecutive,
      ...(this.#retryAt > now ? { retryInMs: Math.round(this.#retryAt - now) } : {}),
      ...(this.#consecutive >= 3 ? { crashLoop: true } : {}),
      ...(suppressed ? { suppressed } : {}),
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#root?.dispose()
    for (const vm of this.#idle) this.#drop(vm)
    this.#idle.length = 0
  }
}

type Pick = (f: Callbacks) => ((...a: number[]) => number | undefined) | undefined
const REQ_HEADERS: Pick = (f) => f.onRequestHeaders
const REQ_BODY: Pick = (f) => f.onRequestBody
const REQ_TRAILERS: Pick = (f) => f.onRequestTrailers
const RESP_HEADERS: Pick = (f) => f.onResponseHeaders
const RESP_BODY: Pick = (f) => f.onResponseBody
const RESP_TRAILERS: Pick = (f) => f.onResponseTrailers

/** The per-request filter: one proxy-wasm HTTP context. */
class WasmStreamFilter implements StreamFilter, StreamBinding {
  readonly stream: HttpStream
  contextId = 0
  slot = -1
  fuelLeft: number
  props: Map<string, Uint8Array> | undefined = undefined
  finished = false
  readonly #f: WasmFilterFactory
  #vm: WasmVm | undefined = undefined
  #failed = false

  constructor(f: WasmFilterFactory, stream: HttpStream) {
    this.#f = f
    this.stream = stream
    this.fuelLeft = f.fuelBudget
  }

  onRequestHeaders(endOfStream: boolean): FilterStatus {
    return this.#hook(REQ_HEADERS, this.stream.requestHeaders.size, endOfStream ? 1 : 0)
  }
  onRequestBody(bodySize: number, endOfStream: boolean): FilterStatus {
    return this.#hook(REQ_BODY, bodySize, endOfStream ? 1 : 0)
  }
  onRequestTrailers(): FilterStatus {
    return this.#hook(REQ_TRAILERS, this.stream.requestTrailers.size, 0)
  }
  onResponseHeaders(endOfStream: boolean): FilterStatus {
    return this.#hook(RESP_HEADERS, this.stream.responseHeaders.size, endOfStream ? 1 : 0)
  }
  onResponseBody(bodySize: number, endOfStream: boolean): FilterStatus {
    return this.#hook(RESP_BODY, bodySize, endOfStream ? 1 : 0)
  }
  onResponseTrailers(): FilterStatus {
    return this.#hook(RESP_TRAILERS, this.stream.responseTrailers.size, 0)
  }

  onLog(): void {
    const vm = this.#vm
    if (!vm || this.#failed || this.contextId === 0 || !vm.fns.onLog) return
    try {
      vm.call(vm.fns.onLog, this, this.contextId)
    } catch {
      // Counted and logged by the factory; the response is already out.
      this.#failed = true
    }
  }

  onDone(): void {
    if (this.finished) return
    this.finished = true
    const vm = this.#vm
    if (!vm) return
    if (this.contextId !== 0) vm.finishContext(this)
    if (this.#f.metered) this.#f.fuelUsed.observe(Math.max(0, this.#f.fuelBudget - this.fuelLeft))
    this.#f.release(vm)
    this.#vm = undefined
  }

  #hook(pick: Pick, a: number, b: number): FilterStatus {
    if (this.#failed || this.finished) return FilterStatus.Continue
    try {
      let vm = this.#vm
      if (!vm) {
        vm = this.#f.acquire()
        this.#vm = vm
        this.contextId = vm.nextContextId()
        if (pick === REQ_HEADERS) return vm.createContextWithRequestHeaders(this, a, b) === 0 ? FilterStatus.Continue : FilterStatus.Pause
        vm.createContext(this)
      }
      const fn = pick(vm.fns)
      if (!fn) return FilterStatus.Continue
      return vm.call(fn, this, this.contextId, a, b) === 0 ? FilterStatus.Continue : FilterStatus.Pause
    } catch (e) {
      this.#failed = true
      throw e
    }
  }

  onCalloutFailure(err: FilterError): void {
    if (this.#failed) return
    this.#failed = true
    if (this.#f.failurePolicy === 'fail-open') {
      this.stream.resume()
      return
    }
    const status = err.code === FilterErrorCode.Unavailable ? 503 : err.code === FilterErrorCode.Timeout ? 504 : 500
    const reply = hostReply(status, 'filter_failed', { code: err.code, filter: this.#f.name })
    this.stream.sendLocalReply(reply.status, reply.body, reply.headers, `filter_failed:${this.#f.name}:${err.code}`)
  }
}
