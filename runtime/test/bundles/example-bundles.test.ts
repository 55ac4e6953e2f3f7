// The example filters (real AssemblyScript modules compiled by `npm run build`) packed, signed
// and verified by examples/bundles/build.js load through loadArtifact against the trust
// policy it wrote. Skipped before the first build (no compiled examples yet).
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { loadArtifact } from '../../src/bundles/load-artifact.ts'
import type { Capability, FilterDefinition } from '../../src/pipeline/filter.ts'

const filtersJson = fileURLToPath(new URL('../../../examples/bundles/build/filters.json', import.meta.url))
const built = existsSync(filtersJson)

describe.skipIf(!built)('example bundles', () => {
  it('every example bundle verifies and loads with its digest pinned', async () => {
    const { trustPolicy, filters } = JSON.parse(readFileSync(filtersJson, 'utf8')) as {
      trustPolicy: string
      filters: { name: string; kind: FilterDefinition['kind']; bundle: { path: string; digest: string }; capabilities: Capability[] }[]
    }
    expect(filters.length).toBeGreaterThan(0)
    for (const f of filters) {
      const a = await loadArtifact(
        { ...f, failurePolicy: 'fail-closed', isolation: 'shared', quotas: {} },
        { baseDir: '/', allowUnsigned: false, trustPolicy },
      )
      expect(a.unsigned).toBe(false)
      expect(a.bundle?.digest).toBe(f.bundle.digest)
      expect(a.bundle?.signer).toBe('examples-dev')
    }
  })
})
