/**
 * An upgraded connection (WebSocket) to one endpoint. Not on the request hot path: one
 * handler object per upgrade. A 101 resolves with the raw upstream socket; any other answer
 * resolves with its status and headers and a `socket` stream that carries the response body
 * and then ends, so the proxy can relay a refusal (401, 426...) as is.
 */
import { PassThrough, type Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Cluster } from './cluster.ts'
import type { Endpoint } from './endpoint.ts'
import { rawToFlat } from './raw-headers.ts'
import { UpstreamError, UpstreamErrorCode, type UpgradeResult, type UpstreamRequest } from './types.ts'

/** Request headers undici writes itself for an upgrade, or refuses to accept. */
const DROP = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'te'])

export type UpgradeRequest = Omit<UpstreamRequest, 'body' | 'policy'> & { connectTimeoutMs?: number }

export function upgrade(cluster: Cluster, req: UpgradeRequest): Promise<UpgradeResult> {
  const ep = cluster.pick()
  if (ep === undefined) {
    return Promise.reject(new UpstreamError(UpstreamErrorCode.NoHealthyUpstream, `cluster ${cluster.name}: no healthy endpoint`))
  }
  return new Promise((resolve, reject) => new UpgradeCall(cluster, ep, req, resolve, reject).start())
}

class UpgradeCall {
  readonly #cluster: Cluster
  readonly #ep: Endpoint
  readonly #req: UpgradeRequest
  readonly #resolve: (r: UpgradeResult) => void
  readonly #reject: (e: Error) => void
  #connected = false
  #settled = false
  #done = false
  #abort: ((err?: Error) => void) | undefined
  #body: PassThrough | undefined
  #resume: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(cluster: Cluster, ep: Endpoint, req: UpgradeRequest, resolve: (r: UpgradeResult) => void, reject: (e: Error) => void) {
    this.#cluster = cluster
    this.#ep = ep
    this.#req = req
    this.#resolve = resolve
    this.#reject = reject
  }

  start(): void {
    const req = this.#req
    const headers: string[] = []
    let protocol = 'websocket'
    for (let i = 0; i < req.headers.length; i += 2) {
      const n = req.headers[i]!
      if (n === 'upgrade') protocol = req.headers[i + 1]!
      else if (!DROP.has(n)) headers.push(n, req.headers[i + 1]!)
    }
    const c = this.#cluster
    c.active++
    c.m.activeRequests.inc()
    c.m.requests.inc()
    this.#ep.inflight++
    const ms = req.connectTimeoutMs ?? c.config.connectTimeoutMs
    if (ms > 0) {
      this.#timer = setTimeout(() => this.#fail(new UpstreamError(UpstreamErrorCode.Timeout, `upgrade not answered within ${ms} ms`)), ms)
    }
    if (req.signal?.aborted) {
      this.#fail(new UpstreamError(UpstreamErrorCode.Reset, 'request aborted downstream'))
      return
    }
    req.signal?.addEventListener('abort', this)
    this.#ep.pool.dispatch(
      { path: req.path, method: req.method, headers, upgrade: protocol, body: null, servername: this.#ep.servername } as Dispatcher.DispatchOptions,
      this as unknown as Dispatcher.DispatchHandler,
    )
  }

  handleEvent(): void {
    this.#fail(new UpstreamError(UpstreamErrorCode.Reset, 'request aborted downstream'))
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#connected = true
    this.#abort = abort
    if (this.#settled) abort(new Error('upgrade abandoned'))
  }

  onUpgrade(statusCode: number, raw: Buffer[], socket: Duplex): void {
    this.#end()
    if (this.#settled) {
      socket.destroy()
      return
    }
    this.#settled = true
    this.#cluster.outlier?.success(this.#ep)
    this.#resolve({ statusCode, headers: rawToFlat(raw), socket, endpoint: this.#ep.address })
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
    if (statusCode < 200 || this.#settled) return true
    this.#settled = true
    if (this.#timer) clearTimeout(this.#timer)
    const body = new PassThrough()
    body.on('error', () => {}) // a reset mid-body must not crash an unlistened stream
    body.on('drain', () => this.#resume?.())
    body.on('close', () => {
      if (!this.#done) this.#abort?.(new Error('upgrade refusal body abandoned'))
    })
    this.#body = body
    this.#resume = resume
    this.#resolve({ statusCode, headers: rawToFlat(raw), socket: body, endpoint: this.#ep.address })
    return true
  }

  onData(chunk: Buffer): boolean {
    return this.#body === undefined ? true : this.#body.write(chunk)
  }

  onComplete(): void {
    this.#end()
    this.#body?.end()
  }

  onError(err: Error): void {
    this.#end()
    if (this.#body !== undefined) {
      this.#body.destroy(err)
      return
    }
    if (this.#settled) return
    this.#settled = true
    const code = this.#connected ? UpstreamErrorCode.Reset : UpstreamErrorCode.ConnectFailure
    if (!this.#connected) this.#cluster.outlier?.connectFailure(this.#ep)
    const e = err instanceof UpstreamError ? err : new UpstreamError(code, `upgrade to ${this.#ep.address} failed`, { cause: err })
    this.#cluster.m.errors[e.code].inc()
    this.#reject(e)
  }

  #fail(err: UpstreamError): void {
    if (this.#settled) return
    if (this.#abort !== undefined) {
      this.#abort(err)
      return
    }
    // Still queued: settle now, abort when undici hands us the connection.
    this.#settled = true
    this.#cluster.m.errors[err.code].inc()
    this.#reject(err)
  }

  #end(): void {
    if (this.#done) return
    this.#done = true
    if (this.#timer) clearTimeout(this.#timer)
    const c = this.#cluster
    c.active--
    c.m.activeRequests.dec()
    this.#ep.inflight--
    this.#req.signal?.removeEventListener('abort', this)
  }
}
