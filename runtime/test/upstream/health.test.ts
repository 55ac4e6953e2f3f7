import { describe, expect, it } from 'vitest'
import type { HealthCheckConfig } from '../../src/upstream/types.ts'
import { clusterConfig, codeOf, fetchText, get, manager, metricValue, startServer, upstreamFixture, waitFor } from './helpers.ts'

const hc = (over: Partial<HealthCheckConfig> = {}): HealthCheckConfig => ({
  path: '/healthz',
  intervalMs: 30,
  // Generous: the machine is shared, a slow check must not flap the healthy endpoint.
  timeoutMs: 2_000,
  unhealthyThreshold: 2,
  healthyThreshold: 2,
  ...over,
})

/** A server whose /healthz answers `state.status` (or never, when 0); counts other requests. */
async function healthServer(state: { status: number; traffic?: number }) {
  return startServer((req, res) => {
    if (req.url === '/healthz') {
      if (state.status === 0) return // never answers
      res.writeHead(state.status)
      res.end()
      return
    }
    state.traffic = (state.traffic ?? 0) + 1
    res.end('traffic')
  })
}

describe('active health checks', () => {
  const fx = upstreamFixture()
  const { servers } = fx

  it('takes a failing endpoint out of rotation and brings it back after healthy checks', async () => {
    const a: { status: number; traffic?: number } = { status: 200 }
    const sa = await healthServer(a)
    const sb = await healthServer({ status: 200 })
    servers.push(sa, sb)
    const m = manager([clusterConfig('hc', [sa.port, sb.port], { healthCheck: hc() })])
    fx.clusters = m.clusters
    const avail = () => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="hc"}')
    await waitFor(() => metricValue(m.metrics, 'omnirelay_upstream_health_checks_total{cluster="hc",result="success"}') >= 2)

    a.status = 503
    await waitFor(() => avail() === 1)
    const before = a.traffic ?? 0
    for (let i = 0; i < 10; i++) {
      const r = await fetchText(fx.clusters.get('hc')!.request(get('/x')))
      expect(r.endpoint).toBe(`127.0.0.1:${sb.port}`)
    }
    // Only health checks reached A meanwhile, no traffic.
    expect(a.traffic ?? 0).toBe(before)
    expect(metricValue(m.metrics, 'omnirelay_upstream_health_checks_total{cluster="hc",result="failure"}')).toBeGreaterThanOrEqual(2)

    a.status = 200
    await waitFor(() => avail() === 2)
    const seen = new Set<string>()
    for (let i = 0; i < 4; i++) seen.add((await fetchText(fx.clusters.get('hc')!.request(get('/x')))).endpoint)
    expect(seen.size).toBe(2)
  })

  it('fails with no_healthy_upstream when every endpoint is unhealthy', async () => {
    const s = await healthServer({ status: 500 })
    servers.push(s)
    const m = manager([clusterConfig('hc', [s.port], { healthCheck: hc({ unhealthyThreshold: 1 }) })])
    fx.clusters = m.clusters
    await waitFor(() => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="hc"}') === 0)
    expect(await codeOf(fx.clusters.get('hc')!.request(get()))).toBe('no_healthy_upstream')
  })

  it('honours expected statuses', async () => {
    const s = await healthServer({ status: 204 })
    servers.push(s)
    const m = manager([clusterConfig('hc', [s.port], { healthCheck: hc({ unhealthyThreshold: 1, expectedStatuses: [200, 200] }) })])
    fx.clusters = m.clusters
    await waitFor(() => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="hc"}') === 0)
  })

  it('counts a check that does not answer within timeoutMs as failed, without piling up sockets', async () => {
    const s = await healthServer({ status: 0 })
    servers.push(s)
    const m = manager([clusterConfig('hc', [s.port], { healthCheck: hc({ timeoutMs: 40, unhealthyThreshold: 3 }) })])
    fx.clusters = m.clusters
    await waitFor(() => metricValue(m.metrics, 'omnirelay_upstream_endpoints_available{cluster="hc"}') === 0)
    const conns = await new Promise<number>((r) => s.server.getConnections((_e, n) => r(n)))
    expect(conns).toBeLessThanOrEqual(2)
  })
})
