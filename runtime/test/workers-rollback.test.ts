/**
 * The worker pool applies a config all or nothing: when one worker refuses, the workers that
 * took it go back to the running config. The refusal is made worker-local for real: a trusted
 * native filter module that only the first process to load it gets past (it claims a file).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy } from '../src/index.ts'
import { silentLogger } from '../src/observability/logger.ts'
import { request, startUpstream, type Upstream } from './helpers/servers.ts'

const CLAIM = `import { openSync } from 'node:fs'
openSync(new URL('./claimed', import.meta.url), 'wx')
export function onRequestHeaders(req) { req.headers.set('x-v', '2') }
`

function config(upPort: number, withClaim: boolean) {
  return {
    workers: 2,
    allowUnsigned: true,
    allowNative: true,
    accessLog: 'off',
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    admin: { address: '127.0.0.1', port: 0 },
    clusters: [{ name: 'app', endpoints: [`127.0.0.1:${upPort}`] }],
    filters: withClaim ? [{ name: 'claim', kind: 'native', module: 'claim.mjs', capabilities: ['headers:read', 'headers:write'] }] : [],
    routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', ...(withClaim ? { filters: ['claim'] } : {}) }],
  }
}

const perWorker = (metrics: string, name: string) => [...metrics.matchAll(new RegExp(`^${name}\\{worker="(\\d+)"\\} (\\d+)$`, 'gm'))].map((m) => Number(m[2]))

describe('worker pool: all or nothing', () => {
  let dir: string
  let up: Upstream
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'workers-rollback-'))
    await writeFile(join(dir, 'claim.mjs'), CLAIM)
    up = await startUpstream()
  })
  afterAll(async () => {
    await up?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('a config one worker refuses is refused, and the worker that applied it goes back', async () => {
    const proxy = await startProxy(config(up.port, false), { baseDir: dir, log: silentLogger, workers: true })
    try {
      const port = proxy.address('main').port
      const admin = proxy.adminAddress()!.port
      await expect(proxy.reload(config(up.port, true))).rejects.toMatchObject({ code: 'config_filter_build' })
      expect(proxy.epoch).toBe(1)
      const m = (await request(admin, { path: '/metrics' })).body
      // Both on epoch 1; one applied epoch 2 and went back (two reloads), the other refused it.
      expect(perWorker(m, 'omnirelay_config_epoch')).toEqual([1, 1])
      expect(perWorker(m, 'omnirelay_config_reloads_total').sort()).toEqual([0, 2])
      expect(perWorker(m, 'omnirelay_config_reload_failures_total').sort()).toEqual([0, 1])
      for (let i = 0; i < 6; i++) {
        const r = await request(port, { path: `/r${i}` })
        expect(r.status).toBe(200)
        expect(JSON.parse(r.body).headers['x-v']).toBeUndefined()
      }
    } finally {
      await proxy.close()
    }
  }, 30_000)
})
