/**
 * The only door from a QuickJS filter to the host: the functions on the `h` object the
 * prelude closes over (never on `globalThis`). A function exists only when the filter's
 * effective grant includes its capability; arguments cross as primitives (strings, numbers,
 * ArrayBuffers), never as host objects.
 *
 * Stream effects (header maps, bodies, local reply) are recorded on the current
 * `StreamState` and applied by the sandbox when the turn ends cleanly.
 */
import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core'
import type { Capability } from '../../pipeline/filter.ts'
import { BAD_HEADER_VALUE, HEADER_NAME, HEADER_NAME_PATTERN, HEADER_VALUE_FORBIDDEN } from '../../pipeline/header-syntax.ts'
import { getProperty, splitPropertyPath } from '../properties.ts'
import type { HostServices } from '../host-services.ts'
import type { Logger } from '../../observability/logger.ts'
import { MetricType } from '../wasm/abi.ts'
import type { GuestMetrics } from '../wasm/guest-metrics.ts'
import type { StreamState } from './stream-state.ts'

const SEP = '\u0001'
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const EMPTY = new Uint8Array(0)

/** What hostcalls need from the filter's configuration; built once per factory. */
export interface HostcallEnv {
  readonly name: string
  readonly version: string | undefined
  readonly grants: ReadonlySet<Capability>
  readonly services: HostServices
  readonly log: Logger
  readonly metrics: GuestMetrics
  readonly calloutClusters: ReadonlySet<string>
  /** Largest body a filter may set, in bytes. */
  readonly maxBodyBytes: number
}

/** The binding between hostcalls and the sandbox driving them. */
export interface HostcallTarget {
  /** The stream the current turn runs for (undefined outside requests). */
  readonly current: StreamState | undefined
  /** The request whose async hook call `call` is waiting, if any. */
  pendingCall(call: number): StreamState | undefined
  /** The filter read header map `kind` through `hget` (the host may prefetch it next time). */
  noteHeaderRead(kind: number): void
  /** Starts a callout for `state` and returns the promise handle given to the filter. */
  startCallout(state: StreamState, cluster: string, headers: [string, string][], body: Uint8Array | undefined, timeoutMs: number): QuickJSHandle
}

/** Thrown into the filter (as a JS TypeError) for misuse: wrong phase, bad arguments. */
export class HostcallError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TypeError'
  }
}

/**
 * A whole flat header list joined by U+0001, checked in one regex pass (the hot path: one
 * test per hook instead of two per header). Same rules as `checkHeaderFields`.
 */
const PAIR = `${HEADER_NAME_PATTERN}\\u0001[^${HEADER_VALUE_FORBIDDEN}]*`
const FLAT_LIST = new RegExp(`^(?:${PAIR}(?:\\u0001${PAIR})*)?$`)

/** Validates and splits a joined flat header list from the sandbox. */
export function splitHeaderList(joined: string): string[] {
  if (joined === '') return []
  if (!FLAT_LIST.test(joined)) throw new HostcallError('invalid header name or value')
  return joined.split(SEP)
}

/**
 * Validates a flat header list coming out of the sandbox. The prelude lower-cases names, but
 * filter code can replace the built-ins the prelude uses, so the host checks again: nothing
 * that could split a header line (CR, LF, NUL) or an invalid name ever reaches the stream.
 */
export function checkHeaderFields(f: readonly string[]): void {
  if (f.length % 2 !== 0) throw new HostcallError('malformed header list')
  for (let i = 0; i < f.length; i += 2) {
    if (!HEADER_NAME.test(f[i]!)) throw new HostcallError('invalid header name')
    if (BAD_HEADER_VALUE.test(f[i + 1]!)) throw new HostcallError('invalid header value')
  }
}

function flatToPairs(s: string): [string, string][] {
  if (s === '') return []
  const f = s.split(SEP)
  checkHeaderFields(f)
  const out: [string, string][] = []
  for (let i = 0; i < f.length; i += 2) out.push([f[i]!, f[i + 1]!])
  return out
}

function streamOf(t: HostcallTarget): StreamState {
  const s = t.current
  if (!s) throw new HostcallError('no request is in progress')
  return s
}

/**
 * Builds the `h` object in `ctx`. The returned handle is owned by the caller.
 */
export function createHostcalls(ctx: QuickJSContext, env: HostcallEnv, target: HostcallTarget): QuickJSHandle {
  const h = ctx.newObject()
  const def = (name: string, fn: (...args: QuickJSHandle[]) => QuickJSHandle | undefined) => {
    const f = ctx.newFunction(name, fn)
    ctx.setProp(h, name, f)
    f.dispose()
  }
  const g = env.grants
  const str = (x: QuickJSHandle) => ctx.getString(x)
  const num = (x: QuickJSHandle) => ctx.getNumber(x)

  // Plumbing every filter gets: how an async hook reports its outcome.
  // The hook call is named by the number the host passed in: a promise job may run during
  // another request's turn, and a stale one (its request failed or ended) settles nothing.
  def('settle', (call, status) => {
    const st = target.pendingCall(num(call))
    if (st && st.settled === undefined && st.failed === undefined) st.settled = num(status)
    return undefined
  })
  def('fail', (call, name, message, stack) => {
    const st = target.pendingCall(num(call))
    if (st && st.settled === undefined && st.failed === undefined) st.failed = { name: str(name), message: str(message), stack: str(stack) }
    return undefined
  })

  if (g.has('headers:read') || g.has('headers:write')) {
    def('hget', (kind) => {
      const s = streamOf(target).stream
      const k = num(kind)
      target.noteHeaderRead(k)
      const map = k === 0 ? s.requestHeaders : k === 1 ? s.responseHeaders : k === 2 ? s.requestTrailers : s.responseTrailers
      return ctx.newString(map.flat.join(SEP))
    })
  }
  if (g.has('body:read')) {
    const bodyOf = (which: QuickJSHandle) => {
      const st = streamOf(target)
      const w = num(which)
      return st.bodies[w & 1] ?? (w === 0 ? st.stream.requestBody : st.stream.responseBody)
    }
    def('body', (which) => ctx.newArrayBuffer(bodyOf(which).slice().buffer))
    def('bodyText', (which) => ctx.newString(decoder.decode(bodyOf(which))))
  }
  if (g.has('body:write')) {
    def('setBody', (which, data, binary) => {
      const st = streamOf(target)
      let bytes: Uint8Array
      if (num(binary) === 1) {
        const lt = ctx.getArrayBuffer(data)
        bytes = lt.value.slice()
        lt.dispose()
      } else bytes = encoder.encode(str(data))
      if (bytes.length > env.maxBodyBytes) throw new HostcallError('body larger than the filter may set')
      st.bodies[num(which) & 1] = bytes
      st.hasEffects = true
      return undefined
    })
  }
  if (g.has('local-reply')) {
    def('reply', (status, body, binary, headers) => {
      const st = streamOf(target)
      let b: string | Uint8Array
      if (num(binary) === 1) {
        const lt = ctx.getArrayBuffer(body)
        b = lt.value.slice()
        lt.dispose()
      } else b = str(body)
      // The first reply of a turn wins, as on the stream itself.
      if (!st.reply) st.reply = { status: num(status), body: b, headers: flatToPairs(str(headers)) }
      st.hasEffects = true
      return undefined
    })
  }
  if (g.has('properties')) {
    def('prop', (path) => {
      const st = target.current
      const v = getProperty(splitPropertyPath(str(path)), { stream: st?.stream, pluginName: env.name, filterVersion: env.version })
      if (v === undefined) return undefined
      if (typeof v === 'string') return ctx.newString(v)
      // Binary property encodings (properties.ts): int64 LE, one-byte bools; maps are left out.
      if (v.length === 8) return ctx.newNumber(Number(new DataView(v.buffer, v.byteOffset, 8).getBigInt64(0, true)))
      if (v.length === 1) return v[0] ? ctx.true : ctx.false
      return undefined
    })
  }
  if (g.has('metrics')) {
    const apply = metricSink(env)
    def('metric', (op, name, value) => {
      apply(num(op), str(name), num(value))
      return undefined
    })
  }
  if (g.has('log')) {
    const levels = ['debug', 'info', 'warn', 'error'] as const
    def('log', (level, msg) => {
      const l = levels[num(level) & 3]!
      if (env.log.isEnabled(l)) env.log[l](str(msg).slice(0, 4096), { filter: env.name, requestId: target.current?.stream.info.requestId })
      return undefined
    })
  }
  if (g.has('shared-data')) {
    def('sget', (key) => {
      const r = env.services.sharedData.get(str(key))
      if (!r) return undefined
      return ctx.newString(`${r.cas}${SEP}${decoder.decode(r.value)}`)
    })
    def('sset', (key, value, cas) => (env.services.sharedData.set(str(key), encoder.encode(str(value)), num(cas)) ? ctx.true : ctx.false))
  }
  if (g.has('http-callout')) {
    def('call', (cluster, headers, body, timeoutMs) => {
      const st = streamOf(target)
      const c = str(cluster)
      if (!env.calloutClusters.has(c)) throw new HostcallError(`cluster "${c}" is not allowed for callouts`)
      const b = str(body)
      const t = num(timeoutMs)
      return target.startCallout(st, c, flatToPairs(str(headers)), b === '' ? undefined : encoder.encode(b), Number.isFinite(t) && t > 0 ? Math.min(t, 60_000) : 5000)
    })
  }
  return h
}

/**
 * Applies filter metric updates (`op` 0 increment, 1 set, 2 observe) to the filter's
 * `GuestMetrics`; ids are resolved once per name. Throws a TypeError-named error on misuse.
 */
export function metricSink(env: HostcallEnv): (op: number, name: string, value: number) => void {
  const TYPES = [MetricType.Counter, MetricType.Gauge, MetricType.Histogram]
  const ids = TYPES.map(() => new Map<string, number>())
  return (op, name, value) => {
    const byName = ids[op]
    if (byName === undefined) throw new HostcallError('unknown metric operation')
    let id = byName.get(name)
    if (id === undefined) {
      id = env.metrics.define(TYPES[op]!, name)
      if (id < 0) throw new HostcallError(`metric "${name}" cannot be defined (name taken by another type, or too many metrics)`)
      byName.set(name, id)
    }
    if (!Number.isFinite(value)) throw new HostcallError('metric value must be a finite number')
    const r = op === 0 ? env.metrics.increment(id, BigInt(Math.trunc(value))) : env.metrics.record(id, BigInt(Math.trunc(value)))
    if (r !== 0) throw new HostcallError(`metric "${name}": invalid update`)
  }
}

/** Encodes a callout response for the prelude: flat headers joined by U+0001, U+0002, body text. */
export function encodeCalloutResponse(headers: readonly [string, string][], body: Uint8Array): string {
  const flat: string[] = []
  for (const [k, v] of headers) flat.push(k, v)
  return `${flat.join(SEP)}\u0002${body.length ? decoder.decode(body) : ''}`
}

export { EMPTY as EMPTY_BYTES }
