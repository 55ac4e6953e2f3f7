import { readFile, stat, writeFile } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { bundleCommand } from '../../src/bundles/cli.ts'
import { BundleErrorCode } from '../../src/bundles/errors.ts'
import { proxyWasm, tempDir } from './fixtures.ts'

const { dir, cleanup } = await tempDir()
afterAll(cleanup)

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const code = await bundleCommand(argv, { log: (s) => out.push(s), err: (s) => err.push(s) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

describe('omnirelay bundle', () => {
  it('prints help, and usage errors exit 2', async () => {
    const h = await run('--help')
    expect(h.code).toBe(0)
    expect(h.out).toContain('keygen')
    expect((await run('sign', '--help')).out).toContain('--key FILE')
    expect((await run('frobnicate')).code).toBe(2)
    expect((await run('verify', 'x.orb')).code).toBe(2)
    expect((await run('build', 'x', '--bogus')).code).toBe(2)
  })

  it('is reachable through the omnirelay binary', () => {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../../bin/omnirelay.js', import.meta.url)), 'bundle', '--help'], { encoding: 'utf8', timeout: 30_000 })
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('omnirelay bundle <command>')
  })

  it('keygen -> build (.wasm) -> sign -> verify -> inspect', async () => {
    const base = join(dir, 'pub')
    const k = await run('keygen', '--algorithm', 'ed25519', '--key-id', 'pub-1', '-o', base)
    expect(k.code).toBe(0)
    expect((await stat(`${base}.key.json`)).mode & 0o777).toBe(0o600)
    expect((await run('keygen', '--key-id', 'pub-1', '-o', base)).code).toBe(1) // no overwrite without --force

    await writeFile(join(dir, 'f.wasm'), await proxyWasm(['proxy_log', 'proxy_get_header_map_value']))
    const orb = join(dir, 'f.orb')
    const b = await run('build', join(dir, 'f.wasm'), '--name', 'hdr', '--version', '0.1.0', '--quota', 'fuel=100', '--max-quota', 'fuel=200', '-o', orb)
    expect(b.code, b.err).toBe(0)
    expect(b.out).toContain('imports need headers:read, log')

    const policy = join(dir, 'policy.yaml')
    await writeFile(policy, `version: 1\npublishers:\n  - name: pub\n    keys:\n      - keyId: pub-1\n        publicKeyFile: pub.pub.pem\n`)
    const unsigned = await run('verify', orb, '--policy', policy, '--json')
    expect(unsigned.code).toBe(1)
    expect(JSON.parse(unsigned.out).code).toBe(BundleErrorCode.SignatureMissing)

    expect((await run('sign', orb, '--key', `${base}.key.json`)).code).toBe(0)
    const v = await run('verify', orb, '--policy', policy, '--json')
    expect(v.code, v.err).toBe(0)
    const res = JSON.parse(v.out)
    expect(res).toMatchObject({ ok: true, name: 'hdr', version: '0.1.0', kind: 'wasm', signer: { keyId: 'pub-1', publisher: 'pub' } })
    expect((await run('verify', orb, '--policy', policy, '--digest', res.digest)).code).toBe(0)
    expect((await run('verify', orb, '--policy', policy, '--at', '1999-01-01T00:00:00Z')).code).toBe(0)

    const i = await run('inspect', orb, '--json')
    expect(JSON.parse(i.out)).toMatchObject({ signed: true, signer: { keyId: 'pub-1' }, manifest: { name: 'hdr', capabilities: ['headers:read', 'log'] } })
    const t = await run('inspect', orb)
    expect(t.out).toMatch(/capabilities\s+headers:read, log/)
  })

  it('builds and signs a JS (quickjs) filter in one step; refuses requested capabilities below the imports', async () => {
    const base = join(dir, 'js')
    await run('keygen', '--key-id', 'js-1', '-o', base)
    await writeFile(join(dir, 'f.js'), 'export function onRequestHeaders() { return 0 }\n')
    const orb = join(dir, 'js.orb')
    const b = await run('build', join(dir, 'f.js'), '--name', 'js-demo', '--version', '1.0.0', '--capabilities', 'headers:read', '--key', `${base}.key.json`, '-o', orb)
    expect(b.code, b.err).toBe(0)
    const m = JSON.parse((await run('inspect', orb, '--json')).out).manifest
    expect(m).toMatchObject({ kind: 'quickjs', abi: 'omnirelay-quickjs/1', entry: 'filter.js' })

    await writeFile(join(dir, 'g.wasm'), await proxyWasm(['proxy_log', 'proxy_http_call']))
    const liar = await run('build', join(dir, 'g.wasm'), '--name', 'g', '--version', '1.0.0', '--capabilities', 'log', '-o', join(dir, 'g.orb'))
    expect(liar.code).toBe(1)
    expect(liar.err).toContain(BundleErrorCode.CapabilitiesExceedManifest)
  })

  it('refuses to build a wasm module that is not proxy-wasm', async () => {
    await writeFile(join(dir, 'plain.wasm'), Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0))
    const r = await run('build', join(dir, 'plain.wasm'), '--name', 'p', '--version', '1.0.0', '-o', join(dir, 'p.orb'))
    expect(r.code).toBe(1)
    expect(r.err).toContain(BundleErrorCode.ModuleInvalid)
    expect(await readFile(join(dir, 'p.orb')).catch(() => 'absent')).toBe('absent')
  })
})
