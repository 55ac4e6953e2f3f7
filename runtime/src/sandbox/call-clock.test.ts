import { describe, expect, it } from 'vitest'
import { MAX_SHORT_SKIPS, callEnd, callEndShort, callStart } from './call-clock.ts'

const spin = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {}
}

describe('call clock', () => {
  it('chains calls of one synchronous run and starts afresh after it', async () => {
    const t0 = callStart()
    spin(2)
    const t1 = callEnd()
    expect(t1 - t0).toBeGreaterThanOrEqual(2)
    expect(callStart()).toBe(t1)
    await Promise.resolve()
    spin(2)
    expect(callStart() - t1).toBeGreaterThanOrEqual(2)
  })

  it('lets at most MAX_SHORT_SKIPS short calls in a row skip the clock', async () => {
    await Promise.resolve()
    const t0 = callStart()
    spin(2)
    for (let i = 0; i < MAX_SHORT_SKIPS; i++) expect(callEndShort()).toBe(t0)
    const t1 = callEndShort()
    expect(t1 - t0).toBeGreaterThanOrEqual(2)
    spin(1)
    expect(callEndShort()).toBe(t1)
  })
})
