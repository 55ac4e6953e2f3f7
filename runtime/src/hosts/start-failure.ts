/**
 * A filter whose module is valid (it compiled, its imports are within its grant, its memory
 * within its cap) but that fails while starting: a Wasm start function, `_initialize`/`_start`,
 * `proxy_on_vm_start` or `proxy_on_configure` that traps, runs out of fuel, trips the watchdog
 * or returns false; a QuickJS module whose top-level code throws or never ends.
 *
 * Such a failure is the module's behaviour at run time, not a config error, so the proxy does
 * what Envoy's `failure_policy` does for a plugin that cannot start: the filter is installed
 * in a failed state and every request through it gets its policy's answer
 * (fail-closed: 503 `filter_failed`/`unavailable`; fail-open: skipped; reload: 503 while a
 * fresh instance is tried with backoff). The answer comes from the request headers hook of
 * a shared stateless stream filter (as a killed filter's does), not from a throwing
 * `createStream`: wrappers such as a rollout's split slot then see the failure as their
 * variant's, and nothing reaches the upstream first. Shared by the Wasm and QuickJS hosts so both count,
 * log and answer the same way. Things wrong with the module or the config itself (bytes,
 * imports, grants, memory cap, signature) are still refused at load.
 *
 * Tools that must know at once (the registry's admission smoke run, `validate`) keep the old
 * behaviour: `createFactory` rejects unless asked with `{ startFailure: 'serve' }`.
 */
import type { Logger } from '../observability/logger.ts'
import type { CounterChild, Metric, MetricsRegistry } from '../observability/metrics.ts'
import { FilterError, FilterErrorCode, type FailurePolicy, type FilterDefinition, type StreamFilter } from '../pipeline/filter.ts'
import { Phase } from '../pipeline/phases.ts'
import { FailureLogWindow } from './failure-log.ts'

/** Where a start failed. QuickJS modules only have `start` (their top-level code). */
export const StartPhase = {
  /** The Wasm start function, `_initialize` (+ `main`) or `_start`; a QuickJS module's top-level code. */
  Start: 'start',
  /** The root context's `proxy_on_context_create` and `proxy_on_vm_start`. */
  VmStart: 'vm_start',
  /** `proxy_on_configure`. */
  Configure: 'configure',
} as const
export type StartPhase = (typeof StartPhase)[keyof typeof StartPhase]

/** Code of a start that the module itself refused (proxy_on_vm_start or proxy_on_configure returned false). */
export const CONFIGURE_REJECTED = 'configure_rejected'

/** Phases a failed filter must be called for (OR them into its `phases`): it answers before anything goes upstream. */
export const FAILED_START_PHASES = Phase.RequestHeaders

/**
 * One filter's start failures: the metric `omnirelay_filter_start_failures_total{filter,kind,phase,code}`,
 * one log line per failed start (rate-limited like other failure lines: a reload loop logs at
 * most one line per second, with a suppressed count), and while no instance is up, the
 * stream filter `createStream` returns, whose hooks throw so the pipeline applies the policy.
 *
 * @example
 * const starts = new StartFailures(def, 'wasm', services.metrics, log)
 * try { vm.initialize() } catch (e) { starts.fail(StartPhase.Configure, e.code, e.message) }
 * // per request:
 * if (starts.filter) return starts.filter
 */
export class StartFailures {
  /**
   * What the failed filter's hooks throw while it has no started instance (undefined once one
   * is up). Allocated once per failure, never per request: a failed filter may see a flood.
   */
  error: FilterError | undefined = undefined
  /** While failed: the stream filter `createStream` hands every request (stateless, shared); its hooks throw `error`. */
  filter: StreamFilter | undefined = undefined
  /** Failed starts in a row (reset when an instance starts). */
  consecutive = 0
  readonly #name: string
  readonly #kind: FilterDefinition['kind']
  readonly #policy: FailurePolicy
  readonly #metric: Metric<CounterChild>
  readonly #children = new Map<string, CounterChild>()
  readonly #log: Logger
  readonly #window = new FailureLogWindow()

  constructor(def: Pick<FilterDefinition, 'name' | 'failurePolicy'>, kind: FilterDefinition['kind'], metrics: MetricsRegistry, log: Logger) {
    this.#name = def.name
    this.#kind = kind
    this.#policy = def.failurePolicy
    this.#log = log
    this.#metric = metrics.counter('omnirelay_filter_start_failures_total', 'Filter instances that failed to start, by phase and reason code', ['filter', 'kind', 'phase', 'code'])
  }

  /** Whether a failed start leads to more attempts (only `reload` retries; the others stay failed until the config changes). */
  get retries(): boolean {
    return this.#policy === 'reload'
  }

  /**
   * Counts and logs a failed start, and puts the filter in the failed state.
   * @param retryInMs when the next attempt is due (reload), for the log line
   */
  fail(phase: StartPhase, code: string, reason: string, retryInMs?: number): void {
    this.count(phase, code, reason, retryInMs)
    if (this.error !== undefined) return
    const err = new FilterError(this.#name, FilterErrorCode.Unavailable, `no instance: the filter failed to start (${phase}: ${code})`)
    const fail = (): never => {
      throw err
    }
    this.error = err
    this.filter = { onRequestHeaders: fail, onRequestBody: fail, onRequestTrailers: fail, onResponseHeaders: fail, onResponseBody: fail, onResponseTrailers: fail }
  }

  /** Counts and logs a failed start of an extra instance (a spare, a rebuild) while another one may still serve. */
  count(phase: StartPhase, code: string, reason: string, retryInMs?: number): void {
    this.consecutive++
    const key = `${phase}\u0000${code}`
    let c = this.#children.get(key)
    if (!c) {
      c = this.#metric.labels(this.#name, this.#kind, phase, code)
      this.#children.set(key, c)
    }
    c.inc()
    const suppressed = this.#window.take()
    if (suppressed === undefined) return
    this.#log.warn('filter failed to start', {
      filter: this.#name,
      kind: this.#kind,
      phase,
      code,
      reason,
      policy: this.#policy,
      attempts: this.consecutive,
      ...(retryInMs !== undefined ? { retryInMs: Math.round(retryInMs) } : {}),
      ...(suppressed ? { suppressed } : {}),
    })
  }

  /** An instance started: requests are served again. Logs when it follows failed starts. */
  started(): void {
    if (this.error !== undefined || this.consecutive !== 0) {
      this.#log.info('filter started after failed starts', { filter: this.#name, kind: this.#kind, failedStarts: this.consecutive })
    }
    this.error = undefined
    this.filter = undefined
    this.consecutive = 0
  }
}
