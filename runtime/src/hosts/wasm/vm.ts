/**
 * One instance of a filter module: its memory, fuel meter, contexts, and every call into it.
 *
 * All calls go through `call()`, which sets the effective context and the fuel, runs the
 * export, turns whatever it throws into a `FilterError` with a stable code, and runs the
 * wall-clock watchdog:
 *
 * - fuel is the primary stop: runaway code traps inside the module (fuel.ts), in ms;
 * - the watchdog cannot interrupt a synchronous Wasm call from the same thread. It measures
 *   each call and, when one ran longer than `timeoutMs`, fails it after the fact (code
 *   `timeout`): the request gets the failure policy and the instance is discarded, exactly
 *   as for a trap. It catches slow host-side work fuel does not count (large copies,
 *   allocations in host calls) and a mis-sized fuel budget;
 * - V8's RangeError from deep recursion is `stack_overflow`; a trap after a `memory.grow`
 *   that asked for more than the cap is `memory_exceeded`.
 *
 * An instance that failed once is `broken` and never called again.
 */
import type { Logger } from '../../observability/logger.ts'
import { FilterError, FilterErrorCode, type Capability, type HttpStream } from '../../pipeline/filter.ts'
import { HeaderMap } from '../../pipeline/header-map.ts'
import { callEnd, callEndShort, callStart } from '../../sandbox/call-clock.ts'
import { FuelMeter, GROW_EXPORT, OutOfFuel, START_EXPORT, fuelImports, isOutOfFuel } from '../../sandbox/fuel.ts'
import { MAX_PAGES } from '../../sandbox/memory-cap.ts'
import type { PreparedModule } from '../../sandbox/module-cache.ts'
import type { HostServices, HttpCallRequest, HttpCallResponse } from '../host-services.ts'
import { CREATE_AND_REQUEST_HEADERS, DEFERRED_DELETE, LogLevel, ROOT_CONTEXT_ID } from './abi.ts'
import { GuestMemory } from './guest-memory.ts'
import type { GuestMetrics } from './guest-metrics.ts'
import { createImports } from './hostcalls.ts'
import { StreamTable, type Slotted } from './stream-table.ts'
import { GuestAbort, ProcExit } from './wasi.ts'

/** What every instance of one configured filter shares (built once per factory). */
export interface FilterEnv {
  readonly name: string
  readonly vmId: string
  readonly version: string | undefined
  readonly services: HostServices
  readonly log: Logger
  readonly grants: ReadonlySet<Capability>
  readonly calloutClusters: ReadonlySet<string>
  readonly pluginConfig: Uint8Array
  readonly vmConfig: Uint8Array
  readonly metrics: GuestMetrics
  /** Per-request fuel (also the budget of each root callback: tick, queue, callout without a stream). */
  readonly fuelBudget: number
  /** Fuel for initialization (start, _initialize, vm_start, configure). */
  readonly initFuel: number
  readonly timeoutMs: number
  /** Largest body a module may set with proxy_set_buffer_bytes. */
  readonly maxBodyBytes: number
  /** Whether one more module log line may be written now (untrusted modules must not flood the log). */
  allowLog(): boolean
  /** Told about every failure, after the instance is marked broken. */
  onFailure(vm: WasmVm, err: FilterError, binding: StreamBinding | undefined): void
}

/** A stream's side of a context: what host calls act on while it is the effective context. */
export interface StreamBinding extends Slotted {
  readonly stream: HttpStream
  readonly contextId: number
  /** Fuel left for this request (negative once exhausted). */
  fuelLeft: number
  props: Map<string, Uint8Array> | undefined
  /** Whether the stream is over (late callout responses are dropped). */
  readonly finished: boolean
  /** A callout's response callback failed: apply the failure policy to the stream. */
  onCalloutFailure(err: FilterError): void
}

export interface CallResponse {
  headers: HeaderMap
  body: Uint8Array
  trailers: HeaderMap
  status: number
  message: string
}

export interface Snapshot {
  memory: Uint8Array
  globals: (number | bigint)[]
}

type Export = (...args: number[]) => number | undefined

/** The module's callbacks, looked up once per instance. */
export interface Callbacks {
  onContextCreate?: Export
  /** sdk-as modules: proxy_on_context_create then proxy_on_request_headers, in one call. */
  onContextCreateRequestHeaders?: Export
  onVmStart?: Export
  onConfigure?: Export
  onRequestHeaders?: Export
  onRequestBody?: Export
  onRequestTrailers?: Export
  onResponseHeaders?: Export
  onResponseBody?: Export
  onResponseTrailers?: Export
  onLog?: Export
  onDone?: Export
  onDelete?: Export
  onTick?: Export
  onQueueReady?: Export
  onHttpCallResponse?: Export
}

const MAX_OUTSTANDING_CALLOUTS = 64
/** Shortest tick period: every tick may spend a full fuel budget, so ticks are rationed. */
const MIN_TICK_MS = 50
/** Fuel one host call costs (about what a short host call takes in Wasm instructions). */
export const HOSTCALL_FUEL = 1000
/** Below this much fuel (and with no host call) a call is short: tens of µs at the very most. */
const SHORT_CALL_FUEL = 20_000
/** Contexts a module may keep open after their stream ended (proxy_on_done returned false). */
const MAX_PENDING_DONE = 4096
/**
 * Finished streams whose proxy_on_delete may wait for a later stream start (see
 * DEFERRED_DELETE): beyond this many, deletes are called at once, so a burst of finishing
 * streams keeps at most this many contexts alive in the module.
 */
const MAX_DEFERRED_DELETES = 8
const EMPTY = new Uint8Array(0)

export class WasmVm {
  readonly env: FilterEnv
  readonly prepared: PreparedModule
  readonly exports: WebAssembly.Exports
  readonly mem: GuestMemory
  readonly fns: Callbacks
  /** The instance that receives timer and queue callbacks (shared mode: the only one). */
  readonly isRoot: boolean
  broken = false
  /** Host calls made during the current call into the module, and how many it may make. */
  hostcalls = 0
  hostcallLimit = Infinity
  /** Used since the last snapshot restore. */
  dirty = false
  effective = ROOT_CONTEXT_ID
  /**
   * The stream of the call in progress (undefined for root callbacks). Between calls it may
   * still hold the last call's stream: storing a per-request object into this long-lived one
   * costs a write barrier, so consecutive calls for one stream store it once.
   */
  current: StreamBinding | undefined = undefined
  callResponse: CallResponse | undefined = undefined
  readonly rootProps = new Map<string, Uint8Array>()
  readonly streams = new StreamTable<StreamBinding>()
  #nextContextId = ROOT_CONTEXT_ID + 1
  readonly #meter: FuelMeter | undefined
  readonly #grow: WebAssembly.Global | undefined
  readonly #maxPages: number
  #rootFuel: number
  #cleanExit = false
  /** Calls in progress (host calls may call back in: a nested call restores the outer stream). */
  #depth = 0
  /** Context id of the stream whose fuel the fuel global holds (0: none); an id, not the binding: no write barrier. */
  #fuelOwner = 0
  #nextToken = 1
  readonly #callouts = new Map<number, StreamBinding | undefined>()
  readonly #pendingDone = new Set<number>()
  /** Whether stream deletes may ride on the next stream start (shared instances only). */
  readonly #deferDeletes: boolean
  /** Contexts finished but not yet deleted in the module. */
  readonly #deletes: number[] = []
  #tick: ReturnType<typeof setInterval> | undefined
  /** Stream operations (resume, local reply) requested inside a callback that runs outside any hook. */
  #deferred: (() => void)[] | undefined
  readonly #queueSubs = new Map<number, () => void>()

  /** Instantiates (no module code runs: the start function was moved to an export). */
  constructor(prepared: PreparedModule, env: FilterEnv, isRoot: boolean) {
    this.env = env
    this.prepared = prepared
    this.isRoot = isRoot
    this.#rootFuel = env.fuelBudget
    const imported = prepared.memories.find((m) => m.imported)
    const memory = imported ? new WebAssembly.Memory({ initial: imported.initial, maximum: imported.maximum }) : undefined
    const imports = createImports(this, prepared.imports, {
      fuel: prepared.metered ? (Object.values(fuelImports())[0] as WebAssembly.ModuleImports) : undefined,
      memory,
    })
    const instance = new WebAssembly.Instance(prepared.module, imports)
    this.exports = instance.exports
    const mem = memory ?? instance.exports.memory
    if (!(mem instanceof WebAssembly.Memory)) throw new Error('module exports no memory named "memory" (proxy-wasm modules must)')
    this.mem = new GuestMemory(mem)
    const e = instance.exports as Record<string, unknown>
    const fn = (name: string) => (typeof e[name] === 'function' ? (e[name] as Export) : undefined)
    const alloc = fn('proxy_on_memory_allocate') ?? fn('malloc')
    if (alloc) this.mem.alloc = (size) => alloc(size) as number
    this.fns = {
      onContextCreate: fn('proxy_on_context_create'),
      onContextCreateRequestHeaders: fn(CREATE_AND_REQUEST_HEADERS),
      onVmStart: fn('proxy_on_vm_start'),
      onConfigure: fn('proxy_on_configure'),
      onRequestHeaders: fn('proxy_on_request_headers'),
      onRequestBody: fn('proxy_on_request_body'),
      onRequestTrailers: fn('proxy_on_request_trailers'),
      onResponseHeaders: fn('proxy_on_response_headers'),
      onResponseBody: fn('proxy_on_response_body'),
      onResponseTrailers: fn('proxy_on_response_trailers'),
      onLog: fn('proxy_on_log'),
      onDone: fn('proxy_on_done'),
      onDelete: fn('proxy_on_delete'),
      onTick: fn('proxy_on_tick'),
      onQueueReady: fn('proxy_on_queue_ready'),
      onHttpCallResponse: fn('proxy_on_http_call_response'),
    }
    this.#meter = prepared.metered ? new FuelMeter(instance.exports) : undefined
    // Per-request instances are restored from a snapshot between streams: a delete carried
    // over would name a context the restored memory never had.
    this.#deferDeletes = isRoot && this.fns.onContextCreateRequestHeaders !== undefined && this.fns.onDelete !== undefined && fn(DEFERRED_DELETE) !== undefined
    this.#grow = e[GROW_EXPORT] instanceof WebAssembly.Global ? (e[GROW_EXPORT] as WebAssembly.Global) : undefined
    this.#maxPages = prepared.memories[0]?.maximum ?? MAX_PAGES
  }

  /**
   * Runs the module's initialization: the moved start function, `_initialize` (+ `main`) or
   * `_start`, then the root context, `proxy_on_vm_start` and `proxy_on_configure`.
   * Throws a FilterError (the instance is then broken); `configure_rejected` in the message
   * when the module refused its configuration.
   */
  initialize(): void {
    this.#rootFuel = this.env.initFuel
    try {
      const e = this.exports as Record<string, unknown>
      const call0 = (name: string, ...args: number[]) => {
        const f = e[name]
        if (typeof f === 'function') this.call(f as Export, undefined, args[0] ?? 0, args[1] ?? 0)
      }
      if (this.prepared.hasStart) call0(START_EXPORT)
      if (typeof e._initialize === 'function') {
        call0('_initialize')
        call0('main', 0, 0)
      } else if (typeof e._start === 'function') {
        // TinyGo-style commands may proc_exit(0) at the end of _start: that is a clean return.
        this.#cleanExit = true
        try {
          call0('_start')
        } finally {
          this.#cleanExit = false
        }
      }
      if (this.fns.onContextCreate) this.call(this.fns.onContextCreate, undefined, ROOT_CONTEXT_ID, 0)
      if (this.fns.onVmStart && !this.call(this.fns.onVmStart, undefined, ROOT_CONTEXT_ID, this.env.vmConfig.length)) {
        this.#rejectConfig('proxy_on_vm_start returned false')
      }
      if (this.fns.onConfigure && !this.call(this.fns.onConfigure, undefined, ROOT_CONTEXT_ID, this.env.pluginConfig.length)) {
        this.#rejectConfig('proxy_on_configure returned false: the module rejected its configuration')
      }
    } finally {
      this.#rootFuel = this.env.fuelBudget
    }
  }

  #rejectConfig(msg: string): never {
    const err = new FilterError(this.env.name, FilterErrorCode.Unavailable, `configure_rejected: ${msg}`)
    this.#fail(err, undefined)
    throw err
  }

  /**
   * Calls an export with the effective context `ctx` and up to four more arguments.
   * Throws FilterError (after marking the instance broken and telling the factory).
   */
  call(fn: Export, binding: StreamBinding | undefined, ctx: number, a = 0, b = 0, c = 0, d = 0): number {
    if (this.broken) throw new FilterError(this.env.name, FilterErrorCode.Unavailable, 'instance failed earlier')
    const prevEffective = this.effective
    const prevCurrent = this.current
    this.effective = ctx
    if (prevCurrent !== binding) this.current = binding
    this.#depth++
    this.dirty = true
    const meter = this.#meter
    // After a call for `binding` the global holds exactly binding.fuelLeft: skip the write
    // when the same stream calls again (the common case: several hooks of one request in a row).
    const fuelIn = binding ? binding.fuelLeft : this.#rootFuel
    if (meter && (binding === undefined || binding.contextId !== this.#fuelOwner)) meter.set(fuelIn)
    this.#fuelOwner = binding ? binding.contextId : 0
    const prevHostcalls = this.hostcalls
    const prevLimit = this.hostcallLimit
    this.hostcalls = 0
    if (meter) this.hostcallLimit = Math.max(0, Math.floor(fuelIn / HOSTCALL_FUEL))
    const t0 = callStart()
    let r: number | undefined
    try {
      r = fn(ctx, a, b, c, d)
    } catch (e) {
      this.#settleFuel(binding)
      this.hostcalls = prevHostcalls
      this.hostcallLimit = prevLimit
      this.effective = prevEffective
      if (--this.#depth !== 0) this.current = prevCurrent
      if (this.#cleanExit && e instanceof ProcExit && e.exitCode === 0) return 0
      const err = this.#classify(e)
      this.#fail(err, binding)
      throw err
    }
    this.#settleFuel(binding)
    // Metered, no host call, little fuel: the call ran a few µs at most and may skip the clock.
    const short = meter !== undefined && binding !== undefined && this.hostcalls === 0 && fuelIn - binding.fuelLeft < SHORT_CALL_FUEL
    this.hostcalls = prevHostcalls
    this.hostcallLimit = prevLimit
    this.effective = prevEffective
    if (--this.#depth !== 0) this.current = prevCurrent
    const ms = (short ? callEndShort() : callEnd()) - t0
    if (ms > this.env.timeoutMs) {
      const err = new FilterError(this.env.name, FilterErrorCode.Timeout, `call ran ${ms.toFixed(1)} ms, over the ${this.env.timeoutMs} ms watchdog limit`)
      this.#fail(err, binding)
      throw err
    }
    return r === undefined ? 1 : r
  }

  /** Reads back the fuel left and charges the host calls the module made. */
  #settleFuel(binding: StreamBinding | undefined): void {
    const meter = this.#meter
    if (!meter || !binding) return
    binding.fuelLeft = meter.remaining() - this.hostcalls * HOSTCALL_FUEL
    // The global no longer equals fuelLeft: the next call must write it.
    if (this.hostcalls !== 0) this.#fuelOwner = 0
  }

  /** Called by a host call past the allowance: stops the module as running out of fuel does. */
  hostcallsExhausted(): never {
    throw new OutOfFuel()
  }

  #classify(e: unknown): FilterError {
    const name = this.env.name
    if (e instanceof FilterError) return e
    if (isOutOfFuel(e)) return new FilterError(name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted', { cause: e })
    if (e instanceof RangeError && /call stack/i.test(e.message)) {
      return new FilterError(name, FilterErrorCode.StackOverflow, 'stack overflow (recursion too deep)', { cause: e })
    }
    const growExceeded = this.#grow !== undefined && Number(this.#grow.value as bigint) > this.#maxPages
    if (e instanceof WebAssembly.RuntimeError || e instanceof GuestAbort) {
      if (growExceeded) return new FilterError(name, FilterErrorCode.MemoryExceeded, `memory quota exceeded (${this.#maxPages} pages)`, { cause: e })
      if (this.#meter && this.#meter.remaining() < 0) return new FilterError(name, FilterErrorCode.FuelExhausted, 'fuel budget exhausted', { cause: e })
      return new FilterError(name, FilterErrorCode.Trap, `trap: ${(e as Error).message}`, { cause: e })
    }
    if (e instanceof ProcExit) return new FilterError(name, FilterErrorCode.Trap, e.message, { cause: e })
    return new FilterError(name, FilterErrorCode.Thrown, `host error: ${(e as Error)?.message ?? String(e)}`, { cause: e })
  }

  #fail(err: FilterError, binding: StreamBinding | undefined): void {
    if (this.broken) return
    this.broken = true
    this.dispose()
    // Streams of this instance waiting for a callout would otherwise hang until the pipeline's
    // pause timeout: fail them now (after this call unwinds), with their own policy.
    const waiting = new Set<StreamBinding>()
    for (const b of this.#callouts.values()) if (b && b !== binding) waiting.add(b)
    this.#callouts.clear()
    if (waiting.size) {
      const lost = new FilterError(this.env.name, FilterErrorCode.Unavailable, 'the instance failed while the request waited for its callout')
      queueMicrotask(() => {
        for (const b of waiting) if (!b.finished) b.onCalloutFailure(lost)
      })
    }
    this.env.onFailure(this, err, binding)
  }

  /** Creates an HTTP context for `binding` (calls proxy_on_context_create). */
  createContext(binding: StreamBinding & { contextId: number }): void {
    this.streams.add(binding)
    if (this.fns.onContextCreate) this.call(this.fns.onContextCreate, binding, binding.contextId, ROOT_CONTEXT_ID)
  }

  /**
   * Creates an HTTP context for `binding` and runs its request headers hook, in one call when
   * the module exports the pair as one entry point (sdk-as does: one JS->Wasm crossing less
   * per filter per request), which also deletes a finished stream's context when one waits.
   * Returns the hook's action.
   */
  createContextWithRequestHeaders(binding: StreamBinding & { contextId: number }, numHeaders: number, endOfStream: number): number {
    const both = this.fns.onContextCreateRequestHeaders
    if (both === undefined) {
      this.createContext(binding)
      return this.fns.onRequestHeaders ? this.call(this.fns.onRequestHeaders, binding, binding.contextId, numHeaders, endOfStream) : 0
    }
    this.streams.add(binding)
    const deleted = this.#deletes.length !== 0 ? this.#deletes.pop()! : 0
    return this.call(both, binding, binding.contextId, ROOT_CONTEXT_ID, numHeaders, endOfStream, deleted)
  }

  nextContextId(): number {
    return this.#nextContextId++
  }

  /**
   * Ends a context: proxy_on_done, then proxy_on_delete unless the module asked to finish
   * later — or, when the module allows it (DEFERRED_DELETE), leaves the delete to the next
   * stream start: one call into the module less per request.
   */
  finishContext(binding: StreamBinding): void {
    const id = binding.contextId
    // Almost always empty: skip the iterator (every filter of every request ends here).
    if (this.#callouts.size !== 0) for (const [token, b] of this.#callouts) if (b === binding) this.#callouts.delete(token)
    if (this.broken) {
      this.#forget(binding)
      return
    }
    try {
      const done = this.fns.onDone ? this.call(this.fns.onDone, binding, id) : 1
      if (done) {
        if (this.#deferDeletes && this.#deletes.length < MAX_DEFERRED_DELETES) this.#deletes.push(id)
        else if (this.fns.onDelete) this.call(this.fns.onDelete, binding, id)
      } else {
        // The module finishes later (proxy_done). Keep only the id: the stream is over.
        this.#pendingDone.add(id)
        if (this.#pendingDone.size > MAX_PENDING_DONE) this.#pendingDone.delete(this.#pendingDone.values().next().value!)
      }
    } catch {
      // Reported through onFailure already; onDone must not throw.
    } finally {
      this.#forget(binding)
    }
  }

  /** The stream is over: no table entry, and no reference left in `current` to keep it alive. */
  #forget(binding: StreamBinding): void {
    this.streams.remove(binding)
    if (this.current === binding) this.current = undefined
  }

  /** proxy_done: the effective context finished what it asked to finish later. */
  done(): boolean {
    const id = this.effective
    if (!this.#pendingDone.delete(id)) return false
    queueMicrotask(() => {
      if (!this.broken && this.fns.onDelete) {
        try {
          this.call(this.fns.onDelete, undefined, id)
        } catch {
          // reported through onFailure
        }
      }
    })
    return true
  }

  /**
   * Runs a stream operation (resume, local reply) now, or, inside a callout response callback,
   * right after the callback returns. Resuming synchronously there could finish the stream
   * and call back into the module (proxy_on_done) while it is still running: SDKs are not
   * reentrant (the Rust SDK's RefCells would panic).
   */
  streamOp(op: () => void): void {
    if (this.#deferred) this.#deferred.push(op)
    else op()
  }

  setEffectiveContext(id: number): boolean {
    if (id === ROOT_CONTEXT_ID) {
      this.effective = id
      return true
    }
    const b = this.streams.get(id)
    if (b) {
      this.effective = id
      this.current = b
      return true
    }
    if (!this.#pendingDone.has(id)) return false
    // A finished context waiting for proxy_done: selectable, but it has no stream any more.
    this.effective = id
    this.current = undefined
    return true
  }

  guestLog(level: number, msg: string): void {
    if (!this.env.allowLog()) return
    const log = this.env.log
    const text = msg.length > 4096 ? `${msg.slice(0, 4096)}…` : msg
    const fields = { context: this.effective }
    if (level <= LogLevel.Debug) log.debug(text, fields)
    else if (level === LogLevel.Info) log.info(text, fields)
    else if (level === LogLevel.Warn) log.warn(text, fields)
    else log.error(text, fields)
  }

  /** Starts a callout for the current context; returns its token, or 0 when refused. */
  dispatchHttpCall(req: HttpCallRequest): number {
    if (this.#callouts.size >= MAX_OUTSTANDING_CALLOUTS) return 0
    const token = this.#nextToken++
    const binding = this.current
    this.#callouts.set(token, binding)
    this.env.services.httpCall(req).then(
      (r) => this.#settle(token, r),
      () => this.#settle(token, undefined),
    )
    return token
  }

  #settle(token: number, r: HttpCallResponse | undefined): void {
    if (!this.#callouts.has(token)) return
    const binding = this.#callouts.get(token)
    this.#callouts.delete(token)
    if (this.broken || (binding && binding.finished)) return
    const fn = this.fns.onHttpCallResponse
    if (!fn) return
    const headers = r ? HeaderMap.fromPairs(r.headers) : new HeaderMap()
    const trailers = r ? HeaderMap.fromPairs(r.trailers) : new HeaderMap()
    const status = r ? Number(headers.get(':status') ?? 0) : 0
    this.callResponse = { headers, body: r ? r.body : EMPTY, trailers, status, message: r ? '' : 'callout failed' }
    const ops: (() => void)[] = []
    this.#deferred = ops
    try {
      this.call(fn, binding, ROOT_CONTEXT_ID, token, headers.size, r ? r.body.length : 0, trailers.size)
    } catch (err) {
      ops.length = 0
      if (binding && err instanceof FilterError) binding.onCalloutFailure(err)
    } finally {
      this.callResponse = undefined
      this.#deferred = undefined
    }
    for (const op of ops) op()
  }

  setTickPeriod(ms: number): void {
    if (!this.isRoot || this.broken) return
    if (this.#tick) clearInterval(this.#tick)
    this.#tick = undefined
    if (ms === 0 || !this.fns.onTick) return
    const fn = this.fns.onTick
    this.#tick = setInterval(() => {
      try {
        this.call(fn, undefined, ROOT_CONTEXT_ID)
      } catch {
        // reported through onFailure; the instance is discarded and its timer cleared
      }
    }, Math.min(Math.max(ms, MIN_TICK_MS), 86_400_000)) // Node turns delays over 2^31-1 ms into 1 ms
    this.#tick.unref()
  }

  watchQueue(id: number): void {
    if (!this.isRoot || this.#queueSubs.has(id) || !this.fns.onQueueReady) return
    const fn = this.fns.onQueueReady
    this.#queueSubs.set(
      id,
      this.env.services.sharedQueues.onEnqueue(id, () => {
        if (this.broken) return
        try {
          this.call(fn, undefined, ROOT_CONTEXT_ID, id)
        } catch {
          // reported through onFailure
        }
      }),
    )
  }

  /** Copies memory and mutable globals (after initialization: the per-request baseline). */
  snapshot(): Snapshot {
    const e = this.exports
    return {
      memory: this.mem.u8.slice(),
      globals: this.prepared.mutableGlobals.map((n) => (e[n] as WebAssembly.Global).value as number | bigint),
    }
  }

  /** Puts memory and mutable globals back to `s`; memory grown since is zeroed (it cannot shrink). */
  restore(s: Snapshot): void {
    const mem = this.mem
    const have = mem.byteLength
    if (have < s.memory.length) mem.memory.grow((s.memory.length - have) / 65536)
    const u8 = mem.u8
    u8.set(s.memory, 0)
    if (u8.length > s.memory.length) u8.fill(0, s.memory.length)
    const e = this.exports
    const names = this.prepared.mutableGlobals
    for (let i = 0; i < names.length; i++) (e[names[i]!] as WebAssembly.Global).value = s.globals[i]!
    this.streams.clear()
    this.#pendingDone.clear()
    this.#callouts.clear()
    this.dirty = false
  }

  /**
   * Stops timers and queue subscriptions. In-flight callouts still complete for their streams
   * (a closed factory drains); a broken instance drops them in `#settle`.
   */
  dispose(): void {
    if (this.#tick) clearInterval(this.#tick)
    this.#tick = undefined
    for (const off of this.#queueSubs.values()) off()
    this.#queueSubs.clear()
  }
}
