import { describe, expect, it } from 'vitest'
import { parseConfig } from '../config/load.ts'
import { compileRoute, normalizeHost, RouteTable } from './route-table.ts'

function table(routes: string): RouteTable<null> {
  const cfg = parseConfig(`listeners: [{ port: 1 }]\nclusters: [{ name: c, endpoints: ["h:1"] }]\nroutes:\n${routes}`, '/')
  return new RouteTable(cfg.routes.map((r) => compileRoute(r, null)))
}

describe('RouteTable', () => {
  const t = table(`
  - { name: exact, match: { host: api.example.com, path: /health }, directResponse: { status: 200 } }
  - { name: wild, match: { host: "*.example.com", prefix: /v1/ }, cluster: c }
  - { name: regex, match: { regex: "^/users/[0-9]+$", methods: [get, head] }, cluster: c }
  - { name: hdr, match: { prefix: /h, headers: [{ name: X-Env, exact: canary }, { name: x-debug, present: false }] }, cluster: c }
  - { name: fallback, match: { prefix: / }, cluster: c }
`)
  const m = (host: string, path: string, method = 'GET', raw: string[] = []) => t.match(host, path, method, raw)?.name

  it('matches host exact and wildcard, path exact/prefix/regex, method, headers', () => {
    expect(m('api.example.com', '/health')).toBe('exact')
    expect(m('api.example.com', '/health/x')).toBe('fallback')
    expect(m('a.b.example.com', '/v1/x')).toBe('wild')
    expect(m('example.com', '/v1/x')).toBe('fallback')
    expect(m('x', '/users/42')).toBe('regex')
    expect(m('x', '/users/42', 'POST')).toBe('fallback')
    expect(m('x', '/h', 'GET', ['x-env', 'canary'])).toBe('hdr')
    expect(m('x', '/h', 'GET', ['X-ENV', 'canary', 'X-Debug', '1'])).toBe('fallback')
    expect(m('x', '/h', 'GET', ['x-env', 'prod'])).toBe('fallback')
  })

  it('returns undefined when nothing matches', () => {
    expect(table(`  - { match: { path: /only }, cluster: c }`).match('h', '/other', 'GET', [])).toBeUndefined()
  })

  it('normalizes hosts', () => {
    expect(normalizeHost('Example.COM:8080')).toBe('example.com')
    expect(normalizeHost('[::1]:80')).toBe('::1')
    expect(normalizeHost(undefined)).toBe('')
    expect(normalizeHost('a.b')).toBe('a.b')
  })
})
