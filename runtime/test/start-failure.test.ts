/**
 * Filters that fail to start (issue #3), through the running proxy: a valid Wasm module whose
 * start function, `_start` or `proxy_on_vm_start` never returns (stopped by fuel) or whose
 * `proxy_on_configure` returns false, and a QuickJS module whose top-level code loops or
 * throws, no longer fail the config. Each is installed failed and every request through it
 * gets its failure policy's answer (fail-closed: 503 `unavailable`; fail-open: skipped;
 * reload: 503 while fresh instances are tried with backoff), with a metric and a log line
 * naming the phase and the reason; other routes keep serving. Called directly, the hosts
 * still refuse such modules (the registry's admission smoke run relies on it).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { host as quickjsHost } from '../src/hosts/quickjs/index.ts'
import { host as wasmHost } from '../src/hosts/wasm/index.ts'
import { createLogger } from '../src/observability/logger.ts'
import { MetricsRegistry } from '../src/observability/metrics.ts'
import { startProxy, type ProxyHandle } from '../src/index.ts'
import { SplitSlot, type VariantObserver } from '../src/rollout/split-slot.ts'
import { drive, jsArtifact, makeDef, makeServices } from './quickjs/fixtures.ts'
import { request, startUpstream, type Upstream } from './helpers/servers.ts'
import { makeArtifact } from './wasm/fixtures.ts'
import { failsToStart, headerFilter, startsOnSecondTry, trapIn, type StartFailurePhase } from './wasm/modules.ts'
import { wat } from './wasm/wat.ts'

const lines: Record<string, unknown>[] = []
const log = createLogger({ level: 'info', write: (l) => lines.push(JSON.parse(l)) })
const metrics = new MetricsRegistry()

const POLICIES = ['fail-closed', 'fail-open', 'reload'] as const
const WASM: [StartFailurePhase, phase: string, code: string][] = [
  ['start', 'start', 'fuel_exhausted'],
  ['_start', 'start', 'fuel_exhausted'],
  ['vm_start', 'vm_start', 'fuel_exhausted'],
  ['configure', 'configure', 'configure_rejected'],
]
/** Small budgets: a runaway start stops within a millisecond or so (init gets 10 request budgets). */
const WASM_QUOTAS = { fuel: 100_000, memoryBytes: 4 * 65536, timeoutMs: 2000 }
const JS_QUOTAS = { fuel: 1e8 }
/**
 * Reload's backoff steps are 100, 200, 400 ms...: a filter has failed at most twice (at load,
 * and maybe on the first request) when a test waits this long for its next attempt.
 */
const PAST_BACKOFF_MS = 250

let dir: string
let up: Upstream
let proxy: ProxyHandle
let port: number

function wasmFilter(name: string, module: string, failurePolicy: string, over: Record<string, unknown> = {}) {
  return { name, kind: 'wasm', module, failurePolicy, quotas: WASM_QUOTAS, capabilities: ['headers:read', 'headers:write', 'shared-data', 'log'], ...over }
}
function jsFilter(name: string, module: string, failurePolicy: string) {
  return { name, kind: 'quickjs', module, failurePolicy, quotas: JS_QUOTAS, capabilities: ['headers:read', 'headers:write'] }
}
const route = (name: string) => ({ name, match: { prefix: '/', host: `${name}.test` }, cluster: 'app', filters: [name] })

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omnirelay-startfail-'))
  const wasmFiles: Record<string, string> = {
    'header.wasm': headerFilter,
    'once.wasm': startsOnSecondTry,
    'trap-configure.wasm': trapIn('configure'),
    ...Object.fromEntries(WASM.map(([where]) => [`fails-${where}.wasm`, failsToStart(where)])),
  }
  for (const [f, src] of Object.entries(wasmFiles)) await writeFile(join(dir, f), await wat(src))
  await writeFile(join(dir, 'loop.js'), 'while (true) {}\nexport function onRequestHeaders(req) { req.headers.set("x-started", "yes") }')
  await writeFile(join(dir, 'throw.js'), 'throw new Error("not today")\nexport function onRequestHeaders() {}')
  up = await startUpstream()
  const filters = [
    wasmFilter('header', 'header.wasm', 'fail-closed'),
    ...WASM.flatMap(([where]) => POLICIES.map((p) => wasmFilter(`w-${where}-${p}`, `fails-${where}.wasm`, p))),
    wasmFilter('w-vm_start-reload-isolated', 'fails-vm_start.wasm', 'reload', { isolation: 'per-request' }),
    wasmFilter('w-trap', 'trap-configure.wasm', 'fail-closed'),
    wasmFilter('w-once', 'once.wasm', 'reload'),
    wasmFilter('w-once-isolated', 'once.wasm', 'reload', { isolation: 'per-request' }),
    ...POLICIES.map((p) => jsFilter(`q-loop-${p}`, 'loop.js', p)),
    jsFilter('q-throw', 'throw.js', 'fail-closed'),
  ]
  const config = {
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    accessLog: 'off',
    allowUnsigned: true,
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
    filters,
    routes: filters.map((f) => route(f.name)),
  }
  proxy = await startProxy(config, { log, metrics, baseDir: dir })
  port = proxy.address('main').port
})

afterAll(async () => {
  await proxy?.close()
  await up?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const get = (name: string) => request(port, { path: '/x', headers: { host: `${name}.test` } })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A sample's value in the rendered metrics, or undefined when absent. */
function metric(series: string): number | undefined {
  const line = metrics
    .render()
    .split('\n')
    .find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}
const startFailures = (filter: string, kind: string, phase: string, code: string) =>
  metric(`omnirelay_filter_start_failures_total{filter="${filter}",kind="${kind}",phase="${phase}",code="${code}"}`)
const startLines = (filter: string) => lines.filter((l) => l.msg === 'filter failed to start' && l.filter === filter)

/** Polls (bounded) until `check` holds; returns whether it did. */
async function eventually(check: () => boolean, ms = 2000): Promise<boolean> {
  for (let waited = 0; waited < ms && !check(); waited += 25) await sleep(25)
  return check()
}

/** Checks one answer of a filter that is not started, by policy. */
async function expectPolicyAnswer(name: string, policy: string): Promise<void> {
  const seen = up.seen.length
  const r = await get(name)
  if (policy === 'fail-open') {
    expect(r.status).toBe(200)
    expect(up.seen.length).toBe(seen + 1)
    expect(up.seen.at(-1)!.headers['x-started']).toBeUndefined()
    return
  }
  expect(r.status).toBe(503)
  expect(JSON.parse(r.body)).toEqual({ error: 'filter_failed', status: 503, code: 'unavailable', filter: name })
  expect(up.seen.length).toBe(seen)
}

describe('a Wasm filter that fails to start gets its failure policy per request', () => {
  for (const [where, phase, code] of WASM) {
    for (const policy of POLICIES) {
      const name = `w-${where}-${policy}`
      it(`${where} (${policy}): policy answer, a metric and a log line for ${phase}/${code}, next request served`, async () => {
        await expectPolicyAnswer(name, policy)
        expect(startLines(name)[0]).toMatchObject({ level: 'warn', kind: 'wasm', phase, code, policy })
        if (policy === 'fail-open') expect(metric(`omnirelay_filter_fail_open_total{filter="${name}"}`)).toBe(1)
        if (policy === 'reload') {
          // Requests try a fresh instance once each backoff step is over (the first request may
          // already have): it fails the same way and the answer stays the same.
          const before = startFailures(name, 'wasm', phase, code)!
          expect(before).toBeGreaterThanOrEqual(1)
          await sleep(PAST_BACKOFF_MS)
          await expectPolicyAnswer(name, policy)
          expect(startFailures(name, 'wasm', phase, code)).toBe(before + 1)
        } else {
          expect(startFailures(name, 'wasm', phase, code)).toBe(1)
          expect(startLines(name)).toHaveLength(1)
          // Stays failed (Envoy's semantics): no further attempt, the same answer.
          await expectPolicyAnswer(name, policy)
          expect(startFailures(name, 'wasm', phase, code)).toBe(1)
        }
        expect((await get('header')).status).toBe(200)
      })
    }
  }

  it('per-request isolation: reload retries the same way', async () => {
    const name = 'w-vm_start-reload-isolated'
    await expectPolicyAnswer(name, 'reload')
    const before = startFailures(name, 'wasm', 'vm_start', 'fuel_exhausted')!
    await sleep(PAST_BACKOFF_MS)
    await expectPolicyAnswer(name, 'reload')
    expect(startFailures(name, 'wasm', 'vm_start', 'fuel_exhausted')).toBe(before + 1)
  })

  it('a trap in proxy_on_configure is named as such', async () => {
    await expectPolicyAnswer('w-trap', 'fail-closed')
    expect(startFailures('w-trap', 'wasm', 'configure', 'trap')).toBe(1)
    expect(startLines('w-trap')[0]).toMatchObject({ phase: 'configure', code: 'trap' })
  })

  for (const name of ['w-once', 'w-once-isolated']) {
    it(`reload brings up a module that starts on its second try (${name}); it then serves`, async () => {
      // Failed once at load; the first request past the backoff starts it (earlier ones get 503).
      expect(startFailures(name, 'wasm', 'configure', 'configure_rejected')).toBe(1)
      const first = await get(name)
      if (first.status !== 200) {
        expect(first.status).toBe(503)
        await sleep(PAST_BACKOFF_MS)
      }
      for (let i = 0; i < 3; i++) {
        expect((await get(name)).status).toBe(200)
        expect(up.seen.at(-1)!.headers['x-started']).toBe('yes')
      }
      expect(lines.some((l) => l.msg === 'filter started after failed starts' && l.filter === name)).toBe(true)
      expect(startFailures(name, 'wasm', 'configure', 'configure_rejected')).toBe(1)
    })
  }
})

describe('a QuickJS filter whose top-level code fails gets its failure policy per request', () => {
  for (const policy of POLICIES) {
    const name = `q-loop-${policy}`
    it(`top-level while(true) (${policy}): policy answer, metric, log line, next request served`, async () => {
      await expectPolicyAnswer(name, policy)
      expect(startFailures(name, 'quickjs', 'start', 'fuel_exhausted')).toBeGreaterThanOrEqual(1)
      expect(startLines(name)[0]).toMatchObject({ level: 'warn', kind: 'quickjs', phase: 'start', code: 'fuel_exhausted', policy })
      if (policy === 'reload') {
        // Rebuilt in the background with backoff (100 ms, then 200 ms...): still failing, still answered.
        expect(await eventually(() => startFailures(name, 'quickjs', 'start', 'fuel_exhausted')! >= 2)).toBe(true)
      } else {
        expect(startFailures(name, 'quickjs', 'start', 'fuel_exhausted')).toBe(1)
      }
      await expectPolicyAnswer(name, policy)
      expect((await get('header')).status).toBe(200)
    })
  }

  it('a top-level throw: fail-closed answer, reason in the log only', async () => {
    const r = await get('q-throw')
    expect(r.status).toBe(503)
    expect(r.body).not.toContain('not today')
    expect(startFailures('q-throw', 'quickjs', 'start', 'thrown')).toBe(1)
    expect(startLines('q-throw')[0]).toMatchObject({ code: 'thrown', reason: 'Error: not today' })
  })
})

describe('called directly, the hosts still refuse a module that fails to start', () => {
  it('wasm: rejects with the failure code unless asked to serve it', async () => {
    const bytes = await wat(failsToStart('vm_start'))
    const def = { ...makeDef('direct', 'wasm'), quotas: WASM_QUOTAS, capabilities: ['headers:write' as const] }
    await expect(wasmHost.createFactory(def, makeArtifact(bytes), makeServices())).rejects.toMatchObject({ code: 'fuel_exhausted', filter: 'direct' })
    const cfg = await wat(failsToStart('configure'))
    await expect(wasmHost.createFactory(def, makeArtifact(cfg), makeServices())).rejects.toMatchObject({ code: 'configure_rejected' })
    const served = await wasmHost.createFactory(def, makeArtifact(bytes), makeServices(), { startFailure: 'serve' })
    await served.close()
  })

  it('wasm: a start over the watchdog limit (within its fuel) is served failed with code timeout', async () => {
    // 20M loop iterations: ≥ 20 ms even fully optimized (~1 ns each), over a 1 ms limit, far under the fuel.
    const slow = `(module ${'(memory (export "memory") 1)'}
      (func $s (local $i i32) (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 20000000)))))
      (start $s)
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))`
    const services = makeServices()
    const def = { ...makeDef('slow', 'wasm'), quotas: { fuel: 1e9, memoryBytes: 65536, timeoutMs: 1 }, capabilities: [] }
    const f = await wasmHost.createFactory(def, makeArtifact(await wat(slow)), services, { startFailure: 'serve' })
    try {
      expect(services.metrics.render()).toContain('omnirelay_filter_start_failures_total{filter="slow",kind="wasm",phase="start",code="timeout"} 1')
      expect(services.lines.find((l) => l.msg === 'filter failed to start')).toMatchObject({ filter: 'slow', phase: 'start', code: 'timeout' })
      const out = await drive([f])
      expect(out.status).toBe(503)
      expect(JSON.parse(out.body!)).toMatchObject({ code: 'unavailable', filter: 'slow' })
    } finally {
      await f.close()
    }
  })

  it('quickjs: rejects with the failure code; a syntax error stays refused even when serving', async () => {
    const def = makeDef('direct-js', 'quickjs', { quotas: JS_QUOTAS })
    await expect(quickjsHost.createFactory(def, jsArtifact('while (true) {}'), makeServices())).rejects.toMatchObject({ code: 'fuel_exhausted' })
    await expect(quickjsHost.createFactory(def, jsArtifact('export function onRequestHeaders( {'), makeServices(), { startFailure: 'serve' })).rejects.toMatchObject({ code: 'thrown' })
    await expect(quickjsHost.createFactory(def, jsArtifact(`import fs from 'node:fs'`), makeServices(), { startFailure: 'serve' })).rejects.toMatchObject({ code: 'thrown' })
  })
})

describe('a version that fails to start inside a rollout split', () => {
  it('fails the requests routed to it, before upstream, and the rollout observer sees them as that version\'s', async () => {
    const def = { ...makeDef('canary', 'wasm'), quotas: WASM_QUOTAS, capabilities: ['headers:write' as const] }
    const good = await wasmHost.createFactory(def, makeArtifact(await wat(failsToStart('start').replace('(loop $l (br $l))', 'nop'))), makeServices())
    const bad = await wasmHost.createFactory({ ...def, name: 'canary-b' }, makeArtifact(await wat(failsToStart('vm_start'))), makeServices(), { startFailure: 'serve' })
    const seen: string[] = []
    const observer: VariantObserver = { failed: (_s, v, code) => seen.push(`failed:${v}:${code}`), done: (_s, v) => seen.push(`done:${v}`) }
    try {
      const toB = new SplitSlot(good, bad, { slot: 'canary', weightB: 10_000, observer })
      const out = await drive([toB])
      expect(out.status).toBe(503)
      expect(out.events).not.toContain('upstream')
      expect(seen).toEqual(['failed:1:unavailable', 'done:1'])
      const toA = new SplitSlot(good, bad, { slot: 'canary', weightB: 0, observer })
      expect((await drive([toA])).status).toBe('upstream')
    } finally {
      await good.close()
      await bad.close()
    }
  })
})
