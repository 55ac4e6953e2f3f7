// The smoke run through the runtime's own Wasm host (what `runner: 'auto'` picks when it is installed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { readWasmImports } from '@omnirelay/runtime/bundles/wasm-imports.ts'
import { requiredCapabilities } from '@omnirelay/runtime/bundles/wasm-capabilities.ts'
import { startRegistry, type RunningRegistry } from '../src/index.ts'
import { BAD, filterWat, fixture, makeJsBundle, post, PUBLISH_TOKEN, TOKENS, type Fixture } from './helpers.ts'

let f: Fixture
let reg: RunningRegistry

beforeAll(async () => {
  f = await fixture()
  reg = await startRegistry({ dataDir: f.dir, trustPolicy: f.trustPolicy, tokens: TOKENS })
})
afterAll(async () => {
  await reg?.close()
  await f?.cleanup()
})

describe('smoke run through the Wasm host', () => {
  it('admits a good filter (auto picks the host)', async () => {
    const r = await post(reg.url, await f.signed({ name: 'acme-hosted' }), PUBLISH_TOKEN)
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    expect(r.body.bundle.admission.smoke).toMatchObject({ runner: 'host', requests: 4 })
  })

  it.each([
    ['trap', BAD.trap, 'smoke_trap'],
    ['spin', BAD.spin, 'smoke_fuel_exhausted'],
    ['hog', BAD.hog, 'smoke_memory_exceeded'],
  ])('refuses a filter that fails in the smoke run: %s', async (name, body, code) => {
    const r = await post(reg.url, await f.signed({ name: `acme-h-${name}`, wat: filterWat({ onRequestHeaders: body }) }), PUBLISH_TOKEN)
    expect(r.status).toBe(422)
    expect(r.body.error).toMatchObject({ step: 'smoke' })
    expect(r.body.error.code).toMatch(code === 'smoke_trap' ? /^smoke_(trap|memory_exceeded)$/ : new RegExp(`^${code}$`))
  })

  it('admits a real AssemblyScript filter built with sdk-as, configured by its samples', async () => {
    const { buildFilter } = await import('@omnirelay/sdk-as/build')
    const entry = fileURLToPath(new URL('../../examples/filters/add-headers/assembly/index.ts', import.meta.url))
    const { wasm } = await buildFilter({ entry, optimize: false })
    const samples = JSON.stringify({
      config: { request: { add: { 'x-a': '1' }, remove: ['x-internal'] }, response: { add: { 'x-b': '2' } } },
      requests: [{ path: '/', headers: [['x-internal', '1']] }, { method: 'POST', path: '/x', body: '{}', response: { status: 201, body: 'ok' } }],
    })
    const caps = requiredCapabilities(readWasmImports(wasm) ?? [])
    const r = await post(reg.url, await f.signed({ name: 'acme-as', wasm, capabilities: caps, extra: { 'smoke/samples.json': samples } }), PUBLISH_TOKEN)
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    expect(r.body.bundle.admission).toMatchObject({ samples: 'bundle', smoke: { runner: 'host', requests: 2 } })
  }, 120_000)

  it('refuses a filter that rejects its configuration', async () => {
    const wat = filterWat().replace('(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))', '(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))')
    const r = await post(reg.url, await f.signed({ name: 'acme-h-noconf', wat }), PUBLISH_TOKEN)
    expect(r.body.error).toMatchObject({ code: 'smoke_configure_rejected', step: 'smoke' })
  })

  it('runs QuickJS bundles through the QuickJS host', async () => {
    const good = await f.sign(makeJsBundle('acme-js', '1.0.0', { source: 'export function onRequestHeaders(req) { req.headers.set("x-js", "1") }\n', capabilities: ['headers:read', 'headers:write'] }))
    const ok = await post(reg.url, good, PUBLISH_TOKEN)
    expect(ok.status, JSON.stringify(ok.body)).toBe(201)
    expect(ok.body.bundle.admission.smoke).toMatchObject({ runner: 'host', requests: 4 })
    const throws = await f.sign(makeJsBundle('acme-js-throw', '1.0.0', { source: 'export function onRequestHeaders() { throw new Error("boom") }\n' }))
    expect((await post(reg.url, throws, PUBLISH_TOKEN)).body.error).toMatchObject({ step: 'smoke', code: 'smoke_trap' })
    const spins = await f.sign(makeJsBundle('acme-js-spin', '1.0.0', { source: 'export function onRequestHeaders() { for (;;) {} }\n', quotas: { default: { fuel: 100_000_000 } } }))
    expect((await post(reg.url, spins, PUBLISH_TOKEN)).body.error).toMatchObject({ step: 'smoke', code: 'smoke_fuel_exhausted' })
  })

  it("uses the bundle's own samples", async () => {
    const samples = JSON.stringify({ requests: [{ path: '/', headers: [['x-boom', '1']] }] })
    const r = await post(reg.url, await f.signed({ name: 'acme-h-boom', wat: filterWat({ onRequestHeaders: BAD.trapOnBoom }), extra: { 'smoke/samples.json': samples } }), PUBLISH_TOKEN)
    expect(r.body.error).toMatchObject({ step: 'smoke', code: 'smoke_trap' })
  })
})
