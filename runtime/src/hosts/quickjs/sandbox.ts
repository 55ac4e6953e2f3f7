/**
 * One QuickJS filter instance: a metered engine with its own capped heap, one runtime, one
 * context, the filter module loaded, and the prelude's dispatcher. The host calls `run()` per
 * hook; the sandbox charges the request's fuel, classifies every way the call can fail into a
 * `FilterError` code, and applies the turn's stream effects only when the turn ended cleanly.
 *
 * Failure classes:
 * - clean (the filter threw, or QuickJS stopped it itself: interrupt, `stack overflow`): the
 *   instance stays usable;
 * - poisoned (the metered engine trapped on fuel, V8 overflowed its own stack inside the
 *   engine, the engine aborted, or the heap hit its hard cap): QuickJS's C state may be
 *   half-updated, so the instance is never used again (`poisoned`), and the factory swaps in
 *   a fresh one.
 *
 * Fuel: the engine's wasm is metered (see engine.ts). The budget is per request, summed over
 * every hook and async continuation of that request. The global is set to what is left plus
 * a reserve: QuickJS's interrupt handler stops ordinary JS loops cleanly once the request's
 * own budget is gone (no rebuild needed), and the reserve bounds what built-ins can do
 * between interrupt checks before the hard trap. Either way, a turn that used more than what
 * was left fails with `fuel_exhausted`: the outcome depends only on the fuel used, which is
 * deterministic.
 */
import type { QuickJSContext, QuickJSDeferredPromise, QuickJSHandle, QuickJSRuntime } from 'quickjs-emscripten-core'
import { FilterError, FilterErrorCode, type FilterErrorCode as Code } from '../../pipeline/filter.ts'
import { FilterStatus } from '../../pipeline/phases.ts'
import { isOutOfFuel } from '../../sandbox/fuel.ts'
import { createEngine, type Engine } from './engine.ts'
import { createHostcalls, splitHeaderList, encodeCalloutResponse, HostcallError, metricSink, type HostcallEnv, type HostcallTarget } from './hostcalls.ts'
import { HARDEN_SOURCE, PENDING, PHASE_OP, PRELUDE_SOURCE } from './prelude.ts'
import { StreamState } from './stream-state.ts'

const SEP = '\u0001'
const EFFECT = '\u0003'
const FIELD = '\u0002'
/** The header map kind each hook op reads first (prefetched once seen), or -1. */
const PRIMARY_KIND = [0, 0, 2, 1, 1, 3, -1]
const EMPTY = new Uint8Array(0)
const UTF8 = new TextEncoder()

export interface SandboxOptions {
  env: HostcallEnv
  /** The filter module's source. */
  source: string
  /** Shown in JS stacks. */
  filename: string
  memoryBytes: number
  stackBytes: number
  /** Default true. false: an unmetered engine, for benchmarks of trusted code only. */
  meter?: boolean
  /** Fuel for loading the module (its top-level code) and the prelude. */
  loadFuel: number
  /** The filter's config as JSON ('' for none). */
  configJson: string
  /** Called when an async hook's continuation ran (a callout completed). */
  onAsync: (state: StreamState, outcome: AsyncOutcome) => void
}

export type AsyncOutcome =
  /** The hook's promise settled; effects were applied. */
  | { kind: 'settled'; status: number }
  /** The hook failed (threw, fuel, memory...). */
  | { kind: 'failed'; error: FilterError }
  /** Still waiting (e.g. a second callout). */
  | { kind: 'pending' }

/** A JS error as the filter raised it: for logs only, never for replies. */
export interface JsErrorInfo {
  name: string
  message: string
  stack: string
}

/**
 * The parts of quickjs-emscripten's context the per-hook call uses directly (protected in its
 * types): its `callFunction` allocates an argument array in the engine and two wrapper objects
 * per call, and `getString` another; the hook call needs none of that (see `#call`).
 */
interface ContextInternals {
  readonly ctx: { readonly value: number }
  readonly ffi: {
    QTS_Call(ctx: number, fn: number, thisVal: number, argc: number, argv: number): number
    QTS_ResolveException(ctx: number, value: number): number
    QTS_FreeValuePointer(ctx: number, value: number): void
    QTS_GetString(ctx: number, value: number): number
    QTS_FreeCString(ctx: number, str: number): void
    QTS_NewString(ctx: number, str: number): number
  }
  readonly module: { _malloc(bytes: number): number; _free(ptr: number): void; UTF8ToString(ptr: number): string }
  readonly memory: { heapValueHandle(ptr: number): QuickJSHandle }
}

/** Minimum fuel kept between QuickJS's interrupt checks (about 10,000 ticks of the interpreter). */
const MIN_RESERVE = 2e9

export class Sandbox implements HostcallTarget {
  current: StreamState | undefined = undefined
  /** Never run again: the factory replaces it. */
  poisoned = false
  /** Streams created on this instance and not done yet. */
  refs = 0
  /** The factory no longer hands it to new streams; dispose once `refs` is 0. */
  retired = false
  /** Bitmask of `Phase` values the module has hooks for. */
  phases = 0
  /** Capabilities the module declares it needs (`export const capabilities`), if it does. */
  declared: string[] = []

  readonly #opts: SandboxOptions
  readonly #name: string
  #engine!: Engine
  #rt!: QuickJSRuntime
  #ctx!: QuickJSContext
  #dispatch!: QuickJSHandle
  #ops: QuickJSHandle[] = []
  #zero!: QuickJSHandle
  #reserve = MIN_RESERVE
  #interrupted = false
  #trapped = false
  #disposed = false
  readonly #deferreds = new Set<QuickJSDeferredPromise>()
  /** Per hook op: the hook read its header map last time, so pass it along with the call. */
  readonly #prefetch = [false, false, false, false, false, false, false]
  #op = -1
  /** Async hook calls (numbered by the prelude) waiting for their promise to settle. */
  readonly #pending = new Map<number, StreamState>()
  #metrics: ((op: number, name: string, value: number) => void) | undefined
  #raw!: ContextInternals
  #ctxPtr = 0
  /** Engine address of the hook call's argument array (4 JSValue pointers), allocated once. */
  #argv = 0
  #heap32 = new Int32Array(0)
  /** The exception of the last `#call`, as an engine pointer (0: none). */
  #callError = 0
  /** Engine buffer the prefetched header map is encoded into (grown on demand, never per call). */
  #strBuf = 0
  #strCap = 0
  #heap8 = new Uint8Array(0)

  private constructor(opts: SandboxOptions) {
    this.#opts = opts
    this.#name = opts.env.name
  }

  /**
   * Builds an instance and loads the module. Rejects with a `FilterError` (code `thrown` for a
   * module that fails to parse or whose top-level code throws, or the quota's code) naming
   * the problem, and leaves nothing behind.
   */
  static async create(opts: SandboxOptions): Promise<Sandbox> {
    const sb = new Sandbox(opts)
    await sb.#init()
    return sb
  }

  /** Sets the per-request budget so the reserve scales with it. */
  setBudget(budget: number): void {
    this.#reserve = Math.max(MIN_RESERVE, Math.ceil(budget / 4))
  }

  async #init(): Promise<void> {
    const o = this.#opts
    if (o.env.grants.has('metrics')) this.#metrics = metricSink(o.env)
    this.#engine = await createEngine(o.memoryBytes, { meter: o.meter })
    const rt = (this.#rt = this.#engine.qjs.newRuntime())
    rt.setMaxStackSize(o.stackBytes)
    rt.setMemoryLimit(this.#engine.maxBytes)
    rt.setInterruptHandler(() => {
      if (this.#engine.meter.remaining() < this.#reserve) {
        this.#interrupted = true
        return true
      }
      return false
    })
    const ctx = (this.#ctx = rt.newContext())
    const load = new LoadState(o.loadFuel)
    try {
      this.current = undefined
      this.#unwrap(load, this.#enter(load, () => ctx.evalCode(HARDEN_SOURCE, 'omnirelay:harden.js'))).dispose()
      let ns = this.#unwrap(load, this.#enter(load, () => ctx.evalCode(o.source, o.filename, { type: 'module', strict: true })))
      if (ctx.typeof(ns) === 'object' && ctx.getPromiseState(ns).type !== 'fulfilled') {
        // Top-level await: settle it now, under the same load budget.
        this.#jobsResult(load, this.#enter(load, () => rt.executePendingJobs()))
        const st = ctx.getPromiseState(ns)
        ns.dispose()
        if (st.type === 'pending') throw new FilterError(this.#name, FilterErrorCode.Thrown, 'module top-level await did not settle at load')
        ns = this.#unwrap(load, st.type === 'fulfilled' ? { value: st.value } : { error: st.error })
      }
      const h = createHostcalls(ctx, o.env, this)
      const fn = this.#unwrap(load, this.#enter(load, () => ctx.evalCode(PRELUDE_SOURCE, 'omnirelay:prelude.js')))
      const grants = ctx.newString([...o.env.grants].join(','))
      const name = ctx.newString(this.#name)
      const cfg = ctx.newString(o.configJson)
      const r = this.#enter(load, () => ctx.callFunction(fn, ctx.undefined, h, ns, grants, name, cfg))
      for (const x of [fn, h, ns, grants, name, cfg]) x.dispose()
      this.#dispatch = this.#unwrap(load, r)
      const mask = ctx.getProp(this.#dispatch, 'mask')
      this.phases = ctx.getNumber(mask)
      mask.dispose()
      const declared = ctx.getProp(this.#dispatch, 'declared')
      const d = ctx.getString(declared)
      declared.dispose()
      this.declared = d === '' ? [] : d.split(',')
      for (let i = 0; i <= PHASE_OP.EndJobs; i++) this.#ops.push(ctx.newNumber(i))
      this.#zero = ctx.newNumber(0)
      this.#raw = ctx as unknown as ContextInternals
      this.#ctxPtr = this.#raw.ctx.value
      this.#argv = this.#raw.module._malloc(16)
      if (this.#argv === 0) throw new FilterError(this.#name, FilterErrorCode.MemoryExceeded, 'memory cap reached')
    } catch (e) {
      this.poisoned = true
      this.dispose()
      throw e instanceof FilterError ? e : this.#hostFailure(e, load)
    }
  }

  /**
   * Runs the hook for phase op `op`. Returns `FilterStatus` (Pause also while an async hook is
   * pending). Throws `FilterError` on failure; the stream is then untouched by this turn.
   */
  run(state: StreamState, op: number, size: number, eos: boolean): number {
    if (this.poisoned) throw new FilterError(this.#name, FilterErrorCode.Unavailable, 'instance is being replaced')
    const ctx = this.#ctx
    this.current = state
    this.#op = op
    state.clearEffects()
    state.settled = undefined
    state.failed = undefined
    const sizeH = size === 0 ? this.#zero : ctx.newNumber(size)
    const raw = this.#raw
    let pre = 0
    let res: number
    try {
      if (this.#prefetch[op]) {
        const s = state.stream
        const k = PRIMARY_KIND[op]
        const map = k === 0 ? s.requestHeaders : k === 1 ? s.responseHeaders : k === 2 ? s.requestTrailers : s.responseTrailers
        pre = this.#newString(map.flat.join(SEP))
      }
      const buf = this.#engine.memory.buffer
      if (this.#heap32.buffer !== buf) this.#heap32 = new Int32Array(buf)
      const a = this.#argv >> 2
      const heap = this.#heap32
      heap[a] = this.#ops[op]!.value as unknown as number
      heap[a + 1] = sizeH.value as unknown as number
      heap[a + 2] = (eos ? ctx.true : ctx.false).value as unknown as number
      heap[a + 3] = pre
      res = this.#enter(state, () => this.#call(pre === 0 ? 3 : 4))
    } finally {
      if (!this.poisoned) {
        if (sizeH !== this.#zero && sizeH.alive) sizeH.dispose()
        if (pre !== 0) raw.ffi.QTS_FreeValuePointer(this.#ctxPtr, pre)
      }
    }
    if (this.#callError !== 0) {
      raw.ffi.QTS_FreeValuePointer(this.#ctxPtr, res)
      const err = raw.memory.heapValueHandle(this.#callError)
      this.#callError = 0
      this.#unwrap(state, { error: err })
    }
    if (state.fuelLeft < 0) {
      raw.ffi.QTS_FreeValuePointer(this.#ctxPtr, res)
      state.clearEffects()
      throw new FilterError(this.#name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted')
    }
    const cstr = raw.ffi.QTS_GetString(this.#ctxPtr, res)
    const out = raw.module.UTF8ToString(cstr)
    raw.ffi.QTS_FreeCString(this.#ctxPtr, cstr)
    raw.ffi.QTS_FreeValuePointer(this.#ctxPtr, res)
    const status = this.#outcome(state, out)
    this.#endTurn(state)
    if (status !== PENDING) return status === FilterStatus.Pause ? FilterStatus.Pause : FilterStatus.Continue
    if (op === PHASE_OP.Log) return FilterStatus.Continue
    state.pending = true
    this.#pending.set(state.call, state)
    this.#jobs(state, true)
    if (state.failed) {
      this.#settled(state)
      throw this.#asyncError(state, state.failed)
    }
    if (state.settled !== undefined) {
      this.#settled(state)
      return FilterStatus.Continue
    }
    return FilterStatus.Pause
  }

  /**
   * `dispatch(...argv)` with the arguments already written at `#argv`: what `callFunction`
   * does, minus its per-call allocations. Returns the result's pointer (the caller frees it);
   * an exception is left in `#callError`.
   */
  #call(argc: number): number {
    const raw = this.#raw
    const res = raw.ffi.QTS_Call(this.#ctxPtr, this.#dispatch.value as unknown as number, this.#ctx.undefined.value as unknown as number, argc, this.#argv)
    this.#callError = raw.ffi.QTS_ResolveException(this.#ctxPtr, res)
    return res
  }

  /**
   * A JS string in the engine (a value pointer the caller frees), encoded with one
   * `encodeInto` into a reused buffer: `newString` measures and copies char by char in JS and
   * allocates a buffer per call.
   */
  #newString(str: string): number {
    const raw = this.#raw
    const need = str.length * 3 + 1
    if (need > this.#strCap) {
      if (this.#strBuf !== 0) raw.module._free(this.#strBuf)
      let cap = 1024
      while (cap < need) cap *= 2
      this.#strBuf = raw.module._malloc(cap)
      this.#strCap = this.#strBuf === 0 ? 0 : cap
      if (this.#strBuf === 0) throw new FilterError(this.#name, FilterErrorCode.MemoryExceeded, 'memory cap reached')
    }
    const buf = this.#engine.memory.buffer
    if (this.#heap8.buffer !== buf) this.#heap8 = new Uint8Array(buf)
    const at = this.#strBuf
    const { written } = UTF8.encodeInto(str, this.#heap8.subarray(at, at + this.#strCap - 1))
    this.#heap8[at + written] = 0
    return raw.ffi.QTS_NewString(this.#ctxPtr, at)
  }

  #settled(state: StreamState): void {
    state.pending = false
    this.#pending.delete(state.call)
  }

  pendingCall(call: number): StreamState | undefined {
    return this.#pending.get(call)
  }

  /** The request ended: its async hook, if any, no longer settles anything. */
  forget(state: StreamState): void {
    if (state.pending) this.#settled(state)
  }

  /**
   * After a failed turn: run what is left in the job queue (reactions of the failed hook's
   * promise) with no request bound, so that no stale job runs later inside another
   * request's turn. Stream calls fail inside those jobs; settle/fail of stale calls are ignored.
   */
  drain(): void {
    if (this.poisoned || this.#disposed) return
    const sink = { fuelLeft: this.#reserve }
    this.current = undefined
    this.#op = -1
    try {
      const r = this.#enter(sink, () => this.#rt.executePendingJobs())
      r.error?.dispose()
    } catch {
      // #enter poisoned the instance: the factory replaces it
    }
  }

  /**
   * Reads a turn's outcome (see prelude.ts): returns the status digit, records header
   * effects on the stream state, and applies metric updates.
   */
  #outcome(state: StreamState, out: string): number {
    const status = out.charCodeAt(0) - 48
    if (out.length === 1) return status
    const parts = out.split(EFFECT)
    try {
      for (let i = 1; i < parts.length; i++) {
        const p = parts[i]!
        const f = p.indexOf(FIELD)
        if (p.charCodeAt(0) === 72 /* H */) {
          const flat = splitHeaderList(p.slice(f + 1))
          state.headers[(p.charCodeAt(1) - 48) & 3] = flat
          state.hasEffects = true
        } else if (p.charCodeAt(0) === 67 /* C */) {
          state.call = Number(p.slice(1))
        } else if (p.charCodeAt(0) === 77 /* M */ && this.#metrics) {
          const g = p.indexOf(FIELD, f + 1)
          this.#metrics(p.charCodeAt(1) - 48, p.slice(f + 1, g), Number(p.slice(g + 1)))
        }
      }
    } catch (e) {
      state.clearEffects()
      if (e instanceof HostcallError) throw this.#thrown({ name: 'TypeError', message: e.message, stack: '' })
      throw e
    }
    return status
  }

  noteHeaderRead(kind: number): void {
    const op = this.#op
    if (op >= 0 && PRIMARY_KIND[op] === kind) this.#prefetch[op] = true
  }

  // ---- HostcallTarget ----

  startCallout(state: StreamState, cluster: string, headers: [string, string][], body: Uint8Array | undefined, timeoutMs: number): QuickJSHandle {
    const d = this.#ctx.newPromise()
    this.#deferreds.add(d)
    state.inflight++
    let p: Promise<{ headers: [string, string][]; body: Uint8Array }>
    try {
      p = this.#opts.env.services.httpCall({ cluster, headers, body, timeoutMs })
    } catch (e) {
      p = Promise.reject(e)
    }
    p.then(
      (r) => this.#calloutDone(state, d, encodeCalloutResponse(r.headers, r.body ?? EMPTY), undefined),
      (e: unknown) => this.#calloutDone(state, d, undefined, e),
    )
    return d.handle.dup()
  }

  #calloutDone(state: StreamState, d: QuickJSDeferredPromise, ok: string | undefined, err: unknown): void {
    state.inflight--
    const known = this.#deferreds.delete(d)
    if (this.poisoned || this.#disposed) {
      try {
        if (known && !this.poisoned) d.dispose()
      } catch {
        // the engine is gone with the instance
      }
      // The instance was replaced while the request waited: fail it now, not at the pause timeout.
      state.pending = false
      if (!state.done) this.#opts.onAsync(state, { kind: 'failed', error: new FilterError(this.#name, FilterErrorCode.Unavailable, 'instance was replaced during a callout') })
      return
    }
    if (!known) return
    const ctx = this.#ctx
    const code = (err as { code?: unknown } | undefined)?.code
    const v =
      ok !== undefined
        ? ctx.newString(ok)
        : ctx.newError({ name: 'CalloutError', message: typeof code === 'string' ? code : 'callout_failed' })
    if (ok !== undefined) d.resolve(v)
    else d.reject(v)
    v.dispose()
    d.dispose()
    let outcome: AsyncOutcome
    try {
      this.#jobs(state, !state.done)
      if (state.failed) outcome = { kind: 'failed', error: this.#asyncError(state, state.failed) }
      else if (state.settled !== undefined) outcome = { kind: 'settled', status: state.settled }
      else outcome = { kind: 'pending' }
    } catch (e) {
      outcome = { kind: 'failed', error: e instanceof FilterError ? e : this.#hostFailure(e, state) }
    }
    if (outcome.kind !== 'pending') this.#settled(state)
    if (!state.done) this.#opts.onAsync(state, outcome)
  }

  /** One job turn: begin marker, promise jobs, end marker (flushes buffered header changes). */
  #jobs(state: StreamState, apply: boolean): void {
    const ctx = this.#ctx
    this.current = state
    this.#op = -1
    state.clearEffects()
    this.#unwrap(state, this.#enter(state, () => ctx.callFunction(this.#dispatch, ctx.undefined, this.#ops[PHASE_OP.BeginJobs]!, this.#zero, ctx.false))).dispose()
    this.#jobsResult(state, this.#enter(state, () => this.#rt.executePendingJobs()))
    this.#op = -1
    const end = this.#unwrap(state, this.#enter(state, () => ctx.callFunction(this.#dispatch, ctx.undefined, this.#ops[PHASE_OP.EndJobs]!, this.#zero, ctx.false)))
    const out = ctx.getString(end)
    end.dispose()
    this.#outcome(state, out)
    if (apply) this.#endTurn(state)
    else state.clearEffects()
  }

  // ---- fuel, errors, effects ----

  /** Calls into the engine with the request's fuel; a host-level exception poisons the instance. */
  #enter<T>(state: FuelAccount, fn: () => T): T {
    const m = this.#engine.meter
    m.set(Math.max(0, state.fuelLeft) + this.#reserve)
    this.#interrupted = false
    const traps = this.#engine.traps
    let r: T
    try {
      r = fn()
    } catch (e) {
      state.fuelLeft -= m.used()
      m.set(this.#reserve)
      this.#trapped = true
      throw this.#hostFailure(e, state)
    }
    state.fuelLeft -= m.used()
    // Handle bookkeeping after the call (disposing handles, reading results) runs engine code
    // too: give it fuel of its own, or a request that ran dry would trap in the host's cleanup.
    m.set(this.#reserve)
    // Out of fuel inside a host call is turned into a JS exception by quickjs-emscripten's
    // trampoline; the engine still trapped mid-way, so the instance is done for.
    this.#trapped = this.#engine.traps !== traps
    if (this.#trapped) this.poisoned = true
    return r
  }

  /** A VM call result: the value, or a thrown FilterError classifying the VM's exception. */
  #unwrap(state: FuelAccount, r: { value: QuickJSHandle; error?: undefined } | { error: QuickJSHandle; value?: undefined } | { value?: QuickJSHandle; error?: QuickJSHandle }): QuickJSHandle {
    if (r.error === undefined) {
      if (state.fuelLeft < 0) {
        r.value?.dispose()
        if (state instanceof StreamState) state.clearEffects()
        throw new FilterError(this.#name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted')
      }
      return r.value!
    }
    const interrupted = this.#interrupted
    const info = this.#errorInfo(r.error)
    r.error.dispose()
    if (state instanceof StreamState) state.clearEffects()
    if (this.poisoned || this.#trapped) {
      this.poisoned = true
      throw new FilterError(this.#name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted (engine trapped)')
    }
    if (interrupted || state.fuelLeft < 0) throw new FilterError(this.#name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted')
    const code = classifyVmError(info)
    if (code === FilterErrorCode.MemoryExceeded || info.message.includes('Maximum call stack size exceeded')) this.poisoned = true
    if (code !== FilterErrorCode.Thrown) return throwCode(this.#name, code, info)
    throw this.#thrown(info)
  }

  #jobsResult(state: FuelAccount, r: { error?: QuickJSHandle }): void {
    if (r.error !== undefined) this.#unwrap(state, { error: r.error })
    else this.#unwrap(state, { value: this.#ctx.undefined })
  }

  /** An async hook's rejection, classified like a synchronous failure (its promise carries the engine's errors too). */
  #asyncError(state: StreamState, info: JsErrorInfo): FilterError {
    if (state.fuelLeft < 0 || (info.name === 'InternalError' && info.message === 'interrupted')) {
      return new FilterError(this.#name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted', { cause: { ...info } })
    }
    const code = classifyVmError(info)
    if (code === FilterErrorCode.Thrown) return this.#thrown(info)
    if (code === FilterErrorCode.MemoryExceeded) this.poisoned = true
    return new FilterError(this.#name, code, code === FilterErrorCode.MemoryExceeded ? 'memory cap reached' : 'stack limit reached', { cause: { ...info } })
  }

  #thrown(info: { message: string; stack: string; name?: string }): FilterError {
    const err = new FilterError(this.#name, FilterErrorCode.Thrown, 'filter code threw', { cause: { ...info } })
    return err
  }

  /** Reads name/message/stack of a VM exception, with a little fuel of its own (getters run JS). */
  #errorInfo(h: QuickJSHandle): JsErrorInfo {
    const ctx = this.#ctx
    const m = this.#engine.meter
    const info: JsErrorInfo = { name: 'Error', message: '', stack: '' }
    try {
      m.set(this.#reserve)
      if (ctx.typeof(h) !== 'object') {
        info.message = String(ctx.dump(h)).slice(0, 1024)
        return info
      }
      for (const k of ['name', 'message', 'stack'] as const) {
        const p = ctx.getProp(h, k)
        if (ctx.typeof(p) === 'string') info[k] = ctx.getString(p).slice(0, 4096)
        p.dispose()
      }
    } catch {
      this.poisoned = true
    }
    return info
  }

  /** An exception that escaped the engine (not a VM exception): the instance is done for. */
  #hostFailure(e: unknown, state: FuelAccount): FilterError {
    this.poisoned = true
    if (isOutOfFuel(e) || this.#trapped || state.fuelLeft < 0) return new FilterError(this.#name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted (engine trapped)', { cause: e })
    if (e instanceof RangeError) return new FilterError(this.#name, FilterErrorCode.StackOverflow, 'stack overflow in the engine', { cause: e })
    if (this.#engine && this.#engine.memory.buffer.byteLength >= this.#engine.maxBytes) {
      return new FilterError(this.#name, FilterErrorCode.MemoryExceeded, 'memory cap reached', { cause: e })
    }
    return new FilterError(this.#name, FilterErrorCode.Trap, 'the QuickJS engine trapped', { cause: e })
  }

  /** Applies a clean turn's effects to the stream. */
  #endTurn(state: StreamState): void {
    if (!state.hasEffects) return
    const s = state.stream
    const hs = state.headers
    for (let k = 0; k < 4; k++) {
      const flat = hs[k]
      if (flat === undefined) continue
      const map = k === 0 ? s.requestHeaders : k === 1 ? s.responseHeaders : k === 2 ? s.requestTrailers : s.responseTrailers
      map.replaceAll(flat)
    }
    if (state.bodies[0]) s.requestBody = state.bodies[0]
    if (state.bodies[1]) s.responseBody = state.bodies[1]
    const reply = state.reply
    state.clearEffects()
    if (reply) s.sendLocalReply(reply.status, reply.body, reply.headers)
  }

  /** Heap bytes the engine has grown to (Wasm memory cannot shrink). */
  get memoryBytes(): number {
    return this.#engine?.memory.buffer.byteLength ?? 0
  }

  /** Frees the instance. Poisoned instances are dropped without touching their C state. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    this.current = undefined
    if (this.poisoned || !this.#ctx) {
      this.#deferreds.clear()
      return
    }
    try {
      for (const d of this.#deferreds) d.dispose()
      this.#deferreds.clear()
      for (const o of this.#ops) o.dispose()
      this.#zero?.dispose()
      if (this.#argv !== 0) this.#raw.module._free(this.#argv)
      if (this.#strBuf !== 0) this.#raw.module._free(this.#strBuf)
      this.#dispatch?.dispose()
      this.#ctx.dispose()
      this.#rt.dispose()
    } catch {
      // A leak check failing inside QuickJS must not take the host down: the heap goes with the engine.
    }
  }
}

/** Anything that carries a fuel balance (a request, or the load of a module). */
interface FuelAccount {
  fuelLeft: number
}

class LoadState implements FuelAccount {
  fuelLeft: number
  constructor(fuel: number) {
    this.fuelLeft = fuel
  }
}

function classifyVmError(info: JsErrorInfo): Code {
  if (info.name === 'InternalError' || info.name === 'RangeError') {
    if (info.message === 'out of memory') return FilterErrorCode.MemoryExceeded
    if (info.message === 'stack overflow' || info.message.includes('Maximum call stack size exceeded')) return FilterErrorCode.StackOverflow
  }
  return FilterErrorCode.Thrown
}

function throwCode(name: string, code: Code, info: JsErrorInfo): never {
  throw new FilterError(name, code, code === FilterErrorCode.MemoryExceeded ? 'memory cap reached' : 'stack limit reached', { cause: { ...info } })
}
