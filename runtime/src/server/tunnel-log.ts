/**
 * What one tunnel (a WebSocket over HTTP/1.1 Upgrade or HTTP/2 extended CONNECT) holds and
 * reports: its config epoch until the tunnel is open or refused (a WebSocket may live for
 * hours and must not keep an old config's filters alive), then one access-log line and the
 * route's metrics when it closes.
 *
 * @example
 * const t = new TunnelLog(ctx, rd.metrics)
 * socket.once('close', () => t.close({ requestId, method: 'GET', path, authority, protocol: 'HTTP/1.1', remote }))
 * // upstream answered: t.settle(); t.status = 101
 */
import type { RouteMetrics } from '../observability/proxy-metrics.ts'
import { statusClass } from '../observability/proxy-metrics.ts'
import type { PipelineRun } from '../pipeline/executor.ts'
import { wallTime } from './clock.ts'
import type { ServeContext } from './exchange.ts'
import type { ListenerState } from './snapshot.ts'

/** The request side of the access-log line. */
export interface TunnelRequest {
  requestId: string
  method: string
  path: string
  authority: string
  protocol: 'HTTP/1.1' | 'HTTP/2'
  remote: string
}

export class TunnelLog {
  status = 0
  details: string | null = null
  upstream: string | null = null
  route: string | null = null
  cluster: string | null = null
  bytesIn = 0
  bytesOut = 0
  /** The route's metrics once routed (the no-route ones until then). */
  metrics: RouteMetrics
  /** The request-headers filter run, finished when the tunnel settles. */
  run: PipelineRun | undefined = undefined
  readonly #ctx: ServeContext
  readonly #state: ListenerState
  readonly #start = performance.now()
  #settled = false

  constructor(ctx: ServeContext, metrics: RouteMetrics) {
    this.#ctx = ctx
    this.#state = ctx.state
    this.metrics = metrics
    this.#state.snapshot.active++
  }

  /** The tunnel is open or refused: finish the filters and let the epoch go (once). */
  settle(): void {
    if (this.#settled) return
    this.#settled = true
    this.run?.finish()
    this.#state.snapshot.release()
  }

  /** The tunnel closed: the route's response metrics and the access-log line. */
  close(req: TunnelRequest): void {
    this.settle()
    const now = performance.now()
    this.metrics.responses[statusClass(this.status)]!.inc()
    this.metrics.duration.observe((now - this.#start) / 1000)
    const log = this.#ctx.accessLog
    if (!log.enabled) return
    log.write({
      time: new Date(wallTime(this.#start)).toISOString(),
      requestId: req.requestId,
      listener: this.#ctx.name,
      method: req.method,
      path: req.path,
      authority: req.authority,
      protocol: req.protocol,
      remote: req.remote,
      route: this.route,
      cluster: this.cluster,
      upstream: this.upstream,
      status: this.status,
      details: this.details ?? 'upgrade',
      bytesReceived: this.bytesIn,
      bytesSent: this.bytesOut,
      ttfbMs: 0,
      durationMs: Math.round((now - this.#start) * 1000) / 1000,
      epoch: this.#state.snapshot.epoch,
      aborted: this.status === 0,
    })
  }
}
