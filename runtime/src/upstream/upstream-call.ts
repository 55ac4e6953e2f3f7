/**
 * One request through a cluster. The object is at once the undici dispatch handler (the
 * callback API: onConnect/onHeaders/onData/onComplete/onError), the response body stream
 * and the `UpstreamResponse` handed to the proxy, so a request costs one object of ours,
 * one promise and undici's own request, whatever the number of tries.
 *
 * Lifecycle of an attempt: IDLE -> QUEUED (dispatched, waiting for a connection) -> SENT (on
 * a connection) -> STREAMING (headers handed out) -> DONE. Retries go back to IDLE and only
 * happen before STREAMING: once the proxy holds the response, nothing is replayed.
 */
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { CallBase } from './call-base.ts'
import { responseClass } from './cluster-metrics.ts'
import type { Endpoint } from './endpoint.ts'
import { rawToFlat, trailersToFlat } from './raw-headers.ts'
import { UpstreamError, UpstreamErrorCode, type UpstreamResponse } from './types.ts'

const IDLE = 0
const QUEUED = 1
const SENT = 2
const STREAMING = 3
const DONE = 4

/** Abort reason for a try we drop to retry it; never surfaces. */
const RETRY_ABORT = new Error('retrying')

const RETRY_CONNECT = 'connect-failure'
const RETRY_RESET = 'reset'

export class UpstreamCall extends CallBase {
  #ep: Endpoint | undefined = undefined
  #phase = IDLE
  #tries = 0
  #abort: ((err?: Error) => void) | undefined = undefined
  #resume: (() => void) | undefined = undefined
  #settled = false
  #finished = false
  #discard = false
  #retrying = false
  /** Set when we end the call ourselves (timeout, downstream abort); wins over undici's error. */
  #failure: UpstreamError | undefined = undefined
  #timer: NodeJS.Timeout | undefined = undefined
  /** Our own idle timer, for streamed uploads only (see #dispatch). */
  #streamIdle: NodeJS.Timeout | undefined = undefined
  #onUploadData: (() => void) | undefined = undefined
  #backoff: NodeJS.Timeout | undefined = undefined
  #sentAt = 0
  /** True while inside `pool.dispatch()`: an error then comes from building the request. */
  #dispatching = false

  /** Starts the first try; resolves at response headers. */
  start(): Promise<UpstreamResponse> {
    const p = this.begin()
    if (this.#failure !== undefined) return p
    const req = this.req
    const ms = req.policy.requestTimeoutMs
    if (ms > 0) this.#timer = setTimeout(onCallTimeout, ms, this, ms)
    this.#dispatch()
    return p
  }

  /** Ends the call from our side (timeout, downstream abort), whatever phase it is in. */
  fail(err: UpstreamError): void {
    if (this.#failure !== undefined || this.#phase === DONE || this.#finished) return
    this.#failure = err
    switch (this.#phase) {
      case IDLE:
        this.#rejectWith(err)
        return
      case QUEUED:
        // undici cannot take it back from its queue; onConnect aborts it when it gets there.
        this.#rejectWith(err)
        return
      default:
        // SENT or STREAMING: onError runs synchronously and settles with #failure.
        this.#abort?.(err)
    }
  }

  /** @internal backoff timer. */
  retryNow(): void {
    this.#backoff = undefined
    if (this.#failure === undefined && !this.#finished) this.#dispatch()
  }

  #dispatch(): void {
    const c = this.cluster
    const ep = c.pick()
    if (ep === undefined) {
      this.#rejectWith(new UpstreamError(UpstreamErrorCode.NoHealthyUpstream, `cluster ${c.name}: no healthy endpoint`))
      return
    }
    const req = this.req
    this.#ep = ep
    ep.inflight++
    c.pending++
    this.#phase = QUEUED
    this.#tries++
    this.#sentAt = performance.now()
    const idle = req.policy.idleTimeoutMs
    let undiciIdle = idle
    const body = req.body
    if (idle > 0 && body !== null && !(body instanceof Uint8Array)) {
      // undici's headers/body timeouts only see response bytes, so a long streamed upload
      // (gRPC client or bidirectional streaming) would count as idle. For streamed bodies we
      // run the idle timer ourselves, reset by every chunk either way: one timer and one
      // listener per streamed upload; buffered and empty bodies keep undici's timers.
      undiciIdle = 0
      this.#streamIdle = setTimeout(onStreamIdle, idle, this, idle)
    }
    this.#dispatching = true
    ep.pool.dispatch(
      {
        path: req.path,
        method: req.method,
        headers: req.headers,
        body: req.body as Dispatcher.DispatchOptions['body'],
        headersTimeout: undiciIdle,
        bodyTimeout: undiciIdle,
        // Supported by undici's Request though missing from its types.
        servername: ep.servername,
      } as Dispatcher.DispatchOptions,
      this as unknown as Dispatcher.DispatchHandler,
    )
    this.#dispatching = false
  }

  // ---- undici handler (callback API) ----

  onConnect(abort: (err?: Error) => void): void {
    if (this.#phase !== QUEUED) return
    this.cluster.pending--
    this.#phase = SENT
    this.#abort = abort
    if (this.#failure !== undefined) {
      abort(this.#failure)
      return
    }
    const t = this.#streamIdle
    if (t !== undefined && this.#onUploadData === undefined && typeof (this.req.body as Readable).on === 'function') {
      // Attached here, synchronously before undici attaches its own 'data' listener: flowing
      // starts on the next tick, so both see every chunk (earlier, we would eat the first).
      this.#onUploadData = () => t.refresh()
      ;(this.req.body as Readable).on('data', this.#onUploadData)
    }
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200 || this.#phase !== SENT) return true
    const c = this.cluster
    const ep = this.#ep!
    const od = c.outlier
    if (status >= 500) {
      if (od !== undefined) od.serverError(ep)
      if (this.#canRetry(status === 502 || status === 503 || status === 504 ? 'gateway-error' : '5xx')) {
        responseClass(c.m, status).inc()
        this.#discard = true
        this.#abort!(RETRY_ABORT)
        this.#scheduleRetry()
        return false
      }
    } else if (od !== undefined && (ep.consecutive5xx !== 0 || ep.consecutiveConnectFailures !== 0)) {
      od.success(ep)
    }
    c.m.responseSeconds.observe((performance.now() - this.#sentAt) / 1000)
    responseClass(c.m, status).inc()
    this.statusCode = status
    this.headers = rawToFlat(raw)
    this.endpoint = ep.address
    this.#resume = resume
    this.#phase = STREAMING
    this.#settled = true
    this.resolve!(this)
    return true
  }

  onData(chunk: Buffer): boolean {
    if (this.#phase !== STREAMING || this.destroyed) return true
    if (this.#streamIdle !== undefined) this.#streamIdle.refresh()
    return this.push(chunk)
  }

  onComplete(trailers: unknown): void {
    if (this.#phase !== STREAMING) return
    this.trailerList = trailersToFlat(trailers)
    this.#endAttempt()
    this.#phase = DONE
    this.#finish()
    this.push(null)
  }

  onError(err: Error): void {
    if (this.#discard) {
      this.#discard = false
      this.#endAttempt()
      return
    }
    const phase = this.#phase
    const ep = this.#ep
    this.#endAttempt()
    const c = this.cluster
    if (phase === STREAMING) {
      this.#phase = DONE
      const e = this.#failure ?? midBodyError(err)
      if (ep !== undefined && blamesEndpoint(this.#failure)) c.outlier?.serverError(ep)
      c.m.errors[e.code].inc()
      this.#finish()
      if (!this.destroyed) this.destroy(e)
      return
    }
    if (this.#settled) return
    if (this.#failure !== undefined) {
      if (ep !== undefined && phase === SENT && blamesEndpoint(this.#failure)) c.outlier?.serverError(ep)
      this.#rejectWith(this.#failure)
      return
    }
    let e: UpstreamError
    let kind: string
    const code = (err as { code?: string }).code
    if (this.#dispatching && phase === QUEUED && code !== 'UND_ERR_CLOSED' && code !== 'UND_ERR_DESTROYED') {
      // undici refused to build the request (bad headers from downstream): not the
      // endpoint's fault, so no ejection streak and no retry.
      this.#rejectWith(new UpstreamError(UpstreamErrorCode.InvalidRequest, 'request cannot be forwarded upstream', { cause: err }))
      return
    }
    if (phase === QUEUED) {
      e = new UpstreamError(UpstreamErrorCode.ConnectFailure, `cluster ${c.name}: connect to ${ep?.address} failed`, {
        cause: err,
      })
      kind = RETRY_CONNECT
      if (ep !== undefined) c.outlier?.connectFailure(ep)
    } else {
      e = beforeHeadersError(err)
      kind = RETRY_RESET
      if (ep !== undefined && phase === SENT) c.outlier?.serverError(ep)
    }
    if (e.code !== UpstreamErrorCode.Idle && this.#canRetry(kind)) {
      this.#scheduleRetry()
      return
    }
    this.#rejectWith(e)
  }

  // ---- Readable ----

  override _read(): void {
    const r = this.#resume
    if (r !== undefined) r()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#phase === STREAMING) {
      // The consumer gave up mid-body: stop the upstream side too (undici closes the stream
      // or, on HTTP/1.1, the connection, since the rest of the body is unread).
      this.#failure ??= new UpstreamError(UpstreamErrorCode.Reset, 'response body abandoned downstream')
      this.#abort?.(this.#failure)
    }
    cb(err)
  }

  // ---- internals ----

  #canRetry(kind: string): boolean {
    const req = this.req
    const p = req.policy.retry
    if (p === undefined || this.#tries > p.maxRetries || this.#failure !== undefined) return false
    if (req.body !== null && !(req.body instanceof Uint8Array)) return false
    if (!isIdempotent(req.method)) return false
    const on = p.retryOn
    if (!on.includes(kind as never) && !(kind === 'gateway-error' && on.includes('5xx'))) return false
    if (this.#retrying) return true // already holds a slot of the budget
    const c = this.cluster
    const limit = Math.max(p.minRetryConcurrency, (c.active * p.budgetPercent) / 100)
    return c.retriesInFlight < limit
  }

  #scheduleRetry(): void {
    const c = this.cluster
    if (!this.#retrying) {
      this.#retrying = true
      c.retriesInFlight++
    }
    c.m.retries.inc()
    const base = this.req.policy.retry!.backoffMs * 2 ** (this.#tries - 1)
    // Equal jitter: half fixed, half random, so retries spread without collapsing to zero.
    const delay = base > 0 ? base / 2 + Math.random() * (base / 2) : 0
    this.#backoff = setTimeout(retryCall, delay, this)
  }

  #endAttempt(): void {
    const ep = this.#ep
    if (ep === undefined) return
    if (this.#phase === QUEUED) this.cluster.pending--
    ep.inflight--
    this.#ep = undefined
    this.#abort = undefined
    this.#resume = undefined
    this.#phase = IDLE
  }

  #stopStreamIdle(): void {
    clearTimeout(this.#streamIdle)
    this.#streamIdle = undefined
    if (this.#onUploadData !== undefined) {
      ;(this.req.body as Readable).off('data', this.#onUploadData)
      this.#onUploadData = undefined
    }
  }

  #rejectWith(e: UpstreamError): void {
    if (this.#settled) return
    this.#settled = true
    this.cluster.m.errors[e.code].inc()
    this.#finish()
    this.reject!(e)
  }

  /** Once per call: releases the cluster's counters, timers and the abort listener. */
  #finish(): void {
    if (this.#finished) return
    this.#finished = true
    this.release()
    if (this.#retrying) this.cluster.retriesInFlight--
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    if (this.#backoff !== undefined) clearTimeout(this.#backoff)
    this.#timer = this.#backoff = undefined
    if (this.#streamIdle !== undefined) this.#stopStreamIdle()
  }
}


function onCallTimeout(call: UpstreamCall, ms: number): void {
  call.fail(new UpstreamError(UpstreamErrorCode.Timeout, `upstream request timed out after ${ms} ms`))
}

function onStreamIdle(call: UpstreamCall, ms: number): void {
  call.fail(new UpstreamError(UpstreamErrorCode.Idle, `no bytes either way for ${ms} ms`))
}

function retryCall(call: UpstreamCall): void {
  call.retryNow()
}

/**
 * Whether a failure counts toward the endpoint's 5xx streak: upstream-side failures and
 * our timeouts do; a downstream abort (the client went away) does not.
 */
function blamesEndpoint(failure: UpstreamError | undefined): boolean {
  return failure === undefined || failure.code === UpstreamErrorCode.Timeout || failure.code === UpstreamErrorCode.Idle
}

function isIdempotent(method: string): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'PUT':
    case 'DELETE':
    case 'TRACE':
      return true
    default:
      return false
  }
}

function isIdleTimeout(err: Error): boolean {
  const code = (err as { code?: string }).code
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
}

function beforeHeadersError(err: Error): UpstreamError {
  if (err instanceof UpstreamError) return err
  if (isIdleTimeout(err)) return new UpstreamError(UpstreamErrorCode.Idle, 'upstream sent nothing within the idle timeout', { cause: err })
  return new UpstreamError(UpstreamErrorCode.Reset, 'upstream closed the connection before responding', { cause: err })
}

function midBodyError(err: Error): UpstreamError {
  if (err instanceof UpstreamError) return err
  if (isIdleTimeout(err)) return new UpstreamError(UpstreamErrorCode.Idle, 'upstream body stalled past the idle timeout', { cause: err })
  return new UpstreamError(UpstreamErrorCode.Reset, 'upstream reset the response mid-body', { cause: err })
}
