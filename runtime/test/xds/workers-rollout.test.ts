/**
 * Rollout telemetry with workers: a split runs per request in two worker processes; each
 * worker aggregates its variants, the primary adds them up, and central's store holds the
 * sum per version under one node — what the rollout manager analyses.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publishBundle } from '@meshkit/registry'
import { startCentralWithRollouts, type RunningCentralWithRollouts } from '@meshkit/control/src/rollout/serve.ts'
import { api, converged, dataPlane, echoUpstream, tempDir, TOKEN, TRUST_POLICY, until } from '@meshkit/control/test/central/helpers.ts'
import { buildBundle, readSigningKey, signBundle } from '../../src/bundles/index.ts'
import type { XdsProxy } from '../../src/xds/apply/index.ts'
import { request } from '../helpers/servers.ts'

const KEY = join(dirname(fileURLToPath(import.meta.url)), '../../../examples/bundles/build/dev-publisher.key.json')
const CAPS = ['headers:read', 'headers:write'] as const
const cleanup: (() => Promise<unknown>)[] = []
let central: RunningCentralWithRollouts
let dp: XdsProxy

beforeAll(async () => {
  const tmp = await tempDir()
  cleanup.push(tmp.cleanup)
  central = await startCentralWithRollouts({
    dataDir: join(tmp.dir, 'central'),
    trustPolicy: TRUST_POLICY,
    tokens: [{ id: 'ci', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
    registry: { admissionIsolation: 'inline' },
  })
  cleanup.push(() => central.close())
  const key = await readSigningKey(KEY)
  for (const version of ['1.0.0', '2.0.0']) {
    const dir = join(tmp.dir, `guard-${version}`)
    await mkdir(dir)
    await writeFile(join(dir, 'filter.js'), `export function onRequestHeaders(req) { req.headers.set('x-guard', '${version}') }`)
    const built = await buildBundle({ source: join(dir, 'filter.js'), name: 'guard', version, sourceUrl: undefined, capabilities: [...CAPS] })
    await writeFile(join(dir, 'guard.orb'), await signBundle(built.file, key))
    await publishBundle(central.registryUrl, TOKEN, join(dir, 'guard.orb'))
  }
  const up = await echoUpstream()
  cleanup.push(up.close)
  const put = await api(central, 'PUT', '/v1/groups/edge', {
    selector: { role: 'edge' },
    config: {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
      routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filterChain: 'main' }],
      filterChains: [{ name: 'main', filters: [{ name: 'guard', bundle: 'guard@1.0.0', capabilities: [...CAPS] }] }],
    },
  })
  expect(put.status, JSON.stringify(put.body)).toBe(200)
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
