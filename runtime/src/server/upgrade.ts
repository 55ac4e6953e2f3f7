/**
 * WebSocket (and other HTTP/1.1 Upgrade) tunnelling: route as usual, run the route's
 * request-headers filters (so auth applies to upgrades too), open the upgrade through the
 * cluster, relay the 101 and then splice the two sockets. Not on the request hot path.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { PipelineRun, type PipelineSink } from '../pipeline/executor.ts'
import { HeaderMap } from '../pipeline/header-map.ts'
import { hostReply, type LocalReply } from '../pipeline/local-reply.ts'
import { MutableStreamInfo, PipelineStream } from '../pipeline/stream.ts'
import { normalizeHost } from '../routing/route-table.ts'
import { upstreamErrorReply, type ServeContext } from './exchange.ts'
import { forwardRequestHeaders } from './forward-headers.ts'
import { Action } from './snapshot.ts'

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
      (err) => writeReply(socket, upstreamErrorReply(err)),
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
    localReply: (reply) => writeReply(socket, reply),
  }
  const run = new PipelineRun(rd.chain, stream, sink, ctx.limits)
  socket.once('close', () => run.finish())
  run.start(true)
}
