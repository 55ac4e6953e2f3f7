/**
 * A filter slot running two versions of one filter: a `FilterFactory` that wraps factory A
 * and factory B and, per request, hands the stream to the one its `SplitChooser` picks. The
 * executor sees one filter (one chain entry, one failure policy), so it needs no change.
 *
 * Per-request cost: one hash (the choice) and one pooled wrapper (reused after `onDone`),
 * which tells the optional `VariantObserver` how the request ended for its variant — the
 * per-version outcome the rollout analysis compares.
 */
import type { FailurePolicy, FilterFactory, HttpStream, StreamFilter, StreamInfo } from '../pipeline/filter.ts'
import { FilterError, FilterErrorCode } from '../pipeline/filter.ts'
import type { FilterStatus } from '../pipeline/phases.ts'
import { SplitChooser, SplitSpecError, type SplitSpec, type Variant } from './split-chooser.ts'

/** Told, per request, which variant ran and how it ended. Called on the hot path: keep it cheap. */
export interface VariantObserver {
  /** A hook of the variant threw (the executor then applies the failure policy). */
  failed(slot: SplitSlot, variant: Variant, code: string, info: StreamInfo): void
  /** The request is done (`onDone`); `info.responseCode` and timing are final. */
  done(slot: SplitSlot, variant: Variant, info: StreamInfo): void
  /** A slot was built (once per epoch that carries the split); off the hot path. */
  track?(slot: SplitSlot): void
  /** A tracked slot was closed (its epoch drained, or the build that made it was refused). */
  untrack?(slot: SplitSlot): void
}

export interface SplitSlotOptions extends Omit<SplitSpec, 'versions'> {
  /** Name the executor knows the slot by (metrics, local replies); default A's name. */
  name?: string
  observer?: VariantObserver
  /** Most pooled wrappers kept; beyond it finished ones are left to the GC. Default 1024. */
  poolSize?: number
}

/**
 * @example
 * const slot = new SplitSlot(wafV1, wafV2, { slot: 'waf', weightB: 500, stickyHeader: 'x-user' })
 * // use `slot` wherever a FilterFactory goes; raise the weight with `slot.withWeight(2500)`
 */
export class SplitSlot implements FilterFactory {
  readonly name: string
  readonly kind: FilterFactory['kind']
  readonly phases: number
  readonly failurePolicy: FailurePolicy
  readonly version: string | undefined
  readonly chooser: SplitChooser
  readonly factories: readonly [FilterFactory, FilterFactory]
  readonly #observer: VariantObserver | undefined
  readonly #pool: SplitStream[] = []
  readonly #poolSize: number
  readonly #opts: SplitSlotOptions
  // Per variant, how a fail-closed reply names a failure of it: `filter_failed:<name>:<code>`
  // from the pipeline (the slot's name) or from the version's own host (its name).
  readonly #failedPrefixes: readonly [readonly string[], readonly string[]]

  constructor(a: FilterFactory, b: FilterFactory, opts: SplitSlotOptions) {
    if (a.failurePolicy !== b.failurePolicy) throw new SplitSpecError(`versions of slot "${opts.slot}" must share a failure policy (${a.failurePolicy} vs ${b.failurePolicy})`)
    this.factories = [a, b]
    this.name = opts.name ?? a.name
    this.kind = a.kind
    // The union: the executor calls every phase either side wants; a side without that hook
    // simply continues (a missing hook is Continue by contract).
    this.phases = a.phases | b.phases
    this.failurePolicy = a.failurePolicy
    this.version = `${a.version ?? '?'}|${b.version ?? '?'}`
    this.chooser = new SplitChooser({ ...opts, versions: [a.version ?? a.name, b.version ?? b.name] })
    this.#observer = opts.observer
    this.#poolSize = opts.poolSize ?? 1024
    this.#opts = opts
    this.#failedPrefixes = [[`filter_failed:${this.name}:`, `filter_failed:${a.name}:`], [`filter_failed:${this.name}:`, `filter_failed:${b.name}:`]]
  }

  get weightB(): number {
    return this.chooser.weightB
  }

  /** The same two factories at another weight (a new epoch's slot; the factories are shared). */
  withWeight(weightB: number): SplitSlot {
    return new SplitSlot(this.factories[0], this.factories[1], { ...this.#opts, weightB })
  }

  createStream(stream: HttpStream): StreamFilter {
    const v = this.chooser.choose(stream.requestHeaders, stream.info.requestId)
    const inner = this.factories[v].createStream(stream)
    const w = this.#pool.pop() ?? new SplitStream(this)
    w.inner = inner
    w.info = stream.info
    w.variant = v
    w.reported = false
    return w
  }

  /** @internal pooled wrapper is finished */
  release(w: SplitStream): void {
    w.inner = NOOP
    w.info = undefined
    if (this.#pool.length < this.#poolSize) this.#pool.push(w)
  }

  /** @internal */
  failed(w: SplitStream, err: unknown): void {
    w.reported = true
    if (this.#observer && w.info) this.#observer.failed(this, w.variant, err instanceof FilterError ? err.code : FilterErrorCode.Thrown, w.info)
  }

  /** @internal */
  done(w: SplitStream): void {
    const o = this.#observer
    const info = w.info
    if (!o || !info) return
    // A failure after a pause (async hook, callout, pause timeout) never passes through the
    // wrapper; fail-closed, it ends the request with a reply naming the filter and the code.
    const d = info.localReplyDetails
    if (!w.reported && d !== undefined && d.startsWith('filter_failed:')) {
      for (const p of this.#failedPrefixes[w.variant]) {
        if (!d.startsWith(p)) continue
        o.failed(this, w.variant, d.slice(p.length), info)
        break
      }
    }
    o.done(this, w.variant, info)
  }

  /** The slot does not own A and B: an epoch swap may keep them in the next slot. */
  async close(): Promise<void> {
    this.#observer?.untrack?.(this)
  }
}

const NOOP: StreamFilter = {}

// Each hook forwards to the chosen version; a throw is reported for its variant and rethrown
// so the executor's failure handling is unchanged.
class SplitStream implements StreamFilter {
  inner: StreamFilter = NOOP
  info: StreamInfo | undefined = undefined
  variant: Variant = 0
  /** A failure of this request was reported (so its fail-closed reply is not counted again). */
  reported = false
  readonly #slot: SplitSlot

  constructor(slot: SplitSlot) {
    this.#slot = slot
  }

  onRequestHeaders(endOfStream: boolean): FilterStatus {
    try {
      return this.inner.onRequestHeaders?.(endOfStream) ?? 0
    } catch (e) {
      throw this.#failed(e)
    }
  }
  onRequestBody(bodySize: number, endOfStream: boolean): FilterStatus {
    try {
      return this.inner.onRequestBody?.(bodySize, endOfStream) ?? 0
    } catch (e) {
      throw this.#failed(e)
    }
  }
  onRequestTrailers(): FilterStatus {
    try {
      return this.inner.onRequestTrailers?.() ?? 0
    } catch (e) {
      throw this.#failed(e)
    }
  }
  onResponseHeaders(endOfStream: boolean): FilterStatus {
    try {
      return this.inner.onResponseHeaders?.(endOfStream) ?? 0
    } catch (e) {
      throw this.#failed(e)
    }
  }
  onResponseBody(bodySize: number, endOfStream: boolean): FilterStatus {
    try {
      return this.inner.onResponseBody?.(bodySize, endOfStream) ?? 0
    } catch (e) {
      throw this.#failed(e)
    }
  }
  onResponseTrailers(): FilterStatus {
    try {
      return this.inner.onResponseTrailers?.() ?? 0
    } catch (e) {
      throw this.#failed(e)
    }
  }
  onLog(): void {
    try {
      this.inner.onLog?.()
    } catch (e) {
      throw this.#failed(e)
    }
  }
  onDone(): void {
    this.#slot.done(this)
    try {
      this.inner.onDone?.()
    } catch (e) {
      throw this.#failed(e)
    } finally {
      this.#slot.release(this)
    }
  }

  #failed(e: unknown): unknown {
    this.#slot.failed(this, e)
    return e
  }
}
