import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { TelemetryAggregator, TelemetryExporter, telemetryClientConstructor } from '@omnirelay/runtime/telemetry/index.ts'
import { compareVersions, quantileMs, startTelemetryServer, TelemetryStore, type TelemetryStoreOptions } from '../../src/telemetry/index.ts'

const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

function tmpStore(opts: TelemetryStoreOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'telemetry-'))
  const store = TelemetryStore.open(join(dir, 't.sqlite'), opts)
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }), () => store.close())
  return store
}

describe('telemetry over real gRPC into SQLite', () => {
  it('answers error rate, p99, trap rate and fuel per request of B vs A', async () => {
    const store = tmpStore()
    const server = await startTelemetryServer(store)
    cleanup.push(() => server.close())
    const agg = new TelemetryAggregator()
    const exp = new TelemetryExporter({ target: server.address, node: 'dp-1', group: 'edge', aggregator: agg, intervalMs: 0 })
    cleanup.push(() => exp.close())
    const a = agg.cell({ epoch: 5, route: 'api', filter: 'waf', version: '1.0.0', variant: 'a' })
    const b = agg.cell({ epoch: 5, route: 'api', filter: 'waf', version: '2.0.0', variant: 'b' })
    for (let i = 0; i < 1000; i++) a.observe(200, 3, false)
    for (let i = 0; i < 100; i++) b.observe(i < 20 ? 500 : 200, i < 2 ? 400 : 3, false)
    b.trap('trap')
    a.fuel(1000 * 50, 1000)
    b.fuel(100 * 400, 100)
    await exp.flush()
    expect(exp.status).toMatchObject({ sent: 1, pending: 0 })
    const cmp = compareVersions(store, { filter: 'waf', versions: ['1.0.0', '2.0.0'], windowMs: 60_000 }, Date.now())
    expect(cmp.a).toMatchObject({ requests: 1000, errorRate: 0, trapRate: 0, fuelPerRequest: 50, nodes: 1 })
    expect(cmp.b).toMatchObject({ requests: 100, errorRate: 0.2, trapRate: 0.01, fuelPerRequest: 400, trapsByCode: { trap: 1 } })
    expect(cmp.a.p99Ms!).toBeLessThanOrEqual(5)
    expect(cmp.b.p99Ms!).toBeGreaterThan(200)
    // A later epoch filter excludes this data.
    expect(compareVersions(store, { filter: 'waf', versions: ['1.0.0', '2.0.0'], windowMs: 60_000, minEpoch: 6 }, Date.now()).b.requests).toBe(0)
  })

  it('keeps bounded batches while central is away, drops the oldest with a count, delivers the rest later', async () => {
    const store = tmpStore()
    // Reserve a port, then close it: central is "away" at a known address.
    const probe = await startTelemetryServer(store)
    const address = probe.address
    await probe.close()
    const agg = new TelemetryAggregator()
    const exp = new TelemetryExporter({ target: address, node: 'dp-2', aggregator: agg, intervalMs: 0, maxPending: 3, timeoutMs: 500 })
    cleanup.push(() => exp.close())
    for (let i = 0; i < 5; i++) {
      agg.cell({ epoch: i + 1, route: 'r', filter: 'waf', version: '1.0.0', variant: 'a' }).observe(200, 1, false)
      await exp.flush()
    }
    expect(exp.status).toMatchObject({ sent: 0, pending: 3, droppedBatches: 2 })
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))]
    const back = await startTelemetryServer(store, host, port)
    cleanup.push(() => back.close())
    const deadline = Date.now() + 5000
    while (exp.status.pending > 0 && Date.now() < deadline) {
      await exp.flush()
      if (exp.status.pending) await new Promise((r) => setTimeout(r, 100))
    }
    expect(exp.status).toMatchObject({ sent: 3, pending: 0 })
    expect(store.totals({ filter: 'waf', version: '1.0.0', sinceMs: 0 }).requests).toBe(3)
    expect(store.drops(0)).toEqual({ batches: 2, series: 2 })
  })

  it('refuses a malformed batch with INVALID_ARGUMENT and stores a resent batch once', async () => {
    const store = tmpStore()
    const server = await startTelemetryServer(store)
    cleanup.push(() => server.close())
    const Ctor = telemetryClientConstructor()
    const client = new Ctor(server.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Report: (b: unknown, cb: (e: grpc.ServiceError | null, r?: { stored: number }) => void) => void }
    cleanup.push(() => client.close())
    const report = (b: unknown) => new Promise<{ err: grpc.ServiceError | null; stored?: number }>((ok) => client.Report(b, (err, r) => ok({ err, stored: r?.stored })))
    expect((await report({ node: '', seq: 1 })).err?.code).toBe(grpc.status.INVALID_ARGUMENT)
    const batch = { node: 'n', seq: 1, startMs: 1, endMs: 2, series: [{ epoch: 1, filter: 'f', version: 'v', requests: 1, responsesByClass: [0, 1, 0, 0, 0], latencyBuckets: [1] }] }
    expect((await report(batch)).stored).toBe(1)
    expect((await report(batch)).stored).toBe(0)
    expect(store.rows).toBe(1)
  })

  it('prunes past retention and past the row cap', () => {
    let now = 1_000_000
    const store = tmpStore({ retentionMs: 10_000, maxRows: 5, now: () => now })
    const s = { epoch: 1, route: '', filter: 'f', version: 'v', variant: '', requests: 1, responsesByClass: [0, 1, 0, 0, 0], localReplies: 0, latencyBuckets: [1], latencySumMs: 1, traps: {}, fuelSum: 0, fuelCount: 0 }
    for (let i = 0; i < 8; i++) store.insert({ node: 'n', group: '', seq: i, startMs: 0, endMs: 0, series: [s], droppedBatches: 0, droppedSeries: 0 })
    store.prune()
    expect(store.rows).toBe(5)
    now += 20_000
    store.prune()
    expect(store.rows).toBe(0)
  })

  it('quantiles interpolate within the bucket', () => {
    expect(quantileMs([0, 0, 0], 0.99)).toBeNull()
    expect(quantileMs([100], 0.5)).toBe(0.5)
    const q = quantileMs([99, 1], 0.99)!
    expect(q).toBeLessThanOrEqual(1)
  })
})
