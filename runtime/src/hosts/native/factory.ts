/**
 * Trusted native filters: in-process JS/TS modules with the same hooks and API as QuickJS
 * filters. They are NOT sandboxed: a native filter can do anything the proxy process can.
 * They load only when the host config enables native filters (`HostServices.allowNative`),
 * and — for bundles — only when signed by a key the trust policy allows for `native`
 * (enforced by the bundle loader before the artifact reaches us).
 *
 * The only quota is a wall-clock watchdog: a hook is timed, and one that ran longer than
 * `quotas.timeoutMs` counts as a failure with code `timeout` once it returns. Synchronous JS
 * cannot be interrupted, so the watchdog reports a runaway hook after the fact and cannot
 * stop an endless one; what it did to the stream before returning stays done.
 */
import { pathToFileURL } from 'node:url'
import type { Capability, FilterDefinition, FilterFactory, HttpStream, LoadedArtifact, StreamFilter } from '../../pipeline/filter.ts'
import { FilterError, FilterErrorCode } from '../../pipeline/filter.ts'
import { hostReply } from '../../pipeline/local-reply.ts'
import { ALL_PHASES, FilterStatus } from '../../pipeline/phases.ts'
import type { CounterChild, HistogramChild } from '../../observability/metrics.ts'
import { FailureLogWindow } from '../failure-log.ts'
import type { HostServices } from '../host-services.ts'
import { FilterLoadError } from '../load-error.ts'
import { withEffectiveQuotas } from '../quotas.ts'
import { callEnd, callStart } from '../../sandbox/call-clock.ts'
import { GuestMetrics } from '../wasm/guest-metrics.ts'
import { createContext, type FilterContext, type MessageView, type NativeEnv } from './views.ts'

export const NATIVE_DEFAULTS = {
  /** Wall-clock limit per hook call, in milliseconds. */
  timeoutMs: 50,
  backoffBaseMs: 100,
  backoffMaxMs: 30_000,
} as const

const HOOKS = ['onRequestHeaders', 'onRequestBody', 'onRequestTrailers', 'onResponseHeaders', 'onResponseBody', 'onResponseTrailers', 'onLog'] as const
type Hook = (msg: MessageView, ctx: FilterContext) => unknown
type NativeModule = Partial<Record<(typeof HOOKS)[number], Hook>>

/** A native filter refused at load: native_disabled, no_entry, load_failed, no_hooks, capability_denied. */
export class NativeLoadError extends FilterLoadError {
  override name = 'NativeLoadError'
}

let generation = 0

async function importModule(def: FilterDefinition, artifact: LoadedArtifact): Promise<NativeModule> {
  // A query string gives a fresh module instance: a reload must not see the old module's state,
  // and a changed file at the same path must not be served from the ESM cache.
  const url = `${pathToFileURL(artifact.entry!).href}?digest=${artifact.digest}&g=${++generation}`
  let mod: NativeModule
  try {
    mod = (await import(url)) as NativeModule
  } catch (e) {
    throw new NativeLoadError(def.name, 'load_failed', `module failed to load: ${(e as Error).message}`, { cause: e })
  }
  if (!HOOKS.some((h) => typeof mod[h] === 'function')) throw new NativeLoadError(def.name, 'no_hooks', 'module exports no hook (onRequestHeaders, ...)')
  return mod
}

export class NativeFilterFactory implements FilterFactory {
  readonly kind = 'native' as const
  readonly name: string
  readonly phases: number
  readonly failurePolicy: FilterDefinition['failurePolicy']
  readonly version: string | undefined
  readonly env: NativeEnv
  readonly timeoutMs: number
  #hooks: (Hook | undefined)[]
  readonly #def: FilterDefinition
  readonly #artifact: LoadedArtifact
  #reloading = false
  #consecutive = 0
  #lastReloadAt = 0
  #closed = false
  readonly #failureLog = new FailureLogWindow()
  readonly #failures = new Map<string, CounterChild>()
  readonly #pipelineFailures = new Map<string, CounterChild>()
  readonly hookSeconds: HistogramChild

  private constructor(def: FilterDefinition, artifact: LoadedArtifact, services: HostServices, mod: NativeModule) {
    this.name = def.name
    this.failurePolicy = def.failurePolicy
    this.version = artifact.bundle?.version
    this.#def = def
    this.#artifact = artifact
    this.timeoutMs = def.quotas.timeoutMs ?? NATIVE_DEFAULTS.timeoutMs
    const allowed = new Set(artifact.capabilities)
    const grants = new Set<Capability>(def.capabilities.filter((c) => allowed.has(c)))
    this.env = {
      name: def.name,
      version: this.version,
      grants,
      services,
      log: services.log.child({ filter: def.name, kind: 'native' }),
      metrics: new GuestMetrics(services.metrics, def.name),
      calloutClusters: new Set(def.calloutClusters ?? []),
      config: deepFreeze(def.config === undefined ? undefined : JSON.parse(JSON.stringify(def.config))),
    }
    this.#hooks = HOOKS.map((h) => mod[h])
    let mask = 0
    this.#hooks.forEach((h, i) => {
      if (h) mask |= 1 << i
    })
    this.phases = mask & (def.phases ?? ALL_PHASES)
    this.hookSeconds = services.metrics
      .histogram('omnirelay_native_hook_seconds', 'Wall-clock time of native filter hooks', ['filter'], [0.00001, 0.0001, 0.001, 0.01, 0.05, 0.1, 1])
      .labels(def.name)
  }

  static async create(def: FilterDefinition, artifact: LoadedArtifact, services: HostServices): Promise<NativeFilterFactory> {
    def = withEffectiveQuotas(def, artifact)
    if (services.allowNative !== true) {
      throw new NativeLoadError(def.name, 'native_disabled', 'native filters run unsandboxed and load only when the host config enables them (allowNative)')
    }
    if (!artifact.entry) throw new NativeLoadError(def.name, 'no_entry', 'a native filter needs a module file (artifact entry)')
    const mod = await importModule(def, artifact)
    const declared = (mod as { capabilities?: unknown }).capabilities
    if (Array.isArray(declared)) {
      const allowed = new Set(artifact.capabilities)
      const missing = declared.map(String).filter((c) => !def.capabilities.includes(c as Capability) || !allowed.has(c as Capability))
      if (missing.length) throw new NativeLoadError(def.name, 'capability_denied', `module needs capabilities that are not granted: ${missing.join(', ')}`)
    }
    return new NativeFilterFactory(def, artifact, services, mod)
  }

  createStream(stream: HttpStream): StreamFilter {
    if (this.#closed) return unavailable(this.name)
    return new NativeStream(this, stream, this.#hooks)
  }

  /** Runs one hook under the watchdog; returns a FilterStatus, or Pause while its promise is pending. */
  call(s: NativeStream, op: number, size: number, eos: boolean): number {
    if (s.disabled) return FilterStatus.Continue
    const hook = s.hooks[op]
    if (!hook) return FilterStatus.Continue
    const ctx = s.ctx
    ctx.endOfStream = eos
    ctx.bodySize = size
    // One clock read per hook: hooks of one synchronous run chain from each other's end.
    const t0 = callStart()
    let r: unknown
    try {
      r = hook(op < 3 ? ctx.request : ctx.response, ctx)
    } catch (e) {
      this.#observe(t0)
      throw this.#fail(new FilterError(this.name, FilterErrorCode.Thrown, 'filter code threw', { cause: e }), op, s.stream)
    }
    const ms = this.#observe(t0)
    if (ms > this.timeoutMs) throw this.#fail(new FilterError(this.name, FilterErrorCode.Timeout, `hook ran ${ms.toFixed(1)} ms (limit ${this.timeoutMs} ms)`), op, s.stream)
    if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') {
      if (op === 6) {
        ;(r as Promise<unknown>).catch((e: unknown) => this.#fail(new FilterError(this.name, FilterErrorCode.Thrown, 'filter code threw', { cause: e }), op, s.stream))
        return FilterStatus.Continue
      }
      ;(r as Promise<unknown>).then(
        () => {
          if (!s.done) s.stream.resume()
        },
        (e: unknown) => {
          if (!s.done) this.#asyncFailure(s, new FilterError(this.name, FilterErrorCode.Thrown, 'filter code threw', { cause: e }))
        },
      )
      return FilterStatus.Pause
    }
    return r === 1 || r === 'pause' ? FilterStatus.Pause : FilterStatus.Continue
  }

  #observe(t0: number): number {
    const ms = callEnd() - t0
    this.hookSeconds.observe(ms / 1000)
    return ms
  }

  #fail(err: FilterError, op: number, stream: HttpStream): FilterError {
    let c = this.#failures.get(err.code)
    if (!c) {
      c = this.env.services.metrics.counter('omnirelay_native_failures_total', 'Native filter failures by reason code', ['filter', 'code']).labels(this.name, err.code)
      this.#failures.set(err.code, c)
    }
    c.inc()
    this.#log(err, op, stream)
    if (this.failurePolicy === 'reload') this.#reload()
    return err
  }

  /** A failure after a pause (the hook's promise rejected): the policy is applied here. */
  #asyncFailure(s: NativeStream, err: FilterError): void {
    this.#fail(err, -1, s.stream)
    let c = this.#pipelineFailures.get(err.code)
    if (!c) {
      c = this.env.services.metrics.counter('omnirelay_filter_failures_total', 'Filter failures by reason code', ['filter', 'code']).labels(this.name, err.code)
      this.#pipelineFailures.set(err.code, c)
    }
    c.inc()
    if (this.failurePolicy === 'fail-open') {
      s.disabled = true
      s.stream.resume()
      return
    }
    const reply = hostReply(500, 'filter_failed', { code: err.code, filter: this.name })
    s.stream.sendLocalReply(reply.status, reply.body, reply.headers, `filter_failed:${this.name}:${err.code}`)
  }

  /** `reload`: a fresh module instance (new module state), with exponential backoff between reloads. */
  #reload(): void {
    if (this.#reloading || this.#closed) return
    const now = performance.now()
    if (now - this.#lastReloadAt > NATIVE_DEFAULTS.backoffMaxMs * 2) this.#consecutive = 0
    this.#consecutive++
    this.#lastReloadAt = now
    const delay = this.#consecutive <= 1 ? 0 : Math.min(NATIVE_DEFAULTS.backoffMaxMs, NATIVE_DEFAULTS.backoffBaseMs * 2 ** (this.#consecutive - 2))
    this.#reloading = true
    setTimeout(() => {
      importModule(this.#def, this.#artifact)
        .then((mod) => {
          if (this.#closed) return
          this.#hooks = HOOKS.map((h) => mod[h])
          this.env.log.info('native filter reloaded', { filter: this.name, reloads: this.#consecutive })
        })
        .catch((e: unknown) => this.env.log.error('native filter reload failed', { filter: this.name, error: e as Error }))
        .finally(() => {
          this.#reloading = false
        })
    }, delay).unref()
  }

  /** Resolves once a pending reload finished (tests). */
  async whenReady(): Promise<void> {
    for (let i = 0; i < 200 && this.#reloading; i++) await new Promise((r) => setTimeout(r, 5))
  }

  #log(err: FilterError, op: number, stream: HttpStream): void {
    const suppressed = this.#failureLog.take()
    if (suppressed === undefined) return
    const cause = err.cause as { name?: unknown; message?: unknown; stack?: unknown } | undefined
    this.env.services.log.warn('native filter failed', {
      filter: this.name,
      code: err.code,
      phase: HOOKS[op] ?? 'async',
      requestId: stream.info.requestId,
      error: cause instanceof Error ? `${cause.name}: ${cause.message}` : cause !== undefined ? String(cause) : err.message,
      jsStack: cause instanceof Error ? cause.stack : undefined,
      suppressed,
    })
  }

  async close(): Promise<void> {
    this.#closed = true
  }
}

export class NativeStream implements StreamFilter {
  readonly #f: NativeFilterFactory
  readonly stream: HttpStream
  readonly hooks: readonly (Hook | undefined)[]
  #ctx: FilterContext | undefined
  disabled = false
  done = false
  constructor(f: NativeFilterFactory, stream: HttpStream, hooks: readonly (Hook | undefined)[]) {
    this.#f = f
    this.stream = stream
    this.hooks = hooks
  }
  get ctx(): FilterContext {
    return (this.#ctx ??= createContext(this.#f.env, this.stream))
  }
  onRequestHeaders(eos: boolean): FilterStatus {
    return this.#f.call(this, 0, 0, eos) as FilterStatus
  }
  onRequestBody(size: number, eos: boolean): FilterStatus {
    return this.#f.call(this, 1, size, eos) as FilterStatus
  }
  onRequestTrailers(): FilterStatus {
    return this.#f.call(this, 2, 0, true) as FilterStatus
  }
  onResponseHeaders(eos: boolean): FilterStatus {
    return this.#f.call(this, 3, 0, eos) as FilterStatus
  }
  onResponseBody(size: number, eos: boolean): FilterStatus {
    return this.#f.call(this, 4, size, eos) as FilterStatus
  }
  onResponseTrailers(): FilterStatus {
    return this.#f.call(this, 5, 0, true) as FilterStatus
  }
  onLog(): void {
    this.#f.call(this, 6, 0, true)
  }
  onDone(): void {
    this.done = true
  }
}

function unavailable(name: string): StreamFilter {
  const fail = (): never => {
    throw new FilterError(name, FilterErrorCode.Unavailable, 'filter was closed')
  }
  return { onRequestHeaders: fail, onRequestBody: fail, onRequestTrailers: fail, onResponseHeaders: fail, onResponseBody: fail, onResponseTrailers: fail }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}
