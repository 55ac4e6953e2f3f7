/** Every host enforces a bundle's effective quotas (artifact.quotas), not only what config wrote. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { host as nativeHost } from '../src/hosts/native/index.ts'
import type { NativeFilterFactory } from '../src/hosts/native/factory.ts'
import { host as quickjsHost } from '../src/hosts/quickjs/index.ts'
import type { QuickJsFilterFactory } from '../src/hosts/quickjs/factory.ts'
import { host as wasmHost } from '../src/hosts/wasm/index.ts'
import type { WasmFilterFactory } from '../src/hosts/wasm/factory.ts'
import { jsArtifact, makeDef, makeServices } from './quickjs/fixtures.ts'
import { makeArtifact, makeDef as makeWasmDef, makeServices as makeWasmServices } from './wasm/fixtures.ts'
import { headerFilter } from './wasm/modules.ts'
import { wat } from './wasm/wat.ts'

const dir = mkdtempSync(join(tmpdir(), 'effective-quotas-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('effective quotas from a bundle', () => {
  it('wasm: fuel, timeout and body limit come from artifact.quotas', async () => {
    const def = makeWasmDef('w', { quotas: {} })
    const artifact = { ...makeArtifact(await wat(headerFilter)), quotas: { fuel: 123_456, timeoutMs: 77, maxBodyBytes: 4096 } }
    const f = (await wasmHost.createFactory(def, artifact, makeWasmServices())) as WasmFilterFactory
    try {
      expect(f.fuelBudget).toBe(123_456)
      expect(f.env.timeoutMs).toBe(77)
      expect(f.env.maxBodyBytes).toBe(4096)
    } finally {
      await f.close()
    }
  })

  it('quickjs: fuel comes from artifact.quotas', async () => {
    const def = makeDef('q', 'quickjs', { quotas: {} })
    const artifact = { ...jsArtifact('export function onRequestHeaders() {}'), quotas: { fuel: 7_000_000_000 } }
    const f = (await quickjsHost.createFactory(def, artifact, makeServices())) as QuickJsFilterFactory
    try {
      expect(f.budget).toBe(7_000_000_000)
    } finally {
      await f.close()
    }
  })

  it('quickjs: a memory quota from the bundle is enforced like one from config', async () => {
    const def = makeDef('q2', 'quickjs', { quotas: {} })
    const artifact = { ...jsArtifact('export function onRequestHeaders() {}'), quotas: { memoryBytes: 1024 } }
    await expect(quickjsHost.createFactory(def, artifact, makeServices())).rejects.toMatchObject({ code: 'invalid_quota' })
  })

  it('native: the watchdog limit comes from artifact.quotas', async () => {
    const file = join(dir, 'n.mjs')
    const src = 'export function onRequestHeaders() {}'
    writeFileSync(file, src)
    const def = makeDef('n', 'native', { quotas: {} })
    const artifact = { ...jsArtifact(src, 'native', undefined, file), quotas: { timeoutMs: 1234 } }
    const f = (await nativeHost.createFactory(def, artifact, { ...makeServices(), allowNative: true })) as NativeFilterFactory
    expect(f.timeoutMs).toBe(1234)
    await f.close()
  })
})
