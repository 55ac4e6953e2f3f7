/**
 * In-proc mode: the same routes and filter chains as the edge and sidecar modes, run by a
 * Node app on its own `node:http` requests. A matching route's filters run around the
 * app's handler: request phases before it (a filter may answer instead of the app), and
 * response phases on what the app writes. Routes with a direct response or redirect are
 * answered by the pipeline; requests no route matches go to the app unfiltered.
 *
 * With request-body filters, the app gets the filtered body as `req.body` (a Buffer) and
 * finds the request stream already consumed.
 *
 * @example
 * import http from 'node:http'
 * import { createInProcPipeline } from '@omnirelay/runtime'
 * const omni = await createInProcPipeline('omnirelay.yaml')
 * http.createServer(omni.wrap((req, res) => res.end('hello'))).listen(3000)
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { loadConfigFile } from '../config/load.ts'
import type { ProxyConfig } from '../config/types.ts'
import { validateConfig } from '../config/validate.ts'
import type { HostServices, SharedData, SharedQueues } from '../hosts/host-services.ts'
import { createLogger, type Logger } from '../observability/logger.ts'
import { MetricsRegistry } from '../observability/metrics.ts'
import { ProxyMetrics, statusClass } from '../observability/proxy-metrics.ts'
import { NO_FILTERS, retiredFactories, type BuiltFilters } from '../pipeline/build-filters.ts'
import { buildFiltersWithout } from '../pipeline/build-without-revoked.ts'
import { pollerForConfig } from '../bundles/revocation-poller.ts'
import { findRevokedFilters, type RevokedFilters } from '../bundles/revoked-filters.ts'
import { PipelineRun, type PipelineSink } from '../pipeline/executor.ts'
import { HeaderMap } from '../pipeline/header-map.ts'
import type { LocalReply } from '../pipeline/local-reply.ts'
import { Phase } from '../pipeline/phases.ts'
import { MutableStreamInfo, PipelineStream } from '../pipeline/stream.ts'
import { normalizeHost } from '../routing/route-table.ts'
import { createClusterManager, createHttpCaller } from '../upstream/index.ts'
import { forwardableTrailers } from '../upstream/request-trailers.ts'
import { connectionOf } from '../server/connection.ts'
import { Action, Snapshot, type ListenerState, type RouteData } from '../server/snapshot.ts'
import { randomUUID } from 'node:crypto'

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void

export interface InProcOptions {
  /** Which listener's routes apply (default: the first listener in the config). */
  listener?: string
  /** Directory for relative paths when the config is an object (default: cwd). */
  baseDir?: string
  log?: Logger
  metrics?: MetricsRegistry
}

export interface InProcPipeline {
  /** Connect/Express-style middleware. */
  middleware: Middleware
  /** Wraps a plain `node:http` request handler. */
  wrap(handler: NodeHandler): NodeHandler
  readonly metrics: MetricsRegistry
  /** 1, then one more each time revoked filters were taken out (config `registry`). */
  readonly epoch: number
  close(): Promise<void>
}

const EMPTY = new Uint8Array(0)

/**
 * Builds the filters of a config (file path or object) for use inside an app.
 * @throws ConfigError for an invalid config or a filter that does not build
 */
export async function createInProcPipeline(configOrPath: string | object, opts: InProcOptions = {}): Promise<InProcPipeline> {
  const config: ProxyConfig = typeof configOrPath === 'string' ? await loadConfigFile(configOrPath) : validateConfig(configOrPath, opts.baseDir ?? process.cwd())
  const log = opts.log ?? createLogger({ level: config.logLevel })
  const metrics = opts.metrics ?? new MetricsRegistry()
  const pm = new ProxyMetrics(metrics)
  const clusters = createClusterManager(config.clusters, { log, metrics })
  const shared = config.filters.length ? await import('../hosts/shared-state/index.ts') : undefined
  const services: HostServices = {
    log,
    metrics,
    httpCall: createHttpCaller(clusters),
    sharedData: shared?.createSharedData() as SharedData,
    sharedQueues: shared?.createSharedQueues() as SharedQueues,
    epoch: 1,
    allowNative: config.allowNative,
  }
  // The registry's revocation list, as in the proxy: enforced at build; a change that covers
  // running filters rebuilds them as stand-ins (their failure policy applies).
  let epoch = 1
  let revoked: RevokedFilters = new Map()
  let rebuilding: Promise<void> = Promise.resolve()
  const poller = pollerForConfig(config, log, metrics, () => {
    rebuilding = rebuilding.then(async () => {
      const next = await findRevokedFilters(config.filters, config.baseDir, poller!.list)
      if (next.size === revoked.size && [...next.keys()].every((k) => revoked.has(k))) return
      const built = await buildFiltersWithout(config, { ...services, epoch: epoch + 1 }, filters, next, { revocations: poller!.list })
      const old = snap
      snap = new Snapshot(++epoch, config, built, clusters, pm)
      state = snap.listeners.get(listenerName)!
      const retired = retiredFactories(filters, built)
      filters = built
      revoked = next
      log.error('revoked filters taken out of the in-proc pipeline', { filters: Object.fromEntries(next), epoch })
      old.retire(() => void Promise.allSettled(retired.map((f) => f.close())))
    }).catch((e: unknown) => log.error('rebuilding without revoked filters failed', { err: e }))
    return rebuilding
  })
  await poller?.loadPersisted()
  let filters: BuiltFilters = NO_FILTERS
  try {
    filters = await buildFiltersWithout(config, services, NO_FILTERS, revoked, poller ? { revocations: poller.list } : {})
  } catch (e) {
    await clusters.close()
    throw e
  }
  let snap = new Snapshot(1, config, filters, clusters, pm)
  const listenerName = opts.listener ?? config.listeners[0]!.name
  let state = snap.listeners.get(listenerName)
  if (!state) {
    await clusters.close()
    await Promise.allSettled([...filters.values()].map((b) => b.entry.factory.close()))
    throw new Error(`no listener "${listenerName}" in config`)
  }
  poller?.start()
  const run = (req: IncomingMessage, res: ServerResponse, app: () => void) => new InProcExchange(state!, config, req, res, app).begin()
  return {
    middleware: (req, res, next) => run(req, res, () => next()),
    wrap: (handler) => (req, res) => run(req, res, () => handler(req, res)),
    metrics,
    get epoch() {
      return epoch
    },
    async close() {
      await poller?.stop()
      await rebuilding
      // A filter's callout still running gets the drain deadline, like in the proxy.
      await clusters.close(config.limits.drainTimeoutMs)
      await Promise.allSettled([...filters.values()].map((b) => b.entry.factory.close()))
    },
  }
}

/** One app request through the pipeline; the app handler plays the upstream. */
class InProcExchange implements PipelineSink {
  readonly #state: ListenerState
  readonly #config: ProxyConfig
  readonly #req: IncomingMessage
  readonly #res: ServerResponse
  readonly #app: () => void
  #rd!: RouteData
  #run!: PipelineRun
  #start = performance.now()
  #writeHead!: ServerResponse['writeHead']
  #write!: ServerResponse['write']
  #end!: ServerResponse['end']
  #headDone = false
  #replied = false
  #queue: [Uint8Array, boolean][] = []
  #bodyChunks: Uint8Array[] = []

  constructor(state: ListenerState, config: ProxyConfig, req: IncomingMessage, res: ServerResponse, app: () => void) {
    this.#state = state
    this.#config = config
    this.#req = req
    this.#res = res
    this.#app = app
  }

  begin(): void {
    const req = this.#req
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const method = req.method ?? 'GET'
    const authority = req.headers.host ?? ''
    const route = this.#state.table.match(normalizeHost(authority), q < 0 ? url : url.slice(0, q), method, req.rawHeaders)
    if (!route) {
      this.#app()
      return
    }
    const rd = (this.#rd = route.data)
    rd.metrics.requests.inc()
    const snap = this.#state.snapshot
    snap.active++
    const info = new MutableStreamInfo()
    info.requestId = typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : randomUUID()
    info.startMonotonic = this.#start
    info.startTime = Date.now()
    info.protocol = req.httpVersionMajor === 2 ? 'HTTP/2' : 'HTTP/1.1'
    info.scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'
    const conn = connectionOf(req)
    info.downstreamRemoteAddress = conn.remoteAddress
    info.downstreamRemotePort = conn.remotePort
    info.downstreamLocalAddress = conn.localAddress
    info.downstreamLocalPort = conn.localPort
    info.epoch = snap.epoch
    info.routeName = rd.name
    info.clusterName = 'in-proc'
    const flat = [':method', method, ':path', url, ':authority', authority, ':scheme', info.scheme]
    const raw = req.rawHeaders
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!.toLowerCase()
      if (n !== 'host') flat.push(n, raw[i + 1]!)
    }
    const stream = new PipelineStream({ info, requestHeaders: new HeaderMap(flat) })
    const run = (this.#run = new PipelineRun(rd.chain, stream, this, this.#config.limits))
    const res = this.#res
    res.once('close', () => {
      run.finish()
      rd.metrics.responses[statusClass(res.statusCode)]!.inc()
      rd.metrics.duration.observe((performance.now() - this.#start) / 1000)
      snap.release()
    })
    this.#intercept()
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined
    if (hasBody && rd.chain.phases & Phase.RequestBody) {
      req.on('data', (c: Uint8Array) => run.requestData(c, false))
      req.on('end', () => run.requestData(EMPTY, true))
    } else if (hasBody && rd.chain.phases & Phase.RequestTrailers) {
      // The app reads the body itself: this listener comes before any of the app's, so the
      // trailers it finds at 'end' are the filtered ones (a filter that pauses here is too late).
      req.once('end', () => this.#filterTrailers())
    }
    run.start(!hasBody)
  }

  /** Routes the app's writes through the response phases. */
  #intercept(): void {
    const res = this.#res
    this.#writeHead = res.writeHead.bind(res)
    this.#write = res.write.bind(res)
    this.#end = res.end.bind(res)
    const self = this
    res.writeHead = function (status: number, a?: unknown, b?: unknown) {
      const headers = (typeof a === 'string' ? b : a) as OutgoingHttpHeaders | string[] | undefined
      if (Array.isArray(headers)) for (let i = 0; i < headers.length; i += 2) res.setHeader(headers[i]!, headers[i + 1]!)
      else if (headers) for (const [k, v] of Object.entries(headers)) if (v !== undefined) res.setHeader(k, v)
      if (self.#replied) return res
      res.statusCode = status
      const flat: string[] = []
      for (const [k, v] of Object.entries(res.getHeaders())) {
        if (Array.isArray(v)) for (const x of v) flat.push(k, String(x))
        else if (v !== undefined) flat.push(k, String(v))
      }
      self.#run.responseHeaders(status, flat, false)
      return res
    } as ServerResponse['writeHead']
    res.write = function (chunk: unknown, enc?: unknown, cb?: unknown) {
      if (!res.headersSent && !self.#headDone && !self.#replied && !self.#sawHead) res.writeHead(res.statusCode)
      self.#data(toBytes(chunk, enc), false)
      if (typeof enc === 'function') (enc as () => void)()
      else if (typeof cb === 'function') (cb as () => void)()
      return true
    } as ServerResponse['write']
    res.end = function (chunk?: unknown, enc?: unknown, cb?: unknown) {
      if (typeof chunk === 'function') {
        cb = chunk
        chunk = undefined
      }
      if (!res.headersSent && !self.#headDone && !self.#replied && !self.#sawHead) {
        if (chunk !== undefined && !res.hasHeader('content-length')) res.setHeader('content-length', String(toBytes(chunk, enc).length))
        res.writeHead(res.statusCode)
      }
      self.#data(chunk === undefined ? EMPTY : toBytes(chunk, enc), true)
      if (typeof enc === 'function') (enc as () => void)()
      else if (typeof cb === 'function') (cb as () => void)()
      return res
    } as ServerResponse['end']
  }

  get #sawHead(): boolean {
    return this.#run.stream.responseHeaders.size > 0
  }

  #data(chunk: Uint8Array, end: boolean): void {
    if (this.#replied) return
    if (this.#rd.chain.phases & Phase.ResponseBody) {
      this.#run.responseData(chunk, end)
      return
    }
    if (!this.#headDone) {
      this.#queue.push([chunk, end])
      return
    }
    this.responseData(chunk, end)
  }

  // ---- PipelineSink ----

  requestHeadersDone(): void {
    const rd = this.#rd
    const run = this.#run
    if (rd.action === Action.Direct) {
      const d = rd.direct!
      run.responseHeaders(d.status, d.headers.slice(), false)
      if (!run.replied) run.responseData(d.body, true)
      return
    }
    if (rd.action === Action.Redirect) {
      const r = rd.redirect!
      const url = this.#req.url ?? '/'
      const q = url.indexOf('?')
      const loc = `${r.scheme ?? run.stream.info.scheme}://${r.host ?? this.#req.headers.host ?? ''}${r.path ?? (q < 0 ? url : url.slice(0, q))}${r.stripQuery || q < 0 ? '' : url.slice(q)}`
      run.responseHeaders(r.status, ['location', loc], false)
      if (!run.replied) run.responseData(EMPTY, true)
      return
    }
    // Reflect what the filters changed into the request the app sees.
    const req = this.#req
    const h = run.stream.requestHeaders
    req.method = h.get(':method') ?? req.method
    req.url = h.get(':path') ?? req.url
    const headers: Record<string, string | string[]> = {}
    const raw: string[] = []
    for (const [k, v] of h.entries()) {
      if (k.charCodeAt(0) === 58) continue
      raw.push(k, v)
      const cur = headers[k]
      headers[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : k === 'set-cookie' ? [cur, v] : `${cur}, ${v}`
    }
    const authority = h.get(':authority')
    if (authority) {
      headers.host = authority
      raw.unshift('host', authority)
    }
    req.headers = headers
    ;(req as { rawHeaders: string[] }).rawHeaders = raw
    if (!(rd.chain.phases & Phase.RequestBody)) this.#app()
  }

  requestData(chunk: Uint8Array, end: boolean): void {
    if (chunk.length) this.#bodyChunks.push(chunk)
    if (!end) return
    ;(this.#req as IncomingMessage & { body?: Buffer }).body = Buffer.concat(this.#bodyChunks)
    this.#bodyChunks = []
    // The app gets the body and the trailers together: after the RequestTrailers phase.
    if (!this.#filterTrailers()) this.#app()
  }

  /**
   * Runs the RequestTrailers phase on the request's trailers, when there are some and a filter
   * subscribed; false when there is nothing to run. `requestTrailersDone` takes it from there.
   */
  #filterTrailers(): boolean {
    const raw = this.#req.rawTrailers
    const run = this.#run
    if (raw.length === 0 || !(this.#rd.chain.phases & Phase.RequestTrailers) || run.replied || run.finished) return false
    run.stream.requestTrailers.replaceAll(HeaderMap.fromRaw(raw).flat.slice())
    run.requestTrailers()
    return true
  }

  /** The app plays the upstream: it gets the filtered trailers, under the upstream's rule for them. */
  requestTrailersDone(): void {
    const req = this.#req as IncomingMessage & { trailers: Record<string, string>; rawTrailers: string[] }
    const trailers: Record<string, string> = {}
    const raw: string[] = []
    for (const [k, v] of forwardableTrailers(this.#run.stream.requestTrailers.flat)) {
      raw.push(k, v)
      trailers[k] = trailers[k] === undefined ? v : `${trailers[k]}, ${v}`
    }
    req.trailers = trailers
    req.rawTrailers = raw
    if (this.#rd.chain.phases & Phase.RequestBody) this.#app()
  }

  responseHeadersDone(): void {
    const res = this.#res
    const h = this.#run.stream.responseHeaders
    const status = Number(h.get(':status')) || 200
    for (const name of res.getHeaderNames()) res.removeHeader(name)
    const wire = h.toWire()
    if (this.#rd.chain.phases & Phase.ResponseBody) removeFlat(wire, 'content-length')
    this.#writeHead(status, wire as unknown as OutgoingHttpHeaders)
    this.#headDone = true
    const q = this.#queue
    this.#queue = []
    for (const [c, e] of q) this.responseData(c, e)
  }

  responseData(chunk: Uint8Array, end: boolean): void {
    if (!this.#headDone) {
      this.#queue.push([chunk, end])
      return
    }
    if (end) this.#end(chunk.length ? chunk : undefined)
    else if (chunk.length) this.#write(chunk)
  }

  responseTrailersDone(): void {
    this.#end()
  }

  localReply(reply: LocalReply): void {
    const res = this.#res
    this.#replied = true
    if (res.headersSent) {
      res.destroy()
      return
    }
    for (const name of res.getHeaderNames()) res.removeHeader(name)
    const h: string[] = []
    for (const [k, v] of reply.headers) h.push(k, v)
    h.push('content-length', String(reply.body.length))
    this.#writeHead(reply.status, h as unknown as OutgoingHttpHeaders)
    this.#end(reply.body)
  }
}

function toBytes(chunk: unknown, enc: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof enc === 'string' ? (enc as BufferEncoding) : 'utf8')
  return EMPTY
}

function removeFlat(flat: string[], name: string): void {
  for (let i = 0; i < flat.length; ) {
    if (flat[i] === name) flat.splice(i, 2)
    else i += 2
  }
}
