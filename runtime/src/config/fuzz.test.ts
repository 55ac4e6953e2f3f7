import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ConfigError } from './errors.ts'
import { parseConfig } from './load.ts'
import { validateConfig } from './validate.ts'

describe('config parsing never fails with anything but ConfigError', () => {
  it('on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (doc) => {
        try {
          validateConfig(doc, '/tmp')
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError)
          expect((e as ConfigError).issues.length).toBeGreaterThan(0)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parseConfig(text, '/tmp')
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('on configs with shuffled-in wrong types', () => {
    const base = { listeners: [{ port: 1 }], clusters: [{ name: 'c', endpoints: ['h:1'] }], routes: [{ match: {}, cluster: 'c' }] }
    fc.assert(
      fc.property(fc.constantFrom('listeners', 'clusters', 'routes', 'limits', 'admin', 'filters', 'workers'), fc.anything(), (key, junk) => {
        try {
          validateConfig({ ...base, [key]: junk }, '/tmp')
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError)
        }
      }),
      { numRuns: 500 },
    )
  })
})
