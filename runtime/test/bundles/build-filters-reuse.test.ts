/** Factories are reused across epochs only when nothing they were built from changed, the bundle's manifest included. */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { validateConfig } from '../../src/config/validate.ts'
import type { WasmFilterFactory } from '../../src/hosts/wasm/factory.ts'
import { buildFilters, retiredFactories, type BuiltFilters } from '../../src/pipeline/build-filters.ts'
import { makeServices } from '../wasm/fixtures.ts'
import { newKey, policyDoc, proxyWasm, signedWasmBundle, tempDir } from './fixtures.ts'

const { dir, cleanup } = await tempDir()
const built: BuiltFilters[] = []
afterAll(async () => {
  for (const b of built) for (const f of b.values()) await f.entry.factory.close()
  await cleanup()
})

const key = newKey('ecdsa-p256', 'acme-1')
const wasm = await proxyWasm(['proxy_log', 'proxy_get_header_map_value'])
await writeFile(join(dir, 'policy.yaml'), JSON.stringify(policyDoc([{ key }])))

// An unpinned bundle path (development): the file can be replaced under the same config.
const cfg = validateConfig(
  {
    allowUnsigned: true,
    trustPolicy: 'policy.yaml',
    listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
    filters: [{ name: 'demo', kind: 'wasm', bundle: { path: 'demo.orb' }, capabilities: ['headers:read', 'headers:write', 'log'] }],
  },
  dir,
)

async function publish(fuel: number, capabilities: ('headers:read' | 'headers:write' | 'log')[]): Promise<void> {
  await writeFile(join(dir, 'demo.orb'), await signedWasmBundle(key, wasm, { name: 'demo', capabilities, quotas: { default: { fuel }, maximum: { fuel: 1e9 } } }))
}

async function build(previous?: BuiltFilters): Promise<BuiltFilters> {
  const b = await buildFilters(cfg, makeServices(), previous)
  built.push(b)
  return b
}

describe('buildFilters reuse across epochs', () => {
  it('keeps the factory when config and bundle are unchanged', async () => {
    await publish(100_000, ['headers:read', 'log'])
    const a = await build()
    const b = await build(a)
    expect(b.get('demo')!.entry.factory).toBe(a.get('demo')!.entry.factory)
    expect(retiredFactories(a, b)).toEqual([])
  })

  it('rebuilds when a re-signed bundle keeps the module but changes the default quotas', async () => {
    await publish(100_000, ['headers:read', 'log'])
    const a = await build()
    await publish(200_000, ['headers:read', 'log'])
    const b = await build(a)
    const f = b.get('demo')!.entry.factory as WasmFilterFactory
    expect(f).not.toBe(a.get('demo')!.entry.factory)
    expect(f.fuelBudget).toBe(200_000)
    expect(retiredFactories(a, b)).toEqual([a.get('demo')!.entry.factory])
  })

  it('rebuilds when a re-signed bundle changes the capabilities it requests', async () => {
    await publish(100_000, ['headers:read', 'log'])
    const a = await build()
    await publish(100_000, ['headers:read', 'headers:write', 'log'])
    const b = await build(a)
    expect(b.get('demo')!.entry.factory).not.toBe(a.get('demo')!.entry.factory)
  })
})
