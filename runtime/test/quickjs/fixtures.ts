/**
 * Fixtures for the QuickJS and native host tests: real services (metrics registry, shared
 * data, a logger whose lines are captured), filter definitions, artifacts and real
 * `PipelineStream`s. Callouts go to a real cluster (an upstream on 127.0.0.1:0) through the
 * real cluster manager when a test needs them.
 */
import { createHash } from 'node:crypto'
import type { HostServices } from '../../src/hosts/host-services.ts'
import { createSharedData, createSharedQueues } from '../../src/hosts/shared-state/index.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { MetricsRegistry } from '../../src/observability/metrics.ts'
import { CAPABILITIES, type Capability, type FilterDefinition, type FilterFactory, type LoadedArtifact, type StreamFilter } from '../../src/pipeline/filter.ts'
import { HeaderMap } from '../../src/pipeline/header-map.ts'
import { FilterStats, makeChain, type ChainEntry } from '../../src/pipeline/chain.ts'
import { PipelineRun, type PipelineSink } from '../../src/pipeline/executor.ts'
import type { LocalReply } from '../../src/pipeline/local-reply.ts'
import { PipelineStream, createStreamInfo } from '../../src/pipeline/stream.ts'
import { createClusterManager, createHttpCaller, type ClusterManager } from '../../src/upstream/index.ts'

export interface TestServices extends HostServices {
  lines: Record<string, unknown>[]
  clusters?: ClusterManager
}

/** Services with captured log lines; `upstreamPort` wires a real cluster named `auth`. */
export function makeServices(upstreamPort?: number): TestServices {
  const lines: Record<string, unknown>[] = []
  const log = createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l)) })
  const metrics = new MetricsRegistry()
  const clusters =
    upstreamPort === undefined
      ? undefined
      : createClusterManager(
          [
            {
              name: 'auth',
              endpoints: [{ host: '127.0.0.1', port: upstreamPort }],
              loadBalancing: 'round-robin',
              http2: false,
              maxConnectionsPerEndpoint: 4,
              connectTimeoutMs: 1000,
              circuitBreaker: { maxConcurrent: 100, maxPending: 100 },
            },
          ],
          { log, metrics },
        )
  return {
    lines,
    clusters,
    log,
    metrics,
    httpCall: clusters ? createHttpCaller(clusters) : () => Promise.reject(Object.assign(new Error('no clusters'), { code: 'no_cluster' })),
    sharedData: createSharedData(),
    sharedQueues: createSharedQueues(),
    epoch: 3,
  }
}

export function makeDef(name: string, kind: FilterDefinition['kind'], over: Partial<FilterDefinition> = {}): FilterDefinition {
  return {
    name,
    kind,
    module: `${name}.js`,
    failurePolicy: 'fail-closed',
    isolation: 'shared',
    quotas: {},
    capabilities: [...CAPABILITIES],
    ...over,
  }
}

export function jsArtifact(source: string, kind: FilterDefinition['kind'] = 'quickjs', capabilities: Capability[] = [...CAPABILITIES], entry?: string): LoadedArtifact {
  const bytes = new TextEncoder().encode(source)
  return { kind, bytes, digest: createHash('sha256').update(bytes).digest('hex'), capabilities, unsigned: true, entry }
}

export function makeStream(path = '/', extra: [string, string][] = [], method = 'GET'): PipelineStream {
  const headers = HeaderMap.fromPairs([[':method', method], [':path', path], [':authority', 'example.com'], [':scheme', 'http'], ...extra])
  return new PipelineStream({ requestHeaders: headers, info: createStreamInfo({ requestId: 'req-1', epoch: 3 }) })
}

/** Runs the request-headers hook of a fresh stream, catching a FilterError; `onDone` always runs. */
export function requestHeaders(factory: FilterFactory, stream = makeStream()): { stream: PipelineStream; status?: number; error?: unknown; filter: StreamFilter } {
  const filter = factory.createStream(stream)
  try {
    const status = filter.onRequestHeaders?.(true)
    return { stream, status, filter }
  } catch (error) {
    return { stream, error, filter }
  } finally {
    filter.onDone?.()
  }
}

/** The value of one series in Prometheus text, or undefined. */
export function metricValue(metrics: MetricsRegistry, series: string): number | undefined {
  for (const line of metrics.render().split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1))
  }
  return undefined
}


/** What a request driven through the real pipeline executor ended with. */
export interface Outcome {
  /** 'upstream' when the request went on, else the local reply's status. */
  status: number | 'upstream'
  reply?: LocalReply
  body?: string
  stream: PipelineStream
  run: PipelineRun
  events: string[]
}

const dec = new TextDecoder()

/**
 * Drives one request through the real executor with `factories` as the chain: request
 * headers (end of stream), then — if it went upstream and `response` is given — response
 * headers, then finish. Returns once the request phase settled (pass `waitMs` for callouts).
 */
export async function drive(
  factories: FilterFactory[],
  opts: { path?: string; method?: string; headers?: [string, string][]; response?: { status: number; headers: string[] }; waitMs?: number; metrics?: MetricsRegistry } = {},
): Promise<Outcome> {
  const metrics = opts.metrics ?? new MetricsRegistry()
  const entries: ChainEntry[] = factories.map((f) => ({
    factory: f,
    name: f.name,
    phases: f.phases,
    failurePolicy: f.failurePolicy,
    maxBodyBytes: 1 << 20,
    stats: new FilterStats(metrics, f.name),
  }))
  const events: string[] = []
  let upstream: () => void = () => {}
  const went = new Promise<void>((ok) => (upstream = ok))
  let reply: LocalReply | undefined
  const sink: PipelineSink = {
    requestHeadersDone: () => {
      events.push('upstream')
      upstream()
    },
    requestData: () => {},
    requestTrailersDone: () => {},
    responseHeadersDone: () => events.push('resp-head'),
    responseData: () => {},
    responseTrailersDone: () => {},
    localReply: (r) => {
      reply = r
      events.push(`reply:${r.status}`)
      upstream()
    },
  }
  const stream = makeStream(opts.path ?? '/', opts.headers ?? [], opts.method ?? 'GET')
  const run = new PipelineRun(makeChain(entries), stream, sink, { maxBodyBytes: 1 << 20, filterPauseTimeoutMs: 5000 })
  run.start(true)
  if (opts.waitMs) await Promise.race([went, new Promise((r) => setTimeout(r, opts.waitMs))])
  if (opts.response && !reply) run.responseHeaders(opts.response.status, opts.response.headers.slice(), true)
  run.finish()
  return { status: reply ? reply.status : 'upstream', reply, body: reply ? dec.decode(reply.body) : undefined, stream, run, events }
}
