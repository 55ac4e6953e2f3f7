import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { host } from '../../src/hosts/native/index.ts'
import type { NativeFilterFactory } from '../../src/hosts/native/factory.ts'
import type { FilterDefinition } from '../../src/pipeline/filter.ts'
import { FilterStatus } from '../../src/pipeline/phases.ts'
import { startUpstream, type Upstream } from '../helpers/servers.ts'
import { drive, jsArtifact, makeDef, makeServices, makeStream, metricValue, requestHeaders } from '../quickjs/fixtures.ts'

let dir: string
let n = 0
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'omnirelay-native-'))
})
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

async function build(source: string, over: Partial<FilterDefinition> = {}, services = makeServices(), allowNative = true) {
  const file = join(dir, `f${++n}.mjs`)
  writeFileSync(file, source)
  // A generous watchdog unless a test sets one: the shared test machine has GC pauses and load.
  const def = makeDef(over.name ?? 'nat', 'native', { ...over, quotas: { timeoutMs: 10_000, ...over.quotas } })
  const f = (await host.createFactory(def, jsArtifact(source, 'native', undefined, file), { ...services, allowNative })) as NativeFilterFactory
  return { f, services }
}

describe('native filters', () => {
  it('are refused unless the host config enables them', async () => {
    await expect(build('export function onRequestHeaders() {}', {}, makeServices(), false)).rejects.toMatchObject({ code: 'native_disabled' })
  })

  it('refuse a module without hooks', async () => {
    await expect(build('export const x = 1')).rejects.toMatchObject({ code: 'no_hooks' })
  })

  it('refuse a module that declares capabilities beyond its grant', async () => {
    await expect(build(`export const capabilities = ['headers:read', 'http-callout']\nexport function onRequestHeaders() {}`, { capabilities: ['headers:read'] })).rejects.toMatchObject({
      code: 'capability_denied',
    })
  })

  it('run the same API as QuickJS filters: headers, reply, metrics, config', async () => {
    const { f, services } = await build(
      `let n = 0
      export function onRequestHeaders(req, ctx) {
        n++
        req.headers.set(ctx.config.header, String(n))
        req.headers.remove('x-drop')
        ctx.metrics.increment('seen')
        if (req.path === '/deny') return ctx.reply(403, { error: 'denied' })
      }`,
      { name: 'api', config: { header: 'x-n' } },
    )
    const ok = await drive([f], { headers: [['x-drop', '1']] })
    expect(ok.status).toBe('upstream')
    expect(ok.stream.requestHeaders.get('x-n')).toBe('1')
    expect(ok.stream.requestHeaders.has('x-drop')).toBe(false)
    const denied = await drive([f], { path: '/deny' })
    expect(denied.status).toBe(403)
    expect(JSON.parse(denied.body!)).toEqual({ error: 'denied' })
    expect(denied.reply!.headers).toContainEqual(['content-type', 'application/json'])
    expect(metricValue(services.metrics, 'omnirelay_wasm_seen{filter="api"}')).toBe(2)
    expect(f.phases).toBe(1)
  })

  it('expose only granted capabilities', async () => {
    const { f } = await build(`export function onRequestHeaders(req, ctx) { if (ctx.reply !== undefined || typeof req.headers.set === 'function' || typeof req.headers.get !== 'function') throw new Error('leak') }`, {
      capabilities: ['headers:read'],
    })
    expect(requestHeaders(f).status).toBe(FilterStatus.Continue)
    const w = await build(`export function onRequestHeaders(req) { if (typeof req.headers.get === 'function' || typeof req.headers.entries === 'function') throw new Error('leak'); req.headers.set('x-w', String(req.headers.size)) }`, {
      name: 'writer',
      capabilities: ['headers:write'],
    })
    const out = await drive([w.f])
    expect(out.status).toBe('upstream')
    expect(Number(out.stream.requestHeaders.get('x-w'))).toBeGreaterThan(0)
  })

  it('the watchdog turns a slow hook into a timeout failure after the fact (504 fail-closed)', async () => {
    const { f, services } = await build(`export function onRequestHeaders(req) { if (req.path === '/slow') { const end = Date.now() + 60; while (Date.now() < end) {} } }`, {
      name: 'slow',
      quotas: { timeoutMs: 20 },
    })
    const out = await drive([f], { path: '/slow' })
    expect(out.status).toBe(504)
    expect(JSON.parse(out.body!)).toMatchObject({ error: 'filter_failed', code: 'timeout', filter: 'slow' })
    expect(metricValue(services.metrics, 'omnirelay_native_failures_total{filter="slow",code="timeout"}')).toBe(1)
    expect((await drive([f], { path: '/fast' })).status).toBe('upstream')
  })

  it('a throwing hook gets the failure policy; the stack goes to the log only', async () => {
    const closed = await build(`export function onRequestHeaders() { throw new Error('internal-detail') }`, { name: 'thrower' })
    const out = await drive([closed.f])
    expect(out.status).toBe(500)
    expect(out.body).not.toContain('internal-detail')
    const line = closed.services.lines.find((l) => l.msg === 'native filter failed')!
    expect(line).toMatchObject({ filter: 'thrower', code: 'thrown', error: 'Error: internal-detail' })
    expect(String(line.jsStack)).toContain('onRequestHeaders')
    const open = await build(`export function onRequestHeaders() { throw new Error('x') }`, { name: 'opener', failurePolicy: 'fail-open' })
    expect((await drive([open.f])).status).toBe('upstream')
  })

  it('header values node would refuse on the wire are refused at the call (the filter catches a TypeError)', async () => {
    const { f } = await build(
      `export function onRequestHeaders(req) {
        for (const [k, v] of [['x-ctl', 'a\\u0001b'], ['x-del', 'a\\u007fb'], ['x-wide', 'price: \\u20ac5'], ['x-ok', 'caf\\u00e9\\tok']]) {
          try { req.headers.set(k, v) } catch (e) { req.headers.set(k + '-refused', e.constructor.name) }
        }
      }`,
      { name: 'values' },
    )
    const h = (await drive([f])).stream.requestHeaders
    expect([h.get('x-ctl-refused'), h.get('x-del-refused'), h.get('x-wide-refused')]).toEqual(['TypeError', 'TypeError', 'TypeError'])
    expect([h.get('x-ctl'), h.get('x-del'), h.get('x-wide'), h.get('x-ok')]).toEqual([undefined, undefined, undefined, 'caf\u00e9\tok'])
  })

  it('reload gives a fresh module instance (state starts over)', async () => {
    const { f } = await build(`let n = 0; export function onRequestHeaders(req) { n++; if (req.path === '/boom') throw new Error('x'); req.headers.set('x-n', String(n)) }`, {
      name: 'rl',
      failurePolicy: 'reload',
    })
    expect((await drive([f])).stream.requestHeaders.get('x-n')).toBe('1')
    expect((await drive([f])).stream.requestHeaders.get('x-n')).toBe('2')
    expect((await drive([f], { path: '/boom' })).status).toBe(500)
    await new Promise((r) => setTimeout(r, 5))
    await f.whenReady()
    expect((await drive([f])).stream.requestHeaders.get('x-n')).toBe('1')
  })

  describe('callouts', () => {
    let upstream: Upstream
    beforeAll(async () => {
      upstream = await startUpstream((req, res) => {
        res.writeHead(req.headers['x-token'] === 'good' ? 200 : 401, { 'x-user': 'alice' })
        res.end('{}')
      })
    })
    afterAll(async () => {
      await upstream.close()
    })

    it('an async hook pauses the stream and resumes it when done', async () => {
      const services = makeServices(upstream.port)
      const { f } = await build(
        `export async function onRequestHeaders(req, ctx) {
          const r = await ctx.httpCall('auth', { path: '/check', headers: { 'x-token': req.headers.get('x-token') ?? '' } })
          if (r.status !== 200) return ctx.reply(401, { error: 'unauthorized' })
          req.headers.set('x-user', r.headers.get('x-user'))
        }`,
        { name: 'auth', calloutClusters: ['auth'] },
        services,
      )
      const ok = await drive([f], { headers: [['x-token', 'good']], waitMs: 3000 })
      expect(ok.status).toBe('upstream')
      expect(ok.stream.requestHeaders.get('x-user')).toBe('alice')
      expect((await drive([f], { headers: [['x-token', 'bad']], waitMs: 3000 })).status).toBe(401)
      await services.clusters?.close()
    })
  })

  it('bodies: read and replace', async () => {
    const { f } = await build(`export function onRequestBody(req, ctx) { if (!ctx.endOfStream) return 'pause'; req.setBody(req.text().toUpperCase()) }`)
    const stream = makeStream('/b', [], 'POST')
    const fl = f.createStream(stream)
    stream.requestBody = new TextEncoder().encode('hello')
    expect(fl.onRequestBody!(5, true)).toBe(FilterStatus.Continue)
    expect(new TextDecoder().decode(stream.requestBody)).toBe('HELLO')
  })
})
