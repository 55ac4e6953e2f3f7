/**
 * Hostile JavaScript: every attack gets the failure policy's answer (through the real
 * pipeline executor), a failure metric with its code, a log line naming the filter with the
 * JS stack (never in the reply), and the next request is served.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { host } from '../../src/hosts/quickjs/index.ts'
import type { QuickJsFilterFactory } from '../../src/hosts/quickjs/factory.ts'
import type { FailurePolicy, FilterDefinition } from '../../src/pipeline/filter.ts'
import { drive, jsArtifact, makeDef, makeServices, metricValue, requestHeaders } from './fixtures.ts'

const factories: QuickJsFilterFactory[] = []
afterAll(async () => {
  await Promise.all(factories.map((f) => f.close()))
})

/** A filter whose request-headers hook runs `attack` on `/attack` and adds a header otherwise. */
async function hostile(name: string, attack: string, policy: FailurePolicy = 'fail-closed', over: Partial<FilterDefinition> = {}) {
  const services = makeServices()
  const src = `
    let served = 0
    export function onRequestHeaders(req, ctx) {
      if (req.path === '/attack') { ${attack} }
      served++
      req.headers.set('x-served', String(served))
    }`
  const f = (await host.createFactory(makeDef(name, 'quickjs', { failurePolicy: policy, ...over }), jsArtifact(src), services)) as QuickJsFilterFactory
  factories.push(f)
  return { f, services }
}

async function expectContained(name: string, attack: string, code: string, policy: FailurePolicy = 'fail-closed', over: Partial<FilterDefinition> = {}) {
  const { f, services } = await hostile(name, attack, policy, over)
  const t0 = performance.now()
  const out = await drive([f], { path: '/attack' })
  const ms = performance.now() - t0
  if (policy === 'fail-open') expect(out.status).toBe('upstream')
  else {
    expect(out.status).toBe(500)
    expect(JSON.parse(out.body!)).toEqual({ error: 'filter_failed', status: 500, code, filter: name })
  }
  expect(metricValue(services.metrics, `omnirelay_quickjs_failures_total{filter="${name}",code="${code}"}`)).toBe(1)
  const line = services.lines.find((l) => l.msg === 'quickjs filter failed')
  expect(line).toMatchObject({ filter: name, code })
  await f.whenReady()
  const next = await drive([f], { path: '/next' })
  expect(next.status).toBe('upstream')
  expect(next.stream.requestHeaders.get('x-served')).toMatch(/^\d+$/)
  return { ms, services, f }
}

describe('hostile QuickJS filters', () => {
  it('while(true){} runs out of fuel, in milliseconds', async () => {
    const { ms } = await expectContained('spin', 'while (true) {}', 'fuel_exhausted')
    expect(ms).toBeLessThan(1000)
  })

  it('a loop inside built-ins runs out of fuel too (the engine itself is metered)', async () => {
    await expectContained('builtin', `const a = []; for (let i = 0; i < 1e9; i++) a.push('x'.repeat(64).split('').reverse().join(''))`, 'fuel_exhausted', 'fail-closed', {
      quotas: { memoryBytes: 256 << 20 },
    })
    await expectContained('sort', `const a = Array.from({ length: 200000 }, (_, i) => (i * 7919) % 1000); for (;;) a.sort((x, y) => y - x)`, 'fuel_exhausted')
  })

  it('one huge allocation hits the memory cap, not the host', async () => {
    const { services } = await expectContained('huge', `const b = new ArrayBuffer(512 * 1024 * 1024); b.x = 1`, 'memory_exceeded', 'fail-closed', { quotas: { fuel: 1e11 } })
    expect(metricValue(services.metrics, 'omnirelay_quickjs_memory_bytes{filter="huge"}')).toBeLessThanOrEqual(32 << 20)
  })

  it('many medium allocations hit the memory cap', async () => {
    await expectContained('medium', `const keep = []; for (;;) keep.push(new Array(256 * 1024).fill(1))`, 'memory_exceeded', 'fail-closed', { quotas: { fuel: 1e12 } })
    await expectContained('strings', `const keep = []; for (let i = 0; ; i++) keep.push('x'.repeat(1 << 20) + i)`, 'memory_exceeded', 'fail-closed', { quotas: { fuel: 1e12 } })
  })

  it('deep recursion gives a clean stack overflow, never a host RangeError', async () => {
    await expectContained('recurse', `const f = (n) => f(n + 1) + 1; f(0)`, 'stack_overflow')
    await expectContained('recurse-catch', `const f = (n) => { try { return f(n + 1) } catch (e) { return f(n + 1) } }; f(0)`, 'fuel_exhausted', 'fail-closed', { quotas: { fuel: 2e9 } })
  })

  it('a thrown error fails closed with a stable body; its stack goes to the log only', async () => {
    const { services } = await expectContained('thrower', `throw new Error('secret-internal-detail')`, 'thrown')
    const line = services.lines.find((l) => l.msg === 'quickjs filter failed')!
    expect(line.error).toBe('Error: secret-internal-detail')
    expect(String(line.jsStack)).toContain('at onRequestHeaders (thrower.js:')
  })

  it('fail-open skips the failing filter and serves the request', async () => {
    await expectContained('open', `while (true) {}`, 'fuel_exhausted', 'fail-open')
    await expectContained('open-throw', `throw 'a string'`, 'thrown', 'fail-open')
  })

  it('reload replaces the instance: module state starts over', async () => {
    const { f } = await hostile('reloader', `throw new Error('x')`, 'reload')
    expect((await drive([f], { path: '/a' })).stream.requestHeaders.get('x-served')).toBe('1')
    expect((await drive([f], { path: '/b' })).stream.requestHeaders.get('x-served')).toBe('2')
    expect((await drive([f], { path: '/attack' })).status).toBe(500)
    await f.whenReady()
    expect((await drive([f], { path: '/c' })).stream.requestHeaders.get('x-served')).toBe('1')
  })

  it('header injection never reaches the stream, even with the prelude\'s built-ins tampered with', async () => {
    await expectContained('crlf', `req.headers.set('x-a', 'v\\r\\nx-evil: 1')`, 'thrown')
    await expectContained('badname', `req.headers.set('bad name', 'v')`, 'thrown')
    // What node would refuse on the wire: refused at the call, the filter's policy answers.
    await expectContained('ctlvalue', `req.headers.set('x-a', 'a\\u0001b')`, 'thrown')
    await expectContained('widevalue', `req.headers.set('x-a', 'price: \\u20ac5')`, 'thrown')
    const { f, services } = await hostile(
      'tamper',
      `const join = Array.prototype.join
      Array.prototype.join = function (sep) { Array.prototype.join = join; return 'x-ok' + sep + 'v\\r\\nx-evil: 1' }
      req.headers.set('x-b', '1')`,
      'reload',
    )
    const out = await drive([f], { path: '/attack' })
    expect(out.status).toBe(500)
    expect(out.stream.requestHeaders.flat.join('\n')).not.toContain('evil')
    expect(metricValue(services.metrics, 'omnirelay_quickjs_failures_total{filter="tamper",code="thrown"}')).toBe(1)
    await f.whenReady()
    expect((await drive([f], { path: '/next' })).status).toBe('upstream')
  })

  it('a crash loop backs off: replacements are rate-limited and requests meanwhile are unavailable', async () => {
    const { f, services } = await hostile('crashloop', `while (true) {}`)
    const statuses: (number | string)[] = []
    for (let i = 0; i < 4; i++) statuses.push((await drive([f], { path: '/attack' })).status)
    const unavailable = await drive([f], { path: '/next' })
    expect(statuses.every((s) => s === 500 || s === 503)).toBe(true)
    expect(unavailable.status === 503 || unavailable.status === 'upstream').toBe(true)
    expect(metricValue(services.metrics, 'omnirelay_quickjs_instances_created_total{filter="crashloop"}')).toBeLessThanOrEqual(5)
  })

  it('throwing in every phase: each gets the policy answer and the stream goes on', async () => {
    const services = makeServices()
    const src = `
      const phases = ['onRequestHeaders', 'onRequestBody', 'onRequestTrailers', 'onResponseHeaders', 'onResponseBody', 'onResponseTrailers', 'onLog']
      export function onRequestHeaders(req, ctx) { if (req.path === '/onRequestHeaders') throw new Error('rh') }
      export function onRequestBody(req, ctx) { if (ctx.request.path === '/onRequestBody') throw new Error('rb') }
      export function onRequestTrailers(req, ctx) { if (ctx.request.path === '/onRequestTrailers') throw new Error('rt') }
      export function onResponseHeaders(res, ctx) { if (ctx.request.path === '/onResponseHeaders') throw new Error('sh') }
      export function onResponseBody(res, ctx) { if (ctx.request.path === '/onResponseBody') throw new Error('sb') }
      export function onResponseTrailers(res, ctx) { if (ctx.request.path === '/onResponseTrailers') throw new Error('st') }
      export function onLog(res, ctx) { if (ctx.request.path === '/onLog') throw new Error('lg') }`
    const f = (await host.createFactory(makeDef('every', 'quickjs'), jsArtifact(src), services)) as QuickJsFilterFactory
    factories.push(f)
    const ops: [string, (fl: ReturnType<typeof f.createStream>) => unknown][] = [
      ['/onRequestHeaders', (fl) => fl.onRequestHeaders!(false)],
      ['/onRequestBody', (fl) => fl.onRequestBody!(0, true)],
      ['/onRequestTrailers', (fl) => fl.onRequestTrailers!()],
      ['/onResponseHeaders', (fl) => fl.onResponseHeaders!(false)],
      ['/onResponseBody', (fl) => fl.onResponseBody!(0, true)],
      ['/onResponseTrailers', (fl) => fl.onResponseTrailers!()],
      ['/onLog', (fl) => fl.onLog!()],
    ]
    for (const [path, call] of ops) {
      const stream = (await import('./fixtures.ts')).makeStream(path)
      stream.responseHeaders.replaceAll([':status', '200'])
      const fl = f.createStream(stream)
      let code: string | undefined
      for (const [, other] of ops) {
        try {
          other(fl)
        } catch (e) {
          code = (e as { code: string }).code
          expect(other).toBe(call)
        }
      }
      fl.onDone!()
      expect(code).toBe('thrown')
    }
    expect(metricValue(services.metrics, 'omnirelay_quickjs_failures_total{filter="every",code="thrown"}')).toBe(7)
    expect(requestHeaders(f).status).toBe(0)
  })
})

describe('no ambient authority', () => {
  const probes: [string, string][] = [
    ['process', `typeof process`],
    ['require', `typeof require`],
    ['setTimeout', `typeof setTimeout`],
    ['fetch', `typeof fetch`],
    ['console', `typeof console`],
    ['std', `typeof std + typeof os + typeof scriptArgs`],
    ['h on globalThis', `Object.getOwnPropertyNames(globalThis).filter((k) => /^(h|__|ns|dispatch)/.test(k)).join()`],
    ['eval', `typeof eval`],
    ['Function', `(() => { try { return Function('return this')() === globalThis } catch (e) { return e.constructor.name } })()`],
    ['constructor escape', `(() => { try { return (() => {}).constructor('return globalThis')() } catch (e) { return e.constructor.name } })()`],
    ['async constructor', `(() => { try { return (async () => {}).constructor('return 1') } catch (e) { return e.constructor.name } })()`],
    ['dynamic import', `(() => { try { import('node:fs'); return 'no-throw' } catch (e) { return e.constructor.name } })()`],
  ]
  it('sees none of the host: no process, require, timers, I/O, eval or Function constructor', async () => {
    const services = makeServices()
    const src = `export function onRequestHeaders(req, ctx) {
      const out = {}
      ${probes.map(([k, expr]) => `out[${JSON.stringify(k)}] = String(${expr})`).join('\n')}
      req.headers.set('x-probes', JSON.stringify(out))
    }`
    const f = await host.createFactory(makeDef('probe', 'quickjs'), jsArtifact(src), services)
    factories.push(f as QuickJsFilterFactory)
    const got = JSON.parse(requestHeaders(f).stream.requestHeaders.get('x-probes')!)
    expect(got).toEqual({
      process: 'undefined',
      require: 'undefined',
      setTimeout: 'undefined',
      fetch: 'undefined',
      console: 'undefined',
      std: 'undefinedundefinedundefined',
      'h on globalThis': '',
      eval: 'undefined',
      Function: 'TypeError',
      'constructor escape': 'TypeError',
      'async constructor': 'TypeError',
      'dynamic import': 'no-throw',
    })
  })

  it('a module that imports anything is refused at load', async () => {
    await expect(host.createFactory(makeDef('imp', 'quickjs'), jsArtifact(`import fs from 'node:fs'\nexport function onRequestHeaders() {}`), makeServices())).rejects.toMatchObject({
      code: 'thrown',
    })
  })
})

describe('fuel is deterministic', () => {
  it('the same requests on a fresh instance use exactly the same fuel, every time', async () => {
    const src = `export function onRequestHeaders(req, ctx) {
      for (let i = 0; i < 50; i++) if (req.headers.get('x-' + i) !== undefined) req.headers.set('y-' + i, '1')
      req.headers.set('x-done', 'yes')
    }`
    // A reused instance carries allocator and GC state from request to request (a few
    // hundredths of a percent of variation); a fresh one replays exactly.
    const runs: number[][] = []
    for (let k = 0; k < 2; k++) {
      const f = (await host.createFactory(makeDef('det', 'quickjs'), jsArtifact(src), makeServices())) as QuickJsFilterFactory
      factories.push(f)
      const used: number[] = []
      for (let i = 0; i < 5; i++) used.push((requestHeaders(f).filter as unknown as { state: { fuelUsed: number } }).state.fuelUsed)
      runs.push(used)
    }
    expect(runs[0]![0]).toBeGreaterThan(0)
    expect(runs[1]).toEqual(runs[0])
  })
})
