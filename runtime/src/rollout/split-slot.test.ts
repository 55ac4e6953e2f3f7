import { describe, expect, it } from 'vitest'
import { MetricsRegistry } from '../observability/metrics.ts'
import { FilterStats, makeChain } from '../pipeline/chain.ts'
import { PipelineRun, type PipelineSink } from '../pipeline/executor.ts'
import { FilterError, FilterErrorCode, type FailurePolicy, type FilterFactory } from '../pipeline/filter.ts'
import { HeaderMap } from '../pipeline/header-map.ts'
import { ALL_PHASES, FilterStatus, Phase } from '../pipeline/phases.ts'
import { createStreamInfo, PipelineStream } from '../pipeline/stream.ts'
import { KilledFilterFactory } from './kill.ts'
import { SplitSlot, type VariantObserver } from './split-slot.ts'

function tagging(version: string, opts: { fail?: boolean; policy?: FailurePolicy; phases?: number } = {}): FilterFactory {
  return {
    name: 'chain.waf',
    kind: 'native',
    version,
    phases: opts.phases ?? ALL_PHASES,
    failurePolicy: opts.policy ?? 'fail-closed',
    createStream: (s) => ({
      onRequestHeaders: () => {
        if (opts.fail) throw new FilterError('chain.waf', FilterErrorCode.Trap, 'boom')
        s.requestHeaders.add('x-version', version)
        return FilterStatus.Continue
      },
    }),
    close: async () => {},
  }
}

function runOne(f: FilterFactory, headers: [string, string][], requestId: string) {
  const metrics = new MetricsRegistry()
  const entry = { factory: f, name: f.name, phases: f.phases, failurePolicy: f.failurePolicy, maxBodyBytes: 1024, stats: new FilterStats(metrics, f.name) }
  const out = { upstream: false, status: 0 }
  const sink: PipelineSink = {
    requestHeadersDone: () => void (out.upstream = true),
    requestData: () => {},
    requestTrailersDone: () => {},
    responseHeadersDone: () => {},
    responseData: () => {},
    responseTrailersDone: () => {},
    localReply: (r) => void (out.status = r.status),
    requestQueueDrained: () => {},
  }
  const stream = new PipelineStream({ info: createStreamInfo({ requestId }), requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', '/'], ...headers]) })
  const r = new PipelineRun(makeChain([entry]), stream, sink, { maxBodyBytes: 1024, filterPauseTimeoutMs: 1000 })
  r.start(true)
  if (out.upstream) r.responseHeaders(200, [], true)
  r.finish()
  return { out, stream }
}

describe('SplitSlot through the real executor', () => {
  it('runs A or B per request at the weight, sticky by header, and reports per variant', () => {
    const seen: number[] = [0, 0]
    const observer: VariantObserver = { failed: () => {}, done: (_s, v) => void seen[v]++ }
    const slot = new SplitSlot(tagging('1.0.0'), tagging('2.0.0'), { slot: 'waf', weightB: 2500, observer })
    let b = 0
    for (let i = 0; i < 4000; i++) {
      const { stream } = runOne(slot, [], `req-${i}`)
      if (stream.requestHeaders.get('x-version') === '2.0.0') b++
    }
    expect(b / 4000).toBeGreaterThan(0.22)
    expect(b / 4000).toBeLessThan(0.28)
    expect(seen).toEqual([4000 - b, b])
    const sticky = new SplitSlot(tagging('1.0.0'), tagging('2.0.0'), { slot: 'waf', weightB: 5000, stickyHeader: 'x-user' })
    const first = runOne(sticky, [['x-user', 'alice']], 'a').stream.requestHeaders.get('x-version')
    for (let i = 0; i < 50; i++) expect(runOne(sticky, [['x-user', 'alice']], `x${i}`).stream.requestHeaders.get('x-version')).toBe(first)
  })

  it('pins by header, and a failing B gets the failure policy and is counted for B only', () => {
    const failures: [number, string][] = []
    const observer: VariantObserver = { failed: (_s, v, code) => void failures.push([v, code]), done: () => {} }
    const slot = new SplitSlot(tagging('1.0.0'), tagging('2.0.0', { fail: true }), { slot: 'waf', weightB: 0, observer })
    expect(runOne(slot, [], 'r').out.upstream).toBe(true)
    const pinned = runOne(slot, [['x-omnirelay-pin', 'waf=2.0.0']], 'r')
    expect(pinned.out.upstream).toBe(false)
    expect(pinned.out.status).toBe(500)
    expect(failures).toEqual([[1, 'trap']])
  })

  it('reuses pooled wrappers (no wrapper per request in steady state)', () => {
    const slot = new SplitSlot(tagging('1.0.0'), tagging('2.0.0'), { slot: 'waf', weightB: 5000 })
    const s1 = new PipelineStream({ info: createStreamInfo({ requestId: 'a' }) })
    const w1 = slot.createStream(s1)
    w1.onDone!()
    const w2 = slot.createStream(new PipelineStream({ info: createStreamInfo({ requestId: 'b' }) }))
    expect(w2).toBe(w1)
  })

  it('takes the union of phases and refuses differing failure policies', () => {
    const slot = new SplitSlot(tagging('1', { phases: Phase.RequestHeaders }), tagging('2', { phases: Phase.ResponseHeaders }), { slot: 'waf', weightB: 1 })
    expect(slot.phases).toBe(Phase.RequestHeaders | Phase.ResponseHeaders)
    expect(() => new SplitSlot(tagging('1'), tagging('2', { policy: 'fail-open' }), { slot: 'waf', weightB: 1 })).toThrow(expect.objectContaining({ code: 'rollout_split_invalid' }))
    expect(slot.withWeight(9000).weightB).toBe(9000)
  })
})

describe('KilledFilterFactory', () => {
  it('fail-closed answers 503 before upstream; fail-open skips the filter', () => {
    const closed = runOne(new KilledFilterFactory(tagging('1.0.0'), { scope: 'bundle' }), [], 'r')
    expect(closed.out).toEqual({ upstream: false, status: 503 })
    const open = runOne(new KilledFilterFactory(tagging('1.0.0', { policy: 'fail-open' }), { scope: 'filter' }), [], 'r')
    expect(open.out.upstream).toBe(true)
    expect(open.stream.requestHeaders.get('x-version')).toBeUndefined()
  })
})

