import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { wat } from '../../test/wasm/wat.ts'
import { FUEL_EXPORT, INSTRUMENTATION_VERSION, instrumentFuel } from './fuel.ts'
import { ModuleCache } from './module-cache.ts'

// Two internal mutable globals: per-request isolation must snapshot both.
const SRC = `(module
  (global $a (mut i32) (i32.const 0))
  (global $b (mut i64) (i64.const 0))
  (func (export "bump") (global.set $a (i32.add (global.get $a) (i32.const 1)))))`

let dir: string
let bytes: Uint8Array
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'module-cache-'))
  bytes = await wat(SRC)
})
afterAll(() => rm(dir, { recursive: true, force: true }))

async function onlyFile(): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.wasm'))
  expect(files).toHaveLength(1)
  return join(dir, files[0]!)
}

describe('ModuleCache on disk', () => {
  it('keys files by the pass version and reuses a valid file in another process', async () => {
    const first = await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })
    expect(first.mutableGlobals).toHaveLength(2)
    expect(await onlyFile()).toMatch(new RegExp(`-v${INSTRUMENTATION_VERSION}\\.wasm$`))
    const again = await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })
    expect(again.mutableGlobals).toEqual(first.mutableGlobals)
    expect(again.exports.map((e) => e.name)).toContain(FUEL_EXPORT)
  })

  it('rebuilds when the cached file is output of another pass (per-request globals missing)', async () => {
    const file = await onlyFile()
    // What an older pass (or other options) left under the same name: no exported globals.
    await writeFile(file, (await instrumentFuel(bytes, { meter: true, exportMutableGlobals: false })).bytes)
    const p = await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })
    expect(p.mutableGlobals).toHaveLength(2)
    expect(p.prepareMs).toBeGreaterThan(0)
    // and the file was replaced with valid output
    const next = await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })
    expect(next.mutableGlobals).toHaveLength(2)
  })

  it('rebuilds when the cached file is an unmarked (pre-marker) module or garbage', async () => {
    const file = await onlyFile()
    await writeFile(file, bytes)
    expect((await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })).exports.map((e) => e.name)).toContain(FUEL_EXPORT)
    await writeFile(file, 'not wasm')
    expect((await new ModuleCache({ diskDir: dir }).prepare(bytes, { fuel: true, snapshot: true })).mutableGlobals).toHaveLength(2)
  })
})
