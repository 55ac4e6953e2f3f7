/**
 * Per-version rollout telemetry counts each request once: a filter split (A = the chain's
 * filter, B = the canary) serves a known mix of requests — passed, failed (trap, fail-closed)
 * and answered by the filter itself — on a single-process data plane and on one with two
 * workers, and central's store holds, per version and node, exactly that many requests,
 * fuel observations, traps, local replies, status classes and latency samples.
 *
 * Regression: version A's fuel (and its traps, with B's sync traps on top) were counted
 * twice, once per variant by the split observer and once per filter by the metrics poller,
 * because central sums a version's rows over variants.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningCentralWithRollouts } from '@meshkit/control/src/rollout/serve.ts'
import { api, converged, dataPlane, tempDir, until } from '@meshkit/control/test/central/helpers.ts'
import type { XdsProxy } from '../../src/xds/apply/index.ts'
import { request } from '../helpers/servers.ts'
import { guardCentral } from './helpers.ts'

const CAPS = ['headers:read', 'headers:write', 'local-reply'] as const
const VERSIONS = ['1.0.0', '2.0.0'] as const
const INTERVAL_MS = 150
const cleanup: (() => Promise<unknown>)[] = []
let central: RunningCentralWithRollouts
const planes = new Map<string, XdsProxy>()

// x-boom: the hook throws (a trap; fail-closed answers 500). x-deny: the filter answers 403.
const filterSource = (version: string) => `export function onRequestHeaders(req, ctx) {
  if (req.headers.get('x-boom')) throw new Error('boom')
  if (req.headers.get('x-deny')) return ctx.reply(403, 'denied')
  req.headers.set('x-guard', '${version}')
  return 0
}`

beforeAll(async () => {
  const tmp = await tempDir()
  cleanup.push(tmp.cleanup)
  central = await guardCentral(tmp.dir, cleanup, { capabilities: CAPS, source: filterSource, failurePolicy: 'fail-closed' })
  for (const [id, workers] of [
    ['single', 1],
    ['workers', 2],
  ] as const) {
    const dp = await dataPlane(central.xdsAddress, join(tmp.dir, id), id, { workers, telemetry: { intervalMs: INTERVAL_MS } })
    cleanup.push(() => dp.close())
    planes.set(id, dp)
  }
  await Promise.all([...planes.values()].map((p) => p.serving))
  const start = await api(central, 'POST', '/v1/rollouts', { group: 'edge', chain: 'main', filter: 'guard', from: 'guard@1.0.0', to: 'guard@2.0.0', steps: [50, 100], intervalMs: 600_000 })
  expect(start.status, JSON.stringify(start.body)).toBe(201)
  const epoch = central.central.group('edge').epoch
  for (const id of planes.keys()) await converged(central, id, epoch)
}, 90_000)

afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

interface Expected {
  requests: number
  ok: number
  denied: number
  trapped: number
}

describe.each(['single', 'workers'])('rollout telemetry counts (%s)', (id) => {
  it('central holds each request once per version: requests, fuel, traps, local replies, classes, latency', async () => {
    const dp = planes.get(id)!
    const port = dp.address('edge').port
    const exp: Record<string, Expected> = {}
    for (const v of VERSIONS) exp[v] = { requests: 0, ok: 0, denied: 0, trapped: 0 }
    const since = Date.now()
    // Unpinned: the 50 % split picks; the echo says which version ran.
    for (let i = 0; i < 20; i++) {
      const r = await request(port, { path: `/r/${id}/${i}` })
      expect(r.status).toBe(200)
      const v = (JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-guard']!
      exp[v]!.requests++
      exp[v]!.ok++
    }
    const pinned = async (version: string, header: string, n: number, status: number) => {
      for (let i = 0; i < n; i++) {
        const r = await request(port, { path: `/p/${i}`, headers: { 'x-omnirelay-pin': `guard=${version}`, [header]: '1' } })
        expect(r.status).toBe(status)
        exp[version]!.requests++
        if (status === 200) exp[version]!.ok++
        else if (status === 403) exp[version]!.denied++
        else exp[version]!.trapped++
      }
    }
    await pinned('1.0.0', 'x-boom', 3, 500)
    await pinned('2.0.0', 'x-boom', 2, 500)
    await pinned('1.0.0', 'x-deny', 2, 403)
    await pinned('2.0.0', 'x-deny', 1, 403)
    await pinned('2.0.0', 'x-pass', 4, 200)
    expect(exp['1.0.0']!.ok).toBeGreaterThan(0)
    expect(exp['2.0.0']!.ok).toBeGreaterThan(4)

    const per = (version: string) => central.telemetry.totals({ filter: 'main.guard', version, sinceMs: since - 1000, node: id })
    const total = exp['1.0.0']!.requests + exp['2.0.0']!.requests
    await until(() => (per('1.0.0').requests + per('2.0.0').requests >= total ? true : undefined), 5000, 'split telemetry at central')
    // A few more batches: anything counted twice or late would land by now.
    await new Promise((r) => setTimeout(r, 4 * INTERVAL_MS))
    for (const v of VERSIONS) {
      const e = exp[v]!
      const t = per(v)
      expect({ version: v, ...t, latency: t.latency.reduce((a, n) => a + n, 0) }).toMatchObject({
        version: v,
        requests: e.requests,
        classes: [0, e.ok, 0, e.denied, e.trapped],
        localReplies: e.denied + e.trapped,
        latency: e.requests,
        traps: e.trapped,
        trapsByCode: e.trapped ? { thrown: e.trapped } : {},
        fuelCount: e.requests,
        nodes: 1,
      })
      expect(t.fuelSum).toBeGreaterThan(0)
    }
  })
})
