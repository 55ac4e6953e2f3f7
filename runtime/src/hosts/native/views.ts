/**
 * The JS filter API (the same one QuickJS filters get, see docs/quickjs-filters.md) over a
 * live `HttpStream`, for trusted native filters. Changes apply to the stream at once: native
 * code is trusted and in-process, so there is no boundary to batch across.
 *
 * Views are made per request (a native hook may `await`, and its continuation must still see
 * its own request); capabilities gate which methods exist, exactly as in QuickJS.
 */
import type { Capability, HttpStream } from '../../pipeline/filter.ts'
import type { HeaderMap } from '../../pipeline/header-map.ts'
import { BAD_HEADER_VALUE } from '../../pipeline/header-syntax.ts'
import type { HostServices } from '../host-services.ts'
import type { Logger } from '../../observability/logger.ts'
import { getProperty, splitPropertyPath } from '../properties.ts'
import { MetricType } from '../wasm/abi.ts'
import type { GuestMetrics } from '../wasm/guest-metrics.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Everything the views need that does not change per request; built once per factory. */
export interface NativeEnv {
  readonly name: string
  readonly version: string | undefined
  readonly grants: ReadonlySet<Capability>
  readonly services: HostServices
  readonly log: Logger
  readonly metrics: GuestMetrics
  readonly calloutClusters: ReadonlySet<string>
  readonly config: unknown
}

function check(s: string, what: string): string {
  if (BAD_HEADER_VALUE.test(s)) throw new TypeError(`invalid header ${what}`)
  return s
}

/** Which map of the stream a view reads: request/response headers/trailers. */
const REQ_HEADERS = 0
const RESP_HEADERS = 1
const REQ_TRAILERS = 2
const RESP_TRAILERS = 3

function mapOf(s: HttpStream, which: number): HeaderMap {
  switch (which) {
    case REQ_HEADERS:
      return s.requestHeaders
    case RESP_HEADERS:
      return s.responseHeaders
    case REQ_TRAILERS:
      return s.requestTrailers
    default:
      return s.responseTrailers
  }
}

/**
 * A header map as filters see it (names are case-insensitive). Capabilities decide which
 * methods exist, as in QuickJS: one class per grant (made per request, so no per-request
 * closures or bound functions), the methods of the others simply absent.
 */
class HeaderAccess {
  readonly #s: HttpStream
  readonly #which: number
  constructor(s: HttpStream, which: number) {
    this.#s = s
    this.#which = which
  }
  protected map(): HeaderMap {
    return mapOf(this.#s, this.#which)
  }
  get size(): number {
    return this.map().size
  }
}

class ReadableHeaders extends HeaderAccess {
  get(name: string): string | undefined {
    return this.map().get(String(name).toLowerCase())
  }
  getAll(name: string): string[] {
    return this.map().getAll(String(name).toLowerCase())
  }
  has(name: string): boolean {
    return this.get(name) !== undefined
  }
  entries(): [string, string][] {
    return [...this.map().entries()]
  }
  keys(): string[] {
    return this.entries().map((e) => e[0])
  }
}

class WritableHeaders extends HeaderAccess {
  set(name: string, value: unknown): void {
    this.map().set(check(String(name).toLowerCase(), 'name'), check(String(value), 'value'))
  }
  add(name: string, value: unknown): void {
    this.map().add(check(String(name).toLowerCase(), 'name'), check(String(value), 'value'))
  }
  remove(name: string): boolean {
    return this.map().remove(String(name))
  }
}

/** Both grants: the read methods, plus the write methods taken from WritableHeaders. */
export class HeadersView extends ReadableHeaders {
  declare set: WritableHeaders['set']
  declare add: WritableHeaders['add']
  declare remove: WritableHeaders['remove']
}
for (const k of ['set', 'add', 'remove'] as const) {
  Object.defineProperty(HeadersView.prototype, k, Object.getOwnPropertyDescriptor(WritableHeaders.prototype, k)!)
}

const NO_HEADERS = Object.freeze({}) as HeadersView

/** The view class for a grant. */
function headersClass(grants: ReadonlySet<Capability>): (new (s: HttpStream, which: number) => HeadersView) | undefined {
  const read = grants.has('headers:read')
  const write = grants.has('headers:write')
  if (read && write) return HeadersView
  if (read) return ReadableHeaders as new (s: HttpStream, which: number) => HeadersView
  if (write) return WritableHeaders as unknown as new (s: HttpStream, which: number) => HeadersView
  return undefined
}

/** The request or the response of one stream. */
export class MessageView {
  readonly headers: HeadersView
  readonly trailers: HeadersView
  readonly #stream: HttpStream
  readonly #isRequest: boolean
  constructor(stream: HttpStream, isRequest: boolean, grants: ReadonlySet<Capability>) {
    this.#stream = stream
    this.#isRequest = isRequest
    const H = headersClass(grants)
    this.headers = H ? new H(stream, isRequest ? REQ_HEADERS : RESP_HEADERS) : NO_HEADERS
    this.trailers = H ? new H(stream, isRequest ? REQ_TRAILERS : RESP_TRAILERS) : NO_HEADERS
  }
  #h(): HeaderMap {
    return this.#isRequest ? this.#stream.requestHeaders : this.#stream.responseHeaders
  }
  get method(): string | undefined {
    return this.#h().get(':method')
  }
  get path(): string | undefined {
    return this.#h().get(':path')
  }
  get authority(): string | undefined {
    return this.#h().get(':authority')
  }
  get scheme(): string | undefined {
    return this.#h().get(':scheme')
  }
  get status(): number | undefined {
    const s = this.#h().get(':status')
    return s === undefined ? undefined : Number(s)
  }
  get body(): Uint8Array {
    return (this.#isRequest ? this.#stream.requestBody : this.#stream.responseBody).slice()
  }
  text(): string {
    return decoder.decode(this.#isRequest ? this.#stream.requestBody : this.#stream.responseBody)
  }
  json(): unknown {
    return JSON.parse(this.text())
  }
  setBody(b: unknown): void {
    const bytes =
      typeof b === 'string' ? encoder.encode(b) : b instanceof Uint8Array ? b.slice() : b instanceof ArrayBuffer ? new Uint8Array(b.slice(0)) : encoder.encode(JSON.stringify(b))
    if (this.#isRequest) this.#stream.requestBody = bytes
    else this.#stream.responseBody = bytes
  }
}

/** Callout response as filters see it. */
export interface CalloutResult {
  status: number
  headers: { get(n: string): string | undefined; getAll(n: string): string[]; entries(): [string, string][] }
  body: string
}

/** The `ctx` a hook receives. */
export interface FilterContext {
  readonly filterName: string
  readonly config: unknown
  readonly request: MessageView
  readonly response: MessageView
  endOfStream: boolean
  bodySize: number
  reply?: (status: number, body?: unknown, headers?: Record<string, string> | [string, string][]) => number
  property?: (path: string | string[]) => string | number | boolean | undefined
  metrics?: { increment(name: string, by?: number): void; set(name: string, v: number): void; observe(name: string, v: number): void }
  log?: { debug(...a: unknown[]): void; info(...a: unknown[]): void; warn(...a: unknown[]): void; error(...a: unknown[]): void }
  sharedData?: { get(key: string): { value: string; cas: number } | undefined; set(key: string, value: string, cas?: number): boolean }
  httpCall?: (cluster: string, opts?: { method?: string; path?: string; headers?: Record<string, string> | [string, string][]; body?: unknown; timeoutMs?: number }) => Promise<CalloutResult>
}

function pairs(hs: Record<string, string> | [string, string][] | undefined | null): [string, string][] {
  if (hs === undefined || hs === null) return []
  const list = Array.isArray(hs) ? hs : Object.entries(hs)
  return list.map(([k, v]) => [check(String(k).toLowerCase(), 'name'), check(String(v), 'value')])
}

function pairsView(list: [string, string][]): CalloutResult['headers'] {
  return {
    get: (n) => list.find((p) => p[0] === String(n).toLowerCase())?.[1],
    getAll: (n) => list.filter((p) => p[0] === String(n).toLowerCase()).map((p) => p[1]),
    entries: () => list.map((p) => [p[0], p[1]]),
  }
}

/** Builds the per-request `ctx` (and its request/response views) for `stream`. */
export function createContext(env: NativeEnv, stream: HttpStream): FilterContext {
  const g = env.grants
  const ctx: FilterContext = {
    filterName: env.name,
    config: env.config,
    request: new MessageView(stream, true, g),
    response: new MessageView(stream, false, g),
    endOfStream: false,
    bodySize: 0,
  }
  if (g.has('local-reply')) {
    ctx.reply = (status, body, headers) => {
      const hs = pairs(headers)
      let b: string | Uint8Array
      if (body === undefined || body === null) b = ''
      else if (typeof body === 'string') b = body
      else if (body instanceof Uint8Array) b = body
      else if (body instanceof ArrayBuffer) b = new Uint8Array(body)
      else {
        if (!hs.some((p) => p[0] === 'content-type')) hs.push(['content-type', 'application/json'])
        b = JSON.stringify(body)
      }
      stream.sendLocalReply(status | 0, b, hs)
      return 0
    }
  }
  if (g.has('properties')) {
    ctx.property = (path) => {
      const v = getProperty(Array.isArray(path) ? path.map(String) : splitPropertyPath(String(path)), { stream, pluginName: env.name, filterVersion: env.version })
      if (v === undefined || typeof v === 'string') return v
      if (v.length === 8) return Number(new DataView(v.buffer, v.byteOffset, 8).getBigInt64(0, true))
      if (v.length === 1) return v[0] !== 0
      return undefined
    }
  }
  if (g.has('metrics')) ctx.metrics = metricsApi(env)
  if (g.has('log')) {
    const at = (l: 'debug' | 'info' | 'warn' | 'error') => (...a: unknown[]) => {
      if (env.log.isEnabled(l)) env.log[l](a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ').slice(0, 4096), { filter: env.name, requestId: stream.info.requestId })
    }
    ctx.log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
  }
  if (g.has('shared-data')) {
    ctx.sharedData = {
      get: (key) => {
        const r = env.services.sharedData.get(String(key))
        return r ? { cas: r.cas, value: decoder.decode(r.value) } : undefined
      },
      set: (key, value, cas = 0) => env.services.sharedData.set(String(key), encoder.encode(String(value)), Number(cas)),
    }
  }
  if (g.has('http-callout')) {
    ctx.httpCall = async (cluster, opts = {}) => {
      const c = String(cluster)
      if (!env.calloutClusters.has(c)) throw new TypeError(`cluster "${c}" is not allowed for callouts`)
      const headers: [string, string][] = [[':method', String(opts.method ?? 'GET')], [':path', String(opts.path ?? '/')], ...pairs(opts.headers)]
      const body = opts.body === undefined ? undefined : encoder.encode(typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body))
      const t = Number(opts.timeoutMs ?? 5000)
      const r = await env.services.httpCall({ cluster: c, headers, body, timeoutMs: Number.isFinite(t) && t > 0 ? Math.min(t, 60_000) : 5000 })
      const view = pairsView(r.headers)
      return { status: Number(view.get(':status')), headers: view, body: decoder.decode(r.body) }
    }
  }
  return Object.seal(ctx)
}

const metricApis = new WeakMap<NativeEnv, NonNullable<FilterContext['metrics']>>()

/** One metrics API per filter: metric ids resolved once per name, shared by every request. */
function metricsApi(env: NativeEnv): NonNullable<FilterContext['metrics']> {
  let api = metricApis.get(env)
  if (api) return api
  const ids = new Map<string, number>()
  const TYPES = [MetricType.Counter, MetricType.Gauge, MetricType.Histogram]
  const id = (op: number, name: string): number => {
    const key = `${op}:${name}`
    let i = ids.get(key)
    if (i === undefined) {
      i = env.metrics.define(TYPES[op]!, name)
      if (i < 0) throw new TypeError(`metric "${name}" cannot be defined (name taken by another type, or too many metrics)`)
      ids.set(key, i)
    }
    return i
  }
  const upd = (op: number, name: string, v: number) => {
    if (!Number.isFinite(v)) throw new TypeError('metric value must be a finite number')
    const i = id(op, String(name))
    const r = op === 0 ? env.metrics.increment(i, BigInt(Math.trunc(v))) : env.metrics.record(i, BigInt(Math.trunc(v)))
    if (r !== 0) throw new TypeError(`metric "${name}": invalid update`)
  }
  api = Object.freeze({
    increment: (name: string, by = 1) => upd(0, name, Number(by)),
    set: (name: string, v: number) => upd(1, name, Number(v)),
    observe: (name: string, v: number) => upd(2, name, Number(v)),
  })
  metricApis.set(env, api)
  return api
}
