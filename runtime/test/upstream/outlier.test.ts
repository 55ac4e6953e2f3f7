import { describe, expect, it } from 'vitest'
import type { OutlierDetectionConfig } from '../../src/upstream/types.ts'
import { clusterConfig, codeOf, deadPort, fetchText, get, manager, metricValue, startServer, upstreamFixture, waitFor } from './helpers.ts'

const od = (over: Partial<OutlierDetectionConfig> = {}): OutlierDetectionConfig => ({
  consecutive5xx: 3,
  consecutiveConnectFailures: 2,
  baseEjectionMs: 150,
  maxEjectionPercent: 50,
  ...over,
})

describe('outlier ejection', () => {
  const fx = upstreamFixture()
  const { servers } = fx

  it('ejects after consecutive 5xx, for a time that doubles with each ejection', async () => {
    const bad = await startServer((_q, r) => {
      r.statusCode = 500
      r.end('boom')
    })
    const good = await startServer((_q, r) => r.end('ok'))
    servers.push(bad, good)
    const m = manager([clusterConfig('od', [bad.port, good.port], { outlierDetection: od() })])
    fx.clusters = m.clusters
    const c = fx.clusters.get('od')!
    const avail = () => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="od"}')

    // Round-robin: every second request hits the bad endpoint; three of them eject it.
    for (let i = 0; i < 6; i++) await fetchText(c.request(get()))
    expect(bad.hits).toBe(3)
    expect(avail()).toBe(1)
    expect(metricValue(m.metrics, 'omnirelay_upstream_ejections_total{cluster="od"}')).toBe(1)
    for (let i = 0; i < 6; i++) expect((await fetchText(c.request(get()))).status).toBe(200)
    expect(bad.hits).toBe(3)

    let t0 = Date.now()
    await waitFor(() => avail() === 2)
    const first = Date.now() - t0

    // Second ejection right away: the multiplier has not decayed, so it lasts twice as long.
    while (avail() === 2) await fetchText(c.request(get()))
    t0 = Date.now()
    await waitFor(() => avail() === 2)
    const second = Date.now() - t0
    expect(second).toBeGreaterThanOrEqual(250)
    expect(second).toBeGreaterThan(first)
  })

  it('ejects after consecutive connect failures', async () => {
    const good = await startServer((_q, r) => r.end('ok'))
    servers.push(good)
    const m = manager([clusterConfig('od', [await deadPort(), good.port], { outlierDetection: od() })])
    fx.clusters = m.clusters
    const c = fx.clusters.get('od')!
    const codes: string[] = []
    for (let i = 0; i < 4; i++) codes.push(await codeOf(c.request(get())).catch(() => 'ok'))
    expect(codes).toEqual(['upstream_connect_failure', 'ok', 'upstream_connect_failure', 'ok'])
    expect(metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="od"}')).toBe(1)
    for (let i = 0; i < 5; i++) expect((await fetchText(c.request(get()))).status).toBe(200)
  })

  it('counts request timeouts toward the 5xx streak, but not downstream aborts', async () => {
    const silent = await startServer(() => {})
    const good = await startServer((_q, r) => r.end('ok'))
    servers.push(silent, good)
    const m = manager([clusterConfig('od', [silent.port, good.port], { outlierDetection: od({ consecutive5xx: 2 }) })])
    fx.clusters = m.clusters
    const c = fx.clusters.get('od')!
    const ejections = () => metricValue(m.metrics, 'omnirelay_upstream_ejections_total{cluster="od"}')

    // Downstream aborts on the silent endpoint: not its fault.
    for (let i = 0; i < 4; i++) {
      const ac = new AbortController()
      const before = silent.hits + good.hits
      const p = c.request(get('/', { requestTimeoutMs: 0, idleTimeoutMs: 0 }, { signal: ac.signal }))
      await waitFor(() => silent.hits + good.hits > before) // arrived upstream
      ac.abort()
      await codeOf(p).catch(() => 'ok')
    }
    expect(ejections()).toBe(0)

    // Timeouts are: two in a row on the silent endpoint eject it.
    const codes: string[] = []
    for (let i = 0; i < 4; i++) codes.push(await codeOf(c.request(get('/', { requestTimeoutMs: 60, idleTimeoutMs: 0 }))).catch(() => 'ok'))
    expect(codes.filter((x) => x === 'upstream_timeout').length).toBe(2)
    expect(ejections()).toBe(1)
    for (let i = 0; i < 4; i++) expect((await fetchText(c.request(get()))).text).toBe('ok')
  })

  it('never ejects more than maxEjectionPercent of the endpoints', async () => {
    const handler = (_q: unknown, r: { statusCode: number; end(b: string): void }) => {
      r.statusCode = 503
      r.end('x')
    }
    for (let i = 0; i < 4; i++) servers.push(await startServer(handler as never))
    const m = manager([clusterConfig('od', servers.map((s) => s.port), { outlierDetection: od({ consecutive5xx: 1, baseEjectionMs: 10_000 }) })])
    fx.clusters = m.clusters
    for (let i = 0; i < 20; i++) await fetchText(fx.clusters.get('od')!.request(get()))
    expect(metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="od"}')).toBe(2)
    expect(metricValue(m.metrics, 'omnirelay_upstream_ejections_total{cluster="od"}')).toBe(2)
  })
})
