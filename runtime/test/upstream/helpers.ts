import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { afterEach } from 'vitest'
import { silentLogger } from '../../src/observability/logger.ts'
import { MetricsRegistry } from '../../src/observability/metrics.ts'
import { createClusterManager } from '../../src/upstream/index.ts'
import type { ClusterConfig, ClusterManager, RoutePolicy, UpstreamRequest, UpstreamResponse } from '../../src/upstream/types.ts'

export interface TestServer {
  server: http.Server
  port: number
  /** Requests handled so far. */
  hits: number
  /** Sockets that carried at least one request and are still open. */
  busySockets: Set<import('node:net').Socket>
  close(): Promise<void>
}

/** A real node:http server on 127.0.0.1:0; `handler` may be swapped later. */
export async function startServer(handler: http.RequestListener): Promise<TestServer & { handler: http.RequestListener }> {
  const t = { hits: 0, handler, busySockets: new Set() } as TestServer & { handler: http.RequestListener }
  const server = http.createServer((req, res) => {
    t.hits++
    if (!t.busySockets.has(req.socket)) {
      t.busySockets.add(req.socket)
      req.socket.once('close', () => t.busySockets.delete(req.socket))
    }
    t.handler(req, res)
  })
  server.keepAliveTimeout = 10_000
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.server = server
  t.port = (server.address() as AddressInfo).port
  t.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections()
      server.close(() => r())
    })
  return t
}

/** The servers and cluster manager of the running test; `upstreamFixture` closes them after it. */
export interface UpstreamFixture {
  /** Push the test's servers here. */
  servers: TestServer[]
  /** Assign the test's cluster manager here. */
  clusters: ClusterManager | undefined
}

/**
 * Call in a `describe`: registers an `afterEach` that closes the test's cluster manager, then
 * its servers.
 *
 * @example
 * const fx = upstreamFixture()
 * it('...', async () => {
 *   const s = await startServer((_q, r) => r.end('ok'))
 *   fx.servers.push(s)
 *   fx.clusters = manager([clusterConfig('api', [s.port])]).clusters
 * })
 */
export function upstreamFixture(): UpstreamFixture {
  const f: UpstreamFixture = { servers: [], clusters: undefined }
  afterEach(async () => {
    await f.clusters?.close()
    f.clusters = undefined
    await Promise.all(f.servers.splice(0).map((s) => s.close()))
  })
  return f
}

/** A port nothing listens on (bound then released). */
export async function deadPort(): Promise<number> {
  const s = http.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

export function clusterConfig(name: string, ports: number[], over: Partial<ClusterConfig> = {}): ClusterConfig {
  return {
    name,
    endpoints: ports.map((port) => ({ host: '127.0.0.1', port })),
    loadBalancing: 'round-robin',
    http2: false,
    maxConnectionsPerEndpoint: 8,
    connectTimeoutMs: 1_000,
    circuitBreaker: { maxConcurrent: 1_000, maxPending: 1_000 },
    ...over,
  }
}

export function manager(configs: ClusterConfig[]): { clusters: ClusterManager; metrics: MetricsRegistry } {
  const metrics = new MetricsRegistry()
  return { clusters: createClusterManager(configs, { log: silentLogger, metrics }), metrics }
}

export const NO_TIMEOUTS: RoutePolicy = { requestTimeoutMs: 0, idleTimeoutMs: 0 }

export function get(path = '/', policy: RoutePolicy = NO_TIMEOUTS, extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', path, headers: ['host', 'test.local'], body: null, policy, ...extra }
}

export async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString()
}

/** Awaits the whole response; returns status, body and endpoint. */
export async function fetchText(res: Promise<UpstreamResponse>): Promise<{ status: number; text: string; endpoint: string; res: UpstreamResponse }> {
  const r = await res
  return { status: r.statusCode, text: await readAll(r.body), endpoint: r.endpoint, res: r }
}

/** The upstream error code of a rejected promise (fails the test when it resolves). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    const r = (await p) as UpstreamResponse | undefined
    if (r && r.body) await readAll(r.body)
  } catch (err) {
    return String((err as { code?: unknown }).code)
  }
  throw new Error('expected a rejection')
}

export function header(flat: readonly string[], name: string): string | undefined {
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === name) return flat[i + 1]
  return undefined
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Polls `cond` every 10 ms, at most `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 3_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time')
    await sleep(10)
  }
}

export function metricValue(metrics: MetricsRegistry, line: string): number {
  for (const l of metrics.render().split('\n')) {
    if (l.startsWith(line + ' ')) return Number(l.slice(line.length + 1))
  }
  return 0
}

/** gRPC length-prefixed message framing. */
export function grpcFrame(msg: string): Buffer {
  const body = Buffer.from(msg)
  const out = Buffer.alloc(5 + body.length)
  out.writeUInt32BE(body.length, 1)
  body.copy(out, 5)
  return out
}
