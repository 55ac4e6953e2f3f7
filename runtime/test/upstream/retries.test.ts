import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { RetryPolicy, RoutePolicy } from '../../src/upstream/types.ts'
import { clusterConfig, codeOf, deadPort, fetchText, get, manager, metricValue, readAll, startServer, upstreamFixture, waitFor } from './helpers.ts'

const retry = (over: Partial<RetryPolicy> = {}): RoutePolicy => ({
  requestTimeoutMs: 0,
  idleTimeoutMs: 0,
  retry: { maxRetries: 3, retryOn: ['connect-failure', 'reset', 'gateway-error'], budgetPercent: 100, minRetryConcurrency: 10, backoffMs: 5, ...over },
})

/** Answers 503 to the first `n` requests, then 200. */
async function flaky(n: number) {
  let left = n
  return startServer((_q, res) => {
    if (left-- > 0) {
      res.statusCode = 503
      res.end('unavailable')
    } else res.end('ok')
  })
}

describe('retries', () => {
  const fx = upstreamFixture()
  const { servers } = fx

  it('retries an idempotent request on gateway errors until it succeeds', async () => {
    const s = await flaky(2)
    servers.push(s)
    const m = manager([clusterConfig('r', [s.port])])
    fx.clusters = m.clusters
    const r = await fetchText(fx.clusters.get('r')!.request(get('/', retry())))
    expect(r.status).toBe(200)
    expect(r.text).toBe('ok')
    expect(s.hits).toBe(3)
    expect(metricValue(m.metrics, 'omnirelay_upstream_retries_total{cluster="r"}')).toBe(2)
    expect(metricValue(m.metrics, 'omnirelay_upstream_responses_total{cluster="r",class="5xx"}')).toBe(2)
    expect(metricValue(m.metrics, 'omnirelay_upstream_requests_active{cluster="r"}')).toBe(0)
  })

  it('stops after maxRetries and hands out the last response', async () => {
    const s = await flaky(100)
    servers.push(s)
    fx.clusters = manager([clusterConfig('r', [s.port])]).clusters
    const r = await fetchText(fx.clusters.get('r')!.request(get('/', retry({ maxRetries: 2 }))))
    expect(r.status).toBe(503)
    expect(r.text).toBe('unavailable')
    expect(s.hits).toBe(3)
  })

  it('does not retry a 500 on gateway-error, does on 5xx', async () => {
    let n = 0
    const s = await startServer((_q, res) => {
      res.statusCode = n++ === 0 ? 500 : 200
      res.end()
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('r', [s.port])]).clusters
    expect((await fetchText(fx.clusters.get('r')!.request(get('/', retry())))).status).toBe(500)
    n = 0
    expect((await fetchText(fx.clusters.get('r')!.request(get('/', retry({ retryOn: ['5xx'] }))))).status).toBe(200)
  })

  it('never retries a non-idempotent method or a streamed body', async () => {
    const s = await flaky(100)
    servers.push(s)
    fx.clusters = manager([clusterConfig('r', [s.port])]).clusters
    const c = fx.clusters.get('r')!
    const post = await fetchText(c.request({ ...get('/', retry()), method: 'POST', body: new Uint8Array([1]) }))
    expect(post.status).toBe(503)
    expect(s.hits).toBe(1)
    const put = await fetchText(c.request({ ...get('/', retry()), method: 'PUT', body: Readable.from([Buffer.from('x')]) }))
    expect(put.status).toBe(503)
    expect(s.hits).toBe(2)
    // A buffered body is replayable: PUT with bytes is retried.
    const put2 = await fetchText(c.request({ ...get('/', retry({ maxRetries: 1 })), method: 'PUT', body: new Uint8Array([1]) }))
    expect(put2.status).toBe(503)
    expect(s.hits).toBe(4)
  })

  it('retries connect failures on another endpoint', async () => {
    const good = await startServer((_q, r) => r.end('ok'))
    servers.push(good)
    fx.clusters = manager([clusterConfig('r', [await deadPort(), good.port])]).clusters
    for (let i = 0; i < 6; i++) expect((await fetchText(fx.clusters.get('r')!.request(get('/', retry())))).status).toBe(200)
    expect(good.hits).toBe(6)
  })

  it('retries a reset before the response, but never once the body is streaming', async () => {
    let n = 0
    const s = await startServer((req, res) => {
      n++
      if (req.url === '/reset-first' && n === 1) return req.socket.destroy()
      res.writeHead(200)
      res.write('part')
      if (req.url === '/reset-mid') setTimeout(() => req.socket.destroy(), 20)
      else res.end()
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('r', [s.port])]).clusters
    const ok = await fetchText(fx.clusters.get('r')!.request(get('/reset-first', retry())))
    expect(ok.text).toBe('part')
    expect(n).toBe(2)
    n = 0
    const mid = await fx.clusters.get('r')!.request(get('/reset-mid', retry()))
    expect(await codeOf(readAll(mid.body))).toBe('upstream_reset')
    expect(n).toBe(1)
  })

  it('backs off with jitter, doubling per try', async () => {
    const times: number[] = []
    const s = await startServer((_q, res) => {
      times.push(Date.now())
      res.statusCode = 503
      res.end()
    })
    servers.push(s)
    fx.clusters = manager([clusterConfig('r', [s.port])]).clusters
    await fetchText(fx.clusters.get('r')!.request(get('/', retry({ maxRetries: 3, backoffMs: 40 }))))
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    // Equal jitter: each wait is between half and all of 40, 80, 160 ms.
    expect(gaps[0]).toBeGreaterThanOrEqual(19)
    expect(gaps[1]).toBeGreaterThanOrEqual(39)
    expect(gaps[2]).toBeGreaterThanOrEqual(79)
    expect(gaps[2]! + gaps[1]! + gaps[0]!).toBeLessThan(280 + 1_000)
  })

  it('the retry budget caps retries in flight to a share of active requests', async () => {
    const s = await startServer((_q, res) => {
      setTimeout(() => {
        res.statusCode = 503
        res.end()
      }, 30)
    })
    servers.push(s)
    const m = manager([clusterConfig('r', [s.port], { maxConnectionsPerEndpoint: 20 })])
    fx.clusters = m.clusters
    const policy = retry({ maxRetries: 5, budgetPercent: 20, minRetryConcurrency: 1, backoffMs: 1 })
    const all = await Promise.all(Array.from({ length: 10 }, () => fetchText(fx.clusters!.get('r')!.request(get('/', policy)))))
    expect(all.every((r) => r.status === 503)).toBe(true)
    // 10 first tries; at most 20 % of 10 = 2 requests may retry (5 times each): without the budget, 60 hits.
    expect(s.hits).toBeGreaterThanOrEqual(15)
    expect(s.hits).toBeLessThanOrEqual(20)
    await waitFor(() => metricValue(m.metrics, 'omnirelay_upstream_requests_active{cluster="r"}') === 0)
  })

  it('a zero budget with no minimum disables retries', async () => {
    const s = await flaky(100)
    servers.push(s)
    fx.clusters = manager([clusterConfig('r', [s.port])]).clusters
    await fetchText(fx.clusters.get('r')!.request(get('/', retry({ budgetPercent: 0, minRetryConcurrency: 0 }))))
    expect(s.hits).toBe(1)
  })
})
