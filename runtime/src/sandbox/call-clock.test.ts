import { describe, expect, it } from 'vitest'
import { MAX_SHORT_SKIPS, callEnd, callEndShort, callStart, runBegin, runEnd } from './call-clock.ts'

const spin = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {}
}

describe('call clock', () => {
  it('chains the calls of one run, and no further', () => {
    runBegin()
    const t0 = callStart()
    spin(2)
    const t1 = callEnd()
    expect(t1 - t0).toBeGreaterThanOrEqual(2)
    expect(callStart()).toBe(t1)
    runEnd()
    spin(2)
    runBegin()
    expect(callStart() - t1).toBeGreaterThanOrEqual(2)
    runEnd()
  })

  it('reads both ends outside a run, however long the synchronous code around it', () => {
    const t0 = callStart()
    callEnd()
    spin(3)
    const t1 = callStart()
    expect(t1 - t0).toBeGreaterThanOrEqual(3)
    expect(callEndShort()).toBeGreaterThanOrEqual(t1)
  })

  it('nested runs keep the outer chain', () => {
    runBegin()
    callStart()
    const t1 = callEnd()
    runBegin()
    expect(callStart()).toBe(t1)
    runEnd()
    expect(callStart()).toBe(t1)
    runEnd()
  })

  it('lets at most MAX_SHORT_SKIPS short calls in a row skip the clock', () => {
    runBegin()
    const t0 = callStart()
    spin(2)
    for (let i = 0; i < MAX_SHORT_SKIPS; i++) expect(callEndShort()).toBe(t0)
    const t1 = callEndShort()
    expect(t1 - t0).toBeGreaterThanOrEqual(2)
    spin(1)
    expect(callEndShort()).toBe(t1)
    runEnd()
  })
})
