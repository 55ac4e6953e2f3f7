import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Endpoint } from './endpoint.ts'
import { LeastRequest, RoundRobin } from './load-balancer.ts'

// The balancers only read `weight`, `inflight` and `currentWeight`: plain objects stand in.
const ep = (name: string, weight = 1, inflight = 0) => ({ address: name, weight, inflight, currentWeight: 0 }) as unknown as Endpoint

describe('RoundRobin', () => {
  it('rotates evenly with equal weights', () => {
    const eps = [ep('a'), ep('b'), ep('c')]
    const rr = new RoundRobin(false)
    expect(Array.from({ length: 6 }, () => rr.pick(eps)!.address).join('')).toBe('abcabc')
  })

  it('spreads weights smoothly (5,1,1 -> aabacaa)', () => {
    const eps = [ep('a', 5), ep('b'), ep('c')]
    const rr = new RoundRobin(true)
    expect(Array.from({ length: 7 }, () => rr.pick(eps)!.address).join('')).toBe('aabacaa')
  })

  it('over one cycle (sum of weights) picks each endpoint exactly weight times', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 8 }), (weights) => {
        const eps = weights.map((w, i) => ep(String(i), w))
        const rr = new RoundRobin(true)
        const total = weights.reduce((a, b) => a + b, 0)
        const counts = new Array<number>(weights.length).fill(0)
        for (let i = 0; i < total; i++) counts[Number(rr.pick(eps)!.address)]!++
        expect(counts).toEqual(weights)
      }),
      { numRuns: 200 },
    )
  })

  it('returns undefined for no endpoints', () => {
    expect(new RoundRobin(true).pick([])).toBeUndefined()
    expect(new LeastRequest().pick([])).toBeUndefined()
  })
})

describe('LeastRequest', () => {
  it('always prefers the endpoint with fewer requests in flight of the two it samples', () => {
    const eps = [ep('busy', 1, 10), ep('idle', 1, 0)]
    const lr = new LeastRequest()
    for (let i = 0; i < 100; i++) expect(lr.pick(eps)!.address).toBe('idle')
  })

  it('never picks the most loaded of three', () => {
    const eps = [ep('a', 1, 5), ep('b', 1, 1), ep('c', 1, 0)]
    const lr = new LeastRequest()
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) seen.add(lr.pick(eps)!.address)
    expect(seen.has('a')).toBe(false)
    expect(seen.has('c')).toBe(true)
  })

  it('weighs in-flight counts by weight', () => {
    const eps = [ep('big', 4, 3), ep('small', 1, 1)]
    const lr = new LeastRequest()
    for (let i = 0; i < 50; i++) expect(lr.pick(eps)!.address).toBe('big')
  })
})
