import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from './helpers/servers.ts'

const bin = fileURLToPath(new URL('../bin/omnirelay.js', import.meta.url))
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000 })

describe('omnirelay CLI', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-'))
    await writeFile(
      join(dir, 'good.yaml'),
      'listeners: [{ name: main, address: 127.0.0.1, port: 0 }]\nroutes: [{ match: { prefix: / }, directResponse: { status: 200, body: "cli ok" } }]\n',
    )
    await writeFile(
      join(dir, 'unbuildable.yaml'),
      'allowUnsigned: true\nlisteners: [{ port: 0 }]\nfilters: [{ name: f, kind: quickjs, module: missing.js }]\nroutes: [{ match: {}, directResponse: { status: 200 }, filters: [f] }]\n',
    )
    // Valid, but its top-level code never ends: a start serves it failed, validate --build reports it.
    await writeFile(join(dir, 'spin.js'), 'while (true) {}\nexport function onRequestHeaders() {}\n')
    await writeFile(
      join(dir, 'never-starts.yaml'),
      'allowUnsigned: true\nlisteners: [{ port: 0 }]\nfilters: [{ name: spin, kind: quickjs, module: spin.js, quotas: { fuel: 100000000 } }]\nroutes: [{ match: {}, directResponse: { status: 200 }, filters: [spin] }]\n',
    )
    await writeFile(join(dir, 'bad.yaml'), 'listeners: [{ port: 1 }]\nroutes: [{ match: {}, cluster: web }, { match: {}, cluster: api }]\n')
  })
  afterAll(async () => rm(dir, { recursive: true, force: true }))

  it('--help explains run and validate', () => {
    const r = run('--help')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('omnirelay run --config FILE')
    expect(r.stdout).toContain('omnirelay validate FILE')
  })

  it('validate: 0 for a good file, 1 with every issue path for a bad one, 2 for bad usage', () => {
    expect(run('validate', join(dir, 'good.yaml')).status).toBe(0)
    const bad = run('validate', join(dir, 'bad.yaml'))
    expect(bad.status).toBe(1)
    expect(bad.stderr).toContain('routes[0].cluster: unknown cluster "web"')
    expect(bad.stderr).toContain('routes[1].cluster: unknown cluster "api"')
    expect(run('validate').status).toBe(2)
    const unbuildable = run('validate', join(dir, 'unbuildable.yaml'), '--build')
    expect(unbuildable.status).toBe(1)
    expect(unbuildable.stderr).toContain('filters[0]: filter "f" failed to build')
    const neverStarts = run('validate', join(dir, 'never-starts.yaml'), '--build')
    expect(neverStarts.status).toBe(1)
    expect(neverStarts.stderr).toContain('filter "spin" failed to build: fuel_exhausted')
    expect(run('frobnicate').status).toBe(2)
  })

  it('run serves, then drains and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [bin, 'run', '--config', join(dir, 'good.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    const started = await new Promise<string>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`not started: ${err}`)), 25_000)
      child.stderr.on('data', (d) => {
        err += d
        const m = /http:\/\/127\.0\.0\.1:(\d+)/.exec(err)
        if (m) {
          clearTimeout(t)
          ok(m[1]!)
        }
      })
    })
    const r = await request(Number(started), { path: '/' })
    expect([r.status, r.body]).toEqual([200, 'cli ok'])
    child.kill('SIGTERM')
    const code = await new Promise<number | null>((ok) => child.once('exit', ok))
    expect(code).toBe(0)
  }, 40_000)
})
