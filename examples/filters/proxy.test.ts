/**
 * The vertical slice: AssemblyScript filters compiled by the SDK, loaded by the real proxy
 * (startProxy) as plain modules, running under fuel in front of a real upstream, with the
 * callout going to a real auth cluster. Everything on 127.0.0.1, port 0.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type ProxyHandle } from '../../runtime/src/index.ts'
import { createLogger } from '../../runtime/src/observability/logger.ts'
import { buildExamples, exampleModule } from './build.js'

let upstream: Server
let auth: Server
let proxy: ProxyHandle
let base = ''
const logs: string[] = []

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return (s.address() as AddressInfo).port
}

beforeAll(async () => {
  await buildExamples()
  // The app: echoes what it received.
  upstream = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', server: 'upstream' })
    res.end(JSON.stringify({ path: req.url, headers: req.headers }))
  })
  auth = createServer((req, res) => {
    if (req.headers.authorization === 'Bearer good') res.writeHead(200, { 'x-user-id': 'alice' }).end()
    else res.writeHead(req.headers.authorization === 'Bearer banned' ? 403 : 401).end()
  })
  const appPort = await listen(upstream)
  const authPort = await listen(auth)
  const quotas = { fuel: 2_000_000, memoryBytes: 1024 * 1024, timeoutMs: 100 }
  proxy = await startProxy(
    {
      allowUnsigned: true,
      listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
      admin: { address: '127.0.0.1', port: 0 },
      accessLog: 'off',
      clusters: [
        { name: 'app', endpoints: [`127.0.0.1:${appPort}`] },
        { name: 'auth', endpoints: [`127.0.0.1:${authPort}`] },
      ],
      routes: [
        { name: 'secure', match: { prefix: '/secure' }, cluster: 'app', filters: ['callout-auth'] },
        { name: 'limited', match: { prefix: '/limited' }, cluster: 'app', filters: ['rate-limit'] },
        { name: 'default', match: { prefix: '/' }, cluster: 'app', filters: ['path-deny', 'add-headers'] },
      ],
      filters: [
        {
          name: 'add-headers', kind: 'wasm', module: exampleModule('add-headers'), quotas,
          capabilities: ['headers:read', 'headers:write', 'log'],
          config: { request: { add: { 'x-added': 'yes' } }, response: { set: { server: 'omnirelay' } } },
        },
        {
          name: 'path-deny', kind: 'wasm', module: exampleModule('path-deny'), quotas,
          capabilities: ['headers:read', 'local-reply', 'metrics', 'log'],
          config: { prefixes: ['/admin'], message: 'nope' },
        },
        {
          name: 'rate-limit', kind: 'wasm', module: exampleModule('rate-limit'), quotas,
          capabilities: ['headers:read', 'shared-data', 'local-reply', 'metrics', 'log'],
          config: { capacity: 2, refillPerSecond: 0.001 },
        },
        {
          name: 'callout-auth', kind: 'wasm', module: exampleModule('callout-auth'), quotas,
          capabilities: ['headers:read', 'headers:write', 'http-callout', 'local-reply', 'log'],
          calloutClusters: ['auth'],
          config: { cluster: 'auth', path: '/check', copyHeaders: ['x-user-id'] },
        },
      ],
    },
    { log: createLogger({ level: 'warn', write: (l) => logs.push(l) }) },
  )
  base = `http://127.0.0.1:${proxy.address('main').port}`
})

afterAll(async () => {
  await proxy?.close()
  await Promise.all([upstream, auth].map((s) => new Promise((r) => s?.close(r))))
})

describe('example filters in the running proxy', () => {
  it('add-headers: the upstream sees the added header, the client the replaced one', async () => {
    const res = await fetch(`${base}/hello`)
    expect(res.status).toBe(200)
    expect(res.headers.get('server')).toBe('omnirelay')
    const seen = (await res.json()) as { headers: Record<string, string> }
    expect(seen.headers['x-added']).toBe('yes')
  })

  it('path-deny: a JSON 403 from the filter; the upstream never sees it', async () => {
    const res = await fetch(`${base}/admin/users`)
    expect(res.status).toBe(403)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(await res.json()).toEqual({ error: 'path_denied', message: 'nope', path: '/admin/users' })
  })

  it('rate-limit: 429 once the bucket is empty', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${base}/limited`)
      await res.arrayBuffer()
      statuses.push(res.status)
    }
    expect(statuses).toEqual([200, 200, 429, 429])
  })

  it('callout-auth: continues on 200 with the user header, 403/401 otherwise', async () => {
    const ok = await fetch(`${base}/secure/data`, { headers: { authorization: 'Bearer good' } })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { headers: Record<string, string> }).headers['x-user-id']).toBe('alice')
    const banned = await fetch(`${base}/secure/data`, { headers: { authorization: 'Bearer banned' } })
    expect(banned.status).toBe(403)
    await banned.arrayBuffer()
    const anonymous = await fetch(`${base}/secure/data`)
    expect(anonymous.status).toBe(401)
    expect(await anonymous.json()).toEqual({ error: 'unauthorized' })
  })

  it('meters every filter: fuel used per request is exported', async () => {
    const admin = proxy.adminAddress()!
    const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text()
    for (const name of ['add-headers', 'path-deny', 'rate-limit', 'callout-auth']) {
      expect(text).toMatch(new RegExp(`omnirelay_filter_fuel_used_count\\{filter="${name}"\\} [1-9]`))
    }
    expect(text).toContain('omnirelay_wasm_path_deny_denied_total{filter="path-deny"} 1')
  })
})
