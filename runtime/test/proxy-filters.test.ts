/** The filtered path through the running proxy, with real QuickJS filters built the normal way. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFilterProxy, type FilterProxy } from './helpers/filter-proxy.ts'
import { json, request } from './helpers/servers.ts'

const FILES: Record<string, string> = {
  // Buffers the whole request body, upper-cases it; buffers the response body and wraps it.
  'rewrite.js': `
export function onRequestBody(req, ctx) {
  if (!ctx.endOfStream) return 1
  req.setBody(req.text().toUpperCase())
  return 0
}
export function onResponseBody(res, ctx) {
  if (!ctx.endOfStream) return 1
  res.setBody('[' + res.text() + ']')
  return 0
}
`,
  'deny.js': `export function onRequestHeaders(req, ctx) { return req.headers.get('x-key') === 'ok' ? 0 : ctx.reply(401, 'no key') }`,
  'boom.js': `export function onRequestHeaders(req, ctx) { throw new Error('secret detail /srv/boom.js') }`,
  'tag.js': `export function onRequestHeaders(req, ctx) { req.headers.set('x-tag', ctx.filterName); return 0 }
export function onResponseHeaders(res, ctx) { res.headers.add('x-order', ctx.filterName); return 0 }`,
}

describe('filters in the proxy', () => {
  let fx: FilterProxy

  beforeAll(async () => {
    const caps = ['headers:read', 'headers:write', 'body:read', 'body:write', 'local-reply']
    fx = await startFilterProxy({
      prefix: 'filters-',
      files: FILES,
      upstream: (req, res, body) => {
        res.setHeader('content-type', 'text/plain')
        res.end(`${req.headers['x-tag'] ?? '-'}|${body}`)
      },
      config: (upPort) => ({
        allowUnsigned: true,
        accessLog: 'off',
        admin: { address: '127.0.0.1', port: 0 },
        listeners: [
          { name: 'main', address: '127.0.0.1', port: 0, filters: ['outer'] },
          { name: 'h2c', address: '127.0.0.1', port: 0, http2: true },
        ],
        clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upPort}`] }],
        filters: [
          { name: 'rewrite', kind: 'quickjs', module: 'rewrite.js', capabilities: caps },
          { name: 'boom-closed', kind: 'quickjs', module: 'boom.js', capabilities: caps },
          { name: 'boom-open', kind: 'quickjs', module: 'boom.js', capabilities: caps, failurePolicy: 'fail-open' },
          { name: 'outer', kind: 'quickjs', module: 'tag.js', capabilities: caps },
          { name: 'inner', kind: 'quickjs', module: 'tag.js', capabilities: caps },
          { name: 'deny', kind: 'quickjs', module: 'deny.js', capabilities: caps },
        ],
        routes: [
          { name: 'rewrite', match: { prefix: '/rewrite' }, cluster: 'app', filters: ['rewrite'] },
          { name: 'closed', match: { prefix: '/closed' }, cluster: 'app', filters: ['boom-closed'] },
          { name: 'open', match: { prefix: '/open' }, cluster: 'app', filters: ['boom-open', 'inner'] },
          { name: 'order', match: { prefix: '/order' }, cluster: 'app', filters: ['inner'] },
          { name: 'ws', match: { prefix: '/ws' }, cluster: 'app', filters: ['deny'] },
        ],
      }),
    })
  })
  afterAll(() => fx?.close())

  it('buffers and rewrites request and response bodies, fixing content-length', async () => {
    const r = await request(fx.port, { method: 'POST', path: '/rewrite', body: 'hello '.repeat(2000) })
    expect(r.status).toBe(200)
    expect(r.body).toBe(`[outer|${'HELLO '.repeat(2000)}]`)
    expect(r.headers['content-length']).toBeUndefined()
    expect(fx.up.seen.at(-1)!.body).toBe('HELLO '.repeat(2000))
  })

  it('fail-closed answers a stable JSON 500 naming the filter, never the error text', async () => {
    const r = await request(fx.port, { path: '/closed' })
    expect(r.status).toBe(500)
    expect(json(r)).toEqual({ error: 'filter_failed', status: 500, code: 'thrown', filter: 'boom-closed' })
    expect(r.body).not.toContain('secret')
  })

  it('fail-open skips the failing filter and runs the rest', async () => {
    const r = await request(fx.port, { path: '/open' })
    expect(r.status).toBe(200)
    expect(r.body).toBe('inner|')
    const m = (await request(fx.proxy.adminAddress()!.port, { path: '/metrics' })).body
    expect(m).toMatch(/omnirelay_filter_fail_open_total\{filter="boom-open"\} [1-9]/)
    expect(m).toMatch(/omnirelay_filter_failures_total\{filter="boom-closed",code="thrown"\} [1-9]/)
  })

  it('runs listener filters before route filters, and response phases in reverse', async () => {
    const r = await request(fx.port, { path: '/order' })
    expect(r.body).toBe('inner|')
    expect(r.headers['x-order']).toBe('inner, outer')
  })

  it('runs body filters on HTTP/2 streams too', async () => {
    const http2 = await import('node:http2')
    const c = http2.connect(`http://127.0.0.1:${fx.proxy.address('h2c').port}`)
    try {
      const body = await new Promise<string>((ok, fail) => {
        const s = c.request({ ':method': 'POST', ':path': '/rewrite' })
        let out = ''
        s.on('data', (d) => (out += d))
        s.on('end', () => ok(out))
        s.on('error', fail)
        s.end('abc')
      })
      expect(body).toBe('[-|ABC]')
    } finally {
      c.close()
    }
  })

  it('runs request-header filters on WebSocket upgrades (a denial never reaches the upstream)', async () => {
    const net = await import('node:net')
    const before = fx.up.seen.length
    const head = await new Promise<string>((ok, fail) => {
      const s = net.connect(fx.port, '127.0.0.1', () => s.write('GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n'))
      let buf = ''
      s.on('data', (d) => (buf += d))
      s.on('close', () => ok(buf))
      s.on('error', fail)
    })
    expect(head).toMatch(/^HTTP\/1\.1 401/)
    expect(head).toContain('no key')
    expect(fx.up.seen.length).toBe(before)
  })
})
