import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import type { ClusterManager } from '../../src/upstream/types.ts'
import { clusterConfig, fetchText, get, grpcFrame, header, manager, metricValue, waitFor } from './helpers.ts'
import { selfSigned } from './tls-certs.ts'

/** A gRPC-like bidirectional echo: every message back upper-cased, then grpc-status trailers. */
function grpcEcho(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  if (headers['content-type'] !== 'application/grpc') {
    stream.respond({ ':status': 415 })
    stream.end()
    return
  }
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
  let buf = Buffer.alloc(0)
  stream.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const len = buf.readUInt32BE(1)
      stream.write(grpcFrame(buf.subarray(5, 5 + len).toString().toUpperCase()))
      buf = buf.subarray(5 + len)
    }
  })
  stream.on('end', () => stream.end())
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'done' }))
}

describe('HTTP/2 upstreams', () => {
  const servers: http2.Http2Server[] = []
  let clusters: ClusterManager | undefined
  afterEach(async () => {
    await clusters?.close()
    clusters = undefined
    for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()))
  })

  async function listen(s: http2.Http2Server): Promise<number> {
    servers.push(s)
    const sessions = new Set<http2.ServerHttp2Session>()
    s.on('session', (ss) => {
      sessions.add(ss)
      ss.on('close', () => sessions.delete(ss))
    })
    // close() waits for sessions: end them so afterEach does not hang.
    const close = s.close.bind(s)
    s.close = ((cb?: () => void) => {
      for (const ss of sessions) ss.destroy()
      return close(cb)
    }) as typeof s.close
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    return (s.address() as AddressInfo).port
  }

  it('passes a bidirectional gRPC-like stream with grpc-status trailers over h2c', async () => {
    const server = http2.createServer()
    server.on('stream', grpcEcho)
    const port = await listen(server)
    clusters = manager([clusterConfig('grpc', [port], { http2: true })]).clusters
    const reqBody = new PassThrough()
    const res = await clusters.get('grpc')!.request({
      method: 'POST',
      path: '/echo.Echo/Chat',
      headers: ['host', 'grpc.local', 'content-type', 'application/grpc', 'te', 'trailers'],
      body: reqBody,
      policy: { requestTimeoutMs: 0, idleTimeoutMs: 0 },
    })
    expect(res.statusCode).toBe(200)
    expect(header(res.headers, 'content-type')).toBe('application/grpc')

    // Interleaved: each reply arrives before the next message is sent.
    const it = res.body[Symbol.asyncIterator]()
    const replies: string[] = []
    for (const word of ['one', 'two', 'three']) {
      reqBody.write(grpcFrame(word))
      const { value } = await it.next()
      replies.push((value as Buffer).subarray(5).toString())
    }
    reqBody.end()
    expect((await it.next()).done).toBe(true)
    expect(replies).toEqual(['ONE', 'TWO', 'THREE'])
    expect(header(res.trailers(), 'grpc-status')).toBe('0')
    expect(header(res.trailers(), 'grpc-message')).toBe('done')
  })

  it('client streaming longer than the idle timeout passes while bytes flow upstream', async () => {
    const server = http2.createServer()
    server.on('stream', (stream) => {
      // Headers at once, then silence until the client has sent everything.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
      let n = 0
      stream.on('data', (d: Buffer) => (n += d.length))
      stream.on('end', () => stream.end(grpcFrame(`total ${n}`)))
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
    })
    const port = await listen(server)
    clusters = manager([clusterConfig('grpc', [port], { http2: true })]).clusters
    const up = new PassThrough()
    const res = await clusters.get('grpc')!.request({
      method: 'POST',
      path: '/echo.Echo/Upload',
      headers: ['host', 'grpc.local', 'content-type', 'application/grpc'],
      body: up,
      policy: { requestTimeoutMs: 0, idleTimeoutMs: 250 },
    })
    // 1.1 s of upload, far beyond the 250 ms idle timeout, never 250 ms without a byte.
    for (let i = 0; i < 14; i++) {
      up.write(grpcFrame('abcd'))
      await new Promise((r) => setTimeout(r, 80))
    }
    up.end()
    const chunks: Buffer[] = []
    for await (const c of res.body) chunks.push(c as Buffer)
    expect(Buffer.concat(chunks).subarray(5).toString()).toBe('total 126')
    expect(header(res.trailers(), 'grpc-status')).toBe('0')
  })

  it('multiplexes concurrent requests over one h2 connection', async () => {
    const server = http2.createServer((req, res) => res.end(`v${req.httpVersion}`))
    let sessions = 0
    server.on('session', () => sessions++)
    const port = await listen(server)
    clusters = manager([clusterConfig('h2', [port], { http2: true, maxConnectionsPerEndpoint: 1 })]).clusters
    const all = await Promise.all(Array.from({ length: 20 }, () => fetchText(clusters!.get('h2')!.request(get()))))
    expect(all.every((r) => r.text === 'v2.0')).toBe(true)
    expect(sessions).toBe(1)
  })

  it('health-checks h2c endpoints over HTTP/2', async () => {
    const state = { status: 200 }
    const server = http2.createServer((req, res) => {
      res.statusCode = req.url === '/healthz' ? state.status : 200
      res.end()
    })
    const port = await listen(server)
    const m = manager([
      clusterConfig('h2', [port], {
        http2: true,
        healthCheck: { path: '/healthz', intervalMs: 20, timeoutMs: 200, unhealthyThreshold: 1, healthyThreshold: 1 },
      }),
    ])
    clusters = m.clusters
    const ok = () => metricValue(m.metrics, 'omnirelay_upstream_health_checks_total{cluster="h2",result="success"}')
    await waitFor(() => ok() >= 2)
    state.status = 503
    await waitFor(() => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="h2"}') === 0)
  })

  it('speaks h2 over TLS (ALPN) with a trusted self-signed certificate', async () => {
    const { cert, key } = selfSigned()
    const server = http2.createSecureServer({ cert, key })
    server.on('stream', grpcEcho)
    const port = await listen(server as unknown as http2.Http2Server)
    clusters = manager([clusterConfig('grpcs', [port], { http2: true, tls: { ca: cert, servername: 'localhost' } })]).clusters
    const res = await clusters.get('grpcs')!.request({
      method: 'POST',
      path: '/echo.Echo/Unary',
      headers: ['host', 'localhost', 'content-type', 'application/grpc'],
      body: grpcFrame('hi'),
      policy: { requestTimeoutMs: 2_000, idleTimeoutMs: 0 },
    })
    const chunks: Buffer[] = []
    for await (const c of res.body) chunks.push(c as Buffer)
    expect(Buffer.concat(chunks).subarray(5).toString()).toBe('HI')
    expect(header(res.trailers(), 'grpc-status')).toBe('0')
  })
})
