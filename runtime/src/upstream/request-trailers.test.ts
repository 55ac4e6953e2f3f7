import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { forwardableTrailers, isForwardableTrailer, trailersObject } from './request-trailers.ts'

describe('forwardableTrailers', () => {
  it('keeps ordinary fields in order and drops framing, routing, auth and connection fields', () => {
    const flat = ['x-checksum', 'a', 'Content-Length', '5', 'host', 'h', 'te', 'trailers', 'authorization', 's', 'x-checksum', 'b', 'transfer-encoding', 'chunked', 'connection', 'close', 'trailer', 'x', 'grpc-status', '0']
    expect(forwardableTrailers(flat)).toEqual([
      ['x-checksum', 'a'],
      ['x-checksum', 'b'],
      ['grpc-status', '0'],
    ])
  })

  it('drops pseudo-headers and fields node would refuse to write', () => {
    expect(forwardableTrailers([':path', '/x', 'bad name', '1', 'x-nl', 'a\r\nb', 'x-ok', 'v'])).toEqual([['x-ok', 'v']])
    expect(isForwardableTrailer('')).toBe(false)
  })

  it('never throws and never lets a forbidden or pseudo field through, whatever the input', () => {
    const name = fc.oneof(fc.constantFrom('content-length', 'Host', 'TE', ':authority', 'trailer', 'x-a', 'X-B'), fc.string())
    fc.assert(
      fc.property(fc.array(fc.oneof(name, fc.string())), (flat) => {
        for (const [k] of forwardableTrailers(flat)) {
          expect(isForwardableTrailer(k)).toBe(true)
          expect(k).toBe(k.toLowerCase())
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('trailersObject', () => {
  it('folds repeated names into arrays', () => {
    expect({ ...trailersObject([['a', '1'], ['b', '2'], ['a', '3'], ['a', '4']]) }).toEqual({ a: ['1', '3', '4'], b: '2' })
  })
})
