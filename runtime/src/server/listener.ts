/**
 * One downstream listener: the right node server for its protocol (HTTP/1.1, HTTPS, h2c,
 * h2 over TLS with ALPN and HTTP/1.1 fallback), its limits against slow or oversized
 * clients, clean answers to malformed input, and graceful drain.
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { resolve } from 'node:path'
import type { Duplex } from 'node:stream'
import type { ListenerConfig } from '../config/types.ts'
import type { Logger } from '../observability/logger.ts'
import type { CounterChild, MetricsRegistry } from '../observability/metrics.ts'
import { handleRequest, type DownstreamRequest, type DownstreamResponse, type ServeContext } from './exchange.ts'
import { handleConnect } from './extended-connect.ts'
import { handleUpgrade } from './upgrade.ts'

type AnyServer = http.Server | https.Server | http2.Http2Server | http2.Http2SecureServer

const CLIENT_ERROR_STATUS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'request_timeout'],
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }

export class Listener {
  readonly config: ListenerConfig
  readonly ctx: ServeContext
  readonly #server: AnyServer
  readonly #sockets = new Set<Duplex>()
  readonly #sessions = new Set<http2.Http2Session>()
  readonly #log: Logger
  readonly #protocolErrors: (code: string) => CounterChild
  #closing: Promise<void> | undefined

  constructor(config: ListenerConfig, ctx: ServeContext, baseDir: string, log: Logger, registry: MetricsRegistry) {
    this.config = config
    this.ctx = ctx
    this.#log = log
    const family = registry.counter('omnirelay_downstream_protocol_errors_total', 'Malformed, oversized or too slow downstream requests', [
      'listener',
      'code',
    ])
    this.#protocolErrors = (code) => family.labels(config.name, code)
    const limits = ctx.limits
    const onRequest = (req: DownstreamRequest, res: DownstreamResponse) => handleRequest(ctx, req, res)
    const h1Options: http.ServerOptions = {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above on this interval (default 30 s): keep it tight.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, limits.headersTimeoutMs >> 1)),
    }
    // RFC 8441: advertise extended CONNECT, so clients may open WebSockets over HTTP/2.
    const h2Settings: http2.Settings = { maxHeaderListSize: limits.maxHeaderBytes, enableConnectProtocol: true }
    const tls = config.tls
    if (tls) {
      const tlsOpts = {
        cert: readFileSync(resolve(baseDir, tls.cert)),
        key: readFileSync(resolve(baseDir, tls.key)),
        ca: tls.ca ? readFileSync(resolve(baseDir, tls.ca)) : undefined,
        requestCert: tls.requestClientCert,
        rejectUnauthorized: false,
      }
      this.#server = config.http2
        ? http2.createSecureServer({ ...tlsOpts, allowHTTP1: true, settings: h2Settings }, onRequest)
        : https.createServer({ ...tlsOpts, ...h1Options }, onRequest)
    } else {
      this.#server = config.http2
        ? http2.createServer({ settings: h2Settings }, onRequest)
        : http.createServer(h1Options, onRequest)
    }
    const server = this.#server
    const track = (socket: Duplex) => {
      // A socket handed back to the server (see `replay`) is already counted.
      if (this.#sockets.has(socket)) return
      this.#sockets.add(socket)
      ctx.metrics.activeConnections.inc()
      socket.once('close', () => {
        this.#sockets.delete(socket)
        ctx.metrics.activeConnections.dec()
      })
    }
    const connectionEvent = tls ? 'secureConnection' : 'connection'
    server.on(connectionEvent, track)
    // HTTP/2 CONNECT streams, and HTTP/1.1 CONNECT requests (also on the h1 fallback of TLS h2).
    server.on('connect', (req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | Duplex) => handleConnect(ctx, req, res))
    // HTTP/1.1 upgrades, also on the h1 fallback of TLS h2 (node's h1 server runs there as is).
    const replay = (socket: Duplex) => server.emit(connectionEvent, socket)
    if (!config.http2 || tls) server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => handleUpgrade(ctx, req, socket, head, replay))
    if (!config.http2) {
      const h1 = server as http.Server
      h1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#clientError(err, socket))
    } else {
      server.on('session', (s: http2.Http2Session) => {
        this.#sessions.add(s)
        s.once('close', () => this.#sessions.delete(s))
        // A session that goes quiet is closed, like an idle keep-alive connection.
        s.setTimeout(Math.max(limits.keepAliveTimeoutMs, limits.requestTimeoutMs), () => s.close())
        s.on('error', () => {})
      })
      server.on('sessionError', () => {})
      if ('setTimeout' in server) server.setTimeout(limits.requestTimeoutMs || 0)
      // Unheard, this timeout destroys a session whose socket was quiet that long. A session
      // with a stream open (a slow answer, a quiet gRPC stream, a WebSocket tunnel) is kept:
      // its streams are bounded by their routes' timeouts; idle limits are for sessions with
      // no stream, as in Envoy.
      const open = new WeakMap<object, number>()
      server.on('stream', (stream: http2.ServerHttp2Stream) => {
        const s = stream.session
        if (s === undefined) return
        open.set(s, (open.get(s) ?? 0) + 1)
        stream.once('close', () => open.set(s, open.get(s)! - 1))
      })
      server.on('timeout', (s: http2.Http2Session | Duplex) => {
        if (!(open.get(s)! > 0)) s.destroy()
      })
    }
    server.on('tlsClientError', (_err: Error, socket: Socket) => {
      this.#protocolErrors('tls_handshake').inc()
      socket.destroy()
    })
  }

  listen(): Promise<void> {
    return new Promise((ok, fail) => {
      const server = this.#server
      const onError = (e: Error) => fail(e)
      server.once('error', onError)
      server.listen(this.config.port, this.config.address, () => {
        server.off('error', onError)
        server.on('error', (e) => this.#log.error('listener error', { listener: this.config.name, err: e }))
        ok()
      })
    })
  }

  address(): AddressInfo {
    return this.#server.address() as AddressInfo
  }

  /**
   * Stops accepting, lets in-flight requests finish, then destroys what is left after
   * `deadlineMs`. Idle keep-alive connections close at once; busy HTTP/1.1 ones get
   * `connection: close` on their next response; HTTP/2 sessions get GOAWAY.
   */
  close(deadlineMs: number): Promise<void> {
    this.#closing ??= new Promise<void>((done) => {
      this.ctx.draining = true
      const server = this.#server
      server.close(() => done())
      if (!this.config.http2) (server as http.Server).closeIdleConnections()
      for (const s of this.#sessions) s.close()
      const timer = setTimeout(() => {
        if (this.#sockets.size || this.#sessions.size) this.#log.debug('drain deadline: destroying connections', { listener: this.config.name, sockets: this.#sockets.size, sessions: this.#sessions.size })
        for (const s of this.#sessions) s.destroy()
        for (const s of this.#sockets) s.destroy()
      }, deadlineMs)
      timer.unref()
      server.once('close', () => clearTimeout(timer))
    })
    return this.#closing
  }

  #clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const [status, code] = CLIENT_ERROR_STATUS[err.code ?? ''] ?? [400, 'bad_request']
    this.#protocolErrors(code).inc()
    this.#log.debug('downstream protocol error', { listener: this.config.name, code, err: err.code })
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy()
      return
    }
    const body = JSON.stringify({ error: code, status }) + '\n'
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status] ?? 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
  }
}
