/**
 * WebSocket (and other HTTP/1.1 Upgrade) tunnelling: route as usual, run the route's
 * request-headers filters (so auth applies to upgrades too), open the upgrade through the
 * cluster, relay the 101 and then splice the two sockets. Not on the request hot path.
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { PipelineRun, type PipelineSink } from '../pipeline/executor.ts'
import { HeaderMap } from '../pipeline/header-map.ts'
import { hostReply, type LocalReply } from '../pipeline/local-reply.ts'
import { MutableStreamInfo, PipelineStream } from '../pipeline/stream.ts'
import { normalizeHost } from '../routing/route-table.ts'
import { upstreamErrorReply, type ServeContext } from './exchange.ts'
import { forwardRequestHeaders } from './forward-headers.ts'
import { Action } from './snapshot.ts'
import { wallTime } from './clock.ts'
import { statusClass } from '../observability/proxy-metrics.ts'

const STATUS_TEXT: Record<number, string> = { 101: 'Switching Protocols' }

function writeHead(socket: Duplex, status: number, flat: readonly string[]): void {
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Response'}\r\n`
  for (let i = 0; i < flat.length; i += 2) {
    const v = flat[i + 1]!
    if (/[\r\n]/.test(v)) continue
    head += `${flat[i]}: ${v}\r\n`
  }
  socket.write(head + '\r\n')
}

function writeReply(socket: Duplex, reply: LocalReply): void {
  const h: string[] = []
  for (const [k, v] of reply.headers) h.push(k, v)
  h.push('content-length', String(reply.body.length), 'connection', 'close')
  writeHead(socket, reply.status, h)
  socket.end(reply.body)
}

export function handleUpgrade(ctx: ServeContext, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy())
  const state = ctx.state
  const facts = forwardRequestHeaders(req.rawHeaders, req.socket.remoteAddress ?? '', ctx.scheme, ctx.fwd, true)
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const route = state.table.match(normalizeHost(facts.authority), q < 0 ? url : url.slice(0, q), req.method ?? 'GET', req.rawHeaders)
  if (!route || route.data.action !== Action.Cluster || !route.data.cluster) {
    writeReply(socket, hostReply(route ? 501 : 404, route ? 'upgrade_unsupported_route' : 'no_route'))
    return
  }
  const rd = route.data
  const cluster = rd.cluster!
  // One access-log line and the route's metrics for the whole tunnel, written when it closes.
  const start = performance.now()
  const rec = { status: 0, details: null as string | null, upstream: null as string | null }
  rd.metrics.requests.inc()
  // The epoch (and its filters) is held only until the tunnel is open or refused: a
  // WebSocket may live for hours and must not keep an old config's filters alive.
  state.snapshot.active++
  let run: PipelineRun | undefined
  let settled = false
  const settle = () => {
    if (settled) return
    settled = true
    run?.finish()
    state.snapshot.release()
  }
  socket.once('close', () => {
    settle()
    const now = performance.now()
    rd.metrics.responses[statusClass(rec.status)]!.inc()
    rd.metrics.duration.observe((now - start) / 1000)
    if (!ctx.accessLog.enabled) return
    ctx.accessLog.write({
      time: new Date(wallTime(start)).toISOString(),
      requestId: facts.requestId,
      listener: ctx.name,
      method: req.method ?? '',
      path: url,
      authority: facts.authority,
      protocol: 'HTTP/1.1',
      remote: req.socket.remoteAddress ?? '',
      route: rd.name,
      cluster: rd.clusterName,
      upstream: rec.upstream,
      status: rec.status,
      details: rec.details ?? 'upgrade',
      bytesReceived: (socket as Socket).bytesRead ?? 0,
      bytesSent: (socket as Socket).bytesWritten ?? 0,
      ttfbMs: 0,
      durationMs: Math.round((now - start) * 1000) / 1000,
      epoch: state.snapshot.epoch,
      aborted: rec.status === 0,
    })
  })
  const refuse = (reply: LocalReply) => {
    settle()
    rec.status = reply.status
    rec.details = reply.details ?? null
    writeReply(socket, reply)
  }
  const open = (method: string, path: string, headers: string[]) => {
    headers.push('host', facts.authority)
    const ac = new AbortController()
    socket.once('close', () => ac.abort())
    cluster.upgrade({ method, path, headers, signal: ac.signal }).then(
      (up) => {
        if (socket.destroyed) {
          up.socket.destroy()
          return
        }
        settle()
        rec.status = up.statusCode
        rec.upstream = up.endpoint
        writeHead(socket, up.statusCode, up.headers)
        if (up.statusCode !== 101) {
          up.socket.pipe(socket)
          return
        }
        if (head.length) up.socket.write(head)
        up.socket.on('error', () => socket.destroy())
        socket.on('error', () => up.socket.destroy())
        up.socket.on('close', () => socket.destroy())
        socket.on('close', () => up.socket.destroy())
        // Both servers allow half-open sockets; a tunnel has no use for them: the first side
        // to finish ends both, so neither socket lingers after the peer left.
        const finish = () => {
          socket.end()
          up.socket.end()
        }
        socket.once('end', finish)
        up.socket.once('end', finish)
        up.socket.pipe(socket)
        socket.pipe(up.socket)
      },
      (err) => refuse(upstreamErrorReply(err)),
    )
  }
  if (rd.chain.entries.length === 0) {
    open(req.method ?? 'GET', url, facts.headers)
    return
  }
  const info = new MutableStreamInfo()
  info.requestId = facts.requestId
  info.epoch = state.snapshot.epoch
  info.routeName = rd.name
  info.clusterName = rd.clusterName
  info.scheme = ctx.scheme
  info.downstreamRemoteAddress = req.socket.remoteAddress ?? ''
  const flat = [':method', req.method ?? 'GET', ':path', url, ':authority', facts.authority, ':scheme', ctx.scheme, ...facts.headers]
  const stream = new PipelineStream({ info, requestHeaders: new HeaderMap(flat) })
  // Only the request-headers phase applies: after the 101 the bytes are opaque.
  const sink: PipelineSink = {
    requestHeadersDone: () => open(stream.requestHeaders.get(':method') ?? 'GET', stream.requestHeaders.get(':path') ?? url, stream.requestHeaders.toWire()),
    requestData() {},
    requestTrailersDone() {},
    responseHeadersDone() {},
    responseData() {},
    responseTrailersDone() {},
    localReply: (reply) => refuse(reply),
  }
  run = new PipelineRun(rd.chain, stream, sink, ctx.limits)
  run.start(true)
}
