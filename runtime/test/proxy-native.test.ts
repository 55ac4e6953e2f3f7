/** Native filters through the real proxy: they load only when the config enables them (allowNative). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy } from '../src/index.ts'
import { createLogger, silentLogger } from '../src/observability/logger.ts'
import { json, request, startUpstream, type Upstream } from './helpers/servers.ts'

const TAG = `export function onRequestHeaders(req) { req.headers.set('x-native', 'yes') }`

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

  it('are refused without allowNative (the default)', async () => {
    const log = silentLogger
    await expect(startProxy(config(up.port), { baseDir: dir, log })).rejects.toMatchObject({ code: 'config_invalid' })
    await expect(startProxy(config(up.port, false), { baseDir: dir, log })).rejects.toMatchObject({ code: 'config_invalid' })
  })
})
