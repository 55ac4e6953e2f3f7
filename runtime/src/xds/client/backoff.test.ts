import { describe, expect, it } from 'vitest'
import { Backoff } from './backoff.ts'

describe('Backoff', () => {
  it('grows exponentially to the cap, jitter stays within bounds, reset starts over', () => {
    const lo = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }, () => 0)
    const hi = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }, () => 0.9999)
    const lows = Array.from({ length: 6 }, () => lo.next())
    const highs = Array.from({ length: 6 }, () => hi.next())
    expect(lows).toEqual([50, 100, 200, 400, 500, 500])
    expect(highs).toEqual([150, 300, 600, 1200, 1500, 1500])
    lo.reset()
    expect(lo.next()).toBe(50)
  })
})
