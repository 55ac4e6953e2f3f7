/**
 * Validation and compilation of a group's desired config into the MeshConfig that travels
 * over xDS. Everything a data plane would refuse is refused here first, each problem with the
 * path of the object and field (`filterChains[edge].filters[0].bundle: ...`): references
 * between objects, the proxy's own config schema (the same validator the data plane runs),
 * bundles (exist in the registry, admitted, not yanked, not revoked), filter config against
 * the bundle's schema, capabilities the module needs, and quotas within the bundle's maximum
 * and central's policy.
 */
import { newAjv, type BundleManifest } from '@omnirelay/runtime/bundles/manifest.ts'
import { ConfigError, type ConfigIssue } from '@omnirelay/runtime/config/errors.ts'
import type { ProxyConfig } from '@omnirelay/runtime/config/types.ts'
import { validateConfig } from '@omnirelay/runtime/config/validate.ts'
import { checkImports } from '@omnirelay/runtime/hosts/wasm/capabilities.ts'
import { CAPABILITIES, type Capability, type Quotas } from '@omnirelay/runtime/pipeline/filter.ts'
import {
  filterInstanceName,
  type MeshBundle,
  type MeshConfig,
  type MeshFilter,
  type MeshFilterChain,
  type MeshSplit,
} from '@omnirelay/runtime/xds/mapping/mesh-config.ts'
import type { GroupConfig, Spec } from './store.ts'

/** What compilation needs to know about a bundle version (from the registry). */
export interface BundleInfo {
  name: string
  version: string
  kind: 'wasm' | 'quickjs' | 'native'
  digest: string
  manifest: BundleManifest
  capabilities: string[]
  /** Wasm imports as `module.name` (admission report), for the capabilities the module needs. */
  imports?: string[]
  yanked: { reason: string } | null
  revoked: { reason: string } | null
}

export interface CompileContext {
  /** Looks a bundle version up; undefined when the registry does not have it. */
  bundle(name: string, version: string): BundleInfo | undefined
  /** Base URL data planes fetch bundles from. */
  registryUrl: string
  /** Highest quotas central lets any filter have, per host kind. */
  maxQuotas: Record<string, Quotas>
}

export interface Compiled {
  mesh: MeshConfig
  proxy: ProxyConfig
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/
const FILTER_KEYS = ['name', 'bundle', 'config', 'failurePolicy', 'isolation', 'quotas', 'capabilities', 'calloutClusters']
const SPLIT_KEYS = ['name', 'targets', 'pinHeader', 'rollout', 'stickyHeader', 'stickyCookie']
const TARGET_KEYS = ['variant', 'weight', 'cluster', 'filterChain']

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Splits `name@version` (scoped names `@acme/waf@1.2.0` included). */
export function parseBundleRef(ref: string): { name: string; version: string } | undefined {
  const at = ref.lastIndexOf('@')
  if (at <= 0 || at === ref.length - 1) return undefined
  return { name: ref.slice(0, at), version: ref.slice(at + 1) }
}

/**
 * @throws ConfigError `config_invalid` with every issue found
 * @example
 * const { mesh } = compileGroup(store.config('edge'), ctx)
 */
export function compileGroup(cfg: GroupConfig, ctx: CompileContext): Compiled {
  const issues: ConfigIssue[] = []
  const fail = (path: string, message: string) => issues.push({ path, message })

  // Names first: every path below uses them.
  for (const kind of ['listeners', 'routes', 'clusters', 'filterChains', 'splits'] as const) {
    const seen = new Set<string>()
    cfg[kind].forEach((s, i) => {
      if (!isObj(s) || typeof s.name !== 'string' || !NAME_RE.test(s.name)) {
        fail(`${kind}[${i}].name`, 'a name of letters, digits, _ . : - (up to 64) is required')
      } else if (seen.has(s.name)) fail(`${kind}[${s.name}]`, 'duplicate name')
      else seen.add(s.name)
    })
  }
  if (issues.length) throw new ConfigError('config_invalid', issues)

  const clusterNames = new Set(cfg.clusters.map((c) => c.name))
  const bundles = new Map<string, MeshBundle>()
  const chains = new Map<string, { chain: MeshFilterChain; defs: Record<string, unknown>[] }>()
  for (const c of cfg.filterChains) {
    const compiled = compileChain(c, ctx, bundles, fail)
    chains.set(c.name, compiled)
  }

  const chainRef = (spec: Spec, path: string): string[] => {
    const v = spec.filterChain
    if (v === undefined) return []
    if (typeof v !== 'string' || !chains.has(v)) {
      fail(`${path}.filterChain`, `unknown filter chain ${JSON.stringify(v)}`)
      return []
    }
    return chains.get(v)!.chain.filters.map((f) => filterInstanceName(v, f.name))
  }
  const strip = (s: Spec): Record<string, unknown> => {
    const { filterChain: _c, ...rest } = s
    return rest
  }
  // Filters come only from chains (pinned bundles); TLS material is node-local and not carried yet.
  for (const l of cfg.listeners) {
    if (l.filters !== undefined) fail(`listeners[${l.name}].filters`, 'use filterChain: filters come from filter chains')
    if (l.tls !== undefined) fail(`listeners[${l.name}].tls`, 'TLS listeners are not carried over xDS yet')
  }
  for (const r of cfg.routes) if (r.filters !== undefined) fail(`routes[${r.name}].filters`, 'use filterChain: filters come from filter chains')
  const listeners = cfg.listeners.map((l) => ({ ...strip(l), filters: chainRef(l, `listeners[${l.name}]`) }))
  const routes = cfg.routes.map((r) => ({ ...strip(r), filters: chainRef(r, `routes[${r.name}]`) }))
  // Every chain's filters are checked, used or not: a chain is published as it is.
  const filters = [...chains.values()].flatMap((c) => c.defs)
  const splits = cfg.splits.map((s) => compileSplit(s, clusterNames, new Set(chains.keys()), fail))

  let proxy: ProxyConfig | undefined
  try {
    proxy = validateConfig({ listeners, routes, clusters: cfg.clusters, filters }, '/')
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    for (const i of e.issues) {
      // A group is built up object by object: no listener yet is allowed (nothing is published).
      if (i.path === 'listeners' && cfg.listeners.length === 0) continue
      issues.push({ path: renamePath(i.path, cfg, chains), message: i.message })
    }
  }
  if (issues.length || proxy === undefined) {
    if (issues.length === 0) issues.push({ path: '', message: 'invalid config' })
    throw new ConfigError('config_invalid', issues)
  }
  const chainOf = new Map<string, string | undefined>()
  for (const s of [...cfg.listeners, ...cfg.routes]) chainOf.set(s.name, s.filterChain as string | undefined)
  // Quotas as validated (defaults and types applied) go back into the chains.
  const defs = new Map(proxy.filters.map((f) => [f.name, f]))
  for (const { chain } of chains.values()) {
    for (const f of chain.filters) {
      const d = defs.get(filterInstanceName(chain.name, f.name))
      if (d) {
        f.quotas = d.quotas
        f.failurePolicy = d.failurePolicy
        f.isolation = d.isolation
      }
    }
  }
  const mesh: MeshConfig = {
    listeners: proxy.listeners.map((l) => withChain({ ...l, filters: [] }, chainOf.get(l.name))),
    routes: proxy.routes.map((r) => withChain({ ...r, filters: [] }, chainOf.get(r.name))),
    clusters: proxy.clusters,
    filterChains: [...chains.values()].map((c) => c.chain),
    bundles: [...bundles.values()],
    splits,
  }
  return { mesh, proxy }
}

function withChain<T extends object>(o: T, chain: string | undefined): T & { filterChain?: string } {
  return chain ? { ...o, filterChain: chain } : o
}

function compileChain(
  c: Spec,
  ctx: CompileContext,
  bundles: Map<string, MeshBundle>,
  fail: (path: string, message: string) => void,
): { chain: MeshFilterChain; defs: Record<string, unknown>[] } {
  const base = `filterChains[${c.name}]`
  for (const k of Object.keys(c)) if (k !== 'name' && k !== 'filters') fail(`${base}.${k}`, 'unknown field (expected one of: name, filters)')
  const list = Array.isArray(c.filters) ? c.filters : []
  if (!Array.isArray(c.filters)) fail(`${base}.filters`, 'must be a list')
  const chain: MeshFilterChain = { name: c.name, filters: [] }
  const defs: Record<string, unknown>[] = []
  const seen = new Set<string>()
  list.forEach((f: unknown, i: number) => {
    const p = `${base}.filters[${i}]`
    if (!isObj(f)) return fail(p, 'must be an object')
    for (const k of Object.keys(f)) if (!FILTER_KEYS.includes(k)) fail(`${p}.${k}`, `unknown field (expected one of: ${FILTER_KEYS.join(', ')})`)
    const fname = typeof f.name === 'string' ? f.name : typeof f.bundle === 'string' ? (parseBundleRef(f.bundle)?.name ?? '') : ''
    if (!NAME_RE.test(fname.replace(/^@/, '').replace('/', '-'))) return fail(`${p}.name`, 'a filter name is required')
    const instance = fname.replace(/^@/, '').replace('/', '-')
    if (seen.has(instance)) return fail(`${p}.name`, `duplicate filter "${instance}" in the chain`)
    seen.add(instance)
    if (typeof f.bundle !== 'string') return fail(`${p}.bundle`, 'must be "name@version" of a bundle in the registry')
    const ref = parseBundleRef(f.bundle)
    if (!ref) return fail(`${p}.bundle`, `"${f.bundle}" is not name@version`)
    const info = ctx.bundle(ref.name, ref.version)
    if (!info) return fail(`${p}.bundle`, `${f.bundle} is not in the registry`)
    if (info.revoked) return fail(`${p}.bundle`, `${f.bundle} is revoked (${info.revoked.reason})`)
    if (info.yanked) return fail(`${p}.bundle`, `${f.bundle} is yanked (${info.yanked.reason})`)
    if (f.config !== undefined && !isObj(f.config)) fail(`${p}.config`, 'must be an object')
    else if (info.manifest.configSchema) {
      const validate = newAjv().compile(info.manifest.configSchema)
      if (!validate(f.config ?? {})) {
        const err = validate.errors?.[0]
        fail(`${p}.config${err?.instancePath ? err.instancePath.replaceAll('/', '.') : ''}`, `does not match the bundle's config schema: ${err?.message ?? 'invalid'}`)
      }
    }
    const caps = f.capabilities === undefined ? info.capabilities.filter((x): x is Capability => (CAPABILITIES as readonly string[]).includes(x)) : f.capabilities
    if (Array.isArray(caps) && info.imports) {
      const needed = checkImports(info.imports.map((s) => ({ module: s.slice(0, s.indexOf('.')), name: s.slice(s.indexOf('.') + 1), kind: 'function' }))).required
      const missing = needed.filter((x) => !caps.includes(x))
      if (missing.length) fail(`${p}.capabilities`, `the module of ${f.bundle} needs ${missing.join(', ')}, not granted`)
    }
    checkQuotas(f.quotas, info, ctx, `${p}.quotas`, fail)
    const bundleName = `${info.name}@${info.version}`
    bundles.set(bundleName, {
      name: bundleName,
      version: info.version,
      digest: info.digest,
      registry: ctx.registryUrl,
      hostKind: info.kind,
      abi: info.manifest.abi,
    })
    const def: Record<string, unknown> = {
      name: filterInstanceName(c.name, instance),
      kind: info.kind,
      bundle: { path: `registry:${info.digest}`, digest: info.digest },
      capabilities: caps,
    }
    for (const k of ['config', 'failurePolicy', 'isolation', 'quotas', 'calloutClusters'] as const) if (f[k] !== undefined) def[k] = f[k]
    defs.push(def)
    const mf: MeshFilter = {
      name: instance,
      bundle: bundleName,
      failurePolicy: 'fail-closed',
      isolation: 'shared',
      quotas: {},
      capabilities: (Array.isArray(caps) ? caps : []) as Capability[],
    }
    if (isObj(f.config)) mf.config = f.config
    if (Array.isArray(f.calloutClusters)) mf.calloutClusters = f.calloutClusters as string[]
    chain.filters.push(mf)
  })
  return { chain, defs }
}

function checkQuotas(q: unknown, info: BundleInfo, ctx: CompileContext, path: string, fail: (path: string, message: string) => void): void {
  if (!isObj(q)) return
  const bundleMax = info.manifest.quotas.maximum as Record<string, number | undefined>
  const policyMax = (ctx.maxQuotas[info.kind] ?? {}) as Record<string, number | undefined>
  for (const [k, v] of Object.entries(q)) {
    if (typeof v !== 'number') continue
    const bm = bundleMax[k]
    const pm = policyMax[k]
    if (bm !== undefined && v > bm) fail(`${path}.${k}`, `${v} exceeds the bundle's maximum ${bm}`)
    else if (pm !== undefined && v > pm) fail(`${path}.${k}`, `${v} exceeds central's policy maximum ${pm}`)
  }
}

function compileSplit(s: Spec, clusters: Set<string>, chains: Set<string>, fail: (path: string, message: string) => void): MeshSplit {
  const p = `splits[${s.name}]`
  for (const k of Object.keys(s)) if (!SPLIT_KEYS.includes(k)) fail(`${p}.${k}`, `unknown field (expected one of: ${SPLIT_KEYS.join(', ')})`)
  const out: MeshSplit = { name: s.name, targets: [] }
  if (!Array.isArray(s.targets) || s.targets.length === 0) {
    fail(`${p}.targets`, 'needs at least one target')
    return out
  }
  let sum = 0
  s.targets.forEach((t: unknown, i: number) => {
    const tp = `${p}.targets[${i}]`
    if (!isObj(t)) return fail(tp, 'must be an object')
    for (const k of Object.keys(t)) if (!TARGET_KEYS.includes(k)) fail(`${tp}.${k}`, `unknown field (expected one of: ${TARGET_KEYS.join(', ')})`)
    if (typeof t.variant !== 'string' || t.variant === '') fail(`${tp}.variant`, 'required')
    if (!Number.isInteger(t.weight) || (t.weight as number) < 0 || (t.weight as number) > 10_000) fail(`${tp}.weight`, 'basis points, 0..10000')
    else sum += t.weight as number
    if (t.cluster !== undefined && !clusters.has(t.cluster as string)) fail(`${tp}.cluster`, `unknown cluster ${JSON.stringify(t.cluster)}`)
    if (t.filterChain !== undefined && !chains.has(t.filterChain as string)) fail(`${tp}.filterChain`, `unknown filter chain ${JSON.stringify(t.filterChain)}`)
    out.targets.push({
      variant: String(t.variant),
      weight: Number(t.weight),
      ...(typeof t.cluster === 'string' ? { cluster: t.cluster } : {}),
      ...(typeof t.filterChain === 'string' ? { filterChain: t.filterChain } : {}),
    })
  })
  if (sum !== 10_000) fail(`${p}.targets`, `weights sum to ${sum}, must be 10000`)
  if (s.pinHeader !== undefined) {
    if (typeof s.pinHeader !== 'string' || !/^[a-z0-9-]+$/.test(s.pinHeader)) fail(`${p}.pinHeader`, 'must be a lower-case header name')
    else out.pinHeader = s.pinHeader
  }
  if (typeof s.rollout === 'string') out.rollout = s.rollout
  for (const k of ['stickyHeader', 'stickyCookie'] as const) {
    const v = s[k]
    if (v === undefined) continue
    if (typeof v !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(v)) fail(`${p}.${k}`, 'must be a header or cookie name')
    else out[k] = k === 'stickyHeader' ? v.toLowerCase() : v
  }
  return out
}

/** `routes[3].cluster` -> `routes[api].cluster`; a chain's filter -> `filterChains[c].filters[i]`. */
function renamePath(path: string, cfg: GroupConfig, chains: Map<string, { chain: MeshFilterChain }>): string {
  const m = /^(listeners|routes|clusters|filters)\[(\d+)\](.*)$/.exec(path)
  if (!m) return path
  const [, section, index, rest] = m as unknown as [string, string, string, string]
  const i = Number(index)
  if (section === 'filters') {
    let n = 0
    for (const { chain } of chains.values()) {
      if (i < n + chain.filters.length) return `filterChains[${chain.name}].filters[${i - n}]${rest}`
      n += chain.filters.length
    }
    return path
  }
  const spec = cfg[section as 'listeners' | 'routes' | 'clusters'][i]
  if (!spec) return path
  if (rest.startsWith('.filters')) return `${section}[${spec.name}].filterChain`
  return `${section}[${spec.name}]${rest}`
}
