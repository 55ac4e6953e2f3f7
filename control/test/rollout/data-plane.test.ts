/**
 * The whole path on loopback: MeshKit central (registry, xDS, telemetry, rollout manager)
 * and an OmniRelay data plane configured only over xDS. The data plane runs the split per
 * request (a SplitSlot in the filter's place), reports per-version telemetry to central by
 * itself, and central promotes or rolls back from it. Traffic is real HTTP through the proxy.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publishBundle } from '@meshkit/registry'
import { buildBundle, readSigningKey, signBundle } from '@omnirelay/runtime/bundles/index.ts'
import type { XdsProxy } from '@omnirelay/runtime/xds/apply/index.ts'
import { startCentralWithRollouts, type RunningCentralWithRollouts } from '../../src/rollout/serve.ts'
import { api, converged, dataPlane, echoUpstream, tempDir, TOKEN, TRUST_POLICY, until } from '../central/helpers.ts'

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '../../../examples')
// Three versions of one JS filter: v1 and v2 tag the request; v3 also answers 500 under /bad/.
const SOURCES: Record<string, string> = {
  '1.0.0': `export function onRequestHeaders(req) { req.headers.set('x-guard', 'v1') }`,
  '2.0.0': `export function onRequestHeaders(req) { req.headers.set('x-guard', 'v2') }`,
  '3.0.0': `export function onRequestHeaders(req, ctx) {
    req.headers.set('x-guard', 'v3')
    if (req.path.startsWith('/bad/')) return ctx.reply(500, { error: 'broken' })
  }`,
}

let central: RunningCentralWithRollouts
let dp: XdsProxy
let port = 0
const cleanup: (() => Promise<void>)[] = []

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; guard: string | undefined }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers })
  const text = await res.text()
  let guard: string | undefined
  try {
    guard = (JSON.parse(text) as { headers: Record<string, string> }).headers['x-guard']
  } catch {}
  return { status: res.status, guard }
}

async function status(id: string): Promise<{ state: string; step: number; weightB: number; reason: string }> {
  return (await api(central as never, 'GET', `/v1/rollouts/${id}`)).body
}

beforeAll(async () => {
  const tmp = await tempDir()
  cleanup.push(tmp.cleanup)
  const key = await readSigningKey(join(EXAMPLES, 'bundles/build/dev-publisher.key.json'))
  central = await startCentralWithRollouts({
    dataDir: join(tmp.dir, 'central'),
    trustPolicy: TRUST_POLICY,
    tokens: [{ id: 'ci', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
    registry: { admissionIsolation: 'inline' },
    tickMs: 50,
  })
  cleanup.push(() => central.close())
  for (const [version, js] of Object.entries(SOURCES)) {
    const dir = join(tmp.dir, `guard-${version}`)
    await mkdir(dir)
    await writeFile(join(dir, 'filter.js'), js)
    const built = await buildBundle({ source: join(dir, 'filter.js'), name: 'guard', version, sourceUrl: undefined, capabilities: ['headers:read', 'headers:write', 'local-reply'] })
    await writeFile(join(dir, 'guard.orb'), await signBundle(built.file, key))
    await publishBundle(central.registryUrl, TOKEN, join(dir, 'guard.orb'))
  }
  const up = await echoUpstream()
  cleanup.push(up.close)
  const put = await api(central as never, 'PUT', '/v1/groups/edge', {
    selector: { role: 'edge' },
    config: {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
      routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filterChain: 'main' }],
      filterChains: [{ name: 'main', filters: [{ name: 'guard', bundle: 'guard@1.0.0', failurePolicy: 'fail-closed', capabilities: ['headers:read', 'headers:write', 'local-reply'] }] }],
    },
  })
  expect(put.status, JSON.stringify(put.body)).toBe(200)
  const dpDir = await tempDir()
  cleanup.push(dpDir.cleanup)
  dp = await dataPlane(central.xdsAddress, dpDir.dir, 'edge-1', { telemetry: { intervalMs: 100 } })
  cleanup.push(() => dp.close())
  await dp.serving
  port = dp.proxy!.address('edge').port
  expect(await get('/x')).toEqual({ status: 200, guard: 'v1' })
}, 120_000)

afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

describe('rollouts on a real data plane', () => {
  it('splits per request at the published weight, pins by header, and promotes a good B', async () => {
    const start = await api(central as never, 'POST', '/v1/rollouts', {
      group: 'edge', chain: 'main', filter: 'guard', from: 'guard@1.0.0', to: 'guard@2.0.0',
      steps: [25, 100], intervalMs: 800, analysis: { minRequests: 20, p99SlackMs: 100 }, stickyHeader: 'x-user',
    })
    expect(start.status, JSON.stringify(start.body)).toBe(201)
    const id = start.body.id as string
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    // Frozen at 25 % (pause is an epoch too): a pin forces either version; about a quarter of requests run v2.
    expect((await api(central as never, 'POST', `/v1/rollouts/${id}/pause`, {})).body).toMatchObject({ state: 'paused', weightB: 2500 })
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    for (let i = 0; i < 10; i++) {
      expect((await get(`/p/${i}`, { 'x-omnirelay-pin': 'guard=2.0.0' })).guard).toBe('v2')
      expect((await get(`/p/${i}`, { 'x-omnirelay-pin': 'guard=1.0.0' })).guard).toBe('v1')
    }
    let v2 = 0
    for (let i = 0; i < 200; i++) if ((await get(`/x/${i}`)).guard === 'v2') v2++
    expect(v2).toBeGreaterThan(25)
    expect(v2).toBeLessThan(80)
    // Sticky by the x-user header (carried over xDS): a user keeps one version.
    const users = new Map<string, Set<string | undefined>>()
    for (let i = 0; i < 60; i++) {
      const u = `user-${i % 12}`
      const seen = users.get(u) ?? new Set()
      seen.add((await get(`/s/${i}`, { 'x-user': u })).guard)
      users.set(u, seen)
    }
    for (const seen of users.values()) expect(seen.size).toBe(1)
    expect((await status(id)).state).toBe('paused')
    expect((await api(central as never, 'POST', `/v1/rollouts/${id}/resume`, {})).body).toMatchObject({ state: 'progressing' })
    // Keep traffic flowing until central decides (bounded).
    const end = await until(async () => {
      const s = await status(id)
      if (s.state !== 'progressing') return s
      for (let i = 0; i < 20; i++) await get(`/t/${i}`)
      return undefined
    }, 30_000, 'promotion')
    expect(end.state, end.reason).toBe('promoted')
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    for (let i = 0; i < 20; i++) expect((await get(`/after/${i}`)).guard).toBe('v2')
    // Every route reports too (read from the proxy's metrics), tagged with its epoch.
    const routeLevel = await until(() => {
      const t = central.telemetry.totals({ filter: '', version: '', route: 'app', sinceMs: 0 })
      return t.requests > 200 && t.classes[1]! > 200 ? t : undefined
    }, 5000, 'route-level telemetry')
    expect(routeLevel.latency.reduce((x, n) => x + n, 0)).toBeGreaterThan(200)
  }, 60_000)

  it('rolls back a B that answers 500 under /bad/ at the first step; only its share was hurt', async () => {
    const start = await api(central as never, 'POST', '/v1/rollouts', {
      group: 'edge', chain: 'main', filter: 'guard', from: 'guard@2.0.0', to: 'guard@3.0.0',
      steps: [25, 100], intervalMs: 800, analysis: { minRequests: 20, p99SlackMs: 100 },
    })
    expect(start.status, JSON.stringify(start.body)).toBe(201)
    const id = start.body.id as string
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    let bad = 0
    let total = 0
    const end = await until(async () => {
      const s = await status(id)
      if (s.state !== 'progressing') return s
      for (let i = 0; i < 20; i++) {
        const r = await get(i % 2 ? `/bad/${i}` : `/ok/${i}`)
        total++
        if (r.status === 500) {
          bad++
          expect(r.guard).toBeUndefined()
        }
      }
      return undefined
    }, 30_000, 'rollback')
    expect(end).toMatchObject({ state: 'rolled-back', step: 0, weightB: 0 })
    expect(end.reason).toMatch(/success-rate/)
    // Only B's share (25 %) of the /bad/ half failed.
    expect(bad / total).toBeGreaterThan(0.03)
    expect(bad / total).toBeLessThan(0.3)
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    for (let i = 0; i < 20; i++) expect(await get(`/bad/${i}`)).toEqual({ status: 200, guard: 'v2' })
  }, 60_000)

  it('kill switch: a killed bundle gets its failure policy (fail-closed: 503) on the data plane, unkill restores it', async () => {
    expect(await get('/k')).toEqual({ status: 200, guard: 'v2' })
    const t0 = performance.now()
    const k = await api(central as never, 'POST', '/v1/kills', { scope: 'bundle', target: 'guard@2.0.0', reason: 'test' })
    expect(k.status, JSON.stringify(k.body)).toBe(200)
    await until(async () => ((await get('/k')).status === 503 ? true : undefined), 5000, 'kill enforced')
    const enforcedMs = performance.now() - t0
    expect(enforcedMs).toBeLessThan(1000)
    expect((await api(central as never, 'GET', '/v1/kills')).body.kills).toMatchObject([{ scope: 'bundle', target: 'guard@2.0.0' }])
    const u = await api(central as never, 'DELETE', '/v1/kills/bundle/guard@2.0.0')
    expect(u.status).toBe(200)
    await until(async () => ((await get('/k')).status === 200 ? true : undefined), 5000, 'unkill')
    expect(await get('/k')).toEqual({ status: 200, guard: 'v2' })
    console.log(`kill -> enforced on the data plane: ${enforcedMs.toFixed(0)} ms`)
  }, 30_000)

  it('kill switch during a rollout: the killed canary fails only its share, a late data plane gets split and kill, abort returns to A', async () => {
    const start = await api(central as never, 'POST', '/v1/rollouts', {
      group: 'edge', chain: 'main', filter: 'guard', from: 'guard@2.0.0', to: 'guard@1.0.0',
      steps: [25, 100], intervalMs: 60_000,
    })
    expect(start.status, JSON.stringify(start.body)).toBe(201)
    const id = start.body.id as string
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    const k = await api(central as never, 'POST', '/v1/kills', { scope: 'bundle', target: 'guard@1.0.0', reason: 'bad canary' })
    expect(k.status).toBe(200)
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    const seen = { v2: 0, killed: 0, other: 0 }
    for (let i = 0; i < 200; i++) {
      const r = await get(`/d/${i}`)
      if (r.status === 200 && r.guard === 'v2') seen.v2++
      else if (r.status === 503) seen.killed++
      else seen.other++
    }
    expect(seen.other).toBe(0)
    expect(seen.killed).toBeGreaterThan(25)
    expect(seen.killed).toBeLessThan(80)
    expect((await get('/p', { 'x-omnirelay-pin': 'guard=1.0.0' })).status).toBe(503)
    // A data plane that connects now gets the current split and kill with its first epoch.
    const late = await tempDir()
    cleanup.push(late.cleanup)
    const dp2 = await dataPlane(central.xdsAddress, late.dir, 'edge-late', { telemetry: false })
    try {
      await dp2.serving
      const port2 = dp2.proxy!.address('edge').port
      const at = async (pin: string) => (await fetch(`http://127.0.0.1:${port2}/late`, { headers: { 'x-omnirelay-pin': pin } })).status
      expect(await at('guard=1.0.0')).toBe(503)
      expect(await at('guard=2.0.0')).toBe(200)
    } finally {
      await dp2.close()
    }
    expect((await api(central as never, 'POST', `/v1/rollouts/${id}/abort`, {})).body).toMatchObject({ state: 'aborted' })
    await api(central as never, 'DELETE', '/v1/kills/bundle/guard@1.0.0')
    await converged(central as never, 'edge-1', central.central.group('edge').epoch)
    for (let i = 0; i < 20; i++) expect(await get(`/e/${i}`)).toEqual({ status: 200, guard: 'v2' })
    const events = ((await api(central as never, 'GET', `/v1/rollouts/${id}/history`)).body.history as { event: string }[]).map((e) => e.event)
    expect(events).toEqual(['started', 'aborted'])
  }, 30_000)
})
