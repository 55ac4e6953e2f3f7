import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { compareSemver } from './metadata.ts'

describe('compareSemver', () => {
  it('orders by semver precedence', () => {
    const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.2.0', '1.10.0', '2.0.0']
    for (let i = 0; i + 1 < ordered.length; i++) {
      expect(compareSemver(ordered[i] as string, ordered[i + 1] as string), `${ordered[i]} < ${ordered[i + 1]}`).toBeLessThan(0)
      expect(compareSemver(ordered[i + 1] as string, ordered[i] as string)).toBeGreaterThan(0)
    }
    expect(compareSemver('1.0.0+build.1', '1.0.0+build.2')).toBe(0)
  })

  it('is antisymmetric on generated versions', () => {
    const part = fc.integer({ min: 0, max: 30 })
    const pre = fc.option(fc.array(fc.oneof(fc.integer({ min: 0, max: 20 }).map(String), fc.constantFrom('alpha', 'beta', 'rc')), { minLength: 1, maxLength: 3 }))
    const version = fc.tuple(part, part, part, pre).map(([a, b, c, p]) => `${a}.${b}.${c}${p ? '-' + p.join('.') : ''}`)
    fc.assert(fc.property(version, version, (x, y) => Math.sign(compareSemver(x, y)) === -Math.sign(compareSemver(y, x))))
  })
})
