import { beforeAll, describe, expect, it } from 'vitest'
import { AbiHarness } from '../../../sdk-as/test/abi-harness.ts'
import { buildExamples } from '../build.js'

let wasm: Uint8Array
beforeAll(async () => {
  wasm = (await buildExamples(['rate-limit']))['rate-limit']!
})

describe('rate-limit on the ABI harness', () => {
  it('serves `capacity` requests, then 429 with retry-after, then refills', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure({ capacity: 3, refillPerSecond: 0.5, bucket: 'api' })).toBe(true)
    for (let id = 2; id < 5; id++) expect(h.requestHeaders(id, [[':path', '/']])).toBe(0)
    expect(h.requestHeaders(5, [[':path', '/']])).toBe(1)
    const reply = h.streams.get(5)!.reply!
    expect(reply.status).toBe(429)
    expect(reply.headers).toContainEqual(['retry-after', '2'])
    expect(JSON.parse(reply.body)).toEqual({ error: 'rate_limited', retryAfterSeconds: 2 })
    expect(h.metrics.find((m) => m.name === 'rate_limit_limited_total')!.value).toBe(1n)
    h.nowNs += 2_000_000_000n
    expect(h.requestHeaders(6, [[':path', '/']])).toBe(0)
    expect(h.requestHeaders(7, [[':path', '/']])).toBe(1)
  })

  it('keeps one bucket per key header value, in shared data', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure({ capacity: 1, refillPerSecond: 1, keyHeader: 'X-Api-Key' })).toBe(true)
    expect(h.requestHeaders(2, [['x-api-key', 'a']])).toBe(0)
    expect(h.requestHeaders(3, [['x-api-key', 'b']])).toBe(0)
    expect(h.requestHeaders(4, [['x-api-key', 'a']])).toBe(1)
    expect([...h.shared.keys()].sort()).toEqual(['rate-limit:default:a', 'rate-limit:default:b'])
  })

  it('shares the bucket between two instances (CAS keeps the count exact)', async () => {
    const a = await AbiHarness.load(wasm)
    const b = await AbiHarness.load(wasm)
    // One store for both, as the host's process-wide shared data is.
    Object.defineProperty(b, 'shared', { value: a.shared })
    expect(a.configure({ capacity: 4, refillPerSecond: 0.001 })).toBe(true)
    expect(b.configure({ capacity: 4, refillPerSecond: 0.001 })).toBe(true)
    const results = [a.requestHeaders(2, []), b.requestHeaders(2, []), a.requestHeaders(3, []), b.requestHeaders(3, []), a.requestHeaders(4, [])]
    expect(results).toEqual([0, 0, 0, 0, 1])
  })

  it('refuses a capacity below 1', async () => {
    const h = await AbiHarness.load(wasm)
    expect(h.configure({ capacity: 0 })).toBe(false)
  })
})
