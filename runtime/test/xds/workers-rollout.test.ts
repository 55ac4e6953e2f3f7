/**
 * Rollout telemetry with workers: a split runs per request in two worker processes; each
 * worker aggregates its variants, the primary adds them up, and central's store holds the
 * sum per version under one node — what the rollout manager analyses.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningCentralWithRollouts } from '@meshkit/control/src/rollout/serve.ts'
import { api, converged, dataPlane, tempDir, until } from '@meshkit/control/test/central/helpers.ts'
import type { XdsProxy } from '../../src/xds/apply/index.ts'
import { request } from '../helpers/servers.ts'
import { guardCentral } from './helpers.ts'

const CAPS = ['headers:read', 'headers:write'] as const
const cleanup: (() => Promise<unknown>)[] = []
let central: RunningCentralWithRollouts
let dp: XdsProxy

beforeAll(async () => {
  const tmp = await tempDir()
  cleanup.push(tmp.cleanup)
  central = await guardCentral(tmp.dir, cleanup, { capabilities: CAPS, source: (v) => `export function onRequestHeaders(req) { req.headers.set('x-guard', '${v}') }` })
  dp = await dataPlane(central.xdsAddress, join(tmp.dir, 'dp'), 'edge-1', { workers: 2, telemetry: { intervalMs: 200 } })
  cleanup.push(() => dp.close())
  await dp.serving
}, 60_000)

afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

describe('rollout telemetry with two workers', () => {
  it('central gets the per-version sum of both workers', async () => {
    const start = await api(central, 'POST', '/v1/rollouts', { group: 'edge', chain: 'main', filter: 'guard', from: 'guard@1.0.0', to: 'guard@2.0.0', steps: [50, 100], intervalMs: 60_000 })
    expect(start.status, JSON.stringify(start.body)).toBe(201)
    await converged(central, 'edge-1', central.central.group('edge').epoch)
    const since = Date.now()
    const seen: Record<string, number> = {}
    for (let i = 0; i < 40; i++) {
      const r = await request(dp.address('edge').port, { path: `/r/${i}` })
      const v = (JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-guard']!
      seen[v] = (seen[v] ?? 0) + 1
    }
    expect(seen['1.0.0']).toBeGreaterThan(0)
    expect(seen['2.0.0']).toBeGreaterThan(0)
    const per = (version: string) => central.telemetry.totals({ filter: 'main.guard', version, sinceMs: since - 1000 })
    await until(() => (per('1.0.0').requests + per('2.0.0').requests >= 40 ? true : undefined), 5000, 'split telemetry at central')
    await new Promise((r) => setTimeout(r, 600))
    expect(per('1.0.0')).toMatchObject({ requests: seen['1.0.0'], nodes: 1 })
    expect(per('2.0.0')).toMatchObject({ requests: seen['2.0.0'], nodes: 1 })
    // Both workers ran the split.
    const m = (await request(dp.adminAddress()!.port, { path: '/metrics' })).body
    const served = [...m.matchAll(/^omnirelay_requests_total\{worker="(\d+)",listener="edge",route="app"\} (\d+)$/gm)].filter((x) => Number(x[2]) > 0)
    expect(served).toHaveLength(2)
  })
})
