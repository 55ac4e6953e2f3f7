// Untrusted uploads: whatever the bytes, the registry answers with a coded refusal (never a
// 500, never a crash) and stores nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { startRegistry, type RunningRegistry } from '../src/index.ts'
import { fixture, getJson, post, PUBLISH_TOKEN, TOKENS, type Fixture } from './helpers.ts'

let f: Fixture
let reg: RunningRegistry
let good: Uint8Array

beforeAll(async () => {
  f = await fixture()
  reg = await startRegistry({ dataDir: f.dir, trustPolicy: f.trustPolicy, tokens: TOKENS, admission: { smoke: { runner: 'abi' } }, admissionIsolation: 'inline' })
  good = await f.signed({ name: 'acme-fuzz' })
})
afterAll(async () => {
  await reg?.close()
  await f?.cleanup()
})

describe('untrusted uploads', () => {
  it('mutated signed bundles are refused with a code and a step', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat({ max: good.length }), { nil: undefined }),
        async (flips, cut) => {
          const bytes = new Uint8Array(cut === undefined ? good : good.subarray(0, cut))
          for (const [at, x] of flips) if (at < bytes.length) bytes[at] = (bytes[at] as number) ^ x
          const r = await post(reg.url, bytes, PUBLISH_TOKEN)
          if (r.status === 201) return // a flip in an ignored place (e.g. JSON whitespace) can still verify
          expect(r.status).toBeGreaterThanOrEqual(400)
          expect(r.status).toBeLessThan(500)
          expect(typeof r.body.error.code).toBe('string')
          // A flip in the name can make it one this token may not publish: refused before
          // admission starts (403, no step). Every admission refusal names its step.
          if (r.body.error.code !== 'forbidden') expect(typeof r.body.error.step).toBe('string')
          else expect(r.status).toBe(403)
        },
      ),
      { numRuns: 40 },
    )
    expect((await getJson(reg.url, '/v1/health')).body.ok).toBe(true)
  })

  it('a flipped byte in the bundle name is refused as forbidden for a token scoped to the real name', async () => {
    // The counterexample a fuzz run found (seed 1012701283): "acme-fuzz" became "`cme-fuzz".
    const at = Buffer.from(good).indexOf('acme-fuzz')
    const bytes = new Uint8Array(good)
    bytes[at] = bytes[at]! ^ 1
    const r = await post(reg.url, bytes, PUBLISH_TOKEN)
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('forbidden')
  })
})
