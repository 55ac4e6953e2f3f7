import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { host } from '../../src/hosts/quickjs/index.ts'
import type { FilterDefinition, FilterFactory } from '../../src/pipeline/filter.ts'
import { FilterStatus } from '../../src/pipeline/phases.ts'
import { startUpstream, type Upstream } from '../helpers/servers.ts'
import { drive, jsArtifact, makeDef, makeServices, makeStream, metricValue, requestHeaders } from './fixtures.ts'

const factories: FilterFactory[] = []
async function build(source: string, over: Partial<FilterDefinition> = {}, services = makeServices(), caps?: FilterDefinition['capabilities']) {
  const f = await host.createFactory(makeDef(over.name ?? 'js', 'quickjs', over), jsArtifact(source, 'quickjs', caps), services)
  factories.push(f)
  return { f, services }
}
afterAll(async () => {
  await Promise.all(factories.map((f) => f.close()))
})

describe('QuickJS filters: the request/response view', () => {
  it('reads and rewrites request headers; changes land on the stream when the hook returns', async () => {
    const { f } = await build(`
      export function onRequestHeaders(req, ctx) {
        req.headers.set('x-route', req.method + ' ' + req.path)
        req.headers.add('x-multi', 'a'); req.headers.add('X-Multi', 'b')
        req.headers.remove('x-drop')
        req.headers.set(':path', '/rewritten')
      }`)
    const { stream, status } = requestHeaders(f, makeStream('/p?q=1', [['x-drop', '1'], ['x-keep', '2']]))
    expect(status).toBe(FilterStatus.Continue)
    const h = stream.requestHeaders
    expect(h.get('x-route')).toBe('GET /p?q=1')
    expect(h.getAll('x-multi')).toEqual(['a', 'b'])
    expect(h.has('x-drop')).toBe(false)
    expect(h.get('x-keep')).toBe('2')
    expect(h.get(':path')).toBe('/rewritten')
    expect(f.phases).toBe(1)
  })

  it('sends a local reply with a JSON body and headers, through the real pipeline', async () => {
    const { f } = await build(`
      export function onRequestHeaders(req, ctx) {
        if (req.path.startsWith('/admin')) return ctx.reply(403, { error: 'forbidden', path: req.path }, { 'x-why': 'policy' })
      }`)
    const out = await drive([f], { path: '/admin/x' })
    expect(out.status).toBe(403)
    expect(JSON.parse(out.body!)).toEqual({ error: 'forbidden', path: '/admin/x' })
    expect(out.reply!.headers).toEqual(expect.arrayContaining([['x-why', 'policy'], ['content-type', 'application/json']]))
    expect((await drive([f], { path: '/ok' })).status).toBe('upstream')
  })

  it('sees the response in response phases and can rewrite it', async () => {
    const { f } = await build(`
      export function onResponseHeaders(res, ctx) {
        res.headers.set('x-status-seen', String(res.status))
        res.headers.remove('server')
        res.headers.set('x-req-path', ctx.request.path)
      }`)
    const out = await drive([f], { path: '/r', response: { status: 201, headers: ['server', 'x', 'content-type', 'text/plain'] } })
    expect(out.stream.responseHeaders.get('x-status-seen')).toBe('201')
    expect(out.stream.responseHeaders.has('server')).toBe(false)
    expect(out.stream.responseHeaders.get('x-req-path')).toBe('/r')
  })

  it('gives the filter its frozen config and keeps module state across requests', async () => {
    const { f } = await build(
      `let n = 0
      export function onRequestHeaders(req, ctx) {
        n++
        try { ctx.config.header = 'changed' } catch {}
        req.headers.set(ctx.config.header, ctx.config.prefix + n)
      }`,
      { config: { header: 'x-n', prefix: 'n=' } },
    )
    requestHeaders(f)
    const { stream } = requestHeaders(f)
    expect(stream.requestHeaders.get('x-n')).toBe('n=2')
  })

  it('counts filter-defined metrics, under the same series as a Wasm filter', async () => {
    const { f, services } = await build(`export function onRequestHeaders(req, ctx) { ctx.metrics.increment('policy_hits'); ctx.metrics.set('last_len', req.path.length) }`, { name: 'm' })
    requestHeaders(f, makeStream('/abc'))
    requestHeaders(f, makeStream('/abcdef'))
    expect(metricValue(services.metrics, 'omnirelay_wasm_policy_hits{filter="m"}')).toBe(2)
    expect(metricValue(services.metrics, 'omnirelay_wasm_last_len{filter="m"}')).toBe(7)
  })

  it('reads properties, shared data with CAS, and logs with the filter name', async () => {
    const { f, services } = await build(
      `export function onRequestHeaders(req, ctx) {
        const cur = ctx.sharedData.get('count')
        const next = cur ? Number(cur.value) + 1 : 1
        if (!ctx.sharedData.set('count', String(next), cur ? cur.cas : 0)) throw new Error('cas')
        req.headers.set('x-count', String(next))
        req.headers.set('x-prop-path', ctx.property('request.path'))
        req.headers.set('x-prop-epoch', String(ctx.property(['omnirelay', 'epoch'])))
        req.headers.set('x-prop-name', ctx.property('plugin_name'))
        ctx.log.info('saw', req.path)
      }`,
      { name: 'p' },
    )
    requestHeaders(f, makeStream('/one'))
    const { stream } = requestHeaders(f, makeStream('/two'))
    expect(stream.requestHeaders.get('x-count')).toBe('2')
    expect(stream.requestHeaders.get('x-prop-path')).toBe('/two')
    expect(stream.requestHeaders.get('x-prop-epoch')).toBe('3')
    expect(stream.requestHeaders.get('x-prop-name')).toBe('p')
    expect(services.lines.find((l) => l.msg === 'saw /two')).toMatchObject({ filter: 'p', level: 'info' })
  })

  it('exposes only granted capabilities', async () => {
    const src = `export function onRequestHeaders(req, ctx) {
      req.headers.set('x-seen', [typeof ctx.reply, typeof ctx.metrics, typeof ctx.httpCall, typeof ctx.sharedData, typeof req.headers.set].join(','))
    }`
    const { f } = await build(src, { name: 'g1' })
    expect(requestHeaders(f).stream.requestHeaders.get('x-seen')).toBe('function,object,function,object,function')
    const ro = await build(`export function onRequestHeaders(req, ctx) { globalThis.seen = [typeof ctx.reply, typeof req.headers.set, typeof req.headers.get].join(','); if (typeof req.headers.set !== 'function') throw new Error(globalThis.seen) }`, {
      name: 'g2',
      capabilities: ['headers:read', 'local-reply'],
    })
    const r = requestHeaders(ro.f)
    expect((r.error as { code: string }).code).toBe('thrown')
    const line = ro.services.lines.find((l) => l.msg === 'quickjs filter failed')
    expect(line?.error).toBe('Error: function,undefined,function')
    // The bundle's grant narrows the operator's: only the intersection is exposed.
    const narrowed = await build(`export function onRequestHeaders(req, ctx) { if (ctx.metrics !== undefined) throw new Error('metrics leaked') }`, { name: 'g3' }, makeServices(), ['headers:read'])
    expect(requestHeaders(narrowed.f).status).toBe(FilterStatus.Continue)
  })

  it('reads and replaces bodies in body phases', async () => {
    const { f } = await build(`
      export function onRequestBody(req, ctx) {
        if (!ctx.endOfStream) return 'pause'
        const j = req.json()
        j.seen = true
        req.setBody(j)
      }`)
    const stream = makeStream('/b', [], 'POST')
    const filter = f.createStream(stream)
    stream.requestBody = new TextEncoder().encode('{"a":1}')
    expect(filter.onRequestBody!(7, true)).toBe(FilterStatus.Continue)
    expect(new TextDecoder().decode(stream.requestBody)).toBe('{"a":1,"seen":true}')
    filter.onDone!()
  })

  it('subscribes only to the phases the module exports', async () => {
    const { f } = await build(`export function onResponseHeaders() {} export function onLog() {}`)
    expect(f.phases).toBe(8 | 64)
  })

  it('refuses a module that does not parse, with the filter name', async () => {
    await expect(build('export function onRequestHeaders( {', { name: 'broken' })).rejects.toMatchObject({ code: 'thrown', filter: 'broken' })
  })

  it('refuses a module that declares capabilities beyond its grant, naming them', async () => {
    const src = `export const capabilities = ['headers:read', 'http-callout', 'shared-data']\nexport function onRequestHeaders() {}`
    await expect(build(src, { name: 'greedy', capabilities: ['headers:read'] })).rejects.toMatchObject({ code: 'capability_denied', message: expect.stringContaining('http-callout, shared-data') })
    await expect(build(src, { name: 'fine' })).resolves.toBeDefined()
  })

  it('refuses memory quotas below what the engine needs', async () => {
    await expect(build('export function onRequestHeaders() {}', { name: 'small', quotas: { memoryBytes: 1 << 20 } })).rejects.toMatchObject({ code: 'invalid_quota' })
  })
})

describe('QuickJS filters: callouts pause and resume the stream', () => {
  let upstream: Upstream
  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      const ok = req.headers['x-token'] === 'good'
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json', 'x-user': ok ? 'alice' : '' })
      res.end(JSON.stringify({ ok }))
    })
  })
  afterAll(async () => {
    await upstream.close()
  })

  const authFilter = `
    export async function onRequestHeaders(req, ctx) {
      const r = await ctx.httpCall('auth', { path: '/check', headers: { 'x-token': req.headers.get('x-token') || '' }, timeoutMs: 2000 })
      if (r.status !== 200) return ctx.reply(401, { error: 'unauthorized', detail: JSON.parse(r.body) })
      req.headers.set('x-user', r.headers.get('x-user'))
    }`

  it('holds the request until the callout answers, then continues with the changes', async () => {
    const services = makeServices(upstream.port)
    const { f } = await build(authFilter, { name: 'auth', calloutClusters: ['auth'] }, services)
    const ok = await drive([f], { headers: [['x-token', 'good']], waitMs: 3000 })
    expect(ok.status).toBe('upstream')
    expect(ok.stream.requestHeaders.get('x-user')).toBe('alice')
    const denied = await drive([f], { headers: [['x-token', 'bad']], waitMs: 3000 })
    expect(denied.status).toBe(401)
    expect(JSON.parse(denied.body!)).toEqual({ error: 'unauthorized', detail: { ok: false } })
    await services.clusters?.close()
  })

  it('refuses clusters outside the allowlist', async () => {
    const services = makeServices(upstream.port)
    const { f } = await build(authFilter, { name: 'auth2', calloutClusters: [] }, services)
    const out = await drive([f], { headers: [['x-token', 'good']], waitMs: 3000 })
    expect(out.status).toBe(500)
    expect(JSON.parse(out.body!)).toMatchObject({ error: 'filter_failed', code: 'thrown', filter: 'auth2' })
    expect(out.body).not.toContain('allowed')
    await services.clusters?.close()
  })

  it('other requests failing meanwhile do not touch a request waiting on a callout; a replaced instance fails it at once (503)', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.writeHead(200).end('ok'), 300))
    const services = makeServices(slow.port)
    const src = `export async function onRequestHeaders(req, ctx) {
      if (req.path === '/spin') while (true) {}
      if (req.path === '/bomb') { const keep = []; for (;;) keep.push(new Array(1 << 16).fill(1)) }
      await ctx.httpCall('auth', { path: '/' })
      req.headers.set('x-after', '1')
    }`
    const { f } = await build(src, { name: 'swap', calloutClusters: ['auth'], quotas: { fuel: 1e12 } }, services)
    // A hook stopped by fuel (the instance stays): the waiting request goes on untouched.
    let waiting = drive([f], { path: '/wait', waitMs: 3000 })
    await new Promise((r) => setTimeout(r, 50))
    expect((await drive([f], { path: '/spin' })).status).toBe(500)
    let out = await waiting
    expect(out.status).toBe('upstream')
    expect(out.stream.requestHeaders.get('x-after')).toBe('1')
    // A hook that poisons the instance (memory cap): the waiting request fails now, not at the pause timeout.
    waiting = drive([f], { path: '/wait', waitMs: 3000 })
    await new Promise((r) => setTimeout(r, 50))
    expect((await drive([f], { path: '/bomb' })).status).toBe(500)
    out = await waiting
    expect(out.status).toBe(503)
    expect(JSON.parse(out.body!)).toMatchObject({ error: 'filter_failed', code: 'unavailable', filter: 'swap' })
    await services.clusters?.close()
    await slow.close()
  })

  it('applies the failure policy when the continuation fails after the pause', async () => {
    const services = makeServices(upstream.port)
    const src = `export async function onRequestHeaders(req, ctx) { await ctx.httpCall('auth', { path: '/' }); throw new Error('after the await') }`
    const closed = await build(src, { name: 'late', calloutClusters: ['auth'] }, services)
    const out = await drive([closed.f], { waitMs: 3000 })
    expect(out.status).toBe(500)
    expect(JSON.parse(out.body!)).toMatchObject({ error: 'filter_failed', code: 'thrown', filter: 'late' })
    const open = await build(src, { name: 'late-open', calloutClusters: ['auth'], failurePolicy: 'fail-open' }, services)
    expect((await drive([open.f], { waitMs: 3000 })).status).toBe('upstream')
    expect(metricValue(services.metrics, 'omnirelay_filter_failures_total{filter="late-open",code="thrown"}')).toBe(1)
    await services.clusters?.close()
  })
})
