// Admission in its worker thread (the default): the event loop stays free, and a runaway
// admission is stopped at the hard limit without taking the registry down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRegistry, type RunningRegistry } from '../src/index.ts'
import { BAD, filterWat, fixture, post, PUBLISH_TOKEN, TOKENS, type Fixture } from './helpers.ts'

let f: Fixture
let reg: RunningRegistry

beforeAll(async () => {
  f = await fixture()
  // The smoke wall-clock bound is generous; the hard limit is what stops the slow bundle.
  reg = await startRegistry({ dataDir: f.dir, trustPolicy: f.trustPolicy, tokens: TOKENS, admissionTimeoutMs: 15_000, admission: { smoke: { runner: 'abi', timeoutMs: 60_000 } } })
  // Start the worker (binaryen, runtime modules) before timing anything.
  expect((await post(reg.url, await f.signed({ name: 'acme-warm' }), PUBLISH_TOKEN)).status).toBe(201)
})
afterAll(async () => {
  await reg?.close()
  await f?.cleanup()
})

const slowBundle = () =>
  f.signed({ name: 'acme-slow', wat: filterWat({ onRequestHeaders: BAD.spin }), quotas: { default: { fuel: 100_000_000 }, maximum: { fuel: 100_000_000 } } })

describe('admission worker', () => {
  it('keeps answering while an admission burns CPU, then refuses it with a code', async () => {
    const slow = post(reg.url, await slowBundle(), PUBLISH_TOKEN)
    let slowDone = false
    void slow.then(() => (slowDone = true))
    const health = await fetch(`${reg.url}/v1/health`)
    expect(health.status).toBe(200)
    expect(slowDone).toBe(false)
    const r = await slow
    expect(r.body.error).toMatchObject({ step: 'smoke', code: 'smoke_fuel_exhausted' })
  })

  it('stops an admission past the hard limit and recovers', async () => {
    const g = await fixture({ maxFuel: 100_000_000_000 })
    const r = await startRegistry({ dataDir: g.dir, trustPolicy: g.trustPolicy, tokens: TOKENS, admissionTimeoutMs: 3_000, admission: { maxQuotas: { wasm: { fuel: 100_000_000_000 } }, smoke: { runner: 'abi', timeoutMs: 60_000 } } })
    try {
      expect((await post(r.url, await g.signed({ name: 'acme-warm' }), PUBLISH_TOKEN)).status).toBe(201)
      // A budget of 1e11 fuel buys billions of spin iterations (tens of seconds): only the
      // hard limit ends it. The policy is raised so the manifest's quota is admissible.
      const grind = await g.signed({
        name: 'acme-grind',
        wat: filterWat({ onRequestHeaders: BAD.spin }),
        quotas: { default: { fuel: 100_000_000_000 }, maximum: { fuel: 100_000_000_000 } },
      })
      const res = await post(r.url, grind, PUBLISH_TOKEN)
      expect(res.body.error).toMatchObject({ code: 'admission_timeout', step: 'smoke' })
      expect((await post(r.url, await g.signed({ name: 'acme-after' }), PUBLISH_TOKEN)).status).toBe(201)
    } finally {
      await r.close()
      await g.cleanup()
    }
  })
})
