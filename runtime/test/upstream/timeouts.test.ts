import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { clusterConfig, codeOf, get, manager, metricValue, readAll, startServer, upstreamFixture, waitFor } from './helpers.ts'

const connections = (s: net.Server) => new Promise<number>((r) => s.getConnections((_e, n) => r(n)))

describe('timeouts', () => {
  const fx = upstreamFixture()
  const { servers } = fx
  const raw: net.Server[] = []
  afterEach(() => {
    for (const s of raw.splice(0)) s.close()
  })

  it('connect timeout: a TLS handshake that never completes fails with upstream_connect_failure', async () => {
    // Accepts TCP and then says nothing, so the TLS handshake hangs.
    const sockets = new Set<net.Socket>()
    const s = net.createServer((sock) => {
      sockets.add(sock)
      sock.resume() // read, so the client's FIN is seen
      sock.on('close', () => sockets.delete(sock))
    })
    raw.push(s)
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    const port = (s.address() as AddressInfo).port
    fx.clusters = manager([clusterConfig('ct', [port], { connectTimeoutMs: 100, tls: { rejectUnauthorized: false } })]).clusters
    const t0 = Date.now()
    expect(await codeOf(fx.clusters.get('ct')!.request(get()))).toBe('upstream_connect_failure')
    // undici checks connect timeouts on a ~0.5 s tick
    expect(Date.now() - t0).toBeLessThan(3_000)
    await waitFor(() => sockets.size === 0)
  })

  it('request timeout: an upstream that never answers gives upstream_timeout and its socket is closed', async () => {
    const s = await startServer(() => {})
    servers.push(s)
    const m = manager([clusterConfig('rt', [s.port])])
    fx.clusters = m.clusters
    const t0 = Date.now()
    expect(await codeOf(fx.clusters.get('rt')!.request(get('/', { requestTimeoutMs: 100, idleTimeoutMs: 0 })))).toBe('upstream_timeout')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90)
    await waitFor(() => s.busySockets.size === 0)
    // More requests that time out do not pile up connections (undici may keep one idle spare).
    for (let i = 0; i < 10; i++) {
      expect(await codeOf(fx.clusters.get('rt')!.request(get('/', { requestTimeoutMs: 50, idleTimeoutMs: 0 })))).toBe('upstream_timeout')
    }
    await waitFor(() => s.busySockets.size === 0)
    expect(await connections(s.server)).toBeLessThanOrEqual(2)
    expect(metricValue(m.metrics, 'omnirelay_upstream_requests_active{cluster="rt"}')).toBe(0)
    expect(metricValue(m.metrics, 'omnirelay_upstream_errors_total{cluster="rt",code="upstream_timeout"}')).toBe(11)
  })

  it('request timeout covers the body: a response still streaming at the deadline errors its body', async () => {
    const s = await startServer((_q, res) => {
      res.writeHead(200)
      const t = setInterval(() => res.write('tick'), 20)
      res.on('close', () => clearInterval(t))
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('rt', [s.port])]).clusters
    const res = await fx.clusters.get('rt')!.request(get('/', { requestTimeoutMs: 150, idleTimeoutMs: 0 }))
    expect(res.statusCode).toBe(200)
    expect(await codeOf(readAll(res.body))).toBe('upstream_timeout')
    await waitFor(() => s.busySockets.size === 0)
  })

  it('idle timeout before headers gives upstream_idle_timeout', async () => {
    const s = await startServer(() => {})
    servers.push(s)
    fx.clusters = manager([clusterConfig('it', [s.port])]).clusters
    expect(await codeOf(fx.clusters.get('it')!.request(get('/', { requestTimeoutMs: 0, idleTimeoutMs: 80 })))).toBe('upstream_idle_timeout')
    await waitFor(() => s.busySockets.size === 0)
  })

  it('idle timeout mid-body: a stalled body errors with upstream_idle_timeout, a trickling one does not', async () => {
    const s = await startServer((req, res) => {
      res.writeHead(200)
      if (req.url === '/stall') {
        res.write('first')
        return
      }
      let n = 0
      const t = setInterval(() => {
        res.write('.')
        if (++n === 12) {
          clearInterval(t)
          res.end()
        }
      }, 60)
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('it', [s.port])]).clusters
    // The trickle lasts longer than the idle timeout, but no gap between chunks does.
    const policy = { requestTimeoutMs: 0, idleTimeoutMs: 300 }
    const stalled = await fx.clusters.get('it')!.request(get('/stall', policy))
    expect(await codeOf(readAll(stalled.body))).toBe('upstream_idle_timeout')
    const trickle = await fx.clusters.get('it')!.request(get('/trickle', policy))
    expect(await readAll(trickle.body)).toBe('.'.repeat(12))
  })

  it('idle timeout counts uploaded bytes: a long steady upload passes, a stalled one times out', async () => {
    const reqSockets: import('node:net').Socket[] = []
    const s = await startServer((req, res) => {
      reqSockets.push(req.socket)
      let n = 0
      req.on('data', (d: Buffer) => (n += d.length))
      req.on('end', () => res.end(`got ${n}`))
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('up', [s.port])]).clusters
    const policy = { requestTimeoutMs: 0, idleTimeoutMs: 250 }
    const steady = new PassThrough()
    const p = fx.clusters.get('up')!.request({ ...get('/', policy), method: 'POST', body: steady })
    // 10 chunks 80 ms apart: 800 ms of upload before any response byte, never 250 ms idle.
    for (let i = 0; i < 10; i++) {
      steady.write('x'.repeat(10))
      await new Promise((r) => setTimeout(r, 80))
    }
    steady.end()
    expect(await readAll((await p).body)).toBe('got 100')

    const stalled = new PassThrough()
    const t0 = Date.now()
    const q = fx.clusters.get('up')!.request({ ...get('/', policy), method: 'POST', body: stalled })
    stalled.write('x')
    expect(await codeOf(q)).toBe('upstream_idle_timeout')
    expect(Date.now() - t0).toBeLessThan(2_000)
    await waitFor(() => reqSockets.length === 2 && reqSockets[1]!.destroyed)
  })

  it('a downstream abort ends the upstream request and releases the socket', async () => {
    const s = await startServer(() => {})
    servers.push(s)
    fx.clusters = manager([clusterConfig('ab', [s.port])]).clusters
    const ac = new AbortController()
    const p = fx.clusters.get('ab')!.request(get('/', { requestTimeoutMs: 0, idleTimeoutMs: 0 }, { signal: ac.signal }))
    await waitFor(() => s.hits === 1)
    ac.abort()
    expect(await codeOf(p)).toBe('upstream_reset')
    await waitFor(() => s.busySockets.size === 0)
  })

  it('destroying the response body mid-stream closes the upstream side', async () => {
    const s = await startServer((_q, res) => {
      res.writeHead(200)
      res.write('partial')
    })
    servers.push(s)
    const m = manager([clusterConfig('ab', [s.port])])
    fx.clusters = m.clusters
    const res = await fx.clusters.get('ab')!.request(get())
    res.body.destroy()
    await waitFor(() => s.busySockets.size === 0)
    expect(metricValue(m.metrics, 'omnirelay_upstream_requests_active{cluster="ab"}')).toBe(0)
  })
})
