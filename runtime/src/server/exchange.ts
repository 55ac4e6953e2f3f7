/**
 * One downstream request, from route match to access log line: the proxy's hot path.
 *
 * Two paths share this object:
 * - no filters on the route: headers are rewritten in one pass and the bodies are piped
 *   both ways (no per-chunk work beyond counting bytes);
 * - filters: a `PipelineRun` drives the phases and this object is its `PipelineSink`.
 *
 * Works for HTTP/1.1 (`IncomingMessage`/`ServerResponse`) and HTTP/2 through node's
 * compatibility API (`Http2ServerRequest`/`Http2ServerResponse`), which share the
 * methods used here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { Limits } from '../config/types.ts'
import type { AccessLog } from '../observability/access-log.ts'
import type { Logger } from '../observability/logger.ts'
import { statusClass, type ProxyMetrics, type RouteMetrics } from '../observability/proxy-metrics.ts'
import { PipelineRun, type PipelineSink } from '../pipeline/executor.ts'
import type { StreamInfo } from '../pipeline/filter.ts'
import { HeaderMap } from '../pipeline/header-map.ts'
import { hostReply, type LocalReply } from '../pipeline/local-reply.ts'
import { Phase } from '../pipeline/phases.ts'
import { MutableStreamInfo, PipelineStream } from '../pipeline/stream.ts'
import { normalizeHost } from '../routing/route-table.ts'
import { UpstreamError, type Cluster, type UpstreamResponse } from '../upstream/types.ts'
import { AbortLatch } from './abort-latch.ts'
import { BodyFeed } from './body-feed.ts'
import { connectionOf, NO_CONNECTION, type Connection } from './connection.ts'
import { wallTime } from './clock.ts'
import { forwardRequestHeaders, forwardResponseHeaders, stripHopByHop, type ForwardOptions } from './forward-headers.ts'
import { Action, type ListenerState, type RouteData } from './snapshot.ts'

export type DownstreamRequest = IncomingMessage | Http2ServerRequest
export type DownstreamResponse = ServerResponse | Http2ServerResponse

/** What a listener shares with its requests. `state` is swapped on reload. */
export interface ServeContext {
  state: ListenerState
  readonly name: string
  readonly scheme: 'http' | 'https'
  readonly fwd: ForwardOptions
  readonly metrics: ProxyMetrics
  accessLog: AccessLog
  limits: Limits
  draining: boolean
  log?: Logger
}

const EMPTY = new Uint8Array(0)
const NO_TRAILERS: readonly string[] = []
/** Request bytes queued while a filter holds the request before reading downstream pauses. */
const QUEUE_HIGH_WATER = 64 * 1024

/**
 * The exchange hangs off its response and upstream body under this symbol, so the event
 * listeners below are shared module functions rather than closures made per request.
 */
const kEx = Symbol('omnirelay.exchange')
type Tagged<T> = T & { [kEx]?: Exchange }

function onResClose(this: Tagged<ServerResponse>): void {
  this[kEx]!.onClose()
}
function onResDrain(this: Tagged<ServerResponse>): void {
  this[kEx]!.ures?.body.resume()
}
function onBodyData(this: Tagged<Readable>, chunk: Uint8Array): void {
  const ex = this[kEx]!
  ex.bytesOut += chunk.length
  if (!ex.res.write(chunk)) this.pause()
}
function onBodyEnd(this: Tagged<Readable>): void {
  this[kEx]!.onBodyEnd()
}
function onBodyError(this: Tagged<Readable>, err: unknown): void {
  this[kEx]!.onUpstreamBodyError(err)
}

/** UpstreamError code -> downstream status. */
const UPSTREAM_STATUS: Record<string, number> = {
  no_healthy_upstream: 503,
  upstream_overflow: 503,
  upstream_connect_failure: 503,
  upstream_reset: 502,
  upstream_timeout: 504,
  upstream_idle_timeout: 504,
  unknown_cluster: 500,
  upstream_invalid_request: 400,
}

export function upstreamErrorReply(err: unknown): LocalReply {
  const code = err instanceof UpstreamError ? err.code : 'upstream_error'
  return hostReply(UPSTREAM_STATUS[code] ?? 502, code)
}

export function handleRequest(ctx: ServeContext, req: DownstreamRequest, res: DownstreamResponse): void {
  const ex = new Exchange(ctx, req, res)
  try {
    ex.begin()
  } catch (err) {
    // A bug of ours must cost one request, not the process: answer 500 and say so in the log.
    ctx.log?.error('request handling failed', { err, requestId: ex.requestId })
    ex.writeLocal(hostReply(500, 'internal_error'))
  }
}

class Exchange implements PipelineSink {
  readonly ctx: ServeContext
  readonly req: DownstreamRequest
  /** Typed as HTTP/1's response; the HTTP/2 compat response has the same methods used here. */
  readonly res: ServerResponse
  readonly state: ListenerState
  readonly startMono = performance.now()
  rd: RouteData | undefined
  m!: RouteMetrics
  cluster: Cluster | undefined
  clusterName: string | null = null
  conn: Connection = NO_CONNECTION
  requestId = ''
  authority = ''
  headers: string[] = []
  hasBody = false
  /** The downstream `Trailer` header: trailers were announced (HTTP/1.1 sends them only then). */
  trailerDecl: string | undefined = undefined
  /** Set while the RequestTrailers phase runs: hands its result to the upstream call. */
  trailersReady: ((t: readonly string[]) => void) | undefined = undefined
  ac: AbortLatch | undefined
  ures: UpstreamResponse | undefined
  run: PipelineRun | undefined
  feed: BodyFeed | undefined
  /** Filtered body chains: headers passed, upstream request waits for the first body bytes. */
  awaitingBody = false
  fwdMethod = ''
  fwdPath = ''
  ttfb = 0
  bytesIn = 0
  bytesOut = 0
  details: string | null = null
  upstreamEndpoint: string | null = null
  done = false

  constructor(ctx: ServeContext, req: DownstreamRequest, res: DownstreamResponse) {
    this.ctx = ctx
    this.req = req
    this.res = res as ServerResponse
    this.state = ctx.state
  }

  begin(): void {
    const { ctx, req, res, state } = this
    state.snapshot.active++
    ctx.metrics.activeRequests.inc()
    ;(res as Tagged<DownstreamResponse>)[kEx] = this
    res.on('close', onResClose)
    if (ctx.draining && res.shouldKeepAlive !== undefined) res.shouldKeepAlive = false

    const conn = (this.conn = connectionOf(req))
    const facts = forwardRequestHeaders(req.rawHeaders, conn.remoteAddress, ctx.scheme, ctx.fwd)
    this.headers = facts.headers
    this.authority = facts.authority
    this.requestId = facts.requestId
    this.trailerDecl = facts.trailer
    this.hasBody = req.httpVersionMajor === 2 ? !(req as Http2ServerRequest).stream.endAfterHeaders : facts.hasBody

    let url = req.url ?? '/'
    if (url.charCodeAt(0) !== 47 /* / */) url = this.absoluteForm(url)
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    const method = req.method ?? 'GET'
    const route = state.table.match(normalizeHost(this.authority), path, method, req.rawHeaders)
    if (route === undefined) {
      this.m = state.noRoute
      this.m.requests.inc()
      this.writeLocal(hostReply(404, 'no_route'))
      return
    }
    const rd = (this.rd = route.data)
    this.m = rd.metrics
    this.pickCluster(rd)
    this.m.requests.inc()

    if (rd.chain.entries.length === 0) {
      if (rd.action === Action.Direct) this.writeDirect(rd)
      else if (rd.action === Action.Redirect) this.writeLocal(this.redirectReply(rd))
      else this.forward(method, this.upstreamPath(rd, url), req as Readable)
      return
    }
    this.startPipeline(method, url)
  }

  /** `GET http://host/path` (absolute form, RFC 9112 §3.2.2): the URL's authority wins over Host. */
  absoluteForm(url: string): string {
    try {
      const u = new URL(url)
      if (u.host) this.authority = u.host
      return u.pathname + u.search
    } catch {
      return '/'
    }
  }

  pickCluster(rd: RouteData): void {
    if (rd.action === Action.Cluster) {
      this.cluster = rd.cluster
      this.clusterName = rd.clusterName
    } else if (rd.action === Action.Weighted) {
      const w = rd.weighted!
      const x = Math.random() * w.total
      let i = 0
      while (i < w.cumulative.length - 1 && w.cumulative[i]! <= x) i++
      this.cluster = w.clusters[i]
      this.clusterName = w.names[i]!
      this.m = w.metrics[i]!
    }
  }

  upstreamPath(rd: RouteData, url: string): string {
    if (rd.prefixRewrite === undefined || rd.prefix === undefined) return url
    return rd.prefixRewrite + url.slice(rd.prefix.length)
  }

  /** Sends the request upstream; `body` is the downstream stream, a feed of filtered bytes, or the whole filtered body. */
  forward(method: string, path: string, body: Readable | Uint8Array | null): void {
    const cluster = this.cluster
    if (cluster === undefined) {
      this.writeLocal(hostReply(500, 'unknown_cluster'))
      return
    }
    const headers = this.headers
    headers.push('host', this.rd!.hostRewrite ?? this.authority)
    this.ac = new AbortLatch()
    const hasBody = this.hasBody
    // Request trailers need a slower upstream path than undici's (see upstream/trailer-call.ts),
    // so only requests they can follow take it: announced on HTTP/1.1, or any HTTP/2 request
    // with a body to an HTTP/2 cluster (gRPC announces nothing). No body: one branch, no work.
    const trailers =
      hasBody && (this.trailerDecl !== undefined || (this.req.httpVersionMajor === 2 && cluster.config.http2)) ? this.trailerSource(headers) : undefined
    cluster
      .request({ method, path, headers, body: hasBody ? body : null, policy: this.rd!.policy, signal: this.ac.signal, trailers })
      .then(
        (ures) => this.onUpstreamSafe(ures),
        (err) => this.onUpstreamError(err),
      )
  }

  trailerSource(headers: string[]): () => readonly string[] | Promise<readonly string[]> {
    if (this.trailerDecl !== undefined) headers.push('trailer', this.trailerDecl)
    return () => this.upstreamTrailers()
  }

  /**
   * The downstream trailers for the upstream, asked for once the forwarded body has ended (so
   * after the body phases): through the RequestTrailers phase when a filter subscribed to it.
   * Both node servers (HTTP/1.1 and the HTTP/2 compat API) fill `rawTrailers` before 'end'.
   */
  upstreamTrailers(): readonly string[] | Promise<readonly string[]> {
    const raw = this.req.rawTrailers
    if (raw === undefined || raw.length === 0) return NO_TRAILERS
    const flat = new Array<string>(raw.length)
    for (let i = 0; i < raw.length; i += 2) {
      flat[i] = raw[i]!.toLowerCase()
      flat[i + 1] = raw[i + 1]!
    }
    const run = this.run
    if (run === undefined || !(this.rd!.chain.phases & Phase.RequestTrailers) || run.replied || run.finished) return flat
    run.stream.requestTrailers.replaceAll(flat)
    return new Promise((resolve) => {
      this.trailersReady = resolve
      run.requestTrailers()
    })
  }

  /** A response head we cannot relay (e.g. a header value HTTP/2 refuses) must not become an unhandled rejection. */
  onUpstreamSafe(ures: UpstreamResponse): void {
    try {
      this.onUpstream(ures)
    } catch (err) {
      this.ctx.log?.warn('upstream response could not be relayed', { err, requestId: this.requestId })
      ures.body.destroy()
      if (this.details === null) this.details = 'upstream_response_invalid'
      this.writeLocal(hostReply(502, 'upstream_response_invalid'))
    }
  }

  onUpstream(ures: UpstreamResponse): void {
    if (this.done || this.run?.replied) {
      ures.body.destroy()
      return
    }
    this.ures = ures
    this.upstreamEndpoint = ures.endpoint
    this.ttfb = performance.now()
    ;(ures.body as Tagged<Readable>)[kEx] = this
    ures.body.on('error', onBodyError)
    const run = this.run
    if (run === undefined) {
      const headers = forwardResponseHeaders(ures.headers, this.ctx.fwd.via)
      if (this.req.httpVersionMajor === 2) this.moveTrailersOnly(headers)
      this.res.writeHead(ures.statusCode, headers as unknown as Record<string, string>)
      this.pump(ures.body)
      return
    }
    run.responseHeaders(ures.statusCode, forwardResponseHeaders(ures.headers, this.ctx.fwd.via), false)
    if (run.replied) return
    const chain = this.rd!.chain
    if (chain.bodies) {
      ures.body.on('data', (c: Uint8Array) => run.responseData(c, false))
      ures.body.on('end', () => {
        const t = ures.trailers()
        if (t.length && chain.phases & Phase.ResponseTrailers) {
          run.stream.responseTrailers.replaceAll(t.slice())
          run.responseTrailers()
        } else {
          if (t.length) this.addTrailers(t)
          run.responseData(EMPTY, true)
        }
      })
    }
  }

  /** Pipes upstream body to downstream with backpressure, then trailers. */
  pump(body: Readable): void {
    body.on('data', onBodyData)
    body.on('end', onBodyEnd)
    this.res.on('drain', onResDrain)
  }

  onBodyEnd(): void {
    const t = this.ures!.trailers()
    const run = this.run
    if (run !== undefined && t.length && this.rd!.chain.phases & Phase.ResponseTrailers) {
      run.stream.responseTrailers.replaceAll(t.slice())
      run.responseTrailers()
      return
    }
    if (t.length) this.addTrailers(t)
    this.res.end()
  }

  /**
   * A gRPC "trailers-only" answer (status in the HEADERS frame that ends the stream) cannot
   * be re-sent as is through node's HTTP/2 compat API, which always follows the head with a
   * trailers frame; moving the status fields into that trailers frame is equivalent for
   * every gRPC client.
   */
  moveTrailersOnly(headers: string[]): void {
    let trailers: string[] | undefined
    for (let i = 0; i < headers.length; ) {
      const n = headers[i]!
      if (n === 'grpc-status' || n === 'grpc-message' || n === 'grpc-status-details-bin') {
        ;(trailers ??= []).push(n, headers[i + 1]!)
        headers.splice(i, 2)
      } else i += 2
    }
    if (trailers) this.addTrailers(trailers)
  }

  addTrailers(flat: readonly string[]): void {
    const o: Record<string, string> = {}
    for (let i = 0; i < flat.length; i += 2) {
      const k = flat[i]!
      if (k.charCodeAt(0) !== 58) o[k] = o[k] === undefined ? flat[i + 1]! : `${o[k]}, ${flat[i + 1]}`
    }
    this.res.addTrailers(o)
  }

  onUpstreamError(err: unknown): void {
    if (this.done || this.run?.replied) return
    const reply = upstreamErrorReply(err)
    if (this.run) this.run.stream.sendLocalReply(reply.status, reply.body, reply.headers, reply.details)
    else this.writeLocal(reply)
  }

  onUpstreamBodyError(_err: unknown): void {
    // Reset mid-body: the head is gone already, so the only honest signal is a reset.
    if (this.details === null) this.details = 'upstream_reset_mid_body'
    this.res.destroy()
  }

  writeDirect(rd: RouteData): void {
    const d = rd.direct!
    this.clusterName = null
    this.details = 'direct_response'
    const h = d.headers.slice()
    h.push('content-length', String(d.body.length))
    this.res.writeHead(d.status, h as unknown as Record<string, string>)
    this.bytesOut = d.body.length
    this.res.end(d.body)
  }

  redirectReply(rd: RouteData): LocalReply {
    const r = rd.redirect!
    const url = this.req.url ?? '/'
    const q = url.indexOf('?')
    const path = r.path ?? (q < 0 ? url : url.slice(0, q))
    const query = r.stripQuery || q < 0 ? '' : url.slice(q)
    const scheme = r.scheme ?? this.ctx.scheme
    const host = r.host ?? this.authority
    this.clusterName = null
    return { status: r.status, body: EMPTY, headers: [['location', `${scheme}://${host}${path}${query}`]], details: 'redirect' }
  }

  /** The host's own answer; resets the stream if the head already went out. */
  writeLocal(reply: LocalReply): void {
    const res = this.res
    if (this.details === null || reply.details === 'redirect') this.details = reply.details ?? null
    if (res.headersSent || this.done) {
      res.destroy()
      return
    }
    const h: string[] = []
    for (const [k, v] of reply.headers) h.push(k, v)
    h.push('content-length', String(reply.body.length))
    res.writeHead(reply.status, h as unknown as Record<string, string>)
    this.bytesOut += reply.body.length
    res.end(reply.body)
  }

  // ---- the filtered path ----

  startPipeline(method: string, url: string): void {
    const { req, ctx } = this
    const info = new MutableStreamInfo()
    info.requestId = this.requestId
    info.startMonotonic = this.startMono
    info.startTime = wallTime(this.startMono)
    info.protocol = req.httpVersionMajor === 2 ? 'HTTP/2' : 'HTTP/1.1'
    info.scheme = ctx.scheme
    const conn = this.conn
    info.downstreamRemoteAddress = conn.remoteAddress
    info.downstreamRemotePort = conn.remotePort
    info.downstreamLocalAddress = conn.localAddress
    info.downstreamLocalPort = conn.localPort
    if (ctx.scheme === 'https') info.tls = tlsInfo(req.socket as TLSSocket)
    info.epoch = this.state.snapshot.epoch
    info.routeName = this.rd!.name
    info.clusterName = this.clusterName ?? undefined
    const flat = [':method', method, ':path', this.upstreamPath(this.rd!, url), ':authority', this.authority, ':scheme', ctx.scheme]
    for (const x of this.headers) flat.push(x)
    const stream = new PipelineStream({ info, requestHeaders: new HeaderMap(flat) })
    const run = (this.run = new PipelineRun(this.rd!.chain, stream, this, ctx.limits))
    if (this.hasBody && this.rd!.chain.bodies) {
      req.on('data', (c: Uint8Array) => {
        this.bytesIn += c.length
        run.requestData(c, false)
        // A filter holds the request (e.g. an auth callout): stop reading rather than queue the upload.
        if (run.queuedRequestBytes > QUEUE_HIGH_WATER) req.pause()
      })
      req.on('end', () => run.requestData(EMPTY, true))
    }
    run.start(!this.hasBody)
  }

  requestHeadersDone(): void {
    const run = this.run!
    const rd = this.rd!
    if (rd.action === Action.Direct) {
      const d = rd.direct!
      this.details = 'direct_response'
      this.clusterName = null
      run.responseHeaders(d.status, d.headers.slice(), false)
      if (!run.replied) run.responseData(d.body, true)
      return
    }
    if (rd.action === Action.Redirect) {
      const r = this.redirectReply(rd)
      run.responseHeaders(r.status, ['location', r.headers[0]![1]], false)
      if (!run.replied) run.responseData(EMPTY, true)
      return
    }
    const h = run.stream.requestHeaders
    const method = h.get(':method') ?? 'GET'
    const path = h.get(':path') ?? '/'
    this.authority = h.get(':authority') ?? this.authority
    // Filters may have added connection-scoped headers (or `expect`): the same forwarding rule
    // as for downstream headers applies, else undici refuses the request.
    this.headers = stripHopByHop(h.toWire())
    if (!this.hasBody) return this.forward(method, path, null)
    if (!rd.chain.bodies) return this.forward(method, path, this.req as Readable)
    // Filters may change the body's length: undici frames it (length of the bytes, or chunked).
    removeHeader(this.headers, 'content-length')
    // Go upstream with the first filtered bytes: when they are the whole body (a filter
    // buffered it, or it was small), the bytes go as they are, replayable, so the cluster may
    // retry; otherwise the body streams through a feed.
    this.fwdMethod = method
    this.fwdPath = path
    this.awaitingBody = true
  }

  requestData(chunk: Uint8Array, end: boolean): void {
    if (this.awaitingBody) {
      this.awaitingBody = false
      if (end) return this.forward(this.fwdMethod, this.fwdPath, chunk)
      this.forward(this.fwdMethod, this.fwdPath, (this.feed = new BodyFeed(this.req as Readable)))
    }
    const feed = this.feed
    if (feed === undefined) return
    if (chunk.length) feed.pushChunk(chunk)
    if (end) feed.pushEnd()
  }

  requestTrailersDone(): void {
    const ready = this.trailersReady
    this.trailersReady = undefined
    ready?.(this.run!.stream.requestTrailers.toWire())
  }

  requestQueueDrained(): void {
    if (this.req.isPaused() && this.feed === undefined) this.req.resume()
  }

  responseHeadersDone(): void {
    const run = this.run!
    const h = run.stream.responseHeaders
    const status = Number(h.get(':status')) || 502
    const wire = h.toWire()
    if (this.rd!.chain.bodies) removeHeader(wire, 'content-length')
    if (this.ttfb === 0) this.ttfb = performance.now()
    this.res.writeHead(status, wire as unknown as Record<string, string>)
    if (this.ures && !this.rd!.chain.bodies) this.pump(this.ures.body)
    else if (this.ures) this.res.on('drain', onResDrain)
  }

  responseData(chunk: Uint8Array, end: boolean): void {
    const res = this.res
    if (chunk.length) {
      this.bytesOut += chunk.length
      if (!res.write(chunk)) this.ures?.body.pause()
    }
    if (end) res.end()
  }

  responseTrailersDone(): void {
    this.addTrailers(this.run!.stream.responseTrailers.flat)
    this.res.end()
  }

  localReply(reply: LocalReply): void {
    this.ac?.abort()
    this.ures?.body.destroy()
    this.writeLocal(reply)
  }

  // ---- completion ----

  onClose(): void {
    if (this.done) return
    this.done = true
    const { ctx, res } = this
    const aborted = !res.writableFinished
    if (aborted) {
      this.ac?.abort()
      this.ures?.body.destroy()
      if (this.details === null) this.details = 'downstream_disconnect'
    }
    this.run?.finish()
    const now = performance.now()
    // Nothing sent before the client left: log 0 (like nginx's 499, the status never existed).
    const status = aborted && !res.headersSent ? 0 : res.statusCode
    const m = this.m
    m.responses[statusClass(status)]!.inc()
    m.duration.observe((now - this.startMono) / 1000)
    ctx.metrics.activeRequests.dec()
    this.state.snapshot.release()
    const log = ctx.accessLog
    if (!log.enabled) return
    const req = this.req
    // Piped bodies are not counted chunk by chunk; the declared length is what crossed.
    if (this.bytesIn === 0 && this.hasBody) this.bytesIn = Number(req.headers['content-length']) || 0
    log.write({
      time: new Date(wallTime(this.startMono)).toISOString(),
      requestId: this.requestId,
      listener: ctx.name,
      method: req.method ?? '',
      path: req.url ?? '',
      authority: this.authority,
      protocol: req.httpVersionMajor === 2 ? 'HTTP/2' : 'HTTP/1.1',
      remote: this.conn.remoteAddress,
      route: this.rd?.name ?? null,
      cluster: this.clusterName,
      upstream: this.upstreamEndpoint,
      status,
      details: this.details,
      bytesReceived: this.bytesIn,
      bytesSent: this.bytesOut,
      ttfbMs: this.ttfb ? round(this.ttfb - this.startMono) : 0,
      durationMs: round(now - this.startMono),
      epoch: this.state.snapshot.epoch,
      aborted,
    })
  }
}

function tlsInfo(sock: TLSSocket | undefined): StreamInfo['tls'] {
  if (!sock || typeof sock.getProtocol !== 'function') return undefined
  const peer = sock.getPeerCertificate?.()
  const present = !!peer && Object.keys(peer).length > 0
  let peerIdentity: string | undefined
  // SPIFFE identities travel as URI SANs: "URI:spiffe://trust-domain/ns/x/sa/y".
  if (present && peer.subjectaltname) peerIdentity = /URI:(spiffe:\/\/[^,\s]+)/.exec(peer.subjectaltname)?.[1]
  const sni = (sock as TLSSocket & { servername?: string | false }).servername
  return { version: sock.getProtocol() ?? '', sni: sni || undefined, peerIdentity, peerCertificatePresented: present }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

function removeHeader(flat: string[], name: string): void {
  for (let i = 0; i < flat.length; ) {
    if (flat[i] === name) flat.splice(i, 2)
    else i += 2
  }
}
