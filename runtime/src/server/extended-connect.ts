/**
 * WebSocket over HTTP/2 (RFC 8441 extended CONNECT), and clean answers to every other
 * CONNECT. Not on the request hot path: one closure set per tunnel, like the HTTP/1.1 one.
 *
 * An extended CONNECT is treated as the HTTP/1.1 upgrade it stands for (what Envoy does
 * too): routes and filters see `:method GET` with `connection: upgrade` and
 * `upgrade: websocket`, so one route and one filter chain serve WebSockets over both
 * protocols. The upstream is opened as an HTTP/1.1 upgrade through the cluster (with a fresh
 * `sec-websocket-key`, RFC 8441 §5 has none), its 101 becomes `:status 200`, and the h2
 * stream and the upstream socket are piped both ways with backpressure (h2 flow control on
 * one side, TCP on the other).
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import http2, { type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import { statusClass } from '../observability/proxy-metrics.ts'
import { hostReply, type LocalReply } from '../pipeline/local-reply.ts'
import { normalizeHost } from '../routing/route-table.ts'
import { upstreamErrorReply, type ServeContext } from './exchange.ts'
import { forwardRequestHeaders, forwardResponseHeaders } from './forward-headers.ts'
import { Action } from './snapshot.ts'
import { TunnelLog } from './tunnel-log.ts'
import { upgradeFilterRun, writeReply } from './upgrade.ts'

const { NGHTTP2_NO_ERROR, NGHTTP2_CONNECT_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants

/**
 * Codes of the local replies this module writes. Envoy answers a CONNECT with 404 (only a
 * `connect_matcher` route matches one, and there is no such route here) and an upgrade the
 * route does not enable with 403 `upgrade_failed`; we answer 501 for both, as the HTTP/1.1
 * tunnel does for routes that cannot tunnel, because the proxy does not implement them
 * (RFC 9110 §9.1, §15.6.2), whatever the route.
 */
export const ConnectReplyCode = {
  /** 501: CONNECT without `:protocol` (a TCP tunnel), HTTP/1.1 or HTTP/2. */
  ConnectUnsupported: 'connect_unsupported',
  /** 501: extended CONNECT with a `:protocol` other than `websocket`. */
  ProtocolUnsupported: 'upgrade_unsupported_protocol',
  /** 502: the upstream answered the upgrade with a 2xx other than 101: a 2xx to an extended CONNECT would tell the client the tunnel is open. */
  UpgradeNotAccepted: 'upgrade_not_accepted',
} as const

/** How long an upstream socket may take to flush after the downstream stream closed cleanly. */
const LINGER_MS = 5_000

/**
 * The listener's `connect` event. HTTP/2 servers emit it with the compat request and
 * response; an HTTP/1.1 server (or the HTTP/1.1 fallback of an h2 TLS listener) with the
 * request, the raw socket and the bytes after the head.
 *
 * @example
 * server.on('connect', (req, res) => handleConnect(ctx, req, res))
 */
export function handleConnect(ctx: ServeContext, req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | Duplex): void {
  if (req.httpVersionMajor !== 2) {
    const socket = res as Duplex
    socket.on('error', () => socket.destroy())
    const m = ctx.state.noRoute
    m.requests.inc()
    m.responses[statusClass(501)]!.inc()
    writeReply(socket, hostReply(501, ConnectReplyCode.ConnectUnsupported))
    return
  }
  const h2req = req as Http2ServerRequest
  try {
    extendedConnect(ctx, h2req, res as Http2ServerResponse)
  } catch (err) {
    // A bug of ours must cost one stream, not the process.
    ctx.log?.error('CONNECT handling failed', { err })
    if (!h2req.stream.destroyed) h2req.stream.close(NGHTTP2_INTERNAL_ERROR)
  }
}

function extendedConnect(ctx: ServeContext, req: Http2ServerRequest, res: Http2ServerResponse): void {
  const stream = req.stream
  const state = ctx.state
  const remote = stream.session?.socket?.remoteAddress ?? ''
  const protocol = req.headers[':protocol']
  const url = req.url ?? ''
  // `:protocol` marks the request as an upgrade; the rest is the HTTP/1.1 request it stands for.
  const raw: string[] = []
  const rawIn = req.rawHeaders
  for (let i = 0; i < rawIn.length; i += 2) {
    const n = rawIn[i]!
    if (n !== ':protocol' && n !== ':method' && n !== 'sec-websocket-key') raw.push(n, rawIn[i + 1]!)
  }
  raw.push('connection', 'upgrade', 'upgrade', 'websocket')
  const facts = forwardRequestHeaders(raw, remote, ctx.scheme, ctx.fwd, true)
  const rec = new TunnelLog(ctx, state.noRoute)
  stream.once('close', () => rec.close({ requestId: facts.requestId, method: 'CONNECT', path: url, authority: facts.authority, protocol: 'HTTP/2', remote }))
  const refuse = (reply: LocalReply) => {
    rec.settle()
    if (stream.destroyed || stream.closed || stream.headersSent) return
    rec.status = reply.status
    rec.details = reply.details ?? null
    const h: string[] = []
    for (const [k, v] of reply.headers) h.push(k, v)
    h.push('content-length', String(reply.body.length))
    try {
      res.writeHead(reply.status, h as unknown as Record<string, string>)
    } catch {
      // A filter's reply with a header HTTP/2 refuses (e.g. `connection`): reset rather than throw.
      stream.close(NGHTTP2_INTERNAL_ERROR)
      return
    }
    rec.bytesOut += reply.body.length
    res.end(reply.body)
  }
  const fail = (err: unknown) => {
    ctx.log?.error('CONNECT handling failed', { err, requestId: facts.requestId })
    if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR)
  }

  if (protocol === undefined || protocol.toLowerCase() !== 'websocket') {
    rec.metrics.requests.inc()
    return refuse(hostReply(501, protocol === undefined ? ConnectReplyCode.ConnectUnsupported : ConnectReplyCode.ProtocolUnsupported))
  }
  const q = url.indexOf('?')
  const route = state.table.match(normalizeHost(facts.authority), q < 0 ? url : url.slice(0, q), 'GET', raw)
  if (route === undefined) {
    rec.metrics.requests.inc()
    return refuse(hostReply(404, 'no_route'))
  }
  const rd = route.data
  rec.metrics = rd.metrics
  rd.metrics.requests.inc()
  rec.route = rd.name
  if (rd.action !== Action.Cluster || !rd.cluster) return refuse(hostReply(501, 'upgrade_unsupported_route'))
  rec.cluster = rd.clusterName
  const cluster = rd.cluster

  const open = (method: string, path: string, headers: string[]) => {
    removeHeader(headers, 'sec-websocket-key')
    headers.push('sec-websocket-key', randomBytes(16).toString('base64'), 'host', facts.authority)
    const ac = new AbortController()
    stream.once('close', () => ac.abort())
    cluster.upgrade({ method, path, headers, signal: ac.signal }).then(
      (up) => {
        if (stream.destroyed || stream.closed) {
          up.socket.destroy()
          return
        }
        rec.upstream = up.endpoint
        if (up.statusCode < 300 && up.statusCode !== 101) {
          up.socket.destroy()
          return refuse(hostReply(502, ConnectReplyCode.UpgradeNotAccepted))
        }
        rec.settle()
        const relayed = up.statusCode === 101 ? tunnel(ctx, stream, res, up.socket, up.headers, rec) : relayRefusal(ctx, stream, res, up.statusCode, up.headers, up.socket, rec)
        if (!relayed) {
          // A head HTTP/2 cannot carry (e.g. a header value it refuses).
          up.socket.destroy()
          refuse(hostReply(502, 'upstream_response_invalid'))
        }
      },
      (err) => refuse(upstreamErrorReply(err)),
    ).catch(fail)
  }
  if (rd.chain.entries.length === 0) return open('GET', url, facts.headers)
  // Assigned before it starts: a filter may refuse synchronously, and settle() finishes the run.
  const run = (rec.run = upgradeFilterRun(ctx, rd, facts, 'GET', url, 'HTTP/2', remote, open, refuse))
  run.start(true)
}

/**
 * The upstream refused the upgrade (401, 403, 426...): its status, headers and body reach
 * the client as they are. False when HTTP/2 cannot carry the head (nothing was sent).
 */
function relayRefusal(
  ctx: ServeContext,
  stream: ServerHttp2Stream,
  res: Http2ServerResponse,
  status: number,
  headers: string[],
  body: Duplex,
  rec: TunnelLog,
): boolean {
  try {
    res.writeHead(status, forwardResponseHeaders(headers, ctx.fwd.via) as unknown as Record<string, string>)
  } catch {
    return false
  }
  rec.status = status
  body.on('data', (c: Uint8Array) => (rec.bytesOut += c.length))
  body.on('error', () => {
    if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR)
  })
  body.pipe(res)
  stream.once('close', () => body.destroy())
  return true
}

/**
 * Pipes the h2 stream and the upstream socket both ways. Closing maps as RFC 8441 §3 and
 * RFC 9113 §8.5 say: a clean end is END_STREAM (the first side to finish ends both, as for
 * the HTTP/1.1 tunnel); an upstream reset or error is RST_STREAM(CONNECT_ERROR); a client
 * reset destroys the upstream socket. False when HTTP/2 cannot carry the head (nothing was sent).
 */
function tunnel(ctx: ServeContext, stream: ServerHttp2Stream, res: Http2ServerResponse, sock: Duplex, upHeaders: string[], rec: TunnelLog): boolean {
  const h = forwardResponseHeaders(upHeaders, ctx.fwd.via)
  // The accept header proves the key we made up; it means nothing to an h2 client (RFC 8441 §5).
  removeHeader(h, 'sec-websocket-accept')
  try {
    res.writeHead(200, h as unknown as Record<string, string>)
  } catch {
    return false
  }
  rec.status = 200
  let upstreamFailed = false
  sock.on('error', () => (upstreamFailed = true))
  stream.on('error', () => sock.destroy())
  stream.on('data', (c: Uint8Array) => (rec.bytesIn += c.length))
  sock.on('data', (c: Uint8Array) => (rec.bytesOut += c.length))
  const finish = () => {
    if (!stream.writableEnded && !stream.destroyed) stream.end()
    if (!sock.writableEnded && !sock.destroyed) sock.end()
  }
  stream.once('end', finish)
  sock.once('end', finish)
  sock.once('close', () => {
    if (stream.closed || stream.destroyed) return
    if (upstreamFailed || !sock.readableEnded) {
      stream.close(NGHTTP2_CONNECT_ERROR)
      return
    }
    // Ended cleanly: let the END_STREAM and what precedes it go out, then stop the client's side too.
    if (stream.writableFinished) stream.close(NGHTTP2_NO_ERROR)
    else stream.once('finish', () => stream.closed || stream.close(NGHTTP2_NO_ERROR))
  })
  stream.once('close', () => {
    if (stream.rstCode !== undefined && stream.rstCode !== NGHTTP2_NO_ERROR) sock.destroy()
    else closeSoon(sock)
  })
  sock.pipe(stream, { end: false })
  stream.pipe(sock, { end: false })
  return true
}

/** Ends a socket and destroys it once flushed (or after LINGER_MS if the peer stops reading). */
function closeSoon(sock: Duplex): void {
  if (sock.destroyed) return
  if (sock.writableFinished) {
    sock.destroy()
    return
  }
  sock.once('finish', () => sock.destroy())
  if (!sock.writableEnded) sock.end()
  setTimeout(() => sock.destroy(), LINGER_MS).unref()
}

function removeHeader(flat: string[], name: string): void {
  for (let i = 0; i < flat.length; ) {
    if (flat[i] === name) flat.splice(i, 2)
    else i += 2
  }
}
