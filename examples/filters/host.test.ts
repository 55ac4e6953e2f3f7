/**
 * The example filters, compiled from AssemblyScript, through the real Wasm host
 * (runtime/src/hosts/wasm: fuel-metered, memory-capped, capability-checked) and the real
 * HttpStream. Callouts go to a real HTTP server on 127.0.0.1.
 */
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSharedData, createSharedQueues } from '../../runtime/src/hosts/shared-state/index.ts'
import type { HostServices, HttpCallRequest } from '../../runtime/src/hosts/host-services.ts'
import { host } from '../../runtime/src/hosts/wasm/index.ts'
import { createLogger } from '../../runtime/src/observability/logger.ts'
import { MetricsRegistry } from '../../runtime/src/observability/metrics.ts'
import type { Capability, FilterDefinition, FilterFactory, LoadedArtifact } from '../../runtime/src/pipeline/filter.ts'
import { HeaderMap } from '../../runtime/src/pipeline/header-map.ts'
import { FilterStatus } from '../../runtime/src/pipeline/phases.ts'
import { PipelineStream } from '../../runtime/src/pipeline/stream.ts'
import { buildExamples } from './build.js'

let modules: Record<string, Uint8Array>
let auth: Server
let authPort = 0
const factories: FilterFactory[] = []

beforeAll(async () => {
  modules = await buildExamples()
  // The auth service: "Bearer good" -> 200 with x-user-id, "Bearer banned" -> 403, else 401.
  auth = createServer((req, res) => {
    const a = req.headers.authorization
    if (a === 'Bearer good') res.writeHead(200, { 'x-user-id': 'alice' }).end('ok')
    else if (a === 'Bearer banned') res.writeHead(403).end()
    else res.writeHead(401, { 'www-authenticate': 'Bearer' }).end()
  })
  await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r))
  authPort = (auth.address() as AddressInfo).port
})

afterAll(async () => {
  await Promise.all(factories.map((f) => f.close()))
  await new Promise((r) => auth.close(r))
})

interface Env {
  services: HostServices
  metrics: MetricsRegistry
  logs: string[]
}

function env(): Env {
  const metrics = new MetricsRegistry()
  const logs: string[] = []
  const services: HostServices = {
    log: createLogger({ level: 'debug', write: (l) => logs.push(l) }),
    metrics,
    sharedData: createSharedData(),
    sharedQueues: createSharedQueues(),
    epoch: 1,
    // Stands in for the proxy's cluster manager: the cluster "auth" is the local server.
    async httpCall(req: HttpCallRequest) {
      if (req.cluster !== 'auth') throw Object.assign(new Error('unknown cluster'), { code: 'unknown_cluster' })
      const h = new Map(req.headers)
      const res = await fetch(`http://127.0.0.1:${authPort}${h.get(':path')}`, {
        method: h.get(':method'),
        headers: req.headers.filter(([k]) => !k.startsWith(':')),
        signal: AbortSignal.timeout(req.timeoutMs),
      })
      const body = new Uint8Array(await res.arrayBuffer())
      return { headers: [[':status', String(res.status)], ...res.headers.entries()], body, trailers: [] }
    },
  }
  return { services, metrics, logs }
}

async function load(name: string, config: unknown, capabilities: Capability[], e = env(), extra: Partial<FilterDefinition> = {}): Promise<FilterFactory> {
  const bytes = modules[name]!
  const def: FilterDefinition = {
    name,
    kind: 'wasm',
    module: `${name}.wasm`,
    config,
    failurePolicy: 'fail-closed',
    isolation: 'shared',
    quotas: { fuel: 5_000_000, memoryBytes: 2 * 1024 * 1024, timeoutMs: 1000 },
    capabilities,
    ...extra,
  }
  const artifact: LoadedArtifact = {
    kind: 'wasm',
    bytes,
    digest: createHash('sha256').update(bytes).digest('hex'),
    capabilities,
    unsigned: true,
  }
  const f = await host.createFactory(def, artifact, e.services)
  factories.push(f)
  return f
}

function request(path: string, headers: [string, string][] = []): PipelineStream {
  return new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':method', 'GET'], [':path', path], [':authority', 'x'], ...headers]) })
}

describe('example filters in the Wasm host', () => {
  it('add-headers edits request and response headers, under fuel', async () => {
    const e = env()
    const f = await load('add-headers', { request: { add: { 'x-added': '1' }, remove: ['x-internal'] }, response: { set: { server: 'omnirelay' } } }, ['headers:read', 'headers:write', 'log'], e)
    const s = request('/', [['x-internal', 'secret']])
    const filter = f.createStream(s)
    expect(filter.onRequestHeaders!(true)).toBe(FilterStatus.Continue)
    expect(s.requestHeaders.get('x-added')).toBe('1')
    expect(s.requestHeaders.has('x-internal')).toBe(false)
    s.responseHeaders.set(':status', '200')
    s.responseHeaders.set('server', 'nginx')
    expect(filter.onResponseHeaders!(true)).toBe(FilterStatus.Continue)
    expect(s.responseHeaders.getAll('server')).toEqual(['omnirelay'])
    filter.onLog?.()
    filter.onDone?.()
    expect(e.metrics.render()).toMatch(/omnirelay_filter_fuel_used_count\{filter="add-headers"\} [1-9]/)
  })

  it('path-deny answers with its JSON error and counts it', async () => {
    const e = env()
    const f = await load('path-deny', { prefixes: ['/admin'], status: 403 }, ['headers:read', 'local-reply', 'metrics', 'log'], e)
    const denied = request('/admin/users')
    const filter = f.createStream(denied)
    filter.onRequestHeaders!(true)
    expect(denied.localReply?.status).toBe(403)
    expect(JSON.parse(new TextDecoder().decode(denied.localReply!.body))).toMatchObject({ error: 'path_denied', path: '/admin/users' })
    filter.onDone?.()
    const ok = request('/public')
    const filter2 = f.createStream(ok)
    expect(filter2.onRequestHeaders!(true)).toBe(FilterStatus.Continue)
    expect(ok.localReply).toBeUndefined()
    filter2.onDone?.()
    expect(e.metrics.render()).toContain('omnirelay_wasm_path_deny_denied_total{filter="path-deny"} 1')
  })

  it('path-deny is refused at load without the metrics grant (its imports name it)', async () => {
    await expect(load('path-deny', { prefixes: ['/a'] }, ['headers:read', 'local-reply', 'log'])).rejects.toMatchObject({ code: 'capability_denied' })
  })

  it('refuses a configuration the filter rejects, and logs why', async () => {
    const e = env()
    await expect(load('rate-limit', { capacity: 0 }, ['headers:read', 'shared-data', 'local-reply', 'metrics', 'log'], e)).rejects.toMatchObject({ code: 'configure_rejected' })
    expect(e.logs.some((l) => l.includes('rate-limit: capacity must be a number >= 1'))).toBe(true)
  })

  it('rate-limit keeps its bucket in shared data, across per-request instances', async () => {
    // Per-request isolation restores memory before every request: only shared data carries
    // the bucket from one request (and one pooled instance) to the next.
    const caps: Capability[] = ['headers:read', 'shared-data', 'local-reply', 'metrics', 'log']
    const f = await load('rate-limit', { capacity: 3, refillPerSecond: 0.001 }, caps, env(), { isolation: 'per-request' })
    // Two streams open at once run on two instances.
    const streams = [0, 1, 2, 3, 4].map(() => request('/'))
    const filters = streams.map((s) => f.createStream(s))
    filters.forEach((filter) => filter.onRequestHeaders!(true))
    filters.forEach((filter) => filter.onDone?.())
    expect(streams.map((s) => s.localReply?.status ?? 200)).toEqual([200, 200, 200, 429, 429])
    const reply = streams[3]!.localReply!
    expect(reply.headers).toContainEqual(['retry-after', '1000'])
  })

  it('callout-auth pauses, calls the auth cluster and continues or answers', async () => {
    const f = await load('callout-auth', { cluster: 'auth', path: '/check', copyHeaders: ['x-user-id'] }, ['headers:read', 'headers:write', 'http-callout', 'local-reply', 'log'], env(), { calloutClusters: ['auth'] })
    const outcome = async (authz: string | undefined) => {
      const s = request('/orders', authz ? [['authorization', authz]] : [])
      const filter = f.createStream(s)
      expect(filter.onRequestHeaders!(true)).toBe(FilterStatus.Pause)
      const deadline = Date.now() + 5000
      while (s.resumeCalls === 0 && s.localReply === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      filter.onDone?.()
      return { resumed: s.resumeCalls, status: s.localReply?.status, user: s.requestHeaders.get('x-user-id') }
    }
    expect(await outcome('Bearer good')).toEqual({ resumed: 1, status: undefined, user: 'alice' })
    expect(await outcome('Bearer banned')).toMatchObject({ resumed: 0, status: 403 })
    expect(await outcome(undefined)).toMatchObject({ resumed: 0, status: 401 })
  })
})
