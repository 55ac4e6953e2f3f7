import net from 'node:net'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createHttpCaller } from '../../src/upstream/index.ts'
import { clusterConfig, codeOf, deadPort, fetchText, get, header, manager, metricValue, readAll, startServer, upstreamFixture } from './helpers.ts'

describe('basic cluster', () => {
  const fx = upstreamFixture()
  const { servers } = fx

  it('forwards a GET and streams the response with flat lower-case headers', async () => {
    const s = await startServer((req, res) => {
      res.setHeader('X-Echo-Path', req.url!)
      res.setHeader('X-Host', req.headers.host!)
      res.setHeader('Set-Cookie', ['a=1', 'b=2'])
      res.end('hello')
    })
    servers.push(s)
    const m = manager([clusterConfig('api', [s.port])])
    fx.clusters = m.clusters
    const r = await fetchText(fx.clusters.get('api')!.request(get('/p?q=1')))
    expect(r.status).toBe(200)
    expect(r.text).toBe('hello')
    expect(r.endpoint).toBe(`127.0.0.1:${s.port}`)
    expect(header(r.res.headers, 'x-echo-path')).toBe('/p?q=1')
    expect(header(r.res.headers, 'x-host')).toBe('test.local')
    expect(r.res.headers.filter((_, i, a) => i % 2 === 0 && a[i] === 'set-cookie').length).toBe(2)
    expect(metricValue(m.metrics, 'omnirelay_upstream_responses_total{cluster="api",class="2xx"}')).toBe(1)
    expect(metricValue(m.metrics, 'omnirelay_upstream_requests_total{cluster="api"}')).toBe(1)
    expect(metricValue(m.metrics, 'omnirelay_upstream_requests_active{cluster="api"}')).toBe(0)
    expect(metricValue(m.metrics, 'omnirelay_upstream_connections_active{cluster="api"}')).toBe(1)
  })

  it('reaches an IPv6 literal endpoint', async () => {
    const http = await import('node:http')
    const server = http.createServer((_q, r) => r.end('v6'))
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false))
      server.listen(0, '::1', () => resolve(true))
    })
    if (!listening) return // no IPv6 loopback on this machine
    try {
      const port = (server.address() as net.AddressInfo).port
      const cfg = clusterConfig('v6', [])
      cfg.endpoints = [{ host: '::1', port }]
      fx.clusters = manager([cfg]).clusters
      const r = await fetchText(fx.clusters.get('v6')!.request(get()))
      expect(r.text).toBe('v6')
      expect(r.endpoint).toBe(`[::1]:${port}`)
    } finally {
      await fx.clusters?.close()
      fx.clusters = undefined
      server.closeAllConnections()
      server.close()
    }
  })

  it('reuses keep-alive connections', async () => {
    const sockets = new Set<unknown>()
    const s = await startServer((req, res) => {
      sockets.add(req.socket)
      res.end('x')
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('api', [s.port])]).clusters
    for (let i = 0; i < 50; i++) await fetchText(fx.clusters.get('api')!.request(get()))
    // undici may open a second connection while the first is between requests (drain is
    // emitted on the next tick); it must not open one per request.
    expect(sockets.size).toBeLessThanOrEqual(2)
  })

  it('streams a request body and response body both ways', async () => {
    const s = await startServer((req, res) => {
      res.writeHead(200)
      req.pipe(res)
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('api', [s.port])]).clusters
    async function* gen() {
      for (let i = 0; i < 5; i++) yield Buffer.from(`chunk${i};`)
    }
    const r = await fetchText(
      fx.clusters.get('api')!.request({ ...get('/'), method: 'POST', body: Readable.from(gen()), headers: ['host', 'x'] }),
    )
    expect(r.text).toBe('chunk0;chunk1;chunk2;chunk3;chunk4;')
  })

  it('passes response trailers on HTTP/1.1', async () => {
    const s = await startServer((_req, res) => {
      res.writeHead(200, { Trailer: 'x-checksum' })
      res.write('body')
      res.addTrailers({ 'X-Checksum': 'abc' })
      res.end()
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('api', [s.port])]).clusters
    const r = await fetchText(fx.clusters.get('api')!.request(get()))
    expect(r.text).toBe('body')
    expect(r.res.trailers()).toEqual(['x-checksum', 'abc'])
  })

  it('fails with upstream_connect_failure when nothing listens', async () => {
    const port = await deadPort()
    const m = manager([clusterConfig('api', [port])])
    fx.clusters = m.clusters
    expect(await codeOf(fx.clusters.get('api')!.request(get()))).toBe('upstream_connect_failure')
    expect(metricValue(m.metrics, 'omnirelay_upstream_errors_total{cluster="api",code="upstream_connect_failure"}')).toBe(1)
  })

  it('refuses a request undici cannot build with upstream_invalid_request, without blaming the endpoint', async () => {
    const s = await startServer((_q, res) => res.end('ok'))
    servers.push(s)
    const m = manager([
      clusterConfig('api', [s.port], {
        outlierDetection: { consecutive5xx: 1, consecutiveConnectFailures: 1, baseEjectionMs: 10_000, maxEjectionPercent: 100 },
      }),
    ])
    fx.clusters = m.clusters
    const c = fx.clusters.get('api')!
    expect(await codeOf(c.request({ ...get(), headers: ['host', 'a', 'host', 'b'] }))).toBe('upstream_invalid_request')
    expect(await codeOf(c.request({ ...get(), headers: ['host', 'a', 'expect', '100-continue'] }))).toBe('upstream_invalid_request')
    expect(s.hits).toBe(0)
    expect((await fetchText(c.request(get()))).text).toBe('ok')
    expect(metricValue(m.metrics, 'omnirelay_upstream_ejections_total{cluster="api"}')).toBe(0)
  })

  it('a mid-body reset with no error listener on the body does not crash', async () => {
    const s = await startServer((req, res) => {
      res.writeHead(200)
      res.write('part')
      setTimeout(() => req.socket.destroy(), 10)
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('api', [s.port])]).clusters
    const res = await fx.clusters.get('api')!.request(get())
    await new Promise((r) => setTimeout(r, 100))
    expect(res.body.destroyed).toBe(true)
  })

  it('tunnels a WebSocket-style upgrade', async () => {
    const s = await startServer((_req, res) => res.end())
    s.server.on('upgrade', (req, socket: net.Socket) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ' +
          req.headers['sec-websocket-key'] +
          '\r\n\r\n',
      )
      socket.pipe(socket)
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('ws', [s.port])]).clusters
    const up = await fx.clusters.get('ws')!.upgrade({
      method: 'GET',
      path: '/chat',
      headers: ['host', 'x', 'upgrade', 'websocket', 'connection', 'Upgrade', 'sec-websocket-key', 'k1', 'sec-websocket-version', '13'],
    })
    expect(up.statusCode).toBe(101)
    expect(header(up.headers, 'sec-websocket-accept')).toBe('k1')
    up.socket.write('ping')
    const echoed = await new Promise<string>((r) => up.socket.once('data', (d: Buffer) => r(d.toString())))
    expect(echoed).toBe('ping')
    up.socket.destroy()
  })

  it('relays a refused upgrade with its status and body', async () => {
    const s = await startServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'text/plain' })
      res.end('nope')
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('ws', [s.port])]).clusters
    const up = await fx.clusters.get('ws')!.upgrade({ method: 'GET', path: '/', headers: ['host', 'x', 'upgrade', 'websocket'] })
    expect(up.statusCode).toBe(401)
    expect(await readAll(up.socket as unknown as Readable)).toBe('nope')
  })

  it('httpCall buffers a callout and reports codes', async () => {
    const s = await startServer((req, res) => {
      let body = ''
      req.on('data', (d) => (body += d))
      req.on('end', () => {
        res.writeHead(201, { 'x-method': req.method!, 'x-host': req.headers.host! })
        res.end(`got:${body}:${req.url}`)
      })
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('auth', [s.port])]).clusters
    const call = createHttpCaller(fx.clusters)
    const res = await call({
      cluster: 'auth',
      headers: [
        [':method', 'POST'],
        [':path', '/check'],
        [':authority', 'auth.internal'],
        ['x-a', '1'],
      ],
      body: new TextEncoder().encode('payload'),
      timeoutMs: 2_000,
    })
    expect(res.headers[0]).toEqual([':status', '201'])
    expect(res.headers).toContainEqual(['x-method', 'POST'])
    expect(res.headers).toContainEqual(['x-host', 'auth.internal'])
    expect(Buffer.from(res.body).toString()).toBe('got:payload:/check')
    expect(await codeOf(call({ cluster: 'nope', headers: [[':method', 'GET'], [':path', '/']], timeoutMs: 100 }))).toBe('unknown_cluster')
  })
})
