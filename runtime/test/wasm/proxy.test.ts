/**
 * The Wasm host through the running proxy: real HTTP requests, wasm filters loaded from
 * config (`kind: wasm`, `module: path`, `allowUnsigned: true`), hostile modules answered by
 * their failure policy with a metric and a log line, and the next request served.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/observability/logger.ts'
import { MetricsRegistry } from '../../src/observability/metrics.ts'
import { startProxy, type ProxyHandle } from '../../src/index.ts'
import { request, startUpstream, type Upstream } from '../helpers/servers.ts'
import { wat } from './wat.ts'
import { calloutFilter, headerFilter, hostile, neverStarts, needsCallout, trapIn, unknownImport, type TrapPhase } from './modules.ts'

const lines: Record<string, unknown>[] = []
const log = createLogger({ level: 'info', write: (l) => lines.push(JSON.parse(l)) })
const metrics = new MetricsRegistry()

let dir: string
let up: Upstream
let auth: Upstream
let proxy: ProxyHandle
let port: number
let baseConfig: Record<string, unknown>
let authDelayMs = 0

const HOSTILE = [
  ['loop', 'loop', 'fail-closed'],
  ['recursion', 'recursion', 'fail-closed'],
  ['chain', 'chain', 'fail-open'],
  ['bomb', 'bomb', 'fail-closed'],
  ['loopreload', 'loop', 'reload'],
] as const
const TRAPS: TrapPhase[] = ['request_headers', 'request_body', 'response_headers', 'response_body', 'log']

function wasmFilter(name: string, module: string, over: Record<string, unknown> = {}) {
  return {
    name,
    kind: 'wasm',
    module,
    failurePolicy: 'fail-closed',
    quotas: { fuel: 5_000_000, memoryBytes: 4 * 65536, timeoutMs: 2000 },
    capabilities: ['headers:read', 'headers:write', 'body:read', 'body:write', 'local-reply', 'log', 'http-callout', 'properties'],
    ...over,
  }
}

const route = (name: string, host: string, filters: string[]) => ({ name, match: { prefix: '/', host }, cluster: 'app', filters })

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omnirelay-wasm-'))
  const files: Record<string, string> = {
    'header.wasm': headerFilter,
    'callout.wasm': calloutFilter,
    ...Object.fromEntries(HOSTILE.map(([name, kind]) => [`${name}.wasm`, hostile(kind)])),
    ...Object.fromEntries(TRAPS.map((p) => [`trap-${p}.wasm`, trapIn(p)])),
    'never-starts.wasm': neverStarts,
    'needs-callout.wasm': needsCallout,
    'unknown-import.wasm': unknownImport,
  }
  for (const [f, src] of Object.entries(files)) await writeFile(join(dir, f), await wat(src))
  await writeFile(join(dir, 'garbage.wasm'), Buffer.from('this is not wasm at all'))
  // A "new version" of the callout filter: same behaviour, different bytes (digest).
  await writeFile(join(dir, 'callout-v2.wasm'), await wat(calloutFilter.replace(/\)$/, ' (data (i32.const 4000) "v2"))')))
  up = await startUpstream()
  auth = await startUpstream(async (req, res) => {
    if (authDelayMs) await new Promise((r) => setTimeout(r, authDelayMs))
    res.writeHead(req.headers['x-token'] === 'good' || req.url === '/check' ? 200 : 403, { 'content-type': 'text/plain' })
    res.end('authorized')
  })
  baseConfig = {
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    accessLog: 'off',
    allowUnsigned: true,
    clusters: [
      { name: 'app', endpoints: [`127.0.0.1:${up.port}`] },
      { name: 'auth', endpoints: [`127.0.0.1:${auth.port}`] },
    ],
    filters: [
      wasmFilter('header', 'header.wasm'),
      wasmFilter('isolated', 'header.wasm', { isolation: 'per-request' }),
      wasmFilter('callout', 'callout.wasm', { calloutClusters: ['auth'] }),
      ...HOSTILE.map(([name, , policy]) => wasmFilter(name, `${name}.wasm`, { failurePolicy: policy })),
      ...TRAPS.map((p) => wasmFilter(`trap-${p}`, `trap-${p}.wasm`)),
    ],
    routes: [
      route('header', 'header.test', ['header']),
      route('isolated', 'isolated.test', ['isolated']),
      route('callout', 'callout.test', ['callout']),
      ...HOSTILE.map(([name]) => route(name, `${name}.test`, [name])),
      ...TRAPS.map((p) => route(`trap-${p}`, `trap-${p}.test`, [`trap-${p}`])),
    ],
  }
  proxy = await startProxy(baseConfig, { log, metrics, baseDir: dir })
  port = proxy.address('main').port
})

afterAll(async () => {
  await proxy?.close()
  await up?.close()
  await auth?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const get = (host: string, path = '/ok', extra: { method?: string; body?: string } = {}) => request(port, { path, headers: { host }, ...extra })

function failureLogged(filter: string, code?: string): boolean {
  return lines.some((l) => l.msg === 'wasm filter failed; instance discarded' && l.filter === filter && (code === undefined || l.code === code))
}

describe('wasm filters through the proxy', () => {
  it('a header filter changes the upstream request and the response', async () => {
    const r = await request(port, { path: '/x', headers: { host: 'header.test', 'x-in': 'v1', 'x-remove': 'gone' } })
    expect(r.status).toBe(200)
    const seen = up.seen.at(-1)!
    expect(seen.headers['x-out']).toBe('v1')
    expect(seen.headers['x-replaced']).toBe('yes')
    expect(seen.headers['x-remove']).toBeUndefined()
    expect(r.headers['x-resp']).toBe('1')
    expect(metrics.render()).toMatch(/omnirelay_filter_fuel_used_count\{filter="header"\} [1-9]/)
  })

  it('isolation through the proxy: shared state persists, per-request state does not', async () => {
    const counts = async (host: string) => {
      const out: string[] = []
      for (let i = 0; i < 3; i++) {
        await get(host)
        out.push(String(up.seen.at(-1)!.headers['x-count']))
      }
      return out
    }
    const shared = await counts('header.test')
    expect(Number(shared[2]) - Number(shared[0])).toBe(2)
    expect(await counts('isolated.test')).toEqual(['1', '1', '1'])
  })

  it('a callout filter pauses the request, calls the auth cluster and continues', async () => {
    const r = await get('callout.test')
    expect(r.status).toBe(200)
    expect(auth.seen.at(-1)!.url).toBe('/check')
    expect(up.seen.at(-1)!.headers['x-auth-body']).toBe('authorized')
  })

  for (const [name, kind, policy] of HOSTILE) {
    it(`${kind} (${policy}): stopped in milliseconds, policy answer, metric, log line, next request served`, async () => {
      const t0 = performance.now()
      const bad = await get(`${name}.test`, '/bad')
      const ms = performance.now() - t0
      expect(ms).toBeLessThan(1000)
      const codes = { loop: ['fuel_exhausted'], recursion: ['stack_overflow', 'fuel_exhausted'], chain: ['fuel_exhausted'], bomb: ['memory_exceeded'] }[kind]
      if (policy === 'fail-open') {
        expect(bad.status).toBe(200)
        expect(metrics.render()).toContain(`omnirelay_filter_fail_open_total{filter="${name}"} 1`)
      } else {
        expect(bad.status).toBe(500)
        const body = JSON.parse(bad.body)
        expect(body).toMatchObject({ error: 'filter_failed', filter: name })
        expect(codes).toContain(body.code)
      }
      const text = metrics.render()
      expect(codes.some((c) => text.includes(`omnirelay_wasm_failures_total{filter="${name}",code="${c}"} 1`))).toBe(true)
      expect(failureLogged(name)).toBe(true)
      if (policy === 'reload') {
        // During the backoff the filter is unavailable (fail closed), then a fresh instance serves.
        expect((await get(`${name}.test`)).status).toBe(503)
        await new Promise((r) => setTimeout(r, 150))
      }
      expect((await get(`${name}.test`)).status).toBe(200)
      expect((await get(`${name}.test`)).status).toBe(200)
    })
  }

  for (const phase of TRAPS) {
    it(`a trap in ${phase}: policy answer, metric, log line, next request served`, async () => {
      const method = phase === 'request_body' ? 'POST' : 'GET'
      // Once the response head is out, a failure can only reset the stream.
      const send = () => get(`trap-${phase}.test`, '/x', { method, body: method === 'POST' ? 'payload' : undefined }).catch(() => ({ status: 'reset' as const }))
      const r = await send()
      if (phase === 'log') expect(r.status).toBe(200)
      else if (phase === 'response_body') expect([500, 'reset']).toContain(r.status)
      else expect(r.status).toBe(500)
      expect(metrics.render()).toContain(`omnirelay_wasm_failures_total{filter="trap-${phase}",code="trap"} 1`)
      expect(failureLogged(`trap-${phase}`, 'trap')).toBe(true)
      // The trapped instance is gone; the next request gets a fresh one (which traps the same way).
      expect((await send()).status).toBe(r.status)
      expect((await get('header.test')).status).toBe(200)
    })
  }

  it('a new version of a filter swaps in without dropping the request paused in its callout', async () => {
    authDelayMs = 300
    const inFlight = get('callout.test')
    await new Promise((r) => setTimeout(r, 100))
    const filters = (baseConfig.filters as { name: string; module: string }[]).map((f) => (f.name === 'callout' ? { ...f, module: 'callout-v2.wasm' } : f))
    await proxy.reload({ ...baseConfig, filters })
    authDelayMs = 0
    const r = await inFlight
    expect(r.status).toBe(200)
    expect((await get('callout.test')).status).toBe(200)
    await proxy.reload(baseConfig)
  })

  it('installs a start function that never returns failed instead of refusing the config: 503 per request, others keep serving', async () => {
    const cfg = {
      ...baseConfig,
      filters: [...(baseConfig.filters as object[]), wasmFilter('newcomer', 'never-starts.wasm')],
      routes: [...(baseConfig.routes as object[]), route('newcomer', 'newcomer.test', ['newcomer'])],
    }
    const t0 = performance.now()
    await proxy.reload(cfg)
    expect(performance.now() - t0).toBeLessThan(3000)
    const r = await get('newcomer.test')
    expect(r.status).toBe(503)
    expect(JSON.parse(r.body)).toEqual({ error: 'filter_failed', status: 503, code: 'unavailable', filter: 'newcomer' })
    expect(metrics.render()).toContain('omnirelay_filter_start_failures_total{filter="newcomer",kind="wasm",phase="start",code="fuel_exhausted"} 1')
    expect(lines.some((l) => l.msg === 'filter failed to start' && l.filter === 'newcomer')).toBe(true)
    expect((await get('header.test')).status).toBe(200)
    await proxy.reload(baseConfig)
  })

  const refused = [
    ['garbage bytes', 'garbage.wasm', 'invalid_module', {}],
    ['an unknown import', 'unknown-import.wasm', 'unknown_import', {}],
    ['a forbidden import', 'needs-callout.wasm', 'capability_denied', { capabilities: ['headers:read'] }],
  ] as const
  for (const [what, file, code, over] of refused) {
    it(`refuses ${what} at load with ${code}; the running config keeps serving`, async () => {
      const cfg = {
        ...baseConfig,
        filters: [...(baseConfig.filters as object[]), wasmFilter('newcomer', file, over)],
        routes: [...(baseConfig.routes as object[]), route('newcomer', 'newcomer.test', ['newcomer'])],
      }
      const t0 = performance.now()
      const err = await proxy.reload(cfg).then(
        () => undefined,
        (e: Error) => e,
      )
      expect(performance.now() - t0).toBeLessThan(3000)
      expect(err?.message ?? '').toContain(code)
      expect(JSON.stringify(err)).toContain('newcomer')
      expect((await get('header.test')).status).toBe(200)
    })
  }
})
