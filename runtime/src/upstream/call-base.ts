/**
 * What every upstream call is, whatever carries it (undici in `upstream-call.ts`, node's own
 * clients in `trailer-call.ts`): at once the response body stream and the `UpstreamResponse`
 * handed to the proxy, one object per request, counted active on its cluster from `begin()`
 * and failed with `upstream_reset` when the downstream goes away.
 */
import { Readable } from 'node:stream'
import type { Cluster as UpstreamCluster } from './cluster.ts'
import { UpstreamError, UpstreamErrorCode, type UpstreamRequest, type UpstreamResponse } from './types.ts'

const EMPTY: string[] = []

export abstract class CallBase extends Readable implements UpstreamResponse {
  statusCode = 0
  headers: string[] = EMPTY
  endpoint = ''

  protected readonly cluster: UpstreamCluster
  protected readonly req: UpstreamRequest
  protected trailerList: string[] = EMPTY
  /** Settle the promise `begin()` returned: at response headers, or with the call's error. */
  protected resolve: ((r: UpstreamResponse) => void) | undefined = undefined
  protected reject: ((e: Error) => void) | undefined = undefined

  constructor(cluster: UpstreamCluster, req: UpstreamRequest) {
    super({ highWaterMark: 65_536 })
    this.cluster = cluster
    this.req = req
    // An upstream failing mid-body must never crash the process because the consumer had
    // not attached an 'error' listener yet; consumers that listen still get the error.
    this.on('error', ignore)
  }

  get body(): Readable {
    return this
  }

  trailers(): string[] {
    return this.trailerList
  }

  /** Ends the call from our side (timeout, downstream abort), whatever phase it is in. */
  abstract fail(err: UpstreamError): void

  /** AbortSignal listener (an object listener: no closure per request). */
  handleEvent(): void {
    this.fail(new UpstreamError(UpstreamErrorCode.Reset, 'request aborted downstream'))
  }

  /**
   * Counts the call active on its cluster and follows the downstream's abort signal. Returns
   * the promise settled at response headers; when the downstream had gone already, the call
   * has been failed by the time this returns.
   */
  protected begin(): Promise<UpstreamResponse> {
    const c = this.cluster
    c.active++
    c.m.activeRequests.inc()
    const p = new Promise<UpstreamResponse>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    const signal = this.req.signal
    if (signal !== undefined) {
      if (signal.aborted) this.fail(new UpstreamError(UpstreamErrorCode.Reset, 'request aborted downstream'))
      else signal.addEventListener('abort', this)
    }
    return p
  }

  /** The other half of `begin()`, once per call: no longer active, no longer following the abort signal. */
  protected release(): void {
    const c = this.cluster
    c.active--
    c.m.activeRequests.dec()
    this.req.signal?.removeEventListener('abort', this)
  }
}

function ignore(): void {}
