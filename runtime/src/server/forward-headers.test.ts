import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { forwardRequestHeaders, forwardResponseHeaders, isHopByHop } from './forward-headers.ts'

const opts = { appendXff: true, setProto: true, via: '1.1 omnirelay' }
const headerName = fc.oneof(
  fc.constantFrom('Connection', 'keep-alive', 'Transfer-Encoding', 'TE', 'Upgrade', 'Proxy-Authorization', 'X-Forwarded-For', 'x-request-id', 'Host', 'via', 'x-a', 'X-B'),
  fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9-]{0,12}$/),
)
const rawHeaders = fc.array(fc.tuple(headerName, fc.string({ maxLength: 30 })), { maxLength: 20 }).map((pairs) => pairs.flat())

describe('forwardRequestHeaders', () => {
  it('never forwards hop-by-hop headers or names listed in Connection, always adds the forwarding set', () => {
    fc.assert(
      fc.property(rawHeaders, (raw) => {
        const { headers, requestId } = forwardRequestHeaders(raw, '10.0.0.9', 'https', opts)
        const names = headers.filter((_, i) => i % 2 === 0)
        for (const n of names) {
          expect(n).toBe(n.toLowerCase())
          expect(isHopByHop(n)).toBe(false)
          expect(n).not.toBe('host')
        }
        const conn = raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === 'connection' ? [raw[i + 1]!] : []))
        for (const token of conn.join(',').toLowerCase().split(',').map((t) => t.trim())) {
          if (token && token !== 'close' && token !== 'keep-alive' && token !== 'te') expect(names).not.toContain(token)
        }
        expect(names.filter((n) => n === 'x-request-id')).toHaveLength(1)
        expect(requestId).toMatch(/^[A-Za-z0-9._:\-]{1,128}$/)
        expect(names.filter((n) => n === 'via')).toHaveLength(1)
        expect(headers[names.lastIndexOf('x-forwarded-for') * 2 + 1]).toMatch(/10\.0\.0\.9$/)
      }),
      { numRuns: 300 },
    )
  })

  it('applies the mode rules: edge overwrites the scheme, sidecars keep it, outbound adds no hop', () => {
    const raw = ['x-forwarded-for', '1.2.3.4', 'x-forwarded-proto', 'https']
    const get = (h: string[], n: string) => h[h.indexOf(n) + 1]
    const edge = forwardRequestHeaders(raw, '10.0.0.1', 'http', { appendXff: true, setProto: true, via: 'v' }).headers
    expect([get(edge, 'x-forwarded-for'), get(edge, 'x-forwarded-proto')]).toEqual(['1.2.3.4, 10.0.0.1', 'http'])
    const inbound = forwardRequestHeaders(raw, '10.0.0.1', 'http', { appendXff: true, setProto: false, via: 'v' }).headers
    expect([get(inbound, 'x-forwarded-for'), get(inbound, 'x-forwarded-proto')]).toEqual(['1.2.3.4, 10.0.0.1', 'https'])
    const outbound = forwardRequestHeaders(raw, '127.0.0.1', 'http', { appendXff: false, setProto: false, via: 'v' }).headers
    expect([get(outbound, 'x-forwarded-for'), get(outbound, 'x-forwarded-proto')]).toEqual(['1.2.3.4', 'https'])
  })

  it('keeps te: trailers for gRPC and the authority from host or :authority', () => {
    const r = forwardRequestHeaders([':authority', 'a.test', 'te', 'trailers', 'content-length', '3'], '1.1.1.1', 'http', opts)
    expect(r.authority).toBe('a.test')
    expect(r.hasBody).toBe(true)
    expect(r.headers).toContain('te')
  })
})

describe('forwardResponseHeaders', () => {
  it('strips hop-by-hop and appends via', () => {
    fc.assert(
      fc.property(rawHeaders, (raw) => {
        const lower = raw.map((v, i) => (i % 2 === 0 ? v.toLowerCase() : v))
        const out = forwardResponseHeaders(lower, '1.1 omnirelay')
        const names = out.filter((_, i) => i % 2 === 0)
        for (const n of names) expect(isHopByHop(n)).toBe(false)
        expect(out.at(-1)).toMatch(/1\.1 omnirelay$/)
      }),
      { numRuns: 300 },
    )
  })
})
