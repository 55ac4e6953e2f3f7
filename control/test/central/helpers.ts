/**
 * Central + OmniRelay over xDS for tests: real gRPC on loopback, real SQLite, the example
 * bundles (signed by the build's dev key, examples/bundles/build) published to central's
 * embedded registry, a real upstream.
 */
import { readFileSync, existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateToken, publishBundle } from '@meshkit/registry'
import { silentLogger } from '@omnirelay/runtime/observability/logger.ts'
import { startXdsProxy, type XdsProxy, type XdsProxyOptions } from '@omnirelay/runtime/xds/apply/index.ts'
import { startCentral, type RunningCentral, type StartCentralOptions } from '../../src/central/index.ts'

const BUILD = join(dirname(fileURLToPath(import.meta.url)), '../../../examples/bundles/build')
export const TRUST_POLICY = join(BUILD, 'trust-policy.yaml')
export const TOKEN = generateToken()

export function exampleBundle(name: string): { file: string; digest: string; version: string } {
  const index = join(BUILD, 'bundles.json')
  if (!existsSync(index)) throw new Error('example bundles are not built: run `npm run build` (examples/bundles/build.js)')
  const b = (JSON.parse(readFileSync(index, 'utf8')) as Record<string, { path: string; digest: string; version: string }>)[name]
  if (!b) throw new Error(`no example bundle ${name}`)
  return { file: join(BUILD, b.path), digest: b.digest, version: b.version }
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshkit-central-'))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

export function centralAt(dataDir: string, extra: Partial<StartCentralOptions> = {}): Promise<RunningCentral> {
  return startCentral({
    dataDir,
    trustPolicy: TRUST_POLICY,
    tokens: [{ id: 'ci', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
    registry: { admissionIsolation: 'inline' },
    ...extra,
  })
}

export async function publish(central: RunningCentral, name: string): Promise<string> {
  const b = exampleBundle(name)
  await publishBundle(central.registryUrl, TOKEN, b.file)
  return `${name}@${b.version}`
}

export async function api(central: RunningCentral, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${central.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.status, body: await res.json() }
}

/** An upstream that answers with the request headers it received, as JSON. */
export async function echoUpstream(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ path: req.url, headers: req.headers })
    res.writeHead(200, { 'content-type': 'application/json', server: 'echo' })
    res.end(body)
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok())
        server.closeAllConnections()
      }),
  }
}

export function dataPlane(address: string, dataDir: string, id = 'edge-1', extra: Partial<XdsProxyOptions> = {}): Promise<XdsProxy> {
  return startXdsProxy({
    bootstrap: { address, node: { id, metadata: { role: 'edge' } }, protocol: 'delta', capabilities: {} },
    dataDir,
    local: { trustPolicy: TRUST_POLICY, accessLog: 'off', logLevel: 'error', admin: { address: '127.0.0.1', port: 0 } },
    log: silentLogger,
    backoff: { initialMs: 50, maxMs: 200, jitter: 0 },
    ...extra,
  })
}

export async function get(port: number, path = '/'): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`)
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, body }
}

/** Polls until `check` returns a value (bounded). */
export async function until<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v as T
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** The edge group: one listener, the echo upstream, an optional chain on the route. */
export function edgeConfig(upstreamPort: number, chain?: { bundle: string; config?: unknown; quotas?: unknown }, listenerPort = 0) {
  return {
    listeners: [{ name: 'edge', address: '127.0.0.1', port: listenerPort }],
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upstreamPort}`] }],
    routes: [
      { name: 'hello', match: { path: '/hello' }, directResponse: { status: 200, body: 'hi' } },
      { name: 'app', match: { prefix: '/' }, cluster: 'app', ...(chain ? { filterChain: 'main' } : {}) },
    ],
    filterChains: chain
      ? [{ name: 'main', filters: [{ name: 'headers', bundle: chain.bundle, config: chain.config ?? {}, quotas: chain.quotas ?? { fuel: 2_000_000, memoryBytes: 1 << 20, timeoutMs: 50 } }] }]
      : [],
  }
}

export const ADD_HEADERS_CONFIG = { request: { add: { 'x-added-by': 'omnirelay' } }, response: { add: { 'x-served-by': 'omnirelay' } } }

/** Waits until central's fleet view shows `id` connected, ACKed at `epoch`. */
export async function converged(central: RunningCentral, id: string, epoch: number): Promise<void> {
  await until(
    async () => {
      const r = await api(central, 'GET', `/v1/dataplanes/${encodeURIComponent(id)}`)
      return r.status === 200 && r.body.connected && r.body.epoch === epoch && r.body.state === 'ack' ? true : undefined
    },
    5000,
    `${id} at epoch ${epoch} in the fleet view`,
  )
}
