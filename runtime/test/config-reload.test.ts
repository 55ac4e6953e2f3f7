import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError, startProxy, type ProxyHandle } from '../src/index.ts'
import { createLogger, silentLogger } from '../src/observability/logger.ts'
import { request, startUpstream, type Upstream } from './helpers/servers.ts'

function yaml(port: number, body: string, extra = ''): string {
  return `
accessLog: off
listeners: [{ name: main, address: 127.0.0.1, port: 0 }]
admin: { address: 127.0.0.1, port: 0 }
clusters: [{ name: app, endpoints: ["127.0.0.1:${port}"] }]
routes:
  - { name: direct, match: { path: /v }, directResponse: { status: 200, body: "${body}" } }
  - { name: app, match: { prefix: / }, cluster: app }
${extra}`
}

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('condition not reached')
}

describe('hot reload', () => {
  let dir: string
  let file: string
  let up: Upstream
  let proxy: ProxyHandle
  const lines: Record<string, unknown>[] = []
  const log = createLogger({ level: 'info', write: (l) => lines.push(JSON.parse(l)) })

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reload-'))
    file = join(dir, 'omnirelay.yaml')
    up = await startUpstream((req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('slow done'), 400)
      else res.end('fast')
    })
    await writeFile(file, yaml(up.port, 'one'))
    proxy = await startProxy(file, { watch: true, sighup: true, log })
  })
  afterEach(async () => {
    await proxy?.close()
    await up?.close()
    await rm(dir, { recursive: true, force: true })
  })

  const body = async () => (await request(proxy.address().port, { path: '/v' })).body

  it('applies a changed file with a higher epoch, also when written by rename', async () => {
    expect(proxy.epoch).toBe(1)
    expect(await body()).toBe('one')
    await writeFile(file, yaml(up.port, 'two'))
    await until(async () => (await body()) === 'two')
    expect(proxy.epoch).toBe(2)
    await writeFile(join(dir, 'tmp.yaml'), yaml(up.port, 'three'))
    await rename(join(dir, 'tmp.yaml'), file)
    await until(async () => (await body()) === 'three')
    expect(proxy.epoch).toBe(3)
  })

  it('keeps serving the old config when the new file is invalid, and logs why', async () => {
    await writeFile(file, yaml(up.port, 'bad', 'routes: [{ match: { prefix: / }, cluster: api }]'))
    await until(async () => lines.some((l) => l.msg === 'config rejected; the running config keeps serving'))
    expect(await body()).toBe('one')
    expect(proxy.epoch).toBe(1)
    await writeFile(file, '{{{ not yaml')
    await expect(proxy.reload()).rejects.toBeInstanceOf(ConfigError)
    expect(await body()).toBe('one')
    const admin = proxy.adminAddress()!
    const metrics = (await request(admin.port, { path: '/metrics' })).body
    expect(metrics).toMatch(/omnirelay_config_reload_failures_total [1-9]/)
    expect(metrics).toContain('omnirelay_config_epoch 1')
  })

  it('reloads on SIGHUP', async () => {
    await proxy.close()
    proxy = await startProxy(file, { watch: false, sighup: true, log })
    await writeFile(file, yaml(up.port, 'hup'))
    await new Promise((r) => setTimeout(r, 300))
    expect(await body()).toBe('one')
    process.kill(process.pid, 'SIGHUP')
    await until(async () => (await body()) === 'hup')
  })

  it('lets in-flight requests finish on the old epoch while new ones use the new one', async () => {
    const slow = request(proxy.address().port, { path: '/slow' })
    await new Promise((r) => setTimeout(r, 100))
    await proxy.reload(yaml(up.port, 'new') as unknown as object).catch(() => {}) // a string is not an object: rejected
    await writeFile(file, yaml(up.port, 'new'))
    expect(await proxy.reload()).toBeGreaterThan(1)
    expect(await body()).toBe('new')
    expect((await slow).body).toBe('slow done')
  })

  it('serves /config with the epoch and redacts secrets', async () => {
    const admin = proxy.adminAddress()!
    const cfg = JSON.parse((await request(admin.port, { path: '/config' })).body)
    expect(cfg.epoch).toBe(1)
    expect(cfg.config.routes[0].name).toBe('direct')
    expect((await request(admin.port, { path: '/ready' })).status).toBe(200)
    expect((await request(admin.port, { path: '/live' })).status).toBe(200)
  })
})

describe('startup failures', () => {
  it('rejects garbage config with ConfigError and binds nothing', async () => {
    await expect(startProxy({ listeners: 'nope' })).rejects.toMatchObject({ code: 'config_invalid' })
    await expect(startProxy('/nonexistent/omnirelay.yaml')).rejects.toMatchObject({ code: 'config_unreadable' })
  })

  it('names the listener whose TLS files cannot be read', async () => {
    await expect(
      startProxy(
        { accessLog: 'off', listeners: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: 0, tls: { cert: 'missing.pem', key: 'missing-key.pem' } }], routes: [{ match: {}, directResponse: { status: 200 } }] },
        { baseDir: tmpdir(), log: silentLogger },
      ),
    ).rejects.toMatchObject({ code: 'config_invalid', issues: [{ path: 'listeners[1].tls' }] })
  })

  it('reports a port in use', async () => {
    const s = http.createServer()
    await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))
    const port = (s.address() as { port: number }).port
    await expect(
      startProxy({ accessLog: 'off', listeners: [{ address: '127.0.0.1', port }], routes: [{ match: {}, directResponse: { status: 200 } }] }, { log: silentLogger }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' })
    s.close()
  })
})

describe('filters across reloads', () => {
  const COUNTER = `let n = 0
export function onRequestHeaders(req, ctx) { n++; req.headers.set('x-count', String(n)); return 0 }`

  it('reuses an unchanged filter (its state survives), rebuilds a changed one, and rejects a config whose filter does not build', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'reuse-'))
    await writeFile(join(dir, 'counter.js'), COUNTER)
    await writeFile(join(dir, 'broken.js'), 'export function onRequestHeaders( {')
    const up = await startUpstream((req, res) => res.end(String(req.headers['x-count'])))
    const cfg = (filterConfig: unknown, extraRoute = false, module = 'counter.js') => ({
      allowUnsigned: true,
      accessLog: 'off',
      listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
      filters: [{ name: 'counter', kind: 'quickjs', module, config: filterConfig, capabilities: ['headers:read', 'headers:write'] }],
      routes: [
        ...(extraRoute ? [{ name: 'extra', match: { path: '/extra' }, directResponse: { status: 204 } }] : []),
        { name: 'app', match: { prefix: '/' }, cluster: 'app', filters: ['counter'] },
      ],
    })
    const proxy = await startProxy(cfg({ v: 1 }), { baseDir: dir, log: silentLogger })
    try {
      const get = async () => (await request(proxy.address().port, { path: '/' })).body
      expect(await get()).toBe('1')
      expect(await get()).toBe('2')
      expect(await proxy.reload(cfg({ v: 1 }, true))).toBe(2)
      expect(await get()).toBe('3')
      expect(await proxy.reload(cfg({ v: 2 }, true))).toBe(3)
      expect(await get()).toBe('1')
      await expect(proxy.reload(cfg({ v: 2 }, true, 'broken.js'))).rejects.toMatchObject({ code: 'config_filter_build' })
      expect(proxy.epoch).toBe(3)
      expect(await get()).toBe('2')
    } finally {
      await proxy.close()
      await up.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
