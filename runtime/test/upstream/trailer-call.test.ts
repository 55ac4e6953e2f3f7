/**
 * The trailer-capable upstream path at the cluster level (UpstreamRequest.trailers set):
 * trailers from an async source, streamed bodies, HTTP/2 over TLS, and the same failure codes
 * and breaker accounting as the undici path.
 */
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { Cluster } from '../../src/upstream/cluster.ts'
import type { UpstreamRequest } from '../../src/upstream/types.ts'
import { clusterConfig, codeOf, deadPort, fetchText, manager, metricValue, startServer, upstreamFixture, waitFor } from './helpers.ts'
import { selfSigned } from './tls-certs.ts'

function post(trailers: UpstreamRequest['trailers'], extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return {
    method: 'POST',
    path: '/t',
    headers: ['host', 'test.local', 'content-length', '5'],
    body: Buffer.from('hello'),
    policy: { requestTimeoutMs: 0, idleTimeoutMs: 0 },
    trailers,
    ...extra,
  }
}

/** Echoes the body and the request trailers as `body|name=value,...`. */
function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  let b = ''
  req.on('data', (d) => (b += d))
  req.on('end', () => res.end(`${b}|${req.rawTrailers.map((x, i) => (i % 2 ? `=${x},` : x)).join('')}`))
}

function counters(c: Cluster): number[] {
  return [c.active, c.pending, ...c.endpoints.map((e) => e.inflight)]
}

describe('trailer-capable upstream calls', () => {
  const fx = upstreamFixture()

  it('HTTP/1.1: a streamed body, then trailers from an async source; both endpoints take turns', async () => {
    const a = await startServer(echo)
    const b = await startServer(echo)
    fx.servers.push(a, b)
    const { clusters, metrics } = manager([clusterConfig('api', [a.port, b.port])])
    fx.clusters = clusters
    const seen = new Set<string>()
    for (let i = 0; i < 2; i++) {
      const body = new PassThrough()
      const p = clusters.get('api')!.request(post(() => new Promise((ok) => setTimeout(ok, 20, ['x-checksum', `c${i}`, 'content-length', '9'])), { body }))
      body.write('hel')
      setTimeout(() => body.end('lo'), 10)
      const r = await fetchText(p)
      expect([r.status, r.text]).toEqual([200, `hello|x-checksum=c${i},`])
      seen.add(r.endpoint)
    }
    expect(seen.size).toBe(2)
    expect(metricValue(metrics, 'omnirelay_upstream_trailer_requests_total{cluster="api"}')).toBe(2)
    expect(counters(clusters.get('api') as Cluster)).toEqual([0, 0, 0, 0])
  })

  it('HTTP/2 over TLS: trailers arrive, response trailers come back, the connection is counted', async () => {
    const { cert, key } = selfSigned()
    const server = http2.createSecureServer({ cert, key }, (req, res) => {
      req.resume()
      req.on('end', () => {
        res.addTrailers({ 'grpc-status': '0' })
        res.end(JSON.stringify(req.trailers))
      })
    })
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    try {
      const { clusters, metrics } = manager([clusterConfig('h2s', [(server.address() as AddressInfo).port], { http2: true, tls: { ca: cert, servername: 'localhost' } })])
      fx.clusters = clusters
      const r = await fetchText(clusters.get('h2s')!.request(post(() => ['x-checksum', 'tls', 'te', 'trailers'])))
      expect(r.status).toBe(200)
      expect(JSON.parse(r.text)).toEqual({ 'x-checksum': 'tls' })
      expect(r.res.trailers()).toEqual(['grpc-status', '0'])
      expect(metricValue(metrics, 'omnirelay_upstream_connections_active{cluster="h2s"}')).toBe(1)
      // A stream on the connected session is open at once: it does not count as pending.
      const body = new PassThrough()
      const p = clusters.get('h2s')!.request(post(() => ['x-second', '1'], { headers: ['host', 'test.local'], body }))
      body.write('hel')
      await waitFor(() => (clusters.get('h2s') as Cluster).active === 1)
      await new Promise((ok) => setTimeout(ok, 20))
      const pending = (clusters.get('h2s') as Cluster).pending
      body.end('lo')
      expect(JSON.parse((await fetchText(p)).text)).toEqual({ 'x-second': '1' })
      expect(pending).toBe(0)
      await clusters.close()
      fx.clusters = undefined
      await waitFor(() => metricValue(metrics, 'omnirelay_upstream_connections_active{cluster="h2s"}') === 0)
    } finally {
      server.close()
    }
  })

  it('HTTP/1.1 over TLS: the cluster CA and server name are used', async () => {
    const { cert, key } = selfSigned()
    const server = https.createServer({ cert, key }, echo)
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    try {
      const { clusters } = manager([clusterConfig('tls1', [(server.address() as AddressInfo).port], { tls: { ca: cert, servername: 'localhost' } })])
      fx.clusters = clusters
      const r = await fetchText(clusters.get('tls1')!.request(post(() => ['x-checksum', 'tls1'])))
      expect([r.status, r.text]).toEqual([200, 'hello|x-checksum=tls1,'])
      const { clusters: strict } = manager([clusterConfig('strict', [(server.address() as AddressInfo).port], { tls: { servername: 'localhost' } })])
      try {
        // Without the CA the self-signed certificate is refused: a connect failure.
        expect(await codeOf(strict.get('strict')!.request(post(() => [])))).toBe('upstream_connect_failure')
      } finally {
        await strict.close()
      }
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })

  it('HTTP/2: a session the server closed is replaced; an aborted upload cancels the upstream stream', async () => {
    let aborted = 0
    const server = http2.createServer()
    server.on('stream', (stream, headers) => {
      if (headers[':path'] === '/hang') {
        stream.on('close', () => aborted++)
        stream.resume()
        return
      }
      stream.resume()
      stream.on('end', () => {
        stream.respond({ ':status': 200 })
        stream.end('ok')
        // Every session serves one request, then goes away.
        setTimeout(() => stream.session?.close(), 5)
      })
    })
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    try {
      const { clusters } = manager([clusterConfig('h2', [(server.address() as AddressInfo).port], { http2: true })])
      fx.clusters = clusters
      for (let i = 0; i < 3; i++) {
        const r = await fetchText(clusters.get('h2')!.request(post(() => [])))
        expect([r.status, r.text]).toEqual([200, 'ok'])
        await new Promise((ok) => setTimeout(ok, 30))
      }
      const ac = new AbortController()
      const body = new PassThrough()
      const p = clusters.get('h2')!.request(post(() => [], { path: '/hang', headers: ['host', 'test.local'], body, signal: ac.signal }))
      body.write('partial')
      try {
        // Once the stream is open it no longer waits for a connection (maxPending).
        await waitFor(() => (clusters.get('h2') as Cluster).pending === 0 && (clusters.get('h2') as Cluster).active === 1)
      } finally {
        setTimeout(() => ac.abort(), 20)
      }
      expect(await codeOf(p)).toBe('upstream_reset')
      await waitFor(() => aborted === 1)
      expect(counters(clusters.get('h2') as Cluster)).toEqual([0, 0, 0])
    } finally {
      server.close()
    }
  })

  it('fails with the undici path codes and leaves no counters behind', async () => {
    const dead = await deadPort()
    const silent = await startServer(() => {})
    fx.servers.push(silent)
    const { clusters } = manager([clusterConfig('dead', [dead]), clusterConfig('silent', [silent.port])])
    fx.clusters = clusters
    expect(await codeOf(clusters.get('dead')!.request(post(() => [])))).toBe('upstream_connect_failure')
    const timeout = { requestTimeoutMs: 150, idleTimeoutMs: 0 }
    expect(await codeOf(clusters.get('silent')!.request(post(() => [], { policy: timeout })))).toBe('upstream_timeout')
    const idle = { requestTimeoutMs: 0, idleTimeoutMs: 150 }
    expect(await codeOf(clusters.get('silent')!.request(post(() => [], { policy: idle })))).toBe('upstream_idle_timeout')
    const ac = new AbortController()
    const p = clusters.get('silent')!.request(post(() => [], { signal: ac.signal }))
    setTimeout(() => ac.abort(), 50)
    expect(await codeOf(p)).toBe('upstream_reset')
    for (const name of ['dead', 'silent']) expect(counters(clusters.get(name) as Cluster)).toEqual([0, 0, 0])
  })

  it('a header node refuses to write is an invalid request, not an endpoint failure', async () => {
    const s = await startServer(echo)
    fx.servers.push(s)
    const { clusters } = manager([clusterConfig('api', [s.port])])
    fx.clusters = clusters
    const bad = post(() => [], { headers: ['host', 'test.local', 'x-bad', 'a\u0000b'] })
    expect(await codeOf(clusters.get('api')!.request(bad))).toBe('upstream_invalid_request')
    expect(counters(clusters.get('api') as Cluster)).toEqual([0, 0, 0])
  })

  it('an upstream reset mid-body errors the body with upstream_reset', async () => {
    const s = await startServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-length': '100' })
        res.write('partial')
        setTimeout(() => res.socket?.destroy(), 20)
      })
    })
    fx.servers.push(s)
    const { clusters } = manager([clusterConfig('api', [s.port])])
    fx.clusters = clusters
    const r = await clusters.get('api')!.request(post(() => []))
    expect(r.statusCode).toBe(200)
    const err = await new Promise<{ code?: string }>((ok) => {
      r.body.on('error', ok)
      r.body.resume()
    })
    expect(err.code).toBe('upstream_reset')
    expect(counters(clusters.get('api') as Cluster)).toEqual([0, 0, 0])
  })
})
