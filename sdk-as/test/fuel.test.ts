/**
 * What the SDK and the example filters cost per request, in fuel (deterministic, unlike
 * time): a guard against SDK changes that make every filter slower. Measured 2026-11-27:
 * noop 2.5k, add-headers 7.3k, path-deny 15.3k, rate-limit 13.2k.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildExamples } from '../../examples/filters/build.js'
import { createSharedData, createSharedQueues } from '../../runtime/src/hosts/shared-state/index.ts'
import { host } from '../../runtime/src/hosts/wasm/index.ts'
import { silentLogger } from '../../runtime/src/observability/logger.ts'
import { MetricsRegistry } from '../../runtime/src/observability/metrics.ts'
import type { Capability } from '../../runtime/src/pipeline/filter.ts'
import { HeaderMap } from '../../runtime/src/pipeline/header-map.ts'
import { PipelineStream } from '../../runtime/src/pipeline/stream.ts'
import { buildFilter } from '../build.js'

let modules: Record<string, Uint8Array>
beforeAll(async () => {
  modules = await buildExamples(['add-headers', 'path-deny', 'rate-limit'])
  const dir = join(import.meta.dirname, 'fixtures', 'noop')
  modules.noop = (await buildFilter({ entry: join(dir, 'assembly', 'index.ts'), outFile: join(dir, 'build', 'filter.wasm'), cache: true })).wasm
})

async function fuelPerRequest(name: string, config: unknown, capabilities: Capability[]): Promise<number> {
  const bytes = modules[name]!
  const metrics = new MetricsRegistry()
  const factory = await host.createFactory(
    { name, kind: 'wasm', module: name, config, failurePolicy: 'fail-closed', isolation: 'shared', quotas: { timeoutMs: 5000 }, capabilities },
    { kind: 'wasm', bytes, digest: createHash('sha256').update(bytes).digest('hex'), capabilities, unsigned: true },
    { log: silentLogger, metrics, sharedData: createSharedData(), sharedQueues: createSharedQueues(), epoch: 1, httpCall: () => Promise.reject(new Error('none')) },
  )
  const n = 500
  for (let i = 0; i < n; i++) {
    const s = new PipelineStream({
      requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', '/api/v1/items?x=1'], [':authority', 'a'], ['user-agent', 'curl']]),
      responseHeaders: HeaderMap.fromPairs([[':status', '200']]),
    })
    const f = factory.createStream(s)
    f.onRequestHeaders?.(true)
    f.onResponseHeaders?.(true)
    f.onLog?.()
    f.onDone?.()
  }
  await factory.close()
  const sum = Number(/omnirelay_filter_fuel_used_sum\{[^}]*\} (\d+)/.exec(metrics.render())![1])
  return sum / n
}

describe('fuel per request', () => {
  it.each([
    ['noop', {}, ['log'], 4_000],
    ['add-headers', { request: { add: { 'x-a': '1' } }, response: { set: { server: 'o' } } }, ['headers:read', 'headers:write', 'log'], 14_000],
    ['path-deny', { prefixes: ['/admin', '/internal'] }, ['headers:read', 'local-reply', 'metrics', 'log'], 20_000],
    ['rate-limit', { capacity: 1e12, refillPerSecond: 1 }, ['headers:read', 'shared-data', 'local-reply', 'metrics', 'log'], 18_000],
  ] as const)('%s stays under its budget', async (name, config, caps, budget) => {
    const fuel = await fuelPerRequest(name, config, [...caps])
    expect(fuel).toBeGreaterThan(0)
    expect(fuel).toBeLessThan(budget)
  })
})
