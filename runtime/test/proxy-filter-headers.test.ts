/** Headers a filter writes are forwarded under the downstream rules; a request undici refuses is the client's 400. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFilterProxy, type FilterProxy } from './helpers/filter-proxy.ts'
import { json, request } from './helpers/servers.ts'

const FILES: Record<string, string> = {
  'hop.js': `export function onRequestHeaders(req) {
  req.headers.set('expect', '100-continue')
  req.headers.set('connection', 'close')
  req.headers.set('x-kept', 'yes')
  return 0
}`,
  'dup-host.js': `export function onRequestHeaders(req) { req.headers.add('host', 'other.test'); return 0 }`,
}

describe('filter-written request headers', () => {
  let fx: FilterProxy

  beforeAll(async () => {
    const caps = ['headers:read', 'headers:write']
    fx = await startFilterProxy({
      prefix: 'filter-headers-',
      files: FILES,
      config: (upPort) => ({
        allowUnsigned: true,
        accessLog: 'off',
        listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
        clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upPort}`] }],
        filters: [
          { name: 'hop', kind: 'quickjs', module: 'hop.js', capabilities: caps },
          { name: 'dup-host', kind: 'quickjs', module: 'dup-host.js', capabilities: caps },
        ],
        routes: [
          { name: 'hop', match: { prefix: '/hop' }, cluster: 'app', filters: ['hop'] },
          { name: 'dup', match: { prefix: '/dup' }, cluster: 'app', filters: ['dup-host'] },
        ],
      }),
    })
  })
  afterAll(() => fx?.close())

  it('drops expect and hop-by-hop headers a filter set, keeps the rest', async () => {
    const r = await request(fx.port, { method: 'POST', path: '/hop', body: 'hi' })
    expect(r.status).toBe(200)
    const seen = json(r)
    expect(seen.body).toBe('hi')
    expect(seen.headers['x-kept']).toBe('yes')
    expect(seen.headers.expect).toBeUndefined()
  })

  it('answers 400 upstream_invalid_request when the request cannot be sent as is', async () => {
    const r = await request(fx.port, { path: '/dup' })
    expect(r.status).toBe(400)
    expect(JSON.parse(r.body).error).toBe('upstream_invalid_request')
    expect(fx.up.seen.filter((s) => s.url === '/dup')).toHaveLength(0)
  })
})
