/**
 * WebSocket (and other HTTP/1.1 Upgrade) tunnelling: route as usual, run the route's
 * request-headers filters (so auth applies to upgrades too), open the upgrade through the
 * cluster, relay the 101 and then splice the two sockets. Not on the request hot path.
 *
 * `Upgrade: h2c` (RFC 7540 §3.2, removed by RFC 9113 §3.1) is never switched to nor
 * forwarded: the request is handed back to the HTTP/1.1 server without its upgrade headers
 * and served like any other. Tunnelling it would let a client speak HTTP/2 straight to the
 * upstream past every filter ("h2c smuggling").
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
import { forwardRequestHeaders, type RequestFacts } from './forward-headers.ts'
import { Action, type RouteData } from './snapshot.ts'
import { TunnelLog } from './tunnel-log.ts'

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

/** A local reply on a raw HTTP/1.1 socket, which is closed after it. */
export function writeReply(socket: Duplex, reply: LocalReply): void {
  const h: string[] = []
  for (const [k, v] of reply.headers) h.push(k, v)
  h.push('content-length', String(reply.body.length), 'connection', 'close')
  writeHead(socket, reply.status, h)
  socket.end(reply.body)
}

/** Gives a socket back to the HTTP/1.1 server (as a new connection) to parse what it holds. */
export type ReplayConnection = (socket: Duplex) => void

/**
 * Whether an Upgrade header offers `h2c`.
 * @example
 * offersH2c('h2c') // => true
 * offersH2c('websocket') // => false
 */
export function offersH2c(upgrade: string | undefined): boolean {
  if (upgrade === undefined) return false
  for (const t of upgrade.split(',')) if (t.trim().toLowerCase() === 'h2c') return true
  return false
}

/**
 * The request head again without `upgrade`, `http2-settings` and the `connection` tokens
 * naming them, as latin1 bytes (how node decoded them). Names and order are kept.
 */
function headWithoutUpgrade(req: IncomingMessage): Buffer {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    let value = raw[i + 1]!
    if (name === 'upgrade' || name === 'http2-settings') continue
    if (name === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t && !/^(upgrade|http2-settings)$/i.test(t))
        .join(', ')
      if (!value) continue
    }
    head += `${raw[i]}: ${value}\r\n`
  }
  return Buffer.from(head + '\r\n', 'latin1')
}

export function handleUpgrade(ctx: ServeContext, req: IncomingMessage, socket: Duplex, head: Buffer, replay?: ReplayConnection): void {
  if (replay !== undefined && offersH2c(req.headers.upgrade)) {
    // Node has already detached its parser from the socket; the only way back to an ordinary
    // HTTP/1.1 exchange (body, keep-alive, pipelining) is to let the server parse the request
    // again without its upgrade headers, followed by whatever bytes came after them.
    socket.unshift(head.length ? Buffer.concat([headWithoutUpgrade(req), head]) : headWithoutUpgrade(req))
    replay(socket)
    return
  }
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
  const rec = new TunnelLog(ctx, rd.metrics)
  rec.route = rd.name
  rec.cluster = rd.clusterName
  rd.metrics.requests.inc()
  const remote = req.socket.remoteAddress ?? ''
  socket.once('close', () => {
    rec.bytesIn = (socket as Socket).bytesRead ?? 0
    rec.bytesOut = (socket as Socket).bytesWritten ?? 0
    rec.close({ requestId: facts.requestId, method: req.method ?? '', path: url, authority: facts.authority, protocol: 'HTTP/1.1', remote })
  })
  const refuse = (reply: LocalReply) => {
    rec.settle()
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
        rec.settle()
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
  // Assigned before it starts: a filter may refuse synchronously, and settle() finishes the run.
  const run = (rec.run = upgradeFilterRun(ctx, rd, facts, req.method ?? 'GET', url, 'HTTP/1.1', remote, open, refuse))
  run.start(true)
}

/**
 * The run (not yet started) of the route's chain for a tunnel (HTTP/1.1 Upgrade or HTTP/2
 * extended CONNECT): only the request-headers phase applies, after the handshake the bytes
 * are opaque. `open` gets the filtered method, path and wire headers; `refuse` a filter's
 * local reply.
 *
 * @example
 * const run = upgradeFilterRun(ctx, rd, facts, 'GET', '/ws', 'HTTP/2', remote, open, refuse)
 * run.start(true)
 */
export function upgradeFilterRun(
  ctx: ServeContext,
  rd: RouteData,
  facts: RequestFacts,
  method: string,
  url: string,
  protocol: string,
  remote: string,
  open: (method: string, path: string, headers: string[]) => void,
  refuse: (reply: LocalReply) => void,
): PipelineRun {
  const info = new MutableStreamInfo()
  info.requestId = facts.requestId
  info.epoch = ctx.state.snapshot.epoch
  info.routeName = rd.name
  info.clusterName = rd.clusterName
  info.scheme = ctx.scheme
  info.protocol = protocol
  info.downstreamRemoteAddress = remote
  const flat = [':method', method, ':path', url, ':authority', facts.authority, ':scheme', ctx.scheme, ...facts.headers]
  const stream = new PipelineStream({ info, requestHeaders: new HeaderMap(flat) })
  const sink: PipelineSink = {
    requestHeadersDone: () => open(stream.requestHeaders.get(':method') ?? method, stream.requestHeaders.get(':path') ?? url, stream.requestHeaders.toWire()),
    requestData() {},
    requestTrailersDone() {},
    responseHeadersDone() {},
    responseData() {},
    responseTrailersDone() {},
    localReply: (reply) => refuse(reply),
  }
  return new PipelineRun(rd.chain, stream, sink, ctx.limits)
}
