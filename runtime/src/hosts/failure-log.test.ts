import { describe, expect, it } from 'vitest'
import { FailureLogWindow } from './failure-log.ts'

describe('FailureLogWindow', () => {
  it('logs the first failure, suppresses the rest of the window, and reports the count with the next line', () => {
    const w = new FailureLogWindow(1000)
    expect(w.take(0)).toBe(0)
    expect(w.take(10)).toBeUndefined()
    expect(w.take(999)).toBeUndefined()
    expect(w.take(1000)).toBe(2)
    expect(w.take(1500)).toBeUndefined()
    expect(w.take(2100)).toBe(1)
    expect(w.take(5000)).toBe(0)
  })
})
