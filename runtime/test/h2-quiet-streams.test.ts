/**
 * An HTTP/2 session with a stream still open is not cut for being quiet: a slow answer or a
 * long-lived gRPC-style stream is bounded by the route's timeouts, not by the listener's
 * idle-connection limits (which apply to sessions with no stream, as in Envoy).
 */
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type ProxyHandle } from '../src/index.ts'
import { silentLogger } from '../src/observability/logger.ts'
import { startUpstream, type Upstream } from './helpers/servers.ts'

function h2get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const c = http2.connect(`http://127.0.0.1:${port}`)
    c.on('error', fail)
    const s = c.request({ ':path': path })
    let status = 0
    let body = ''
    s.on('response', (h) => (status = Number(h[':status'])))
    s.on('data', (d) => (body += d))
    s.on('end', () => {
      c.close()
      ok({ status, body })
    })
    s.on('error', fail)
  })
}

describe('quiet HTTP/2 streams', () => {
  let up: Upstream
  let proxy: ProxyHandle

  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 900)
        return
      }
      // Headers and a first chunk at once, the rest after a quiet spell.
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first ')
      setTimeout(() => res.end('then the rest'), 900)
    })
    proxy = await startProxy(
      {
        accessLog: 'off',
        limits: { requestTimeoutMs: 300, keepAliveTimeoutMs: 200 },
        listeners: [{ name: 'h2', address: '127.0.0.1', port: 0, http2: true }],
        clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
        routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'app', policy: { requestTimeoutMs: 0, idleTimeoutMs: 5000 } }],
      },
      { log: silentLogger },
    )
  })
  afterAll(async () => {
    await proxy?.close()
    await up?.close()
  })

  it('a slow answer outlives the idle limits', async () => {
    expect(await h2get(proxy.address('h2').port, '/slow')).toEqual({ status: 200, body: 'late' })
  })

  it('a session with no stream open is still closed when quiet', async () => {
    const c = http2.connect(`http://127.0.0.1:${proxy.address('h2').port}`)
    c.on('error', () => {})
    const t0 = performance.now()
    await new Promise<void>((ok) => c.once('close', () => ok()))
    expect(performance.now() - t0).toBeLessThan(2000)
  })

  it('a stream quiet mid-body outlives them too', async () => {
    expect(await h2get(proxy.address('h2').port, '/stream')).toEqual({ status: 200, body: 'first then the rest' })
  })
})
