/**
 * One request corpus through the three modes (edge, sidecar inbound, in-proc) with the same
 * routes and the same real QuickJS filter built through the normal path: the decisions
 * (status, who answered) and the headers the filters decide must be identical.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createInProcPipeline, startProxy, type InProcPipeline, type ProxyHandle } from '../src/index.ts'
import { silentLogger } from '../src/observability/logger.ts'
import { request, type Reply } from './helpers/servers.ts'

const FILTER = `
export function onRequestHeaders(req, ctx) {
  const key = req.headers.get('x-api-key')
  if (req.path.startsWith('/admin') && key !== 'k1') return ctx.reply(401, 'denied', { 'x-denied-by': 'tagger' })
  req.headers.set('x-tenant', key === 'k1' ? 'acme' : 'anon')
  req.headers.remove('x-api-key')
  return 0
}
export function onResponseHeaders(res, ctx) {
  res.headers.set('x-filtered', 'yes')
  res.headers.remove('x-internal')
  return 0
}
`

const WRAP = `
export function onResponseBody(res, ctx) {
  if (!ctx.endOfStream) return 1
  res.setBody('<' + res.text() + '>')
  return 0
}
`

/** The app: the same handler is the upstream (edge, sidecar) and the in-proc handler. */
const app: http.RequestListener = (req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    res.setHeader('x-internal', 'secret')
    res.setHeader('x-app', '1')
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ tenant: req.headers['x-tenant'] ?? null, key: req.headers['x-api-key'] ?? null, path: req.url, body: Buffer.concat(chunks).toString() }))
  })
}

function config(mode: string, appPort: number) {
  return {
    allowUnsigned: true,
    accessLog: 'off',
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0, mode }],
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${appPort}`] }],
    filters: [
      { name: 'tagger', kind: 'quickjs', module: 'tagger.js', capabilities: ['headers:read', 'headers:write', 'local-reply'] },
      { name: 'wrap', kind: 'quickjs', module: 'wrap.js', capabilities: ['headers:read', 'body:read', 'body:write'] },
    ],
    routes: [
      { name: 'health', match: { path: '/health' }, directResponse: { status: 200, body: 'ok' }, filters: ['tagger'] },
      { name: 'old', match: { prefix: '/old' }, redirect: { status: 308, path: '/new' } },
      { name: 'wrapped', match: { prefix: '/wrapped' }, cluster: 'app', filters: ['tagger', 'wrap'] },
      { name: 'app', match: { prefix: '/' }, cluster: 'app', filters: ['tagger'] },
    ],
  }
}

const corpus: { method?: string; path: string; headers?: Record<string, string>; body?: string }[] = [
  { path: '/' },
  { path: '/things?x=1', headers: { 'x-api-key': 'k1' } },
  { path: '/admin' },
  { path: '/admin/users', headers: { 'x-api-key': 'k1' } },
  { path: '/admin', headers: { 'x-api-key': 'wrong' } },
  { method: 'POST', path: '/echo', body: 'hello body', headers: { 'content-type': 'text/plain' } },
  { path: '/health' },
  { path: '/wrapped/x', headers: { 'x-api-key': 'k1' } },
  { path: '/old/page?q=2' },
]

function decision(r: Reply) {
  let app: unknown = null
  try {
    app = JSON.parse(r.body)
  } catch {
    app = r.body
  }
  const h = r.headers
  return { status: r.status, app, filtered: h['x-filtered'] ?? null, internal: h['x-internal'] ?? null, deniedBy: h['x-denied-by'] ?? null, xApp: h['x-app'] ?? null, location: h.location ?? null }
}

describe('edge, sidecar and in-proc make the same decisions', () => {
  let dir: string
  let upstream: http.Server
  let edge: ProxyHandle
  let sidecar: ProxyHandle
  let inproc: InProcPipeline
  let inprocServer: http.Server
  const ports: Record<string, number> = {}

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parity-'))
    await writeFile(join(dir, 'tagger.js'), FILTER)
    await writeFile(join(dir, 'wrap.js'), WRAP)
    upstream = http.createServer(app)
    await new Promise<void>((ok) => upstream.listen(0, '127.0.0.1', ok))
    const appPort = (upstream.address() as AddressInfo).port
    edge = await startProxy(config('edge', appPort), { baseDir: dir, log: silentLogger })
    sidecar = await startProxy(config('sidecar-inbound', appPort), { baseDir: dir, log: silentLogger })
    inproc = await createInProcPipeline(config('edge', appPort), { baseDir: dir, log: silentLogger })
    inprocServer = http.createServer(inproc.wrap(app))
    await new Promise<void>((ok) => inprocServer.listen(0, '127.0.0.1', ok))
    ports.edge = edge.address().port
    ports.sidecar = sidecar.address().port
    ports.inproc = (inprocServer.address() as AddressInfo).port
  })
  afterAll(async () => {
    await edge?.close()
    await sidecar?.close()
    await inproc?.close()
    inprocServer?.close()
    upstream?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('answers the corpus identically in all three modes', async () => {
    for (const req of corpus) {
      const headers = { host: 'parity.test', ...req.headers }
      const [e, s, i] = await Promise.all(['edge', 'sidecar', 'inproc'].map((m) => request(ports[m]!, { ...req, headers })))
      const de = decision(e!)
      expect(decision(s!), `${req.path} sidecar`).toEqual(de)
      expect(decision(i!), `${req.path} in-proc`).toEqual(de)
    }
  })

  it('the decisions are the ones the filter makes', async () => {
    const r = await request(ports.inproc!, { path: '/admin', headers: { host: 'parity.test' } })
    expect(decision(r)).toMatchObject({ status: 401, deniedBy: 'tagger', xApp: null })
    const wrapped = await request(ports.inproc!, { path: '/wrapped', headers: { host: 'parity.test' } })
    expect(wrapped.body).toMatch(/^<\{.*\}>$/)
    const ok = decision(await request(ports.edge!, { path: '/x', headers: { host: 'parity.test', 'x-api-key': 'k1' } }))
    expect(ok).toMatchObject({ status: 200, filtered: 'yes', internal: null, xApp: '1', app: { tenant: 'acme', key: null } })
  })
})
