/**
 * The split observer and the metrics poller share one aggregator, as on a data plane: a
 * request through a split slot must count once per version when the series are summed
 * over variants (what central does per filter and version).
 */
import { describe, expect, it } from 'vitest'
import { MetricsRegistry } from '../observability/metrics.ts'
import { FilterStats, makeChain } from '../pipeline/chain.ts'
import { PipelineRun, type PipelineSink } from '../pipeline/executor.ts'
import { FilterError, FilterErrorCode, type FilterFactory } from '../pipeline/filter.ts'
import { HeaderMap } from '../pipeline/header-map.ts'
import { FilterStatus, Phase } from '../pipeline/phases.ts'
import { createStreamInfo, PipelineStream } from '../pipeline/stream.ts'
import { SplitSlot } from '../rollout/index.ts'
import { TelemetryAggregator } from './aggregator.ts'
import { MetricsTelemetry } from './metrics-poller.ts'
import type { SeriesWire } from './proto.ts'
import { SplitTelemetry } from './split-observer.ts'

const A = { name: 'main.waf', version: '1.0.0', fuel: 1000 }
const B = { name: 'canary.waf', version: '2.0.0', fuel: 5000 }

interface VersionOpts {
  throwOnDone?: boolean
  /** x-hang: the hook pauses and never resumes. x-async: it pauses, then fails like a host's async hook. */
  pending?: (fail: () => void) => void
}

// Like a Wasm/QuickJS host: fuel observed under the factory's own name when the stream is done.
function version(metrics: MetricsRegistry, v: typeof A, opts: VersionOpts = {}): FilterFactory {
  const fuel = metrics.histogram('omnirelay_filter_fuel_used', 'f', ['filter'], [1e3, 1e6]).labels(v.name)
  // Hosts count a failure after a pause under their own name (the pipeline never sees it).
  const asyncFailures = metrics.counter('omnirelay_filter_failures_total', 'f', ['filter', 'code']).labels(v.name, 'trap')
  return {
    name: v.name,
    version: v.version,
    kind: 'wasm',
    phases: Phase.RequestHeaders,
    failurePolicy: 'fail-closed',
    createStream: (s) => ({
      onRequestHeaders: () => {
        if (s.requestHeaders.get('x-boom')) throw new FilterError(v.name, FilterErrorCode.Trap, 'boom')
        if (s.requestHeaders.get('x-hang')) return FilterStatus.Pause
        if (s.requestHeaders.get('x-async')) {
          opts.pending?.(() => {
            asyncFailures.inc()
            s.sendLocalReply(500, 'failed', [], `filter_failed:${v.name}:trap`)
          })
          return FilterStatus.Pause
        }
        return FilterStatus.Continue
      },
      onDone: () => {
        fuel.observe(v.fuel)
        if (opts.throwOnDone) throw new FilterError(v.name, FilterErrorCode.Trap, 'late')
      },
    }),
    close: async () => {},
  }
}

function setup(opts: VersionOpts = {}) {
  const metrics = new MetricsRegistry()
  const agg = new TelemetryAggregator()
  const observer = new SplitTelemetry(agg, metrics)
  const versions: Record<string, string> = { [A.name]: A.version, [B.name]: B.version }
  new MetricsTelemetry(metrics, agg, { epoch: () => 7, versionOf: (f) => versions[f] })
  const a = version(metrics, A, opts)
  const b = version(metrics, B, opts)
  // As applyFilterSplits builds it: the slot takes A's name and A's per-filter stats.
  const stats = new FilterStats(metrics, A.name)
  const slot = (weightB: number) => {
    const s = new SplitSlot(a, b, { slot: 'waf', weightB, name: A.name, observer })
    observer.track(s)
    return s
  }
  const run = (f: FilterFactory, headers: [string, string][], requestId: string) => {
    let status = 0
    const sink: PipelineSink = {
      requestHeadersDone: () => void (status = 200),
      requestData: () => {},
      requestTrailersDone: () => {},
      responseHeadersDone: () => {},
      responseData: () => {},
      responseTrailersDone: () => {},
      localReply: (r) => void (status = r.status),
      requestQueueDrained: () => {},
    }
    const info = createStreamInfo({ requestId, epoch: 7, routeName: 'api' })
    const stream = new PipelineStream({ info, requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', '/'], ...headers]) })
    const entry = { factory: f, name: A.name, phases: f.phases, failurePolicy: f.failurePolicy, maxBodyBytes: 1024, stats }
    const r = new PipelineRun(makeChain([entry]), stream, sink, { maxBodyBytes: 1024, filterPauseTimeoutMs: 20 })
    r.start(true)
    const end = () => {
      info.responseCode = status
      r.finish()
      return status
    }
    return status ? end() : new Promise<number>((resolve) => setTimeout(() => resolve(end()), 60))
  }
  return { metrics, agg, observer, slot, run, a }
}

// What central sums for one (filter, version): every variant's row.
function perVersion(series: readonly SeriesWire[], filter: string, version: string) {
  const rows = series.filter((s) => s.filter === filter && s.version === version)
  const sum = (k: 'requests' | 'fuelCount' | 'fuelSum' | 'localReplies') => rows.reduce((n, s) => n + s[k], 0)
  const traps = rows.reduce((n, s) => n + Object.values(s.traps).reduce((x, y) => x + y, 0), 0)
  return { requests: sum('requests'), fuelCount: sum('fuelCount'), fuelSum: sum('fuelSum'), traps, localReplies: sum('localReplies'), variants: rows.map((s) => s.variant).sort() }
}

const pin = (v: typeof A, boom = false): [string, string][] => [['x-omnirelay-pin', `waf=${v.version}`], ...(boom ? ([['x-boom', '1']] as [string, string][]) : [])]

describe('split and metrics telemetry on one aggregator', () => {
  it('counts each request, its fuel and its trap once per version', () => {
    const { agg, slot, run } = setup()
    const s = slot(5000)
    agg.drain() // baseline
    for (let i = 0; i < 8; i++) expect(run(s, pin(A), `a${i}`)).toBe(200)
    for (let i = 0; i < 2; i++) expect(run(s, pin(A, true), `ab${i}`)).toBe(500)
    for (let i = 0; i < 5; i++) expect(run(s, pin(B), `b${i}`)).toBe(200)
    expect(run(s, pin(B, true), 'bb')).toBe(500)
    const { series } = agg.drain()
    expect(perVersion(series, A.name, A.version)).toEqual({ requests: 10, fuelCount: 10, fuelSum: 10 * A.fuel, traps: 2, localReplies: 2, variants: ['a'] })
    expect(perVersion(series, A.name, B.version)).toEqual({ requests: 6, fuelCount: 6, fuelSum: 6 * B.fuel, traps: 1, localReplies: 1, variants: ['b'] })
    // B's own name carries nothing either: the split reports it.
    expect(series.filter((x) => x.filter === B.name)).toEqual([])
  })

  it('a throw from onDone counts once, for its variant', () => {
    const { agg, slot, run } = setup({ throwOnDone: true })
    const s = slot(5000)
    agg.drain()
    run(s, pin(A), 'a')
    run(s, pin(B), 'b')
    run(s, pin(B), 'b2')
    const { series } = agg.drain()
    expect(perVersion(series, A.name, A.version)).toMatchObject({ requests: 1, traps: 1, fuelCount: 1 })
    expect(perVersion(series, A.name, B.version)).toMatchObject({ requests: 2, traps: 2, fuelCount: 2 })
  })

  it('across epochs the split keeps reporting; once its last slot is closed the filter is per-filter again, with no backlog', async () => {
    const { agg, slot, run, a } = setup()
    const s1 = slot(5000)
    agg.drain()
    run(s1, pin(A), 'a1')
    // The next epoch's slot is built before the old one is closed (after its requests drained).
    const s2 = slot(9000)
    run(s2, pin(A), 'a2')
    run(s2, pin(B), 'b2')
    await s1.close()
    run(s2, pin(A, true), 'a3')
    let { series } = agg.drain()
    expect(perVersion(series, A.name, A.version)).toMatchObject({ requests: 3, fuelCount: 3, traps: 1, variants: ['a'] })
    expect(perVersion(series, A.name, B.version)).toMatchObject({ requests: 1, fuelCount: 1, traps: 0, variants: ['b'] })
    // The rollout ended: A runs alone again (its epoch closed the last slot).
    await s2.close()
    await s2.close() // closing twice changes nothing
    run(a, [], 'x1')
    run(a, [['x-boom', '1']], 'x2')
    ;({ series } = agg.drain())
    expect(perVersion(series, A.name, A.version)).toEqual({ requests: 0, fuelCount: 2, fuelSum: 2 * A.fuel, traps: 1, localReplies: 0, variants: [''] })
    expect(perVersion(series, A.name, B.version).fuelCount).toBe(0)
    // A later split over the same versions takes them back.
    const s3 = slot(5000)
    agg.drain()
    run(s3, pin(B), 'b3')
    ;({ series } = agg.drain())
    expect(perVersion(series, A.name, B.version)).toMatchObject({ requests: 1, fuelCount: 1, variants: ['b'] })
    expect(perVersion(series, A.name, A.version).fuelCount).toBe(0)
  })

  it('a failure after a pause (pause timeout, async hook) counts once, for its variant', async () => {
    const later: (() => void)[] = []
    const { agg, slot, run } = setup({ pending: (fail) => later.push(fail) })
    const s = slot(5000)
    agg.drain()
    const hang = (v: typeof A) => run(s, [...pin(v), ['x-hang', '1']], `h${v.version}`)
    const fail = (v: typeof A) => {
      const r = run(s, [...pin(v), ['x-async', '1']], `f${v.version}`)
      for (const f of later.splice(0)) f()
      return r
    }
    expect(await hang(B)).toBe(504)
    expect(await hang(A)).toBe(504)
    expect(await fail(B)).toBe(500)
    expect(await fail(B)).toBe(500)
    const { series } = agg.drain()
    expect(perVersion(series, A.name, A.version)).toMatchObject({ requests: 1, traps: 1, localReplies: 1 })
    expect(perVersion(series, A.name, B.version)).toMatchObject({ requests: 3, traps: 3, localReplies: 3 })
    const traps = (v: string) => series.filter((x) => x.version === v).map((x) => x.traps)
    expect(traps(A.version)).toEqual([{ timeout: 1 }])
    expect(traps(B.version)).toEqual([{ timeout: 1, trap: 2 }])
    expect(series.filter((x) => x.filter === B.name)).toEqual([])
  })
})
