import { describe, expect, it } from 'vitest'
import { MetricsRegistry } from '../observability/metrics.ts'
import { FilterStats, makeChain, type ChainEntry } from './chain.ts'
import { PipelineRun, type PipelineSink } from './executor.ts'
import { FilterError, type FailurePolicy, type FilterFactory, type HttpStream, type StreamFilter } from './filter.ts'
import { HeaderMap } from './header-map.ts'
import type { LocalReply } from './local-reply.ts'
import { ALL_PHASES, FilterStatus, Phase } from './phases.ts'
import { PipelineStream } from './stream.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

interface Rec {
  events: string[]
  reply?: LocalReply
  reqBody: string
  respBody: string
}

function factory(name: string, make: (s: HttpStream, log: string[]) => StreamFilter, phases = ALL_PHASES, failurePolicy: FailurePolicy = 'fail-closed'): FilterFactory & { log: string[] } {
  const log: string[] = []
  return { name, kind: 'native', phases, failurePolicy, log, createStream: (s) => make(s, log), close: async () => {} }
}

function run(factories: FilterFactory[], opts: { maxBodyBytes?: number; pauseMs?: number } = {}) {
  const metrics = new MetricsRegistry()
  const entries: ChainEntry[] = factories.map((f) => ({
    factory: f,
    name: f.name,
    phases: f.phases,
    failurePolicy: f.failurePolicy,
    maxBodyBytes: opts.maxBodyBytes ?? 1024,
    stats: new FilterStats(metrics, f.name),
  }))
  const rec: Rec = { events: [], reqBody: '', respBody: '' }
  const sink: PipelineSink = {
    requestHeadersDone: () => rec.events.push('upstream'),
    requestData: (c, end) => {
      rec.reqBody += dec.decode(c)
      if (end) rec.events.push('req-end')
    },
    requestTrailersDone: () => rec.events.push('req-trailers'),
    responseHeadersDone: () => rec.events.push('resp-head'),
    responseData: (c, end) => {
      rec.respBody += dec.decode(c)
      if (end) rec.events.push('resp-end')
    },
    responseTrailersDone: () => rec.events.push('resp-trailers'),
    localReply: (r) => {
      rec.reply = r
      rec.events.push(`reply:${r.status}`)
    },
    requestQueueDrained: () => rec.events.push('drained'),
  }
  const stream = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', '/']]) })
  const r = new PipelineRun(makeChain(entries), stream, sink, { maxBodyBytes: opts.maxBodyBytes ?? 1024, filterPauseTimeoutMs: opts.pauseMs ?? 10_000 })
  return { r, rec, stream, metrics }
}

const tracer = (tag: string) =>
  factory(tag, (s, log) => ({
    onRequestHeaders: () => (log.push(`${tag}:reqh`), s.requestHeaders.add('x-seen', tag), FilterStatus.Continue),
    onResponseHeaders: () => (log.push(`${tag}:resph`), FilterStatus.Continue),
    onLog: () => void log.push(`${tag}:log`),
    onDone: () => void log.push(`${tag}:done`),
  }))

describe('PipelineRun', () => {
  it('runs request phases in order and response phases in reverse, then log and done once', () => {
    const a = tracer('a')
    const b = tracer('b')
    const shared: string[] = []
    a.log.push = b.log.push = (...x: string[]) => shared.push(...x)
    const { r, rec, stream } = run([a, b])
    r.start(true)
    expect(stream.requestHeaders.getAll('x-seen')).toEqual(['a', 'b'])
    r.responseHeaders(200, ['content-type', 'text/plain'], true)
    r.finish()
    r.finish()
    expect(shared).toEqual(['a:reqh', 'b:reqh', 'b:resph', 'a:resph', 'a:log', 'b:log', 'a:done', 'b:done'])
    expect(rec.events).toEqual(['upstream', 'resp-head'])
    expect(stream.responseHeaders.get(':status')).toBe('200')
  })

  it('holds on Pause until resume, then continues with the next filter', async () => {
    let saved: HttpStream | undefined
    const p = factory('pauser', (s) => ({ onRequestHeaders: () => ((saved = s), FilterStatus.Pause) }))
    const t = tracer('t')
    const { r, rec } = run([p, t])
    r.start(false)
    r.requestData(enc.encode('early'), true)
    expect(rec.events).toEqual([])
    expect(t.log).toEqual([])
    saved!.resume()
    saved!.resume()
    expect(t.log).toEqual(['t:reqh'])
    expect(rec.events).toEqual(['upstream', 'req-end', 'drained'])
    expect(rec.reqBody).toBe('early')
  })

  it('reports queued request bytes while held and tells the sink when they drained', () => {
    let saved: HttpStream | undefined
    const p = factory('pauser', (s) => ({ onRequestHeaders: () => ((saved = s), FilterStatus.Pause), onRequestBody: () => FilterStatus.Continue }))
    const { r, rec } = run([p])
    r.start(false)
    r.requestData(enc.encode('abc'), false)
    r.requestData(enc.encode('de'), false)
    expect(r.queuedRequestBytes).toBe(5)
    expect(rec.events).toEqual([])
    saved!.resume()
    expect(r.queuedRequestBytes).toBe(0)
    expect(rec.reqBody).toBe('abcde')
    expect(rec.events).toEqual(['upstream', 'drained'])
  })

  it('a local reply wins whatever status the hook returns, also when sent asynchronously', () => {
    const denier = factory('deny', (s) => ({ onRequestHeaders: () => (s.sendLocalReply(403, 'no', [['X-Why', 'policy']]), FilterStatus.Continue) }))
    const t = tracer('t')
    const { r, rec } = run([denier, t])
    r.start(true)
    expect(rec.events).toEqual(['reply:403'])
    expect(rec.reply!.headers).toEqual([['x-why', 'policy']])
    expect(t.log).toEqual([])

    let saved: HttpStream | undefined
    const later = factory('later', (s) => ({ onRequestHeaders: () => ((saved = s), FilterStatus.Pause) }))
    const x = run([later])
    x.r.start(true)
    expect(saved!.sendLocalReply(401, 'auth')).toBe(true)
    expect(saved!.sendLocalReply(500)).toBe(false)
    saved!.resume()
    expect(x.rec.events).toEqual(['reply:401'])
  })

  it('buffers body per filter (StopIterationAndBuffer) and passes the grown buffer on at the end', () => {
    const seen: string[] = []
    const buf = factory(
      'buf',
      (s) => ({
        onRequestBody: (size, end) => {
          seen.push(`${size}:${end}`)
          if (!end) return FilterStatus.Pause
          s.requestBody = enc.encode(dec.decode(s.requestBody).toUpperCase())
          return FilterStatus.Continue
        },
      }),
      Phase.RequestBody,
    )
    const { r, rec } = run([buf])
    r.start(false)
    r.requestData(enc.encode('ab'), false)
    r.requestData(enc.encode('cd'), false)
    expect(rec.reqBody).toBe('')
    r.requestData(enc.encode('e'), true)
    expect(seen).toEqual(['2:false', '4:false', '5:true'])
    expect(rec.reqBody).toBe('ABCDE')
    expect(rec.events).toEqual(['upstream', 'req-end'])
  })

  it('answers 413 when a buffering filter exceeds its limit', () => {
    const buf = factory('buf', () => ({ onRequestBody: (_n, end) => (end ? FilterStatus.Continue : FilterStatus.Pause) }), Phase.RequestBody)
    const { r, rec, metrics } = run([buf], { maxBodyBytes: 4 })
    r.start(false)
    r.requestData(enc.encode('abc'), false)
    r.requestData(enc.encode('def'), false)
    expect(rec.reply!.status).toBe(413)
    expect(JSON.parse(dec.decode(rec.reply!.body))).toMatchObject({ error: 'body_too_large', filter: 'buf' })
    expect(metrics.render()).toContain('omnirelay_filter_failures_total{filter="buf",code="body_too_large"} 1')
  })

  it('fail-closed: stable JSON 5xx naming the filter and code, never a stack', () => {
    const bad = factory('bad', () => ({
      onRequestHeaders: () => {
        throw new FilterError('bad', 'fuel_exhausted', 'secret internals at /srv/x.js:12')
      },
    }))
    const { r, rec } = run([bad])
    r.start(true)
    expect(rec.reply!.status).toBe(500)
    const body = dec.decode(rec.reply!.body)
    expect(JSON.parse(body)).toEqual({ error: 'filter_failed', status: 500, code: 'fuel_exhausted', filter: 'bad' })
    expect(body).not.toContain('secret')
  })

  it('fail-open: skips the failed filter for the rest of the request and counts it', () => {
    const bad = factory(
      'flaky',
      (_s, log) => ({
        onRequestHeaders: () => {
          throw new Error('boom')
        },
        onResponseHeaders: () => (log.push('resph'), FilterStatus.Continue),
        onDone: () => void log.push('done'),
      }),
      ALL_PHASES,
      'fail-open',
    )
    const { r, rec, metrics } = run([bad])
    r.start(true)
    r.responseHeaders(200, [], true)
    r.finish()
    expect(rec.events).toEqual(['upstream', 'resp-head'])
    expect(bad.log).toEqual(['done'])
    const text = metrics.render()
    expect(text).toContain('omnirelay_filter_fail_open_total{filter="flaky"} 1')
    expect(text).toContain('omnirelay_filter_failures_total{filter="flaky",code="thrown"} 1')
  })

  it('fails a paused filter that is never resumed', async () => {
    const stuck = factory('stuck', () => ({ onRequestHeaders: () => FilterStatus.Pause }))
    const { r, rec } = run([stuck], { pauseMs: 20 })
    r.start(true)
    await new Promise((res) => setTimeout(res, 60))
    expect(rec.reply!.status).toBe(504)
    expect(JSON.parse(dec.decode(rec.reply!.body)).code).toBe('timeout')
  })

  it('response body filters see data in reverse order and may replace it', () => {
    const order: string[] = []
    const mk = (tag: string) =>
      factory(tag, (s) => ({
        onResponseBody: () => {
          order.push(tag)
          s.responseBody = enc.encode(dec.decode(s.responseBody) + tag)
          return FilterStatus.Continue
        },
      }), Phase.ResponseBody | Phase.ResponseHeaders)
    const { r, rec } = run([mk('a'), mk('b')])
    r.start(true)
    r.responseHeaders(200, [], false)
    r.responseData(enc.encode('x'), true)
    expect(order).toEqual(['b', 'a'])
    expect(rec.respBody).toBe('xba')
  })

  it('a standalone stream records local replies and resumes', () => {
    const s = new PipelineStream()
    expect(s.sendLocalReply(999, 'x')).toBe(true)
    expect(s.localReply!.status).toBe(500)
    s.resume()
    expect(s.resumeCalls).toBe(1)
  })
})
