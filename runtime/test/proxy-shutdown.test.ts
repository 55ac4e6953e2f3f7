/** Shutdown is bounded by the drain deadline, even when an upstream stream never ends. */
import http from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy } from '../src/index.ts'
import { silentLogger } from '../src/observability/logger.ts'

// Calls out to a cluster whose response never ends, with a long callout timeout.
const CALLOUT = `export async function onRequestHeaders(req, ctx) {
  await ctx.httpCall('endless', { path: '/forever', timeoutMs: 60000 })
  return 0
}`

describe('shutdown', () => {
  let dir: string
  let endless: http.Server
  let endlessPort: number
  let started!: Promise<void>

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shutdown-'))
    await writeFile(join(dir, 'callout.js'), CALLOUT)
    let seen!: () => void
    started = new Promise<void>((ok) => (seen = ok))
    endless = http.createServer((_req, res) => {
      res.writeHead(200)
      const t = setInterval(() => res.write('tick\n'), 10)
      res.on('close', () => clearInterval(t))
      seen()
    })
    await new Promise<void>((ok) => endless.listen(0, '127.0.0.1', ok))
    endlessPort = (endless.address() as AddressInfo).port
  })
  afterAll(async () => {
    endless.closeAllConnections()
    await new Promise((ok) => endless.close(ok))
    await rm(dir, { recursive: true, force: true })
  })

  it('does not wait for an endless upstream response past drainTimeoutMs', async () => {
    const proxy = await startProxy(
      {
        allowUnsigned: true,
        accessLog: 'off',
        limits: { drainTimeoutMs: 100 },
        listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
        clusters: [
          { name: 'app', endpoints: [`127.0.0.1:${endlessPort}`] },
          { name: 'endless', endpoints: [`127.0.0.1:${endlessPort}`] },
        ],
        filters: [{ name: 'callout', kind: 'quickjs', module: 'callout.js', capabilities: ['headers:read', 'http-callout'], calloutClusters: ['endless'] }],
        routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'app', filters: ['callout'] }],
      },
      { baseDir: dir, log: silentLogger },
    )
    const req = http.get({ host: '127.0.0.1', port: proxy.address().port, path: '/', agent: false })
    req.on('error', () => {})
    await started
    const t0 = performance.now()
    const closed = await Promise.race([proxy.close().then(() => true), new Promise<boolean>((ok) => setTimeout(() => ok(false), 3000).unref())])
    expect(closed).toBe(true)
    expect(performance.now() - t0).toBeLessThan(3000)
    req.destroy()
  })
})
