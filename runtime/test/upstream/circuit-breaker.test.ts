import type http from 'node:http'
import { describe, expect, it } from 'vitest'
import { clusterConfig, codeOf, fetchText, get, manager, metricValue, startServer, upstreamFixture, waitFor } from './helpers.ts'

describe('circuit breaking', () => {
  const fx = upstreamFixture()
  const { servers } = fx

  it('refuses beyond maxConcurrent at once with upstream_overflow', async () => {
    const held: http.ServerResponse[] = []
    const s = await startServer((_q, r) => void held.push(r))
    servers.push(s)
    const m = manager([clusterConfig('cb', [s.port], { circuitBreaker: { maxConcurrent: 2, maxPending: 100 } })])
    fx.clusters = m.clusters
    const c = fx.clusters.get('cb')!
    const a = fetchText(c.request(get()))
    const b = fetchText(c.request(get()))
    const t0 = Date.now()
    expect(await codeOf(c.request(get()))).toBe('upstream_overflow')
    expect(Date.now() - t0).toBeLessThan(500)
    expect(metricValue(m.metrics, 'omnirelay_upstream_overflow_total{cluster="cb"}')).toBe(1)
    await waitFor(() => held.length === 2)
    for (const r of held) r.end('done')
    await Promise.all([a, b])
    // Capacity is back once they finish.
    held.length = 0
    const d = fetchText(c.request(get()))
    await waitFor(() => held.length === 1)
    held[0]!.end('again')
    expect((await d).text).toBe('again')
  })

  it('refuses beyond maxPending requests waiting for a connection', async () => {
    const held: http.ServerResponse[] = []
    const s = await startServer((_q, r) => void held.push(r))
    servers.push(s)
    fx.clusters = manager([
      clusterConfig('cb', [s.port], { maxConnectionsPerEndpoint: 1, circuitBreaker: { maxConcurrent: 100, maxPending: 1 } }),
    ]).clusters
    const c = fx.clusters.get('cb')!
    const first = fetchText(c.request(get()))
    await waitFor(() => held.length === 1) // on the only connection
    const second = fetchText(c.request(get())) // waits for that connection
    expect(await codeOf(c.request(get()))).toBe('upstream_overflow')
    held[0]!.end('1')
    await waitFor(() => held.length === 2)
    held[1]!.end('2')
    expect((await first).text).toBe('1')
    expect((await second).text).toBe('2')
  })
})
