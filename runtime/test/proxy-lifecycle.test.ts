import { describe, expect, it } from 'vitest'
import { startProxy } from '../src/index.ts'
import { silentLogger } from '../src/observability/logger.ts'
import { request, startUpstream } from './helpers/servers.ts'

function base(upPort: number, extra: object = {}) {
  return {
    accessLog: 'off',
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    admin: { address: '127.0.0.1', port: 0 },
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upPort}`] }],
    routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app' }],
    ...extra,
  }
}

describe('graceful drain', () => {
  it('lets in-flight requests finish, refuses new connections, and ends within the deadline', async () => {
    const up = await startUpstream((_req, res) => setTimeout(() => res.end('finished'), 300))
    const proxy = await startProxy(base(up.port, { limits: { drainTimeoutMs: 2000 } }), { log: silentLogger })
    const port = proxy.address().port
    const inflight = request(port, { path: '/slow' })
    await new Promise((r) => setTimeout(r, 100))
    const t0 = Date.now()
    const closing = proxy.close()
    await new Promise((r) => setTimeout(r, 20))
    await expect(request(port, { path: '/new' })).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    expect((await inflight).body).toBe('finished')
    await closing
    expect(Date.now() - t0).toBeLessThan(2000)
    await up.close()
  })

  it('destroys what is still running at the deadline', async () => {
    const up = await startUpstream(() => {})
    const proxy = await startProxy(base(up.port, { limits: { drainTimeoutMs: 200 } }), { log: silentLogger })
    const stuck = request(proxy.address().port, { path: '/never' }).then(
      (r) => r.status,
      () => 'reset',
    )
    await new Promise((r) => setTimeout(r, 100))
    const t0 = Date.now()
    await proxy.close()
    expect(Date.now() - t0).toBeLessThan(1500)
    expect(await stuck).toBe('reset')
    await up.close()
  })
})

describe('admin and metrics', () => {
  it('exposes requests, response classes, latency per route and cluster, epoch and the unsigned flag', async () => {
    const up = await startUpstream()
    const proxy = await startProxy(base(up.port, { allowUnsigned: true }), { log: silentLogger })
    await request(proxy.address().port, { path: '/a' })
    await request(proxy.address().port, { path: '/b' })
    const m = (await request(proxy.adminAddress()!.port, { path: '/metrics' })).body
    expect(m).toContain('omnirelay_requests_total{listener="main",route="app"} 2')
    expect(m).toContain('omnirelay_responses_total{listener="main",route="app",class="2xx"} 2')
    expect(m).toMatch(/omnirelay_request_duration_seconds_count\{listener="main",route="app",cluster="app"\} 2/)
    expect(m).toContain('omnirelay_config_epoch 1')
    expect(m).toContain('omnirelay_allow_unsigned 1')
    expect(m).toMatch(/omnirelay_upstream_connections_active\{cluster="app"\} \d/)
    expect((await request(proxy.adminAddress()!.port, { path: '/nope' })).status).toBe(404)
    await proxy.close()
    await up.close()
  })

  it('writes one JSON access-log line per request with route, cluster, status, bytes, request id and epoch', async () => {
    const { mkdtemp, readFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'alog-'))
    const up = await startUpstream((_req, res) => res.end('12345'))
    const proxy = await startProxy(base(up.port, { accessLog: join(dir, 'access.log') }), { log: silentLogger })
    await request(proxy.address().port, { path: '/x?y=1', headers: { 'x-request-id': 'rid-1' } })
    await request(proxy.address().port, { path: '/z' })
    await proxy.close()
    const lines = (await readFile(join(dir, 'access.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatchObject({ requestId: 'rid-1', route: 'app', cluster: 'app', status: 200, bytesSent: 5, epoch: 1, path: '/x?y=1', aborted: false })
    expect(lines[0].durationMs).toBeGreaterThan(0)
    await up.close()
    await rm(dir, { recursive: true, force: true })
  })
})

describe('workers', () => {
  it('runs two workers behind one port, merges their metrics and reloads them together', async () => {
    const up = await startUpstream((_req, res) => res.end(String(process.pid)))
    const proxy = await startProxy(base(up.port, { workers: 2 }), { log: silentLogger, workers: true })
    try {
      const port = proxy.address('main').port
      for (let i = 0; i < 6; i++) expect((await request(port, { path: '/' })).status).toBe(200)
      const m = (await request(proxy.adminAddress()!.port, { path: '/metrics' })).body
      expect(m).toContain('omnirelay_workers 2')
      const perWorker = [...m.matchAll(/omnirelay_requests_total\{worker="(\d+)",listener="main",route="app"\} (\d+)/g)]
      expect(perWorker).toHaveLength(2)
      expect(perWorker.reduce((a, x) => a + Number(x[2]), 0)).toBe(6)
      expect(await proxy.reload(base(up.port, { workers: 2, routes: [{ name: 'd', match: {}, directResponse: { status: 202, body: 'v2' } }] }))).toBe(2)
      expect((await request(port, { path: '/' })).status).toBe(202)

      // A worker that dies is replaced, with the current config; the port keeps serving.
      const { execFileSync } = await import('node:child_process')
      const workers = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes('worker-entry'))
        .map((l) => Number(l.trim().split(/\s+/)[0]))
      expect(workers).toHaveLength(2)
      process.kill(workers[0]!, 'SIGKILL')
      const deadline = Date.now() + 30_000
      let replaced = false
      while (!replaced && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250))
        const now = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('worker-entry'))
        const m = (await request(proxy.adminAddress()!.port, { path: '/metrics' })).body
        replaced = now.length === 2 && !now.some((l) => l.trim().startsWith(`${workers[0]} `)) && m.includes('omnirelay_workers 2')
      }
      expect(replaced).toBe(true)
      for (let i = 0; i < 4; i++) expect((await request(port, { path: '/' })).status).toBe(202)
    } finally {
      await proxy.close()
      await up.close()
    }
  }, 60_000)
})
