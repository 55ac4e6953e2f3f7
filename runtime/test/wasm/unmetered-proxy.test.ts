/**
 * `startProxy(config, { meter: false })` (benchmarks, trusted filters): the same Wasm filter
 * runs without fuel instrumentation, so it records no fuel; by default it is metered.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy } from '../../src/index.ts'
import { silentLogger } from '../../src/observability/logger.ts'
import { MetricsRegistry } from '../../src/observability/metrics.ts'
import { request, startUpstream, type Upstream } from '../helpers/servers.ts'
import { headerFilter } from './modules.ts'
import { wat } from './wat.ts'

let dir: string
let up: Upstream

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omnirelay-unmetered-'))
  await writeFile(join(dir, 'header.wasm'), await wat(headerFilter))
  up = await startUpstream()
})
afterAll(async () => {
  await up?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** One request through a proxy with the header filter; returns what upstream saw and the fuel count. */
async function once(meter: boolean | undefined) {
  const metrics = new MetricsRegistry()
  const config = {
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    accessLog: 'off',
    allowUnsigned: true,
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
    filters: [{ name: 'header', kind: 'wasm', module: 'header.wasm', quotas: { fuel: 1_000_000 }, capabilities: ['headers:read', 'headers:write', 'log'] }],
    routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'app', filters: ['header'] }],
  }
  const proxy = await startProxy(config, { log: silentLogger, metrics, baseDir: dir, ...(meter === undefined ? {} : { meter }) })
  try {
    const r = await request(proxy.address().port, { headers: { 'x-in': 'v' } })
    expect(r.status).toBe(200)
    const fuel = /omnirelay_filter_fuel_used_count\{filter="header"\} (\d+)/.exec(metrics.render())?.[1]
    return { xOut: up.seen.at(-1)!.headers['x-out'], fuelCount: Number(fuel ?? 0) }
  } finally {
    await proxy.close()
  }
}

describe('meter: false', () => {
  it('runs the filter without fuel; by default it is metered', async () => {
    expect(await once(undefined)).toEqual({ xOut: 'v', fuelCount: 1 })
    expect(await once(false)).toEqual({ xOut: 'v', fuelCount: 0 })
  })
})
