import type http from 'node:http'
import { describe, expect, it } from 'vitest'
import { clusterConfig, fetchText, get, manager, startServer, upstreamFixture, waitFor } from './helpers.ts'

describe('load balancing over real endpoints', () => {
  const fx = upstreamFixture()
  const { servers } = fx

  it('round-robin spreads requests evenly', async () => {
    for (let i = 0; i < 3; i++) servers.push(await startServer((_q, r) => r.end('ok')))
    fx.clusters = manager([clusterConfig('rr', servers.map((s) => s.port))]).clusters
    for (let i = 0; i < 30; i++) await fetchText(fx.clusters.get('rr')!.request(get()))
    expect(servers.map((s) => s.hits)).toEqual([10, 10, 10])
  })

  it('weighted round-robin follows the weights', async () => {
    for (let i = 0; i < 2; i++) servers.push(await startServer((_q, r) => r.end('ok')))
    const cfg = clusterConfig('w', [])
    cfg.endpoints = [
      { host: '127.0.0.1', port: servers[0]!.port, weight: 3 },
      { host: '127.0.0.1', port: servers[1]!.port, weight: 1 },
    ]
    fx.clusters = manager([cfg]).clusters
    for (let i = 0; i < 40; i++) await fetchText(fx.clusters.get('w')!.request(get()))
    expect(servers.map((s) => s.hits)).toEqual([30, 10])
  })

  it('least-request steers away from an endpoint that holds its requests', async () => {
    const held: http.ServerResponse[] = []
    const slow = await startServer((_q, r) => void held.push(r))
    const fast = await startServer((_q, r) => r.end('ok'))
    servers.push(slow, fast)
    fx.clusters = manager([clusterConfig('lr', [slow.port, fast.port], { loadBalancing: 'least-request' })]).clusters
    const c = fx.clusters.get('lr')!
    const pending: Promise<unknown>[] = []
    for (let i = 0; i < 20; i++) {
      const before = slow.hits
      let done = false
      const p = fetchText(c.request(get())).then(() => (done = true))
      pending.push(p)
      // Next pick once this request is either finished (fast) or held (slow).
      await waitFor(() => done || slow.hits > before)
    }
    // Once the slow endpoint holds one request, power-of-two always sees it as busier.
    expect(slow.hits).toBe(1)
    expect(fast.hits).toBe(19)
    for (const r of held) r.end('late')
    await Promise.all(pending)
  })
})
