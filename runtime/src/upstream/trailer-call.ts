/**
 * One request that may carry request trailers (`UpstreamRequest.trailers` set), sent with
 * node's own clients because undici 7 cannot send request trailers: its HTTP/1.1 writer ends
 * a chunked body with a fixed `0\r\n\r\n` and its HTTP/2 writer ends the stream with the
 * last DATA frame ("TODO: add support for sending trailers", lib/dispatcher/client-h2.js).
 *
 * - HTTP/1.1 clusters: `node:http(s)` ClientRequest, chunked, `addTrailers()` before `end()`;
 * - HTTP/2 clusters: `node:http2` stream opened with `waitForTrailers`, `sendTrailers()` on
 *   'wantTrailers' (an empty set ends the stream with an empty DATA frame).
 *
 * The trailers are asked for once the body has ended, so a RequestTrailers filter phase runs
 * after the body phases and may hold them (async work) without holding the body.
 *
 * Same contract and accounting as `UpstreamCall`: endpoint pick, circuit breaker counters,
 * request and idle timeouts, outlier detection, cluster metrics. Differences: no retries (the
 * body streams and cannot be replayed), no keep-alive hints from the server on HTTP/1.1, and
 * one HTTP/2 session per endpoint whatever `maxConnectionsPerEndpoint` says. It costs more
 * per request than undici, which is why only requests that can carry trailers come here.
 */
import type { ClientRequest, IncomingMessage } from 'node:http'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import type { Socket } from 'node:net'
import { Readable, type Writable } from 'node:stream'
import { CallBase } from './call-base.ts'
import type { Cluster as UpstreamCluster } from './cluster.ts'
import { responseClass } from './cluster-metrics.ts'
import type { Endpoint } from './endpoint.ts'
import { rawToFlat, trailersToFlat } from './raw-headers.ts'
import { forwardableTrailers, trailersObject } from './request-trailers.ts'
import type { TrailerTransport } from './trailer-transport.ts'
import { UpstreamError, UpstreamErrorCode, type UpstreamRequest, type UpstreamResponse } from './types.ts'

const IDLE = 0
const QUEUED = 1
const SENT = 2
const STREAMING = 3
const DONE = 4

const NO_TRAILERS: readonly string[] = []

/** Connection-scoped request headers neither HTTP/2 nor a re-framed HTTP/1.1 body may carry. */
const H2_DROP = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings'])

export class TrailerCall extends CallBase {
  readonly #source: NonNullable<UpstreamRequest['trailers']>
  #ep: Endpoint | undefined = undefined
  #transport: TrailerTransport | undefined = undefined
  #phase = IDLE
  #h1: ClientRequest | undefined = undefined
  #res: IncomingMessage | undefined = undefined
  #h2: http2.ClientHttp2Stream | undefined = undefined
  #src: Readable | undefined = undefined
  #onSrcData: ((chunk: Uint8Array) => void) | undefined = undefined
  #settled = false
  #finished = false
  #failure: UpstreamError | undefined = undefined
  #timer: NodeJS.Timeout | undefined = undefined
  #connectTimer: NodeJS.Timeout | undefined = undefined
  #idle: NodeJS.Timeout | undefined = undefined
  #sentAt = 0

  constructor(cluster: UpstreamCluster, req: UpstreamRequest) {
    super(cluster, req)
    this.#source = req.trailers!
  }

  /** Sends the request; resolves at response headers. */
  start(): Promise<UpstreamResponse> {
    const c = this.cluster
    c.m.trailerRequests.inc()
    const p = this.begin()
    if (this.#failure !== undefined) return p
    const req = this.req
    const ep = c.pick()
    if (ep === undefined) {
      this.#rejectWith(new UpstreamError(UpstreamErrorCode.NoHealthyUpstream, `cluster ${c.name}: no healthy endpoint`))
      return p
    }
    this.#ep = ep
    ep.inflight++
    c.pending++
    this.#phase = QUEUED
    this.#sentAt = performance.now()
    const transport = (this.#transport = ep.trailerTransport())
    transport.acquire()
    const ms = req.policy.requestTimeoutMs
    if (ms > 0) this.#timer = setTimeout(onCallTimeout, ms, this, ms)
    const idle = req.policy.idleTimeoutMs
    if (idle > 0) this.#idle = setTimeout(onIdle, idle, this, idle)
    try {
      if (c.config.http2) this.#openH2(ep, transport)
      else this.#openH1(ep, transport)
    } catch (err) {
      const code = String((err as { code?: unknown }).code)
      if (code === 'ERR_HTTP2_INVALID_SESSION' || code === 'ERR_HTTP2_GOAWAY_SESSION') {
        this.#rejectWith(new UpstreamError(UpstreamErrorCode.ConnectFailure, `cluster ${c.name}: session to ${ep.address} is closing`, { cause: err }))
        return p
      }
      // node refused to build the request (a header it will not write): not the endpoint's fault.
      this.#rejectWith(new UpstreamError(UpstreamErrorCode.InvalidRequest, 'request cannot be forwarded upstream', { cause: err }))
      return p
    }
    this.#pumpBody()
    return p
  }

  /** Ends the call from our side (timeout, downstream abort), whatever phase it is in. */
  fail(err: UpstreamError): void {
    if (this.#failure !== undefined || this.#finished) return
    this.#failure = err
    this.#onError(err)
  }

  /** @internal idle timer: no bytes either way for `ms`. */
  idleTimedOut(ms: number): void {
    this.#idle = undefined
    this.fail(new UpstreamError(UpstreamErrorCode.Idle, `no bytes either way for ${ms} ms`))
  }

  // ---- HTTP/1.1 ----

  #openH1(ep: Endpoint, transport: TrailerTransport): void {
    const src = this.req.headers
    // The body is re-framed as chunked: only chunked encoding has a trailer section.
    const headers: string[] = []
    for (let i = 0; i < src.length; i += 2) {
      const n = src[i]!
      if (n !== 'content-length' && n !== 'transfer-encoding') headers.push(n, src[i + 1]!)
    }
    headers.push('transfer-encoding', 'chunked')
    const opts: https.RequestOptions = {
      agent: transport.agent(),
      host: ep.host,
      port: ep.port,
      method: this.req.method,
      path: this.req.path,
      headers: headers as unknown as http.OutgoingHttpHeaders,
      setHost: false,
    }
    if (ep.servername !== undefined) opts.servername = ep.servername
    const r = transport.tls ? https.request(opts) : http.request(opts)
    this.#h1 = r
    r.on('error', (err) => this.#onError(err))
    r.on('socket', (sock: Socket) => {
      if (r.reusedSocket) return this.#connected()
      const ms = transport.connectTimeoutMs
      if (ms > 0) this.#connectTimer = setTimeout(() => r.destroy(new Error(`connect timed out after ${ms} ms`)), ms)
      sock.once(transport.tls ? 'secureConnect' : 'connect', () => this.#connected())
    })
    r.on('response', (res: IncomingMessage) => this.#onH1Response(res))
  }

  #onH1Response(res: IncomingMessage): void {
    if (this.#finished) {
      res.destroy()
      return
    }
    this.#res = res
    res.on('error', (err) => this.#onError(err))
    res.on('close', () => {
      if (!res.complete) this.#onError(new Error('upstream closed the response before its end'))
    })
    res.on('data', (chunk: Buffer) => this.#onData(chunk, res))
    res.on('end', () => this.#onEnd(rawToFlat(res.rawTrailers)))
    this.#onHead(res.statusCode ?? 0, rawToFlat(res.rawHeaders))
  }

  // ---- HTTP/2 ----

  #openH2(ep: Endpoint, transport: TrailerTransport): void {
    const src = this.req.headers
    const headers: http2.OutgoingHttpHeaders = Object.create(null)
    headers[':method'] = this.req.method
    headers[':path'] = this.req.path
    headers[':scheme'] = transport.tls ? 'https' : 'http'
    headers[':authority'] = ep.address
    for (let i = 0; i < src.length; i += 2) {
      const n = src[i]!
      const v = src[i + 1]!
      if (n === 'host') headers[':authority'] = v
      else if (H2_DROP.has(n) || (n === 'te' && v !== 'trailers')) continue
      else {
        const prev = headers[n]
        headers[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v]
      }
    }
    const s = transport.session().request(headers, { endStream: false, waitForTrailers: true })
    this.#h2 = s
    s.on('error', (err) => this.#onError(err))
    // On a connected session the stream gets its id inside request(): 'ready' has fired already.
    if (s.pending) s.once('ready', () => this.#connected())
    else this.#connected()
    s.once('response', (h) => this.#onHead(Number(h[':status']) || 0, h2Flat(h)))
    s.once('trailers', (t) => {
      this.trailerList = trailersToFlat(t)
    })
    s.on('data', (chunk: Buffer) => this.#onData(chunk, s))
    s.once('end', () => this.#onEnd(this.trailerList))
    s.once('close', () => {
      if (this.#phase !== DONE) this.#onError(new Error(`upstream stream closed (code ${s.rstCode})`))
    })
    s.once('wantTrailers', () =>
      this.#pullTrailers((pairs) => {
        if (s.destroyed) return
        try {
          s.sendTrailers(trailersObject(pairs))
        } catch {
          try {
            s.sendTrailers({})
          } catch {
            s.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
          }
        }
      }),
    )
  }

  // ---- request body and trailers ----

  #pumpBody(): void {
    const sink = (this.#h1 ?? this.#h2) as Writable
    const body = this.req.body
    if (body === null || body instanceof Uint8Array) {
      if (body !== null && body.length) sink.write(body)
      return this.#bodyDone()
    }
    const src = typeof (body as Readable).on === 'function' ? (body as Readable) : Readable.from(body)
    this.#src = src
    if (src.readableEnded) return this.#bodyDone()
    sink.on('drain', () => src.resume())
    this.#onSrcData = (chunk: Uint8Array) => {
      if (this.#idle !== undefined) this.#idle.refresh()
      if (!sink.write(chunk)) src.pause()
    }
    src.on('data', this.#onSrcData)
    src.once('end', () => this.#bodyDone())
    src.once('error', () => this.fail(new UpstreamError(UpstreamErrorCode.Reset, 'request body failed downstream')))
  }

  #bodyDone(): void {
    if (this.#failure !== undefined) return
    const h1 = this.#h1
    if (h1 !== undefined) {
      this.#pullTrailers((pairs) => {
        if (h1.destroyed) return
        try {
          if (pairs.length) h1.addTrailers(pairs)
        } catch {
          // Validated already; should node still refuse one, the body goes without trailers.
        }
        h1.end()
      })
    } else this.#h2!.end() // 'wantTrailers' follows the last DATA frame
  }

  #pullTrailers(send: (pairs: [string, string][]) => void): void {
    let t: readonly string[] | PromiseLike<readonly string[]>
    try {
      t = this.#source()
    } catch {
      t = NO_TRAILERS
    }
    if (isThenable(t)) {
      t.then(
        (x) => send(forwardableTrailers(x)),
        () => send([]),
      )
    } else send(forwardableTrailers(t))
  }

  // ---- response ----

  #connected(): void {
    if (this.#phase !== QUEUED) return
    clearTimeout(this.#connectTimer)
    this.#connectTimer = undefined
    this.cluster.pending--
    this.#phase = SENT
  }

  #onHead(status: number, headers: string[]): void {
    if (this.#finished || this.#settled) return
    this.#connected()
    const c = this.cluster
    const ep = this.#ep!
    const od = c.outlier
    if (status >= 500) od?.serverError(ep)
    else if (od !== undefined && (ep.consecutive5xx !== 0 || ep.consecutiveConnectFailures !== 0)) od.success(ep)
    c.m.responseSeconds.observe((performance.now() - this.#sentAt) / 1000)
    responseClass(c.m, status).inc()
    this.statusCode = status
    this.headers = headers
    this.endpoint = ep.address
    this.#phase = STREAMING
    this.#settled = true
    this.resolve!(this)
  }

  #onData(chunk: Buffer, from: Readable): void {
    if (this.#phase !== STREAMING || this.destroyed) return
    if (this.#idle !== undefined) this.#idle.refresh()
    if (!this.push(chunk)) from.pause()
  }

  #onEnd(trailers: string[]): void {
    if (this.#phase !== STREAMING) return
    this.trailerList = trailers
    this.#phase = DONE
    this.#finish()
    this.push(null)
  }

  /** Any failure, ours or the transport's; the first one decides, later ones are ignored. */
  #onError(err: Error): void {
    if (this.#finished) return
    const phase = this.#phase
    const ep = this.#ep
    const c = this.cluster
    const own = this.#failure
    if (phase === STREAMING) {
      const e = own ?? midBodyError(err)
      if (ep !== undefined && blamesEndpoint(own)) c.outlier?.serverError(ep)
      c.m.errors[e.code].inc()
      this.#finish()
      this.#phase = DONE
      this.#abortTransport(e)
      if (!this.destroyed) this.destroy(e)
      return
    }
    let e: UpstreamError
    if (own !== undefined) {
      e = own
      if (ep !== undefined && phase === SENT && blamesEndpoint(own)) c.outlier?.serverError(ep)
    } else if (phase === QUEUED) {
      e = new UpstreamError(UpstreamErrorCode.ConnectFailure, `cluster ${c.name}: connect to ${ep?.address} failed`, { cause: err })
      if (ep !== undefined) c.outlier?.connectFailure(ep)
    } else {
      e = new UpstreamError(UpstreamErrorCode.Reset, 'upstream closed the connection before responding', { cause: err })
      if (ep !== undefined) c.outlier?.serverError(ep)
    }
    this.#rejectWith(e)
    this.#phase = DONE
    this.#abortTransport(own ?? err)
  }

  #abortTransport(err: Error): void {
    const h1 = this.#h1
    if (h1 !== undefined && !h1.destroyed) h1.destroy(err)
    this.#res?.destroy()
    const h2 = this.#h2
    if (h2 !== undefined && !h2.destroyed) h2.close(http2.constants.NGHTTP2_CANCEL)
    const src = this.#src
    if (src !== undefined && !src.readableEnded && this.#onSrcData !== undefined) {
      // Let the rest of the upload drain rather than stall the downstream connection.
      src.off('data', this.#onSrcData)
      src.resume()
    }
  }

  // ---- Readable ----

  override _read(): void {
    const from = this.#res ?? this.#h2
    if (from !== undefined && from.isPaused()) from.resume()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#phase === STREAMING) {
      // The consumer gave up mid-body: stop the upstream side too.
      this.#failure ??= new UpstreamError(UpstreamErrorCode.Reset, 'response body abandoned downstream')
      this.#onError(this.#failure)
    }
    cb(err)
  }

  // ---- internals ----

  #rejectWith(e: UpstreamError): void {
    if (this.#settled) {
      this.#finish()
      return
    }
    this.#settled = true
    this.cluster.m.errors[e.code].inc()
    this.#finish()
    this.reject!(e)
  }

  /** Once per call: releases the cluster's and endpoint's counters, timers and listeners. */
  #finish(): void {
    if (this.#finished) return
    this.#finished = true
    this.release()
    const ep = this.#ep
    if (ep !== undefined) {
      if (this.#phase === QUEUED) this.cluster.pending--
      ep.inflight--
    }
    this.#transport?.release()
    clearTimeout(this.#timer)
    clearTimeout(this.#connectTimer)
    clearTimeout(this.#idle)
    this.#timer = this.#connectTimer = this.#idle = undefined
  }
}


function onCallTimeout(call: TrailerCall, ms: number): void {
  call.fail(new UpstreamError(UpstreamErrorCode.Timeout, `upstream request timed out after ${ms} ms`))
}

function onIdle(call: TrailerCall, ms: number): void {
  call.idleTimedOut(ms)
}

function isThenable(x: unknown): x is PromiseLike<readonly string[]> {
  return typeof (x as PromiseLike<unknown> | null)?.then === 'function'
}

/** HTTP/2 response headers (an object) as flat lower-case pairs, pseudo-headers left out. */
function h2Flat(h: http2.IncomingHttpHeaders): string[] {
  const out: string[] = []
  for (const k in h) {
    if (k.charCodeAt(0) === 58) continue
    const v = h[k]
    if (v === undefined) continue
    if (Array.isArray(v)) for (const x of v) out.push(k, x)
    else out.push(k, String(v))
  }
  return out
}

/** Whether a failure counts toward the endpoint's 5xx streak (a downstream abort does not). */
function blamesEndpoint(failure: UpstreamError | undefined): boolean {
  return failure === undefined || failure.code === UpstreamErrorCode.Timeout || failure.code === UpstreamErrorCode.Idle
}

function midBodyError(err: Error): UpstreamError {
  if (err instanceof UpstreamError) return err
  return new UpstreamError(UpstreamErrorCode.Reset, 'upstream reset the response mid-body', { cause: err })
}
