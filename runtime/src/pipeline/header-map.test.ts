import { describe, expect, it } from 'vitest'
import { HeaderMap } from './header-map.ts'

describe('HeaderMap', () => {
  it('stores names lower-cased whatever case add, set and remove get', () => {
    const h = new HeaderMap()
    h.add('X-Mixed', '1')
    h.add('x-mixed', '2')
    h.set('X-ÄÖ', 'u') // not a valid field name, but normalized like any other
    h.add('already-lower', 'l')
    expect(h.flat).toEqual(['x-mixed', '1', 'x-mixed', '2', 'x-äö', 'u', 'already-lower', 'l'])
    h.set('X-MIXED', '3')
    expect(h.getAll('x-mixed')).toEqual(['3'])
    expect(h.remove('ALREADY-LOWER')).toBe(true)
    expect(h.remove('x-äÖ')).toBe(true)
    expect(h.flat).toEqual(['x-mixed', '3'])
  })
})
