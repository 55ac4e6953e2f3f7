import { createHash } from 'node:crypto'
import { it } from 'vitest'
import { createSharedData, createSharedQueues } from '../../runtime/src/hosts/shared-state/index.ts'
import { host } from '../../runtime/src/hosts/wasm/index.ts'
import { silentLogger } from '../../runtime/src/observability/logger.ts'
import { MetricsRegistry } from '../../runtime/src/observability/metrics.ts'
import { HeaderMap } from '../../runtime/src/pipeline/header-map.ts'
import { PipelineStream } from '../../runtime/src/pipeline/stream.ts'
import { buildFilter } from '../build.js'
import { buildExamples } from '../../examples/filters/build.js'

it('fuel', async () => {
  const mods = await buildExamples(['add-headers', 'path-deny', 'rate-limit'])
  mods.noop = (await buildFilter({ entry: '/work/main/sdk-as/test/fixtures/noop/assembly/index.ts', outFile: '/work/main/sdk-as/test/fixtures/noop/build/filter.wasm', cache: true })).wasm
  for (const [name, config, caps] of [
    ['noop', {}, ['log']],
    ['add-headers', { request: { add: { 'x-a': '1' } }, response: { set: { server: 'o' } } }, ['headers:read', 'headers:write', 'log']],
    ['path-deny', { prefixes: ['/admin', '/internal'] }, ['headers:read', 'local-reply', 'metrics', 'log']],
    ['rate-limit', { capacity: 1e12, refillPerSecond: 1 }, ['headers:read', 'shared-data', 'local-reply', 'metrics', 'log']],
  ] as const) {
    const bytes = mods[name]!
    const reg = new MetricsRegistry()
    const f = await host.createFactory(
      { name, kind: 'wasm', config, failurePolicy: 'fail-closed', isolation: 'shared', quotas: { timeoutMs: 10000 }, capabilities: [...caps] },
      { kind: 'wasm', bytes, digest: createHash('sha256').update(bytes).digest('hex'), capabilities: [...caps], unsigned: true },
      { log: silentLogger, metrics: reg, sharedData: createSharedData(), sharedQueues: createSharedQueues(), epoch: 1, httpCall: async () => { throw new Error('x') } },
    )
    for (let i = 0; i < 5000; i++) {
      const s = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', '/api/v1/items?x=1'], ['user-agent', 'curl']]), responseHeaders: HeaderMap.fromPairs([[':status', '200']]) })
      const fl = f.createStream(s)
      fl.onRequestHeaders?.(true); fl.onResponseHeaders?.(true); fl.onLog?.(); fl.onDone?.()
    }
    const r = reg.render()
    const sum = Number(r.match(/omnirelay_filter_fuel_used_sum\{[^}]*\} (\d+)/)![1])
    console.log('FUEL', name, (sum / 5000).toFixed(0), 'size', bytes.length)
    await f.close()
  }
}, 300000)
