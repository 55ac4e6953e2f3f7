/**
 * Routes compiled once per config epoch into matchers; matching a request is then a scan of
 * plain comparisons with no allocation (first matching route wins, in config order).
 */
import type { HeaderMatch, PathMatch, RouteConfig } from '../config/types.ts'

/** A route with its matchers precompiled. `data` carries whatever the server attaches (metrics children, filter chain). */
export interface CompiledRoute<D = unknown> {
  readonly config: RouteConfig
  readonly name: string
  data: D
  matches(host: string, path: string, method: string, rawHeaders: readonly string[]): boolean
}

type PathTest = (path: string) => boolean
type HostTest = (host: string) => boolean

function compilePath(m: PathMatch): PathTest | null {
  if ('exact' in m) {
    const e = m.exact
    return (p) => p === e
  }
  if ('prefix' in m) {
    const pre = m.prefix
    if (pre === '/') return null
    return (p) => p.startsWith(pre)
  }
  const re = new RegExp(m.regex)
  return (p) => re.test(p)
}

function compileHosts(hosts: string[]): HostTest | null {
  if (hosts.length === 0 || hosts.includes('*')) return null
  const exact = new Set(hosts.filter((h) => !h.startsWith('*.')))
  // '*.example.com' matches 'a.example.com' and 'a.b.example.com', not 'example.com'.
  const suffixes = hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1))
  if (suffixes.length === 0) return (h) => exact.has(h)
  return (h) => {
    if (exact.has(h)) return true
    for (let i = 0; i < suffixes.length; i++) if (h.length > suffixes[i]!.length && h.endsWith(suffixes[i]!)) return true
    return false
  }
}

/** The first value of a header in node's `rawHeaders` (names in any case). */
export function rawHeader(raw: readonly string[], lowerName: string): string | undefined {
  const len = lowerName.length
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length === len && (n === lowerName || n.toLowerCase() === lowerName)) return raw[i + 1]
  }
  return undefined
}

function compileHeader(h: HeaderMatch): (raw: readonly string[]) => boolean {
  const name = h.name
  const re = h.regex !== undefined ? new RegExp(h.regex) : undefined
  const test = (raw: readonly string[]): boolean => {
    const v = rawHeader(raw, name)
    if (h.exact !== undefined) return v === h.exact
    if (re) return v !== undefined && re.test(v)
    return (v !== undefined) === (h.present ?? true)
  }
  return h.invert ? (raw) => !test(raw) : test
}

export function compileRoute<D>(config: RouteConfig, data: D): CompiledRoute<D> {
  const hostTest = compileHosts(config.match.hosts)
  const pathTest = compilePath(config.match.path)
  const methods = config.match.methods.length ? new Set(config.match.methods) : null
  const headerTests = config.match.headers.map(compileHeader)
  return {
    config,
    name: config.name,
    data,
    matches(host, path, method, rawHeaders) {
      if (pathTest !== null && !pathTest(path)) return false
      if (hostTest !== null && !hostTest(host)) return false
      if (methods !== null && !methods.has(method)) return false
      for (let i = 0; i < headerTests.length; i++) if (!headerTests[i]!(rawHeaders)) return false
      return true
    },
  }
}

/** Routes of one listener, in config order. */
export class RouteTable<D = unknown> {
  readonly routes: readonly CompiledRoute<D>[]
  constructor(routes: readonly CompiledRoute<D>[]) {
    this.routes = routes
  }

  /**
   * The first route matching the request, or undefined.
   * @param host lower-case host without port
   * @param path the path without the query string
   */
  match(host: string, path: string, method: string, rawHeaders: readonly string[]): CompiledRoute<D> | undefined {
    const rs = this.routes
    for (let i = 0; i < rs.length; i++) if (rs[i]!.matches(host, path, method, rawHeaders)) return rs[i]
    return undefined
  }
}

/** Host header -> lower-case host without port (`Example.COM:8080` -> `example.com`, `[::1]:80` -> `::1`). */
export function normalizeHost(h: string | undefined): string {
  if (!h) return ''
  let end = h.length
  if (h.charCodeAt(0) === 91 /* [ */) {
    const close = h.indexOf(']')
    return (close > 0 ? h.slice(1, close) : h).toLowerCase()
  }
  const colon = h.lastIndexOf(':')
  if (colon >= 0) end = colon
  const host = end === h.length ? h : h.slice(0, end)
  // Most clients send lower-case hosts; skip the copy when nothing would change.
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i)
    if (c >= 65 && c <= 90) return host.toLowerCase()
  }
  return host
}
