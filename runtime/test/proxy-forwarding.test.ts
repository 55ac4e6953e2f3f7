import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../src/observability/logger.ts'
import { startProxy, type ProxyHandle } from '../src/index.ts'
import { json, request, startUpstream, type Upstream } from './helpers/servers.ts'

describe('edge forwarding', () => {
  let up: Upstream
  let proxy: ProxyHandle
  let port: number

  beforeAll(async () => {
    up = await startUpstream()
    proxy = await startProxy(
      {
        listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
        accessLog: 'off',
        clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }, { name: 'dead', endpoints: ['127.0.0.1:1'] }],
        routes: [
          { name: 'health', match: { path: '/healthz' }, directResponse: { status: 200, body: 'ok' } },
          { name: 'old', match: { prefix: '/old' }, redirect: { status: 301, path: '/new' } },
          { name: 'down', match: { prefix: '/down' }, cluster: 'dead' },
          { name: 'api', match: { prefix: '/api/', host: 'api.test' }, cluster: 'app', prefixRewrite: '/v2/' },
          { name: 'app', match: { prefix: '/app' }, cluster: 'app' },
        ],
      },
      { log: silentLogger },
    )
    port = proxy.address('main').port
  })
  afterAll(async () => {
    await proxy?.close()
    await up?.close()
  })

  it('forwards with x-forwarded-*, x-request-id, via and without hop-by-hop headers', async () => {
    const r = await request(port, {
      path: '/app/x?y=1',
      headers: { connection: 'keep-alive, x-secret-hop', 'x-secret-hop': '1', 'keep-alive': 'timeout=1', 'x-forwarded-for': '10.0.0.1', 'proxy-authorization': 'a' },
    })
    expect(r.status).toBe(200)
    const seen = json(r)
    expect(seen.url).toBe('/app/x?y=1')
    expect(seen.headers['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1')
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f]{24}-[0-9a-f]+$/)
    expect(seen.headers.via).toBe('1.1 omnirelay')
    expect(seen.headers['x-secret-hop']).toBeUndefined()
    expect(seen.headers['proxy-authorization']).toBeUndefined()
    expect(seen.headers.host).toBe(`127.0.0.1:${port}`)
    expect(r.headers['x-upstream']).toBe('yes')
    expect(r.headers.via).toBe('1.1 omnirelay')
    expect(r.headers['keep-alive']).not.toBe('timeout=99')
  })

  it('keeps a sane incoming x-request-id and replaces a hostile one', async () => {
    expect(json(await request(port, { path: '/app', headers: { 'x-request-id': 'abc-123' } })).headers['x-request-id']).toBe('abc-123')
    expect(json(await request(port, { path: '/app', headers: { 'x-request-id': 'x'.repeat(500) } })).headers['x-request-id']).toMatch(/^[0-9a-f]{24}-[0-9a-f]+$/)
  })

  it('streams request bodies upstream', async () => {
    const body = 'z'.repeat(200_000)
    const r = await request(port, { method: 'POST', path: '/app/upload', body })
    expect(json(r).body.length).toBe(200_000)
  })

  it('handles Expect: 100-continue and absolute-form request targets', async () => {
    const r = await request(port, { method: 'POST', path: '/app/x', headers: { expect: '100-continue', 'content-length': '5' }, body: 'hello' })
    expect(r.status).toBe(200)
    expect(json(r).body).toBe('hello')
    expect(json(r).headers.expect).toBeUndefined()
    const abs = await request(port, { path: 'http://api.test/api/abs?q=1' })
    expect(json(abs).url).toBe('/v2/abs?q=1')
  })

  it('matches host and rewrites the prefix', async () => {
    const r = await request(port, { path: '/api/users?x=1', headers: { host: 'API.test:8080' } })
    expect(json(r).url).toBe('/v2/users?x=1')
    expect((await request(port, { path: '/api/users', headers: { host: 'other' } })).status).toBe(404)
  })

  it('answers direct responses and redirects', async () => {
    const h = await request(port, { path: '/healthz' })
    expect([h.status, h.body]).toEqual([200, 'ok'])
    const rd = await request(port, { path: '/old/thing?q=1', headers: { host: 'site.test' } })
    expect(rd.status).toBe(301)
    expect(rd.headers.location).toBe('http://site.test/new?q=1')
  })

  it('gives a JSON 404 for no route and a 503 for an unreachable cluster, without internals', async () => {
    const nr = await request(port, { path: '/nothing' })
    expect(nr.status).toBe(404)
    expect(json(nr)).toEqual({ error: 'no_route', status: 404 })
    const down = await request(port, { path: '/down' })
    expect(down.status).toBe(503)
    expect(json(down)).toEqual({ error: 'upstream_connect_failure', status: 503 })
  })
})
