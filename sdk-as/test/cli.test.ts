import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfigFile } from '../../runtime/src/config/load.ts'
import { AbiHarness } from './abi-harness.ts'

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'omnirelay-as.js')
const tmp = mkdtempSync(join(tmpdir(), 'omnirelay-as-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

function run(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 })
}

describe('omnirelay-as', () => {
  it('scaffolds a project that builds into a working filter, outside any workspace', async () => {
    const created = run('new', 'hello-filter')
    expect(created.status).toBe(0)
    const dir = join(tmp, 'hello-filter')
    for (const f of ['package.json', 'asconfig.json', 'README.md', 'assembly/index.ts', '.gitignore', 'omnirelay.yaml']) expect(existsSync(join(dir, f))).toBe(true)
    expect(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name).toBe('hello-filter')

    // --debug skips the optimizer (release builds are covered by the examples' tests): seconds faster.
    const built = run('build', 'hello-filter', '--debug')
    expect(built.stderr).toBe('')
    expect(built.status).toBe(0)
    expect(built.stdout).toMatch(/built .*filter\.wasm: \d+ bytes/)

    const h = await AbiHarness.load(new Uint8Array(readFileSync(join(dir, 'build', 'filter.wasm'))))
    expect(h.configure({ header: 'X-Greeting', value: 'hi' })).toBe(true)
    h.requestHeaders(2, [[':path', '/']])
    h.responseHeaders(2, [[':status', '200']])
    expect(h.streams.get(2)!.response).toContainEqual(['x-greeting', 'hi'])
    // The scaffold's proxy config is valid and points at the module just built.
    const cfg = await loadConfigFile(join(dir, 'omnirelay.yaml'))
    expect(join(cfg.baseDir, cfg.filters[0]!.module!)).toBe(join(dir, 'build', 'filter.wasm'))
  })

  it('refuses to scaffold into a non-empty directory (exit 1) and reports compile errors (exit 1)', () => {
    const r = run('new', 'hello-filter')
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('SDK_AS_DIR_NOT_EMPTY')
    writeFileSync(join(tmp, 'hello-filter', 'assembly', 'index.ts'), 'export * from "@omnirelay/sdk-as/exports";\nconst x: i32 = "s";\n')
    const b = run('build', 'hello-filter')
    expect(b.status).toBe(1)
    expect(b.stderr).toContain('SDK_AS_COMPILE_FAILED')
  })

  it('prints usage and exits 2 on a bad command', () => {
    const r = run('frobnicate')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/^usage:/)
  })
})
