import { describe, expect, it } from 'vitest'
import { ANONYMOUS, authorize, generateToken, hashToken, tokenRecord, type Principal } from './tokens.ts'

const p = (scopes: string[], names: RegExp[] = [/^acme-.*$/]): Principal => ({ actor: 'token:t', scopes: new Set(scopes), namePatterns: names })

describe('tokens', () => {
  it('generates distinct tokens and stores only their hash', () => {
    const a = generateToken()
    expect(a).not.toBe(generateToken())
    const rec = tokenRecord({ id: 'ci', token: a })
    expect(rec.hash).toBe(hashToken(a))
    expect(JSON.stringify(rec)).not.toContain(a)
    expect(rec.scopes).toEqual(['read', 'publish'])
    expect(() => tokenRecord({ id: 'x', token: 'short' })).toThrow(expect.objectContaining({ code: 'bad_request' }))
    expect(() => tokenRecord({ id: 'x', token: a, scopes: ['root' as never] })).toThrow(expect.objectContaining({ code: 'bad_request' }))
  })

  it('authorizes by scope and name pattern; admin holds everything', () => {
    expect(() => authorize(ANONYMOUS, 'publish')).toThrow(expect.objectContaining({ code: 'unauthorized', status: 401 }))
    expect(() => authorize(p(['read']), 'publish')).toThrow(expect.objectContaining({ code: 'forbidden', status: 403 }))
    expect(() => authorize(p(['publish']), 'publish', 'acme-waf')).not.toThrow()
    expect(() => authorize(p(['publish']), 'publish', 'other')).toThrow(expect.objectContaining({ code: 'forbidden' }))
    expect(() => authorize(p(['admin'], []), 'publish', 'anything')).not.toThrow()
    expect(() => authorize(p(['publish']), 'admin')).toThrow(expect.objectContaining({ code: 'forbidden' }))
  })
})
