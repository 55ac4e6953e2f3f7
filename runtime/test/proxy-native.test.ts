/** Native filters through the real proxy: they load only when the config enables them (allowNative). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy } from '../src/index.ts'
import { createLogger, silentLogger } from '../src/observability/logger.ts'
import { json, request, startUpstream, type Upstream } from './helpers/servers.ts'

const TAG = `export function onRequestHeaders(req) { req.headers.set('x-native', 'yes') }`

// source.address and destination.address are "host:port" (Envoy's form).
const ADDR = `export function onRequestHeaders(req, ctx) { req.headers.set('x-conn', ctx.property('source.address') + ' ' + ctx.property('destination.address')) }`

/** A GET whose reply also says which local port the client's connection had. */
function keepAliveRequest(agent: http.Agent, port: number): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders; localPort: number }> {
  return new Promise((ok, fail) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      const localPort = req.socket!.localPort!
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => ok({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), headers: res.headers, localPort }))
      res.on('error', fail)
    })
    req.on('error', fail)
  })
}

function config(port: number, allowNative?: boolean) {
  return {
    allowUnsigned: true,
    ...(allowNative === undefined ? {} : { allowNative }),
    accessLog: 'off',
    admin: { address: '127.0.0.1', port: 0 },
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${port}`] }],
    filters: [{ name: 'tag', kind: 'native', module: 'tag.mjs', capabilities: ['headers:read', 'headers:write'] }],
    routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'app', filters: ['tag'] }],
  }
}

describe('native filters in the proxy', () => {
  let dir: string
  let up: Upstream

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxy-native-'))
    await writeFile(join(dir, 'tag.mjs'), TAG)
    up = await startUpstream()
  })
  afterAll(async () => {
    await up?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('run with allowNative: true, announced in a warning and in /metrics', async () => {
    const lines: string[] = []
    const log = createLogger({ level: 'warn', write: (l) => lines.push(l) })
    const proxy = await startProxy(config(up.port, true), { baseDir: dir, log })
    try {
      const r = await request(proxy.address().port, { path: '/x' })
      expect(r.status).toBe(200)
      expect(json(r).headers['x-native']).toBe('yes')
      expect(lines.some((l) => l.includes('allowNative is ON'))).toBe(true)
      const metrics = await request(proxy.adminAddress()!.port, { path: '/metrics' })
      expect(metrics.body).toMatch(/^omnirelay_allow_native 1$/m)
    } finally {
      await proxy.close()
    }
  })

  it('see the addresses of the connection each request came on (read once per connection)', async () => {
    await writeFile(join(dir, 'addr.mjs'), ADDR)
    const cfg = { ...config(up.port, true), filters: [{ name: 'addr', kind: 'native', module: 'addr.mjs', capabilities: ['headers:read', 'headers:write', 'properties'] }] }
    cfg.routes = [{ name: 'all', match: { prefix: '/' }, cluster: 'app', filters: ['addr'] }]
    const proxy = await startProxy(cfg, { baseDir: dir, log: silentLogger })
    const port = proxy.address().port
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const a1 = await keepAliveRequest(agent, port)
      const a2 = await keepAliveRequest(agent, port)
      expect(a2.localPort).toBe(a1.localPort) // one connection for both
      const b = await keepAliveRequest(new http.Agent(), port) // another connection (the first is still open)
      expect(b.localPort).not.toBe(a1.localPort)
      // The upstream echoes the request headers it got.
      for (const r of [a1, a2, b]) expect(JSON.parse(r.body).headers['x-conn']).toBe(`127.0.0.1:${r.localPort} 127.0.0.1:${port}`)
    } finally {
      agent.destroy()
      await proxy.close()
    }
  })

  it('are refused without allowNative (the default)', async () => {
    const log = silentLogger
    await expect(startProxy(config(up.port), { baseDir: dir, log })).rejects.toMatchObject({ code: 'config_invalid' })
    await expect(startProxy(config(up.port, false), { baseDir: dir, log })).rejects.toMatchObject({ code: 'config_invalid' })
  })
})
