/**
 * The config schema: turns a parsed document into a `ProxyConfig` with defaults applied,
 * or a `ConfigError` listing every problem with its path (`routes[2].cluster: unknown
 * cluster "api"`). Structure first, then references between sections.
 */
import { readFilterSplits } from '../rollout/filter-splits.ts'
import { CAPABILITIES, type Capability, type FilterDefinition, type Quotas } from '../pipeline/filter.ts'
import type { ClusterConfig, EndpointConfig, RetryPolicy, RoutePolicy } from '../upstream/types.ts'
import { ConfigError, ConfigErrorCode } from './errors.ts'
import { Reader, type Obj } from './reader.ts'
import type {
  AccessLogConfig,
  AdminConfig,
  DirectResponse,
  HeaderMatch,
  Limits,
  ListenerConfig,
  PathMatch,
  ProxyConfig,
  Redirect,
  RegistryConfig,
  RouteConfig,
  TlsConfig,
  WeightedCluster,
} from './types.ts'

export const DEFAULT_LIMITS: Limits = {
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 1024 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  drainTimeoutMs: 10_000,
  filterPauseTimeoutMs: 30_000,
}

const TOP_KEYS = [
  'allowUnsigned',
  'allowNative',
  'trustPolicy',
  'registry',
  'filterSplits',
  'workers',
  'listeners',
  'routes',
  'clusters',
  'filters',
  'admin',
  'accessLog',
  'limits',
  'logLevel',
] as const

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const MAX_INT = 2 ** 31 - 1

/**
 * Validates a parsed config document.
 *
 * @param doc the parsed YAML/JSON value
 * @param baseDir where relative paths in the file resolve (the file's directory)
 * @throws ConfigError with code `config_invalid` and every issue found
 * @example
 * const cfg = validateConfig(YAML.parse(text), dirname(file))
 */
export function validateConfig(doc: unknown, baseDir: string): ProxyConfig {
  const r = new Reader()
  const top = r.obj(doc, '', true)
  if (!top) throw new ConfigError(ConfigErrorCode.Invalid, r.issues.length ? r.issues : [{ path: '', message: 'must be an object' }])
  r.known(top, '', TOP_KEYS)

  const workers = readWorkers(r, top.workers)
  const clusters = r.arr(top.clusters, 'clusters').map((c, i) => readCluster(r, c, `clusters[${i}]`))
  const filters = r.arr(top.filters, 'filters').map((f, i) => readFilter(r, f, `filters[${i}]`))
  const listeners = r.arr(top.listeners, 'listeners', true).map((l, i) => readListener(r, l, `listeners[${i}]`, i))
  if (Array.isArray(top.listeners) && top.listeners.length === 0) r.fail('listeners', 'needs at least one listener')
  const routes = r.arr(top.routes, 'routes').map((x, i) => readRoute(r, x, `routes[${i}]`))

  const cfg: ProxyConfig = {
    allowUnsigned: r.bool(top.allowUnsigned, 'allowUnsigned', false),
    allowNative: r.bool(top.allowNative, 'allowNative', false),
    trustPolicy: r.optStr(top.trustPolicy, 'trustPolicy'),
    ...readRegistry(r, top.registry),
    ...(top.filterSplits !== undefined ? { filterSplits: readFilterSplits(r, top.filterSplits, new Set(filters.map((f) => f.name))) } : {}),
    workers,
    listeners,
    routes,
    clusters,
    filters,
    admin: readAdmin(r, top.admin),
    accessLog: readAccessLog(r, top.accessLog),
    limits: readLimits(r, top.limits),
    logLevel: r.oneOf(top.logLevel, 'logLevel', ['debug', 'info', 'warn', 'error'] as const, 'info'),
    baseDir,
  }
  checkReferences(r, cfg)
  if (r.issues.length) throw new ConfigError(ConfigErrorCode.Invalid, r.issues)
  return cfg
}

function readWorkers(r: Reader, v: unknown): 'auto' | number {
  if (v === undefined || v === null) return 1
  if (v === 'auto') return 'auto'
  return r.int(v, 'workers', 1, 256, 1)
}

function readName(r: Reader, v: unknown, path: string): string {
  const s = r.str(v, path) ?? ''
  if (s && !NAME_RE.test(s)) r.fail(path, `"${s}" is not a valid name (letters, digits, _ . : -; up to 128)`)
  return s
}

function readTls(r: Reader, v: unknown, path: string): TlsConfig | undefined {
  const o = r.obj(v, path)
  if (!o) return undefined
  r.known(o, path, ['cert', 'key', 'ca', 'requestClientCert'])
  return {
    cert: r.str(o.cert, `${path}.cert`) ?? '',
    key: r.str(o.key, `${path}.key`) ?? '',
    ca: r.optStr(o.ca, `${path}.ca`),
    requestClientCert: r.bool(o.requestClientCert, `${path}.requestClientCert`, false),
  }
}

function readListener(r: Reader, v: unknown, path: string, index: number): ListenerConfig {
  const o = r.obj(v, path, true) ?? {}
  r.known(o, path, ['name', 'address', 'port', 'mode', 'http2', 'tls', 'filters'])
  return {
    // Default names: by port, or by position for port 0 (several test listeners may use it).
    name: readName(r, o.name ?? (o.port !== undefined && o.port !== 0 ? `listener-${String(o.port)}` : `listener-${index}`), `${path}.name`),
    address: r.str(o.address, `${path}.address`, '0.0.0.0')!,
    port: r.int(o.port, `${path}.port`, 0, 65535),
    mode: r.oneOf(o.mode, `${path}.mode`, ['edge', 'sidecar-inbound', 'sidecar-outbound'] as const, 'edge'),
    http2: r.bool(o.http2, `${path}.http2`, false),
    tls: readTls(r, o.tls, `${path}.tls`),
    filters: r.strList(o.filters, `${path}.filters`),
  }
}

function readPathMatch(r: Reader, o: Obj, path: string): PathMatch {
  const given = (['exact', 'prefix', 'regex'] as const).filter((k) => o[k] !== undefined)
  if (given.length > 1) r.fail(path, `use one of path, prefix, regex (got ${given.join(' and ')})`)
  if (o.regex !== undefined) {
    const src = r.str(o.regex, `${path}.regex`) ?? ''
    try {
      new RegExp(src)
    } catch (e) {
      r.fail(`${path}.regex`, `invalid regular expression: ${(e as Error).message}`)
    }
    return { regex: src }
  }
  if (o.exact !== undefined) {
    const s = r.str(o.exact, `${path}.exact`) ?? '/'
    if (!s.startsWith('/')) r.fail(`${path}.exact`, 'must start with "/"')
    return { exact: s }
  }
  const p = r.str(o.prefix, `${path}.prefix`, '/')!
  if (!p.startsWith('/')) r.fail(`${path}.prefix`, 'must start with "/"')
  return { prefix: p }
}

function readHeaderMatch(r: Reader, v: unknown, path: string): HeaderMatch {
  const o = r.obj(v, path, true) ?? {}
  r.known(o, path, ['name', 'exact', 'regex', 'present', 'invert'])
  const name = (r.str(o.name, `${path}.name`) ?? '').toLowerCase()
  if (name && !HEADER_NAME_RE.test(name)) r.fail(`${path}.name`, `"${name}" is not a valid header name`)
  const regex = r.optStr(o.regex, `${path}.regex`)
  if (regex !== undefined) {
    try {
      new RegExp(regex)
    } catch (e) {
      r.fail(`${path}.regex`, `invalid regular expression: ${(e as Error).message}`)
    }
  }
  const hm: HeaderMatch = { name, invert: r.bool(o.invert, `${path}.invert`, false) }
  const exact = r.optStr(o.exact, `${path}.exact`)
  if (exact !== undefined) hm.exact = exact
  if (regex !== undefined) hm.regex = regex
  if (o.present !== undefined) hm.present = r.bool(o.present, `${path}.present`, true)
  if (exact === undefined && regex === undefined && hm.present === undefined) hm.present = true
  return hm
}

function readRetry(r: Reader, v: unknown, path: string): RetryPolicy | undefined {
  const o = r.obj(v, path)
  if (!o) return undefined
  r.known(o, path, ['maxRetries', 'retryOn', 'budgetPercent', 'minRetryConcurrency', 'backoffMs'])
  const retryOn = r.strList(o.retryOn ?? ['connect-failure', 'reset', 'gateway-error'], `${path}.retryOn`)
  const allowed = ['connect-failure', 'reset', '5xx', 'gateway-error'] as const
  retryOn.forEach((x, i) => {
    if (!allowed.includes(x as (typeof allowed)[number])) r.fail(`${path}.retryOn[${i}]`, `must be one of ${allowed.join(', ')}`)
  })
  return {
    maxRetries: r.int(o.maxRetries, `${path}.maxRetries`, 0, 10, 1),
    retryOn: retryOn as RetryPolicy['retryOn'],
    budgetPercent: r.int(o.budgetPercent, `${path}.budgetPercent`, 0, 100, 20),
    minRetryConcurrency: r.int(o.minRetryConcurrency, `${path}.minRetryConcurrency`, 0, 1_000_000, 3),
    backoffMs: r.int(o.backoffMs, `${path}.backoffMs`, 0, 60_000, 25),
  }
}

function readPolicy(r: Reader, v: unknown, path: string): RoutePolicy {
  const o = r.obj(v, path) ?? {}
  r.known(o, path, ['requestTimeoutMs', 'idleTimeoutMs', 'retry'])
  const p: RoutePolicy = {
    requestTimeoutMs: r.int(o.requestTimeoutMs, `${path}.requestTimeoutMs`, 0, MAX_INT, 15_000),
    idleTimeoutMs: r.int(o.idleTimeoutMs, `${path}.idleTimeoutMs`, 0, MAX_INT, 60_000),
  }
  const retry = readRetry(r, o.retry, `${path}.retry`)
  if (retry) p.retry = retry
  return p
}

function readDirect(r: Reader, v: unknown, path: string): DirectResponse | undefined {
  const o = r.obj(v, path)
  if (!o) return undefined
  r.known(o, path, ['status', 'body', 'headers'])
  return {
    status: r.int(o.status, `${path}.status`, 200, 599, 200),
    body: r.str(o.body, `${path}.body`, '')!,
    headers: readHeaderPairs(r, o.headers, `${path}.headers`),
  }
}

function readHeaderPairs(r: Reader, v: unknown, path: string): [string, string][] {
  const o = r.obj(v, path)
  if (!o) return []
  const out: [string, string][] = []
  for (const [k, val] of Object.entries(o)) {
    if (!HEADER_NAME_RE.test(k)) r.fail(`${path}.${k}`, 'is not a valid header name')
    const s = r.str(typeof val === 'number' ? String(val) : val, `${path}.${k}`)
    if (s !== undefined) out.push([k.toLowerCase(), s])
  }
  return out
}

function readRedirect(r: Reader, v: unknown, path: string): Redirect | undefined {
  const o = r.obj(v, path)
  if (!o) return undefined
  r.known(o, path, ['status', 'scheme', 'host', 'path', 'stripQuery'])
  const status = r.int(o.status, `${path}.status`, 300, 399, 301)
  if (![301, 302, 303, 307, 308].includes(status)) r.fail(`${path}.status`, 'must be 301, 302, 303, 307 or 308')
  const rd: Redirect = { status, stripQuery: r.bool(o.stripQuery, `${path}.stripQuery`, false) }
  if (o.scheme !== undefined) rd.scheme = r.oneOf(o.scheme, `${path}.scheme`, ['http', 'https'] as const)
  const host = r.optStr(o.host, `${path}.host`)
  if (host !== undefined) rd.host = host
  const p = r.optStr(o.path, `${path}.path`)
  if (p !== undefined) {
    if (!p.startsWith('/')) r.fail(`${path}.path`, 'must start with "/"')
    rd.path = p
  }
  return rd
}

function readRoute(r: Reader, v: unknown, path: string): RouteConfig {
  const o = r.obj(v, path, true) ?? {}
  r.known(o, path, [
    'name',
    'listeners',
    'match',
    'cluster',
    'weightedClusters',
    'directResponse',
    'redirect',
    'policy',
    'filters',
    'prefixRewrite',
    'hostRewrite',
  ])
  const m = r.obj(o.match, `${path}.match`) ?? {}
  r.known(m, `${path}.match`, ['host', 'hosts', 'path', 'prefix', 'regex', 'exact', 'method', 'methods', 'headers'])
  const mp = `${path}.match`
  if (m.path !== undefined && m.exact !== undefined) r.fail(mp, 'use "path" or "exact", not both')
  const pathObj: Obj = { exact: m.path ?? m.exact, prefix: m.prefix, regex: m.regex }
  const hosts = [...r.strList(m.host, `${mp}.host`), ...r.strList(m.hosts, `${mp}.hosts`)].map((h) => h.toLowerCase())
  hosts.forEach((h, i) => {
    if (h.includes('*') && h !== '*' && !(h.startsWith('*.') && !h.slice(2).includes('*'))) {
      r.fail(`${mp}.host[${i}]`, `"${h}": a wildcard must be "*" or a leading "*." label`)
    }
  })
  const methods = [...r.strList(m.method, `${mp}.method`), ...r.strList(m.methods, `${mp}.methods`)].map((x) => x.toUpperCase())
  const route: RouteConfig = {
    name: readName(r, o.name ?? `route-${path.match(/\d+/)?.[0] ?? '0'}`, `${path}.name`),
    listeners: r.strList(o.listeners, `${path}.listeners`),
    match: {
      hosts,
      path: readPathMatch(r, pathObj, mp),
      methods,
      headers: r.arr(m.headers, `${mp}.headers`).map((h, i) => readHeaderMatch(r, h, `${mp}.headers[${i}]`)),
    },
    policy: readPolicy(r, o.policy, `${path}.policy`),
    filters: r.strList(o.filters, `${path}.filters`),
  }
  const actions = (['cluster', 'weightedClusters', 'directResponse', 'redirect'] as const).filter((k) => o[k] !== undefined)
  if (actions.length !== 1) {
    r.fail(path, actions.length ? `has ${actions.join(' and ')}: choose one action` : 'needs an action: cluster, weightedClusters, directResponse or redirect')
  }
  if (o.cluster !== undefined) route.cluster = r.str(o.cluster, `${path}.cluster`)
  if (o.weightedClusters !== undefined) {
    const list = r.arr(o.weightedClusters, `${path}.weightedClusters`)
    if (list.length === 0) r.fail(`${path}.weightedClusters`, 'needs at least one cluster')
    route.weightedClusters = list.map((w, i): WeightedCluster => {
      const wp = `${path}.weightedClusters[${i}]`
      const wo = r.obj(w, wp, true) ?? {}
      r.known(wo, wp, ['cluster', 'weight'])
      return { cluster: r.str(wo.cluster, `${wp}.cluster`) ?? '', weight: r.int(wo.weight, `${wp}.weight`, 0, 1_000_000) }
    })
    if (list.length && route.weightedClusters.every((w) => w.weight === 0)) r.fail(`${path}.weightedClusters`, 'weights must not all be 0')
  }
  const direct = readDirect(r, o.directResponse, `${path}.directResponse`)
  if (direct) route.directResponse = direct
  const redirect = readRedirect(r, o.redirect, `${path}.redirect`)
  if (redirect) route.redirect = redirect
  const pr = r.optStr(o.prefixRewrite, `${path}.prefixRewrite`)
  if (pr !== undefined) {
    if (!('prefix' in route.match.path)) r.fail(`${path}.prefixRewrite`, 'needs a prefix path match')
    route.prefixRewrite = pr
  }
  const hr = r.optStr(o.hostRewrite, `${path}.hostRewrite`)
  if (hr !== undefined) route.hostRewrite = hr
  return route
}

function readEndpoint(r: Reader, v: unknown, path: string): EndpointConfig {
  if (typeof v === 'string') {
    const i = v.lastIndexOf(':')
    const host = i > 0 ? v.slice(0, i).replace(/^\[|\]$/g, '') : ''
    const port = i > 0 ? Number(v.slice(i + 1)) : NaN
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
      r.fail(path, `"${v}" is not host:port`)
      return { host: '127.0.0.1', port: 1 }
    }
    return { host, port }
  }
  const o = r.obj(v, path, true) ?? {}
  r.known(o, path, ['host', 'port', 'weight'])
  const ep: EndpointConfig = { host: r.str(o.host, `${path}.host`) ?? '', port: r.int(o.port, `${path}.port`, 1, 65535) }
  if (o.weight !== undefined) ep.weight = r.int(o.weight, `${path}.weight`, 1, 1000)
  return ep
}

function readCluster(r: Reader, v: unknown, path: string): ClusterConfig {
  const o = r.obj(v, path, true) ?? {}
  r.known(o, path, [
    'name',
    'endpoints',
    'loadBalancing',
    'http2',
    'tls',
    'maxConnectionsPerEndpoint',
    'connectTimeoutMs',
    'healthCheck',
    'outlierDetection',
    'circuitBreaker',
  ])
  const endpoints = r.arr(o.endpoints, `${path}.endpoints`, true).map((e, i) => readEndpoint(r, e, `${path}.endpoints[${i}]`))
  if (Array.isArray(o.endpoints) && o.endpoints.length === 0) r.fail(`${path}.endpoints`, 'needs at least one endpoint')
  const cb = r.obj(o.circuitBreaker, `${path}.circuitBreaker`) ?? {}
  r.known(cb, `${path}.circuitBreaker`, ['maxConcurrent', 'maxPending'])
  const c: ClusterConfig = {
    name: readName(r, o.name, `${path}.name`),
    endpoints,
    loadBalancing: r.oneOf(o.loadBalancing, `${path}.loadBalancing`, ['round-robin', 'least-request'] as const, 'round-robin'),
    http2: r.bool(o.http2, `${path}.http2`, false),
    maxConnectionsPerEndpoint: r.int(o.maxConnectionsPerEndpoint, `${path}.maxConnectionsPerEndpoint`, 1, 100_000, 64),
    connectTimeoutMs: r.int(o.connectTimeoutMs, `${path}.connectTimeoutMs`, 1, MAX_INT, 5_000),
    circuitBreaker: {
      maxConcurrent: r.int(cb.maxConcurrent, `${path}.circuitBreaker.maxConcurrent`, 1, MAX_INT, 10_000),
      maxPending: r.int(cb.maxPending, `${path}.circuitBreaker.maxPending`, 0, MAX_INT, 10_000),
    },
  }
  const tls = r.obj(o.tls, `${path}.tls`)
  if (tls) {
    r.known(tls, `${path}.tls`, ['servername', 'ca', 'rejectUnauthorized', 'cert', 'key'])
    c.tls = {
      servername: r.optStr(tls.servername, `${path}.tls.servername`),
      ca: r.optStr(tls.ca, `${path}.tls.ca`),
      rejectUnauthorized: r.bool(tls.rejectUnauthorized, `${path}.tls.rejectUnauthorized`, true),
      cert: r.optStr(tls.cert, `${path}.tls.cert`),
      key: r.optStr(tls.key, `${path}.tls.key`),
    }
  }
  const hc = r.obj(o.healthCheck, `${path}.healthCheck`)
  if (hc) {
    const hp = `${path}.healthCheck`
    r.known(hc, hp, ['path', 'intervalMs', 'timeoutMs', 'unhealthyThreshold', 'healthyThreshold', 'expectedStatuses'])
    c.healthCheck = {
      path: r.str(hc.path, `${hp}.path`, '/healthz')!,
      intervalMs: r.int(hc.intervalMs, `${hp}.intervalMs`, 10, MAX_INT, 5_000),
      timeoutMs: r.int(hc.timeoutMs, `${hp}.timeoutMs`, 1, MAX_INT, 1_000),
      unhealthyThreshold: r.int(hc.unhealthyThreshold, `${hp}.unhealthyThreshold`, 1, 100, 3),
      healthyThreshold: r.int(hc.healthyThreshold, `${hp}.healthyThreshold`, 1, 100, 2),
    }
    if (hc.expectedStatuses !== undefined) {
      const es = r.arr(hc.expectedStatuses, `${hp}.expectedStatuses`)
      if (es.length !== 2) r.fail(`${hp}.expectedStatuses`, 'must be [min, max]')
      else c.healthCheck.expectedStatuses = [r.int(es[0], `${hp}.expectedStatuses[0]`, 100, 599), r.int(es[1], `${hp}.expectedStatuses[1]`, 100, 599)]
    }
  }
  const od = r.obj(o.outlierDetection, `${path}.outlierDetection`)
  if (od) {
    const op = `${path}.outlierDetection`
    r.known(od, op, ['consecutive5xx', 'consecutiveConnectFailures', 'baseEjectionMs', 'maxEjectionPercent'])
    c.outlierDetection = {
      consecutive5xx: r.int(od.consecutive5xx, `${op}.consecutive5xx`, 1, 1000, 5),
      consecutiveConnectFailures: r.int(od.consecutiveConnectFailures, `${op}.consecutiveConnectFailures`, 1, 1000, 5),
      baseEjectionMs: r.int(od.baseEjectionMs, `${op}.baseEjectionMs`, 1, MAX_INT, 30_000),
      maxEjectionPercent: r.int(od.maxEjectionPercent, `${op}.maxEjectionPercent`, 0, 100, 50),
    }
  }
  return c
}

function readFilter(r: Reader, v: unknown, path: string): FilterDefinition {
  const o = r.obj(v, path, true) ?? {}
  r.known(o, path, ['name', 'kind', 'bundle', 'module', 'config', 'failurePolicy', 'isolation', 'quotas', 'capabilities', 'calloutClusters', 'phases'])
  const def: FilterDefinition = {
    name: readName(r, o.name, `${path}.name`),
    kind: r.oneOf(o.kind, `${path}.kind`, ['wasm', 'quickjs', 'native'] as const),
    failurePolicy: r.oneOf(o.failurePolicy, `${path}.failurePolicy`, ['fail-closed', 'fail-open', 'reload'] as const, 'fail-closed'),
    isolation: r.oneOf(o.isolation, `${path}.isolation`, ['shared', 'per-request'] as const, 'shared'),
    quotas: readQuotas(r, o.quotas, `${path}.quotas`),
    capabilities: [],
  }
  const caps = r.strList(o.capabilities, `${path}.capabilities`)
  caps.forEach((cap, i) => {
    if (!(CAPABILITIES as readonly string[]).includes(cap)) r.fail(`${path}.capabilities[${i}]`, `unknown capability "${cap}" (known: ${CAPABILITIES.join(', ')})`)
    else def.capabilities.push(cap as Capability)
  })
  if (o.bundle !== undefined) {
    if (typeof o.bundle === 'string') def.bundle = { path: o.bundle }
    else {
      const b = r.obj(o.bundle, `${path}.bundle`) ?? {}
      r.known(b, `${path}.bundle`, ['path', 'digest'])
      def.bundle = { path: r.str(b.path, `${path}.bundle.path`) ?? '' }
      const digest = r.optStr(b.digest, `${path}.bundle.digest`)
      if (digest !== undefined) {
        if (!/^(sha256:)?[0-9a-f]{64}$/.test(digest)) r.fail(`${path}.bundle.digest`, 'must be a sha256 hex digest')
        def.bundle.digest = digest
      }
    }
  }
  const mod = r.optStr(o.module, `${path}.module`)
  if (mod !== undefined) def.module = mod
  if ((def.bundle === undefined) === (mod === undefined)) r.fail(path, 'needs exactly one of bundle, module')
  if (o.config !== undefined) def.config = o.config
  if (o.calloutClusters !== undefined) def.calloutClusters = r.strList(o.calloutClusters, `${path}.calloutClusters`)
  if (o.phases !== undefined) def.phases = r.int(o.phases, `${path}.phases`, 0, 127)
  return def
}

function readQuotas(r: Reader, v: unknown, path: string): Quotas {
  const o = r.obj(v, path) ?? {}
  r.known(o, path, ['fuel', 'memoryBytes', 'timeoutMs', 'maxBodyBytes'])
  const q: Quotas = {}
  if (o.fuel !== undefined) q.fuel = r.int(o.fuel, `${path}.fuel`, 1, Number.MAX_SAFE_INTEGER)
  if (o.memoryBytes !== undefined) q.memoryBytes = r.int(o.memoryBytes, `${path}.memoryBytes`, 65536, 4 * 1024 ** 3)
  if (o.timeoutMs !== undefined) q.timeoutMs = r.int(o.timeoutMs, `${path}.timeoutMs`, 1, 600_000)
  if (o.maxBodyBytes !== undefined) q.maxBodyBytes = r.int(o.maxBodyBytes, `${path}.maxBodyBytes`, 0, MAX_INT)
  return q
}

function readRegistry(r: Reader, v: unknown): { registry?: RegistryConfig } {
  const o = r.obj(v, 'registry')
  if (!o) return {}
  r.known(o, 'registry', ['url', 'token', 'pollIntervalMs', 'revocationsFile'])
  const url = r.str(o.url, 'registry.url') ?? ''
  if (url && !/^https?:\/\/[^/]/i.test(url)) r.fail('registry.url', `"${url}" is not an http(s) URL`)
  const out: RegistryConfig = {
    url,
    pollIntervalMs: r.int(o.pollIntervalMs, 'registry.pollIntervalMs', 100, 86_400_000, 30_000),
    revocationsFile: r.str(o.revocationsFile, 'registry.revocationsFile', 'omnirelay-revocations.json')!,
  }
  const token = r.optStr(o.token, 'registry.token')
  if (token !== undefined) out.token = token
  return { registry: out }
}

function readAdmin(r: Reader, v: unknown): AdminConfig | undefined {
  const o = r.obj(v, 'admin')
  if (!o) return undefined
  r.known(o, 'admin', ['address', 'port'])
  return { address: r.str(o.address, 'admin.address', '127.0.0.1')!, port: r.int(o.port, 'admin.port', 0, 65535, 9901) }
}

function readAccessLog(r: Reader, v: unknown): AccessLogConfig {
  if (v === false) return { target: 'off' }
  if (typeof v === 'string') return { target: v }
  const o = r.obj(v, 'accessLog') ?? {}
  r.known(o, 'accessLog', ['target'])
  return { target: r.str(o.target, 'accessLog.target', 'stdout')! }
}

function readLimits(r: Reader, v: unknown): Limits {
  const o = r.obj(v, 'limits') ?? {}
  const d = DEFAULT_LIMITS
  r.known(o, 'limits', Object.keys(d))
  return {
    maxHeaderBytes: r.int(o.maxHeaderBytes, 'limits.maxHeaderBytes', 1024, 1024 * 1024, d.maxHeaderBytes),
    maxBodyBytes: r.int(o.maxBodyBytes, 'limits.maxBodyBytes', 0, MAX_INT, d.maxBodyBytes),
    headersTimeoutMs: r.int(o.headersTimeoutMs, 'limits.headersTimeoutMs', 100, MAX_INT, d.headersTimeoutMs),
    requestTimeoutMs: r.int(o.requestTimeoutMs, 'limits.requestTimeoutMs', 0, MAX_INT, d.requestTimeoutMs),
    keepAliveTimeoutMs: r.int(o.keepAliveTimeoutMs, 'limits.keepAliveTimeoutMs', 1, MAX_INT, d.keepAliveTimeoutMs),
    drainTimeoutMs: r.int(o.drainTimeoutMs, 'limits.drainTimeoutMs', 0, MAX_INT, d.drainTimeoutMs),
    filterPauseTimeoutMs: r.int(o.filterPauseTimeoutMs, 'limits.filterPauseTimeoutMs', 1, MAX_INT, d.filterPauseTimeoutMs),
  }
}

function checkUnique(r: Reader, names: string[], section: string): Set<string> {
  const seen = new Set<string>()
  names.forEach((n, i) => {
    if (!n) return
    if (seen.has(n)) r.fail(`${section}[${i}].name`, `duplicate name "${n}"`)
    seen.add(n)
  })
  return seen
}

function checkReferences(r: Reader, cfg: ProxyConfig): void {
  const clusters = checkUnique(r, cfg.clusters.map((c) => c.name), 'clusters')
  const filters = checkUnique(r, cfg.filters.map((f) => f.name), 'filters')
  const listeners = checkUnique(r, cfg.listeners.map((l) => l.name), 'listeners')
  checkUnique(r, cfg.routes.map((x) => x.name), 'routes')

  const ports = new Map<string, number>()
  cfg.listeners.forEach((l, i) => {
    const key = `${l.address}:${l.port}`
    if (l.port !== 0 && ports.has(key)) r.fail(`listeners[${i}].port`, `${key} is also used by listeners[${ports.get(key)}]`)
    ports.set(key, i)
    l.filters.forEach((f, j) => {
      if (!filters.has(f)) r.fail(`listeners[${i}].filters[${j}]`, `unknown filter "${f}"`)
    })
  })
  cfg.routes.forEach((route, i) => {
    const p = `routes[${i}]`
    if (route.cluster !== undefined && route.cluster && !clusters.has(route.cluster)) r.fail(`${p}.cluster`, `unknown cluster "${route.cluster}"`)
    route.weightedClusters?.forEach((w, j) => {
      if (w.cluster && !clusters.has(w.cluster)) r.fail(`${p}.weightedClusters[${j}].cluster`, `unknown cluster "${w.cluster}"`)
    })
    route.filters.forEach((f, j) => {
      if (!filters.has(f)) r.fail(`${p}.filters[${j}]`, `unknown filter "${f}"`)
    })
    route.listeners.forEach((l, j) => {
      if (!listeners.has(l)) r.fail(`${p}.listeners[${j}]`, `unknown listener "${l}"`)
    })
  })
  cfg.filters.forEach((f, i) => {
    f.calloutClusters?.forEach((c, j) => {
      if (!clusters.has(c)) r.fail(`filters[${i}].calloutClusters[${j}]`, `unknown cluster "${c}"`)
    })
    if (f.calloutClusters?.length && !f.capabilities.includes('http-callout')) {
      r.fail(`filters[${i}].calloutClusters`, 'needs the "http-callout" capability')
    }
    if (f.kind === 'native' && !cfg.allowNative) {
      r.fail(`filters[${i}].kind`, 'native filters run unsandboxed in the proxy process and load only with allowNative: true')
    }
    if (f.module !== undefined && !cfg.allowUnsigned) {
      r.fail(`filters[${i}].module`, 'plain modules load only with allowUnsigned: true (development); use a signed bundle')
    }
  })
}
