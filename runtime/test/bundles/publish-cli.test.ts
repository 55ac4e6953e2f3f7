// `omnirelay bundle publish` against a real registry on loopback: admitted, exists, each
// refusal printed as {code, step, message} with exit 1, usage errors exit 2.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRegistry, type RunningRegistry } from '@meshkit/registry'
import { bundleCommand } from '../../src/bundles/cli.ts'
import { sha256Digest } from '../../src/bundles/digest.ts'
import { buildBundle } from '../../src/bundles/build.ts'
import { newKey, signedWasmBundle, tempDir, wat } from './fixtures.ts'

const TOKEN = 'mkr_publish_cli_test_token_000001'

const FILTER = `(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap)) (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))`

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const code = await bundleCommand(args, { log: (s) => out.push(s), err: (s) => err.push(s) })
    return { code, out: out.join('\n'), err: err.join('\n') }
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  }
}

describe('omnirelay bundle publish', () => {
  let reg: RunningRegistry
  let regDir: { dir: string; cleanup: () => Promise<void> }
  let dir: { dir: string; cleanup: () => Promise<void> }
  const key = newKey('ed25519', 'pub-cli-1')
  const stranger = newKey('ed25519', 'stranger-1')

  beforeAll(async () => {
    regDir = await tempDir()
    dir = await tempDir()
    reg = await startRegistry({
      dataDir: regDir.dir,
      trustPolicy: { version: 1, publishers: [{ name: 'acme', keys: [{ keyId: key.keyId, publicKey: key.publicKeyPem }] }] },
      tokens: [{ id: 'ci', token: TOKEN, names: ['acme-*'], scopes: ['read', 'publish'] }],
      admission: { smoke: { runner: 'abi' } },
      admissionIsolation: 'inline',
    })
    const wasm = await wat(FILTER)
    await writeFile(join(dir.dir, 'good.orb'), await signedWasmBundle(key, wasm, { name: 'acme-pub', version: '1.0.0' }))
    await writeFile(join(dir.dir, 'stranger.orb'), await signedWasmBundle(stranger, wasm, { name: 'acme-pub', version: '2.0.0' }))
    await writeFile(join(dir.dir, 'm.wasm'), wasm)
    await writeFile(join(dir.dir, 'unsigned.orb'), (await buildBundle({ source: join(dir.dir, 'm.wasm'), name: 'acme-pub', version: '3.0.0' })).file)
  })
  afterAll(async () => {
    await reg?.close()
    await regDir?.cleanup()
    await dir?.cleanup()
  })

  it('prints the admitted digest, then "exists" for the same file', async () => {
    const file = join(dir.dir, 'good.orb')
    const digest = sha256Digest(await readFile(file))
    const first = await run(['publish', file, '--registry', reg.url, '--token', TOKEN])
    expect(first.code).toBe(0)
    expect(first.out).toContain('ADMITTED acme-pub@1.0.0')
    expect(first.out).toContain(`digest ${digest}`)
    // Token from the environment; JSON output.
    const again = await run(['publish', file, '--registry', reg.url, '--json'], { OMNIRELAY_REGISTRY_TOKEN: TOKEN })
    expect(again.code).toBe(0)
    expect(JSON.parse(again.out)).toMatchObject({ ok: true, result: 'exists', digest, signer: { keyId: key.keyId } })
  })

  it('prints a refusal as {code, step, message} and exits 1', async () => {
    const unsigned = await run(['publish', join(dir.dir, 'unsigned.orb'), '--registry', reg.url, '--token', TOKEN, '--json'])
    expect(unsigned.code).toBe(1)
    expect(JSON.parse(unsigned.out)).toMatchObject({ ok: false, code: 'signature_missing', step: 'signature', status: 422 })
    const untrusted = await run(['publish', join(dir.dir, 'stranger.orb'), '--registry', reg.url, '--token', TOKEN])
    expect(untrusted.code).toBe(1)
    expect(untrusted.err).toMatch(/^REFUSED \[unknown_signer\] at step signature /)
    const badToken = await run(['publish', join(dir.dir, 'good.orb'), '--registry', reg.url, '--token', 'mkr_wrong', '--json'])
    expect(badToken.code).toBe(1)
    expect(JSON.parse(badToken.out).status).toBe(401)
  })

  it('an unreachable registry is a failure with code unreachable, not a crash', async () => {
    const r = await run(['publish', join(dir.dir, 'good.orb'), '--registry', 'http://127.0.0.1:1', '--token', TOKEN, '--json'])
    expect(r.code).toBe(1)
    expect(JSON.parse(r.out)).toMatchObject({ ok: false, code: 'unreachable' })
  })

  it('usage: needs a registry and a token; listed in --help', async () => {
    expect((await run(['publish', join(dir.dir, 'good.orb'), '--token', TOKEN])).code).toBe(2)
    expect((await run(['publish', join(dir.dir, 'good.orb'), '--registry', reg.url], { OMNIRELAY_REGISTRY_TOKEN: '' })).code).toBe(2)
    expect((await run(['--help'])).out).toMatch(/publish <bundle>/)
    expect((await run(['publish', '--help'])).out).toContain('--registry URL')
  })
})
