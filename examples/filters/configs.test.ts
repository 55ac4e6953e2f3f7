import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfigFile } from '../../runtime/src/config/load.ts'
import { exampleFilters, exampleModule } from './build.js'

describe('the example filters\' sample configs', () => {
  it.each(exampleFilters())('%s/omnirelay.yaml is a valid proxy config pointing at the built module', async (name) => {
    const cfg = await loadConfigFile(join(import.meta.dirname, name, 'omnirelay.yaml'))
    const filter = cfg.filters.find((f) => f.name === name)!
    expect(filter.kind).toBe('wasm')
    expect(join(cfg.baseDir, filter.module!)).toBe(exampleModule(name))
    expect(filter.capabilities).toContain('log')
  })
})
