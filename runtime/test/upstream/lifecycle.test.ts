import type http from 'node:http'
import { describe, expect, it } from 'vitest'
import type { ClusterConfig } from '../../src/upstream/types.ts'
import { clusterConfig, codeOf, fetchText, get, manager, metricValue, readAll, startServer, upstreamFixture, waitFor } from './helpers.ts'

describe('update() and close()', () => {
  const fx = upstreamFixture()
  const { servers } = fx

  it('keeps an unchanged cluster (same instance, same health state) across updates', async () => {
    const failing = { ok: true }
    const a = await startServer((req, res) => {
      res.statusCode = req.url === '/healthz' && !failing.ok ? 503 : 200
      res.end('a')
    })
    const b = await startServer((_q, res) => res.end('b'))
    servers.push(a, b)
    const cfg = clusterConfig('api', [a.port, b.port], {
      healthCheck: { path: '/healthz', intervalMs: 20, timeoutMs: 2_000, unhealthyThreshold: 1, healthyThreshold: 100 },
    })
    const m = manager([cfg])
    fx.clusters = m.clusters
    const before = fx.clusters.get('api')
    failing.ok = false
    await waitFor(() => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="api"}') === 1)

    // The same config re-read from a file: other key order, fresh objects.
    const reread = JSON.parse(JSON.stringify(cfg)) as ClusterConfig
    const reordered = Object.fromEntries(Object.entries(reread).reverse()) as unknown as ClusterConfig
    fx.clusters.update([reordered, clusterConfig('other', [b.port])])
    expect(fx.clusters.get('api')).toBe(before)
    for (let i = 0; i < 4; i++) expect((await fetchText(fx.clusters.get('api')!.request(get()))).text).toBe('b')
  })

  it('replaces a changed cluster without dropping its in-flight request, then closes the old pool', async () => {
    const held: http.ServerResponse[] = []
    const s = await startServer((req, res) => {
      if (req.url === '/hold') {
        res.writeHead(200)
        res.write('start-')
        held.push(res)
      } else res.end('new')
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('api', [s.port])]).clusters
    const old = fx.clusters.get('api')!
    const inflight = await old.request(get('/hold'))
    const body = readAll(inflight.body)

    fx.clusters.update([clusterConfig('api', [s.port], { maxConnectionsPerEndpoint: 4 })])
    const fresh = fx.clusters.get('api')!
    expect(fresh).not.toBe(old)
    expect((await fetchText(fresh.request(get('/x')))).text).toBe('new')

    await waitFor(() => held.length === 1)
    const oldSocket = held[0]!.socket!
    held[0]!.end('end')
    expect(await body).toBe('start-end')
    // The old cluster's pool closes its connection once its last request is done.
    await waitFor(() => oldSocket.destroyed)
  })

  it('a changed cluster keeps the pools and state of endpoints whose connection settings did not change', async () => {
    const sockets = new Set<unknown>()
    const bad = await startServer((_q, res) => {
      res.statusCode = 500
      res.end()
    })
    const good = await startServer((req, res) => {
      sockets.add(req.socket)
      res.end('good')
    })
    servers.push(bad, good)
    const od = { consecutive5xx: 1, consecutiveConnectFailures: 1, baseEjectionMs: 300, maxEjectionPercent: 50 }
    const m = manager([clusterConfig('api', [bad.port, good.port], { outlierDetection: od })])
    fx.clusters = m.clusters
    const avail = () => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="api"}')
    await fetchText(fx.clusters.get('api')!.request(get()))
    await fetchText(fx.clusters.get('api')!.request(get()))
    expect(avail()).toBe(1) // bad is ejected
    const first = [...sockets][0] as import('node:net').Socket

    // Only the breaker changes: same endpoints, same connection settings.
    fx.clusters.update([clusterConfig('api', [bad.port, good.port], { outlierDetection: od, circuitBreaker: { maxConcurrent: 50, maxPending: 50 } })])
    expect(avail()).toBe(1)
    for (let i = 0; i < 4; i++) expect((await fetchText(fx.clusters.get('api')!.request(get()))).text).toBe('good')
    // The connection opened before the update is still open (a replaced pool would close it).
    await new Promise((r) => setTimeout(r, 50))
    expect(first.destroyed).toBe(false)
    const hitsBefore = bad.hits
    expect(hitsBefore).toBe(1)
    // The ejection runs out under the new config's detector.
    await waitFor(() => avail() === 2)
  })

  it('retires a removed cluster after its in-flight request finishes', async () => {
    const held: http.ServerResponse[] = []
    const s = await startServer((_q, res) => void held.push(res))
    servers.push(s)
    fx.clusters = manager([clusterConfig('gone', [s.port]), clusterConfig('stays', [s.port])]).clusters
    const p = fetchText(fx.clusters.get('gone')!.request(get()))
    await waitFor(() => held.length === 1)
    fx.clusters.update([clusterConfig('stays', [s.port])])
    expect(fx.clusters.get('gone')).toBeUndefined()
    held[0]!.end('finished')
    expect((await p).text).toBe('finished')
  })

  it('close(graceMs) aborts what still runs after the grace period', async () => {
    const s = await startServer((_q, res) => {
      res.writeHead(200)
      res.write('endless')
    })
    servers.push(s)
    const m = manager([clusterConfig('api', [s.port])])
    const res = await m.clusters.get('api')!.request(get())
    const body = codeOf(readAll(res.body))
    const t0 = Date.now()
    await m.clusters.close(100)
    expect(Date.now() - t0).toBeLessThan(2_000)
    expect(await body).toBe('upstream_reset')
    await waitFor(() => s.busySockets.size === 0)
  })

  it('close() lets in-flight requests finish, then resolves; later requests fail', async () => {
    const held: http.ServerResponse[] = []
    const s = await startServer((_q, res) => void held.push(res))
    servers.push(s)
    const m = manager([clusterConfig('api', [s.port])])
    const c = m.clusters.get('api')!
    const p = fetchText(c.request(get()))
    await waitFor(() => held.length === 1)
    let closed = false
    const closing = m.clusters.close().then(() => (closed = true))
    await new Promise((r) => setTimeout(r, 50))
    expect(closed).toBe(false)
    held[0]!.end('drained')
    expect((await p).text).toBe('drained')
    await closing
    expect(closed).toBe(true)
    await waitFor(() => s.busySockets.size === 0)
    expect(await codeOf(c.request(get()))).toBe('upstream_connect_failure')
  })
})
