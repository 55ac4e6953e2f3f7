/**
 * A configured QuickJS filter: one sandbox (engine, runtime, context, module) shared by every
 * request (proxy-wasm-like `shared` semantics: module state persists across requests), plus
 * one warm spare so that a poisoned instance is replaced without making the next request wait.
 *
 * Failure policy: a hook throws a `FilterError` and the pipeline answers (fail-closed: 5xx,
 * fail-open: skip the filter, reload: 5xx). Failures after a pause (an async hook's
 * continuation, when a callout completes) apply the same policy here. An instance is replaced
 * when it is poisoned (whatever the policy: it is never reused as is) and, with `reload`,
 * after any failure; successive replacements back off exponentially (a crash loop costs at
 * most one engine build per backoff step, and requests meanwhile get `unavailable`).
 *
 * A module whose top-level code fails (throws, runs out of fuel, hits a quota, never settles its
 * top-level await) rejects the factory by default; with `startFailure: 'serve'` (the proxy)
 * the factory is built in a failed state instead, as for Wasm (see ../start-failure.ts):
 * requests get a stream filter whose request headers hook throws `unavailable`, and with
 * `reload` fresh instances are built with the same exponential backoff as replacements. A
 * module that does not parse or imports anything is broken, not failing, and stays refused.
 *
 * Metrics: `omnirelay_filter_fuel_used{filter}` (per request, as the Wasm host),
 * `omnirelay_quickjs_failures_total{filter,code}`, `omnirelay_quickjs_instances_created_total{filter}`,
 * `omnirelay_quickjs_memory_bytes{filter}`; filter-defined metrics as `GuestMetrics`.
 */
import type { Capability, FilterDefinition, FilterFactory, HttpStream, LoadedArtifact, StreamFilter } from '../../pipeline/filter.ts'
import { FilterError, FilterErrorCode } from '../../pipeline/filter.ts'
import { hostReply } from '../../pipeline/local-reply.ts'
import { ALL_PHASES, FilterStatus } from '../../pipeline/phases.ts'
import type { CounterChild, GaugeChild, HistogramChild } from '../../observability/metrics.ts'
import { FailureLogWindow } from '../failure-log.ts'
import type { FactoryOptions, HostServices } from '../host-services.ts'
import { FilterLoadError } from '../load-error.ts'
import { withEffectiveQuotas } from '../quotas.ts'
import { FAILED_START_PHASES, StartFailures, StartPhase } from '../start-failure.ts'
import { GuestMetrics } from '../wasm/guest-metrics.ts'
import { ENGINE_MIN_MEMORY_BYTES } from './engine.ts'
import type { HostcallEnv } from './hostcalls.ts'
import { PHASE_OP } from './prelude.ts'
import { Sandbox, type AsyncOutcome, type SandboxOptions } from './sandbox.ts'
import { StreamState } from './stream-state.ts'

/** Host defaults for absent quotas. Fuel counts metered engine steps (see docs/quickjs-filters.md). */
export const QUICKJS_DEFAULTS = {
  /** ≈ 3 ms of a tight JS loop on the reference machine; the conformance policy's dozen request header rules use ≈ 1.4e7. */
  fuel: 5e9,
  memoryBytes: 32 * 1024 * 1024,
  /** QuickJS's own stack limit: at most 256 KiB keeps V8's stack from overflowing first. */
  stackBytes: 256 * 1024,
  maxBodyBytes: 1024 * 1024,
  /** Loading the module (top-level code) gets this many request budgets. */
  loadFuelFactor: 10,
  backoffBaseMs: 100,
  backoffMaxMs: 30_000,
} as const

const FUEL_BUCKETS = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]
const OP_NAMES = ['requestHeaders', 'requestBody', 'requestTrailers', 'responseHeaders', 'responseBody', 'responseTrailers', 'log']

/** `meter: false` runs the engine without fuel (benchmarks). */
export type QuickJsHostOptions = FactoryOptions

/**
 * A QuickJS filter refused at load. `code`: invalid_quota, capability_denied (the module's
 * declared `capabilities` exceed the grant), or the FilterError code of a failed load (with
 * `startFailure: 'serve'`, only for a module that does not parse or imports something).
 */
export class QuickJsLoadError extends FilterLoadError {
  override name = 'QuickJsLoadError'
}

export class QuickJsFilterFactory implements FilterFactory {
  readonly kind = 'quickjs' as const
  readonly name: string
  readonly phases: number
  readonly failurePolicy: FilterDefinition['failurePolicy']
  readonly version: string | undefined
  readonly budget: number

  readonly #services: HostServices
  readonly #base: Omit<SandboxOptions, 'onAsync'>
  readonly #grants: ReadonlySet<Capability>
  readonly #starts: StartFailures
  /** A rebuilt instance turned out to declare more than its grant: no more attempts. */
  #gaveUp = false
  #current: Sandbox | undefined
  #spare: Sandbox | undefined
  #building: Promise<void> | undefined
  #closed = false
  #consecutive = 0
  #lastReplaceAt = 0
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  readonly #failureLog = new FailureLogWindow()
  readonly #failures = new Map<string, CounterChild>()
  readonly #pipelineFailures = new Map<string, CounterChild>()
  readonly #fuelUsed: HistogramChild
  readonly #created: CounterChild
  readonly #memory: GaugeChild

  private constructor(def: FilterDefinition, base: Omit<SandboxOptions, 'onAsync'>, services: HostServices, version: string | undefined, grants: ReadonlySet<Capability>) {
    this.name = def.name
    this.failurePolicy = def.failurePolicy
    this.version = version
    this.budget = def.quotas.fuel ?? QUICKJS_DEFAULTS.fuel
    this.#services = services
    this.#base = base
    this.#grants = grants
    const m = services.metrics
    this.#starts = new StartFailures(def, 'quickjs', m, services.log)
    this.#fuelUsed = m.histogram('omnirelay_filter_fuel_used', 'Fuel used per request by a filter', ['filter'], FUEL_BUCKETS).labels(def.name)
    this.#created = m.counter('omnirelay_quickjs_instances_created_total', 'QuickJS instances created (initial, spares, replacements)', ['filter']).labels(def.name)
    this.#memory = m.gauge('omnirelay_quickjs_memory_bytes', 'Heap of the serving QuickJS instance', ['filter']).labels(def.name)
    this.phases = 0
  }

  /** Builds the factory: loads the module into a first instance (and a spare in the background). */
  static async create(def: FilterDefinition, artifact: LoadedArtifact, services: HostServices, opts: QuickJsHostOptions = {}): Promise<QuickJsFilterFactory> {
    def = withEffectiveQuotas(def, artifact)
    const grants = effectiveGrants(def, artifact)
    const memoryBytes = def.quotas.memoryBytes ?? QUICKJS_DEFAULTS.memoryBytes
    if (memoryBytes < ENGINE_MIN_MEMORY_BYTES) {
      throw new QuickJsLoadError(def.name, 'invalid_quota', `quotas.memoryBytes must be at least ${ENGINE_MIN_MEMORY_BYTES} for QuickJS filters (the engine itself needs 16 MiB)`)
    }
    if (def.isolation === 'per-request') {
      throw new QuickJsLoadError(def.name, 'invalid_quota', 'isolation "per-request" is not supported for QuickJS filters yet; use "shared"')
    }
    const budget = def.quotas.fuel ?? QUICKJS_DEFAULTS.fuel
    const log = services.log.child({ filter: def.name, kind: 'quickjs' })
    const env: HostcallEnv = {
      name: def.name,
      version: artifact.bundle?.version,
      grants,
      services,
      log,
      metrics: new GuestMetrics(services.metrics, def.name),
      calloutClusters: new Set(def.calloutClusters ?? []),
      maxBodyBytes: def.quotas.maxBodyBytes ?? QUICKJS_DEFAULTS.maxBodyBytes,
    }
    let configJson = ''
    if (def.config !== undefined) configJson = JSON.stringify(def.config)
    const base: Omit<SandboxOptions, 'onAsync'> = {
      env,
      source: new TextDecoder().decode(artifact.bytes),
      filename: `${def.name}.js`,
      memoryBytes,
      stackBytes: QUICKJS_DEFAULTS.stackBytes,
      loadFuel: budget * QUICKJS_DEFAULTS.loadFuelFactor,
      configJson,
      meter: opts.meter,
    }
    const f = new QuickJsFilterFactory(def, base, services, artifact.bundle?.version, grants)
    let sb: Sandbox
    try {
      sb = await f.#newSandbox()
    } catch (e) {
      if (opts.startFailure === 'serve' && isStartFailure(e)) {
        // The hooks are unknown until the module runs: a filter that may come back (reload)
        // is called for every phase (a hook it lacks is a no-op), one that cannot only to fail.
        ;(f as { phases: number }).phases = FAILED_START_PHASES | (def.failurePolicy === 'reload' ? (def.phases ?? ALL_PHASES) & ALL_PHASES : 0)
        const retry = f.#starts.retries
        f.#starts.fail(StartPhase.Start, e.code, reasonOf(e), retry ? QUICKJS_DEFAULTS.backoffBaseMs : undefined)
        if (retry) f.#ensureSpare(QUICKJS_DEFAULTS.backoffBaseMs)
        return f
      }
      const code = e instanceof FilterError ? e.code : 'load_failed'
      const cause = (e as { cause?: { message?: string; stack?: string } }).cause
      const detail = cause?.message ? `: ${cause.message}` : ''
      throw new QuickJsLoadError(def.name, code, `module failed to load (${code})${detail}`, { cause: e })
    }
    const missing = sb.declared.filter((c) => !grants.has(c as Capability))
    if (missing.length) {
      sb.dispose()
      throw new QuickJsLoadError(def.name, 'capability_denied', `module needs capabilities that are not granted: ${missing.join(', ')}`)
    }
    ;(f as { phases: number }).phases = sb.phases & (def.phases ?? ALL_PHASES)
    f.#current = sb
    f.#memory.set(sb.memoryBytes)
    f.#ensureSpare(0)
    return f
  }

  async #newSandbox(): Promise<Sandbox> {
    const holder: { sb?: Sandbox } = {}
    const sb = await Sandbox.create({ ...this.#base, onAsync: (state, outcome) => this.#onAsync(holder.sb!, state, outcome) })
    holder.sb = sb
    sb.setBudget(this.budget)
    this.#created.inc()
    return sb
  }

  createStream(stream: HttpStream): StreamFilter {
    const sb = this.#current
    if (!sb || this.#closed) return (!this.#closed && this.#starts.filter) || unavailable(this.name)
    sb.refs++
    return new QuickJsStream(this, sb, new StreamState(stream, this.budget))
  }

  /** Resolves once a serving instance and a spare exist (tests, warm-up after a failure). */
  async whenReady(): Promise<void> {
    for (let i = 0; i < 100 && !this.#closed; i++) {
      if (this.#current && this.#spare) return
      await (this.#building ?? new Promise((r) => setTimeout(r, 10)))
    }
  }

  /** Runs one hook; the pipeline applies the policy to what it throws. */
  call(s: QuickJsStream, op: number, size: number, eos: boolean): number {
    const st = s.state
    if (st.disabled) return FilterStatus.Continue
    try {
      return s.sandbox.run(st, op, size, eos)
    } catch (e) {
      const err = e instanceof FilterError ? e : new FilterError(this.name, FilterErrorCode.Trap, String(e), { cause: e })
      s.sandbox.forget(st)
      s.sandbox.drain()
      this.#onFailure(s.sandbox, err, op, st)
      throw err
    }
  }

  done(s: QuickJsStream): void {
    const st = s.state
    st.done = true
    s.sandbox.forget(st)
    this.#fuelUsed.observe(Math.max(0, st.fuelUsed))
    const sb = s.sandbox
    sb.refs--
    if (sb.retired && sb.refs === 0) sb.dispose()
    else if (sb === this.#current) this.#memory.set(sb.memoryBytes)
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#retryTimer) clearTimeout(this.#retryTimer)
    await this.#building?.catch(() => {})
    for (const sb of [this.#current, this.#spare]) {
      if (!sb) continue
      sb.retired = true
      if (sb.refs === 0) sb.dispose()
    }
    this.#current = this.#spare = undefined
  }

  // ---- failures ----

  #onFailure(sb: Sandbox, err: FilterError, op: number, st: StreamState | undefined): void {
    let c = this.#failures.get(err.code)
    if (!c) {
      c = this.#services.metrics.counter('omnirelay_quickjs_failures_total', 'QuickJS filter failures by reason code', ['filter', 'code']).labels(this.name, err.code)
      this.#failures.set(err.code, c)
    }
    c.inc()
    this.#logFailure(err, op, st)
    if (err.code === FilterErrorCode.Unavailable) return
    if (sb.poisoned || this.failurePolicy === 'reload') this.#replace(sb)
  }

  /** Retires `sb`; the spare (if ready) takes over at once, else requests get `unavailable` until a rebuild. */
  #replace(sb: Sandbox): void {
    if (sb !== this.#current || this.#closed) return
    sb.retired = true
    if (sb.refs === 0 || sb.poisoned) sb.dispose()
    const now = performance.now()
    if (now - this.#lastReplaceAt > QUICKJS_DEFAULTS.backoffMaxMs * 2) this.#consecutive = 0
    this.#consecutive++
    this.#lastReplaceAt = now
    const delay = this.#consecutive <= 1 ? 0 : Math.min(QUICKJS_DEFAULTS.backoffMaxMs, QUICKJS_DEFAULTS.backoffBaseMs * 2 ** (this.#consecutive - 2))
    this.#current = this.#spare
    this.#spare = undefined
    this.#services.log.info('quickjs instance replaced', { filter: this.name, spare: this.#current !== undefined, replacements: this.#consecutive, nextBuildInMs: delay })
    this.#ensureSpare(delay)
  }

  /** Builds a spare after `delayMs` (backoff); it becomes the serving instance if there is none. */
  #ensureSpare(delayMs: number): void {
    if (this.#closed || this.#gaveUp || this.#building || this.#retryTimer || (this.#current && this.#spare)) return
    const next = Math.min(QUICKJS_DEFAULTS.backoffMaxMs, Math.max(QUICKJS_DEFAULTS.backoffBaseMs, delayMs * 2))
    const start = () => {
      this.#retryTimer = undefined
      if (this.#closed) return
      this.#building = this.#newSandbox()
        .then((sb) => {
          if (this.#closed) return sb.dispose()
          if (this.#current) {
            this.#spare = sb
            return
          }
          if (this.#starts.error !== undefined) {
            // The first instance that ever started: check what it declares, as create() does.
            const missing = sb.declared.filter((c) => !this.#grants.has(c as Capability))
            if (missing.length) {
              sb.dispose()
              this.#gaveUp = true
              this.#starts.fail(StartPhase.Start, 'capability_denied', `module needs capabilities that are not granted: ${missing.join(', ')}`)
              return
            }
          }
          this.#current = sb
          this.#memory.set(sb.memoryBytes)
          this.#starts.started()
        })
        .catch((e: unknown) => {
          if (!(e instanceof FilterError)) {
            this.#services.log.error('quickjs instance build failed', { filter: this.name, error: e as Error })
            return
          }
          if (this.#current) this.#starts.count(StartPhase.Start, e.code, reasonOf(e), next)
          else this.#starts.fail(StartPhase.Start, e.code, reasonOf(e), next)
        })
        .finally(() => {
          this.#building = undefined
          if (!this.#closed && !(this.#current && this.#spare)) this.#ensureSpare(next)
        })
    }
    if (delayMs <= 0) start()
    else {
      this.#retryTimer = setTimeout(start, Math.min(delayMs, QUICKJS_DEFAULTS.backoffMaxMs))
      this.#retryTimer.unref?.()
    }
  }

  #logFailure(err: FilterError, op: number, st: StreamState | undefined): void {
    const suppressed = this.#failureLog.take()
    if (suppressed === undefined) return
    const cause = err.cause as { name?: string; message?: string; stack?: string } | undefined
    this.#services.log.warn('quickjs filter failed', {
      filter: this.name,
      code: err.code,
      phase: OP_NAMES[op] ?? 'async',
      requestId: st?.stream.info.requestId,
      error: cause && typeof cause.message === 'string' ? `${cause.name ?? 'Error'}: ${cause.message}` : err.message,
      jsStack: cause && typeof cause.stack === 'string' ? cause.stack : undefined,
      suppressed,
    })
  }

  /** An async hook's continuation finished: resume, or apply the failure policy here. */
  #onAsync(sb: Sandbox, st: StreamState, outcome: AsyncOutcome): void {
    if (outcome.kind === 'pending') return
    const stream = st.stream
    if (outcome.kind === 'settled') {
      stream.resume()
      return
    }
    const err = outcome.error
    this.#onFailure(sb, err, -1, st)
    let c = this.#pipelineFailures.get(err.code)
    if (!c) {
      c = this.#services.metrics.counter('omnirelay_filter_failures_total', 'Filter failures by reason code', ['filter', 'code']).labels(this.name, err.code)
      this.#pipelineFailures.set(err.code, c)
    }
    c.inc()
    if (this.failurePolicy === 'fail-open') {
      st.disabled = true
      stream.resume()
      return
    }
    const status = err.code === FilterErrorCode.Unavailable ? 503 : err.code === FilterErrorCode.Timeout ? 504 : 500
    const reply = hostReply(status, 'filter_failed', { code: err.code, filter: this.name })
    stream.sendLocalReply(reply.status, reply.body, reply.headers, `filter_failed:${this.name}:${err.code}`)
  }
}

/** The per-request filter: a thin forwarder to the factory (no closures per request). */
export class QuickJsStream implements StreamFilter {
  readonly #f: QuickJsFilterFactory
  readonly sandbox: Sandbox
  readonly state: StreamState
  constructor(f: QuickJsFilterFactory, sb: Sandbox, state: StreamState) {
    this.#f = f
    this.sandbox = sb
    this.state = state
  }
  onRequestHeaders(endOfStream: boolean): FilterStatus {
    return this.#f.call(this, PHASE_OP.RequestHeaders, 0, endOfStream) as FilterStatus
  }
  onRequestBody(bodySize: number, endOfStream: boolean): FilterStatus {
    return this.#f.call(this, PHASE_OP.RequestBody, bodySize, endOfStream) as FilterStatus
  }
  onRequestTrailers(): FilterStatus {
    return this.#f.call(this, PHASE_OP.RequestTrailers, 0, true) as FilterStatus
  }
  onResponseHeaders(endOfStream: boolean): FilterStatus {
    return this.#f.call(this, PHASE_OP.ResponseHeaders, 0, endOfStream) as FilterStatus
  }
  onResponseBody(bodySize: number, endOfStream: boolean): FilterStatus {
    return this.#f.call(this, PHASE_OP.ResponseBody, bodySize, endOfStream) as FilterStatus
  }
  onResponseTrailers(): FilterStatus {
    return this.#f.call(this, PHASE_OP.ResponseTrailers, 0, true) as FilterStatus
  }
  onLog(): void {
    this.#f.call(this, PHASE_OP.Log, 0, true)
  }
  onDone(): void {
    this.#f.done(this)
  }
}

function unavailable(name: string): StreamFilter {
  const fail = (): never => {
    throw new FilterError(name, FilterErrorCode.Unavailable, 'no healthy instance (replacement pending)')
  }
  return {
    onRequestHeaders: fail,
    onRequestBody: fail,
    onRequestTrailers: fail,
    onResponseHeaders: fail,
    onResponseBody: fail,
    onResponseTrailers: fail,
  }
}

/**
 * Whether a load failure is the module failing while it runs (top-level code threw, fuel,
 * memory, stack, a top-level await that never settles) rather than a broken module (it does
 * not parse, or imports something: QuickJS filters may import nothing).
 */
function isStartFailure(e: unknown): e is FilterError {
  if (!(e instanceof FilterError)) return false
  if (e.code !== FilterErrorCode.Thrown) return true
  const cause = e.cause as { name?: unknown; message?: unknown } | undefined
  if (cause?.name === 'SyntaxError') return false
  return !(typeof cause?.message === 'string' && /could not load module/i.test(cause.message))
}

/** The JS error behind a failed load, for the log (never for a reply). */
function reasonOf(err: FilterError): string {
  const cause = err.cause as { name?: string; message?: string } | undefined
  return cause && typeof cause.message === 'string' ? `${cause.name ?? 'Error'}: ${cause.message}` : err.message
}

/** The operator's grant intersected with the artifact's (bundle or unsigned config). */
function effectiveGrants(def: FilterDefinition, artifact: LoadedArtifact): Set<Capability> {
  const allowed = new Set(artifact.capabilities)
  const out = new Set<Capability>()
  for (const c of def.capabilities) if (allowed.has(c)) out.add(c)
  return out
}
