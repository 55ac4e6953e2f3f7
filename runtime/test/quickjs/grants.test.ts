/** QuickJS filters with partial grants load and work; header writes reach the stream in every phase. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { host } from '../../src/hosts/quickjs/index.ts'
import type { FilterDefinition, FilterFactory } from '../../src/pipeline/filter.ts'
import { startFilterProxy, type FilterProxy } from '../helpers/filter-proxy.ts'
import { request } from '../helpers/servers.ts'
import { drive, jsArtifact, makeDef, makeServices } from './fixtures.ts'

const factories: FilterFactory[] = []
afterAll(async () => {
  await Promise.all(factories.map((f) => f.close()))
})

async function build(source: string, caps: FilterDefinition['capabilities']) {
  const f = await host.createFactory(makeDef('g', 'quickjs', { capabilities: caps }), jsArtifact(source, 'quickjs', caps), makeServices())
  factories.push(f)
  return f
}

describe('QuickJS partial grants', () => {
  it('a filter granted only body:read loads and sees no header API', async () => {
    const f = await build(`export function onRequestBody(req) { if (req.headers.get !== undefined || 'size' in req.headers) throw new Error('headers exposed'); return 0 }`, ['body:read'])
    expect(f.phases).not.toBe(0)
  })

  it('a filter granted only headers:write loads and its writes reach the stream', async () => {
    const f = await build(`export function onRequestHeaders(req) { req.headers.set('x-w', 'only-write') }`, ['headers:write'])
    const out = await drive([f])
    expect(out.status).toBe('upstream')
    expect(out.stream.requestHeaders.get('x-w')).toBe('only-write')
  })

  it('headers.set works in request and response phases, for new, existing, empty and repeated names, before and after an await', async () => {
    const f = await build(
      `export async function onRequestHeaders(req) {
  req.headers.set('x-new', 'a')
  req.headers.set('x-dup', 'one')
  req.headers.set('x-empty', '')
  req.headers.set('X-Num', 42)
  await null
  req.headers.set('x-after', 'await')
}
export function onResponseHeaders(res) { res.headers.set('x-resp', 'r'); res.headers.set('content-type', 'text/plain') }`,
      ['headers:read', 'headers:write'],
    )
    const out = await drive([f], { headers: [['x-dup', '1'], ['x-dup', '2']], response: { status: 200, headers: ['content-type', 'application/json'] }, waitMs: 1000 })
    expect(out.status).toBe('upstream')
    const h = out.stream.requestHeaders
    expect([h.get('x-new'), h.getAll('x-dup'), h.get('x-empty'), h.get('x-num'), h.get('x-after')]).toEqual(['a', ['one'], '', '42', 'await'])
    expect(out.stream.responseHeaders.get('x-resp')).toBe('r')
    expect(out.stream.responseHeaders.getAll('content-type')).toEqual(['text/plain'])
  })

  it('a header list emptied by a filter is flushed as empty, not as a malformed list', async () => {
    const f = await build(`export function onRequestHeaders(req) { for (const k of req.headers.keys()) req.headers.remove(k) }`, ['headers:read', 'headers:write'])
    const out = await drive([f], { headers: [['x-a', '1']] })
    expect(out.status).toBe('upstream')
    expect(out.stream.requestHeaders.flat).toEqual([])
  })
})

describe('QuickJS body-only filter in the proxy', () => {
  let fx: FilterProxy

  beforeAll(async () => {
    fx = await startFilterProxy({
      prefix: 'qjs-grants-',
      files: {
        'waf.js': `export function onRequestBody(req, ctx) {
  if (!ctx.endOfStream) return 1
  return req.text().includes('evil') ? ctx.reply(403, 'blocked') : 0
}`,
      },
      upstream: (_req, res, body) => res.end(`ok:${body}`),
      config: (upPort) => ({
        allowUnsigned: true,
        accessLog: 'off',
        listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
        clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upPort}`] }],
        filters: [{ name: 'waf', kind: 'quickjs', module: 'waf.js', capabilities: ['body:read', 'local-reply'] }],
        routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'app', filters: ['waf'] }],
      }),
    })
  })
  afterAll(() => fx?.close())

  it('reads bodies and replies without any header grant', async () => {
    const port = fx.port
    expect(await request(port, { method: 'POST', body: 'fine' })).toMatchObject({ status: 200, body: 'ok:fine' })
    expect(await request(port, { method: 'POST', body: 'very evil' })).toMatchObject({ status: 403, body: 'blocked' })
  })
})
