import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { HeaderMap } from '../pipeline/header-map.ts'
import { SplitChooser } from './split-chooser.ts'

const H = (pairs: [string, string][] = []) => HeaderMap.fromPairs(pairs)
const spec = (weightB: number, extra: Partial<ConstructorParameters<typeof SplitChooser>[0]> = {}) =>
  new SplitChooser({ slot: 'waf', versions: ['1.0.0', '2.0.0'], weightB, ...extra })

describe('SplitChooser', () => {
  it('sends B close to its weight for random request ids (property, 20k ids per run)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.string({ minLength: 1, maxLength: 8 }), (w, salt) => {
        const c = spec(w, { salt })
        let b = 0
        const n = 20_000
        for (let i = 0; i < n; i++) b += c.choose(H(), `req-${i}-${salt}`)
        // 4 sigma of a binomial(n, p) plus rounding: fails only if the hash is skewed.
        const p = w / 10_000
        expect(Math.abs(b / n - p)).toBeLessThanOrEqual(4 * Math.sqrt((p * (1 - p)) / n) + 1e-9)
      }),
      { numRuns: 25 },
    )
  })

  it('is deterministic and sticky by header, then cookie, then request id', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/[;\s]/.test(s)), fc.integer({ min: 1, max: 9_999 }), (user, w) => {
        const c = spec(w, { stickyHeader: 'x-user', stickyCookie: 'uid' })
        const byHeader = c.choose(H([['x-user', user]]), 'r1')
        // Any request id, same header: same variant.
        expect(c.choose(H([['x-user', user]]), 'r2')).toBe(byHeader)
        const byCookie = c.choose(H([['cookie', `a=b; uid=${user}; c=d`]]), 'r3')
        expect(c.choose(H([['cookie', `uid=${user}`]]), 'r4')).toBe(byCookie)
        // The header and the cookie hash the same key the same way.
        expect(byCookie).toBe(byHeader)
      }),
      { numRuns: 200 },
    )
  })

  it('only moves users from A to B as the weight grows (monotone)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), (id, w1, w2) => {
        const [lo, hi] = w1 <= w2 ? [w1, w2] : [w2, w1]
        if (spec(lo).choose(H(), id) === 1) expect(spec(hi).choose(H(), id)).toBe(1)
      }),
    )
  })

  it('honours 0 and 10000 exactly', () => {
    for (let i = 0; i < 1000; i++) {
      expect(spec(0).choose(H(), `r${i}`)).toBe(0)
      expect(spec(10_000).choose(H(), `r${i}`)).toBe(1)
    }
  })

  it('pins a version by header; an unknown version or other slot pins nothing', () => {
    expect(spec(0).choose(H([['x-omnirelay-pin', 'waf=2.0.0']]), 'r')).toBe(1)
    expect(spec(10_000).choose(H([['x-omnirelay-pin', 'auth=1.0.0, waf=1.0.0']]), 'r')).toBe(0)
    expect(spec(0).choose(H([['x-omnirelay-pin', 'waf=2.0.01']]), 'r')).toBe(0)
    expect(spec(0).choose(H([['x-omnirelay-pin', 'xwaf=2.0.0']]), 'r')).toBe(0)
    expect(spec(0).choose(H([['x-omnirelay-pin', 'waf=3.0.0']]), 'r')).toBe(0)
    expect(spec(0, { pinHeader: '' }).choose(H([['x-omnirelay-pin', 'waf=2.0.0']]), 'r')).toBe(0)
  })

  it('never throws on arbitrary header values', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), (pin, cookie, user) => {
        const v = spec(5000, { stickyHeader: 'x-user', stickyCookie: 'uid' }).choose(H([['x-omnirelay-pin', pin], ['cookie', cookie], ['x-user', user]]), 'r')
        expect(v === 0 || v === 1).toBe(true)
      }),
    )
  })

  it('refuses bad specs with a code', () => {
    expect(() => spec(10_001)).toThrow(expect.objectContaining({ code: 'rollout_split_invalid' }))
    expect(() => spec(1.5)).toThrow(expect.objectContaining({ code: 'rollout_split_invalid' }))
    expect(() => new SplitChooser({ slot: 'a', versions: ['1', '1'], weightB: 0 })).toThrow(expect.objectContaining({ code: 'rollout_split_invalid' }))
  })
})
