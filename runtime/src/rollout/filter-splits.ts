/**
 * Filter splits in a proxy config: "filter slot F runs version A (filter `filter`) and
 * version B (filter `canary`), B for `weightB` basis points of requests". Read from the
 * config document (`filterSplits`), derived from xDS RolloutSplit resources, and applied
 * to the built filters of an epoch by putting a `SplitSlot` in A's place.
 *
 * Factory lifetimes: A stays in the built map under a hidden alias, so reuse across epochs
 * and retirement (by factory identity) see it like any filter; the slot's own entry keeps
 * A's reuse key, and is unwrapped back to A before the next epoch's splits are applied.
 */
import type { Reader } from '../config/reader.ts'
import type { BuiltFilter, BuiltFilters } from '../pipeline/build-filters.ts'
import type { ChainEntry } from '../pipeline/chain.ts'
import { filterInstanceName, type MeshConfig } from '../xds/mapping/mesh-config.ts'
import { KilledFilterFactory } from './kill.ts'
import { SplitSlot, type VariantObserver } from './split-slot.ts'

export interface FilterSplitConfig {
  /** Name of the split (e.g. the RolloutSplit resource). */
  name: string
  /** The filter running version A; chains name it. */
  filter: string
  /** The filter running version B (built, not referenced by any chain). */
  canary: string
  /** Basis points of requests that run B. */
  weightB: number
  /** Name in pin headers (`x-omnirelay-pin: <slot>=<version>`); default `filter`. */
  slot?: string
  pinHeader?: string
  stickyHeader?: string
  stickyCookie?: string
  /** Rollout id, for logs. */
  rollout?: string
  /**
   * Kill switch: when set (the why), `filter` does not run; its failure policy applies to
   * every request (fail-open skips, fail-closed 503). `canary` and `weightB` are unused.
   */
  kill?: string
  /**
   * With `kill`: only when `filter`'s bundle is signed by this signer (key id or publisher
   * name, as verified when the filter was built). The data plane checks it at every build, so
   * a signer kill covers whatever bundle of that signer the epoch runs, not a list made earlier.
   */
  signer?: string
}

const KEYS = ['name', 'filter', 'canary', 'weightB', 'slot', 'pinHeader', 'stickyHeader', 'stickyCookie', 'rollout', 'kill', 'signer']
const ALIAS = '\u0000split-a:'
const KILL_ALIAS = '\u0000killed:'

/**
 * Kill rules travel as RolloutSplit resources named `kill:<n>` with one target whose variant
 * is `<scope>=<target>` (scope filter|bundle|signer) and whose `rollout` field holds the reason:
 * existing, wire-compatible resources, so every data plane gets a kill in the next epoch.
 */
export const KILL_SPLIT_PREFIX = 'kill:'

/** Reads `filterSplits` of a config document (issues go to the reader, with paths). */
export function readFilterSplits(r: Reader, v: unknown, filterNames: ReadonlySet<string>): FilterSplitConfig[] {
  const out: FilterSplitConfig[] = []
  const seen = new Set<string>()
  r.arr(v, 'filterSplits').forEach((x, i) => {
    const p = `filterSplits[${i}]`
    const o = r.obj(x, p, true)
    if (!o) return
    r.known(o, p, KEYS)
    const kill = o.kill !== undefined
    const s: FilterSplitConfig = {
      name: r.str(o.name, `${p}.name`) ?? '',
      filter: r.str(o.filter, `${p}.filter`) ?? '',
      canary: kill ? (r.optStr(o.canary, `${p}.canary`) ?? '') : (r.str(o.canary, `${p}.canary`) ?? ''),
      weightB: kill ? 0 : r.int(o.weightB, `${p}.weightB`, 0, 10_000),
    }
    if (kill) {
      const why = r.optStr(o.kill, `${p}.kill`)
      if (why !== undefined) s.kill = why
      const signer = r.optStr(o.signer, `${p}.signer`)
      if (signer !== undefined) s.signer = signer
      if (s.filter && !filterNames.has(s.filter)) r.fail(`${p}.filter`, `unknown filter "${s.filter}"`)
      out.push(s)
      return
    }
    if (o.signer !== undefined) r.fail(`${p}.signer`, 'only a kill entry names a signer')
    for (const k of ['slot', 'pinHeader', 'stickyHeader', 'stickyCookie', 'rollout'] as const) {
      const val = r.optStr(o[k], `${p}.${k}`)
      if (val !== undefined) s[k] = val
    }
    if (s.filter && !filterNames.has(s.filter)) r.fail(`${p}.filter`, `unknown filter "${s.filter}"`)
    if (s.canary && !filterNames.has(s.canary)) r.fail(`${p}.canary`, `unknown filter "${s.canary}"`)
    if (s.filter && s.filter === s.canary) r.fail(`${p}.canary`, 'must differ from filter')
    if (seen.has(s.filter)) r.fail(`${p}.filter`, `"${s.filter}" is split twice`)
    seen.add(s.filter)
    out.push(s)
  })
  return out
}

/**
 * Filter-level splits from a mesh config: a RolloutSplit with two chain targets that differ
 * in exactly one filter's bundle. Target A is the chain routes use; B its twin.
 */
export function filterSplitsFromMesh(mesh: MeshConfig): FilterSplitConfig[] {
  const chains = new Map(mesh.filterChains.map((c) => [c.name, c]))
  const used = new Set<string>()
  for (const s of [...mesh.listeners, ...mesh.routes]) if (s.filterChain) used.add(s.filterChain)
  // Only filters of chains the data plane builds can be killed (a kill naming others is refused).
  const built = new Set([...used, ...splitChains(mesh)])
  const out: FilterSplitConfig[] = []
  for (const s of mesh.splits) {
    if (s.name.startsWith(KILL_SPLIT_PREFIX)) {
      out.push(...killsFromSplit(s, mesh, built))
      continue
    }
    if (s.targets.length !== 2 || s.targets.some((t) => !t.filterChain || t.cluster)) continue
    const ia = used.has(s.targets[0]!.filterChain!) ? 0 : 1
    const ta = s.targets[ia]!
    const tb = s.targets[1 - ia]!
    const ca = chains.get(ta.filterChain!)
    const cb = chains.get(tb.filterChain!)
    if (!ca || !cb || ca.filters.length !== cb.filters.length) continue
    const diff = ca.filters.flatMap((f, i) => (cb.filters[i]!.name === f.name && cb.filters[i]!.bundle !== f.bundle ? [i] : []))
    if (diff.length !== 1 || ca.filters.some((f, i) => cb.filters[i]!.name !== f.name)) continue
    const f = ca.filters[diff[0]!]!
    const split: FilterSplitConfig = { name: s.name, filter: filterInstanceName(ca.name, f.name), canary: filterInstanceName(cb.name, f.name), weightB: tb.weight, slot: f.name }
    if (s.pinHeader) split.pinHeader = s.pinHeader
    if (s.rollout) split.rollout = s.rollout
    if (s.stickyHeader) split.stickyHeader = s.stickyHeader
    if (s.stickyCookie) split.stickyCookie = s.stickyCookie
    out.push(split)
  }
  return out
}

function killsFromSplit(s: MeshConfig['splits'][number], mesh: MeshConfig, built: ReadonlySet<string>): FilterSplitConfig[] {
  const rule = s.targets[0]?.variant ?? ''
  const eq = rule.indexOf('=')
  const scope = rule.slice(0, eq)
  const target = rule.slice(eq + 1)
  if (eq <= 0 || !target) return []
  const why = `${scope} ${target}${s.rollout ? `: ${s.rollout}` : ''}`
  const out: FilterSplitConfig[] = []
  for (const c of mesh.filterChains) {
    if (!built.has(c.name)) continue
    for (const f of c.filters) {
      const name = filterInstanceName(c.name, f.name)
      // A signer is matched at build time against the verified signer, so every filter is a candidate.
      if (scope === 'signer') out.push({ name: `${s.name}:${name}`, filter: name, canary: '', weightB: 0, kill: why, signer: target })
      else if (scope === 'bundle' ? f.bundle === target : scope === 'filter' ? target === name || target === f.name : false) {
        out.push({ name: `${s.name}:${name}`, filter: name, canary: '', weightB: 0, kill: why })
      }
    }
  }
  return out
}

/** Chains a mesh's splits need built besides those routes use (the B twins). */
export function splitChains(mesh: MeshConfig): string[] {
  return mesh.splits.flatMap((s) => s.targets.flatMap((t) => (t.filterChain ? [t.filterChain] : [])))
}

type SplitBuilt = BuiltFilter & { original?: BuiltFilter }

/**
 * Puts a SplitSlot in A's place for each split; unwraps the previous epoch's slots first.
 * A split naming a filter that did not build is skipped (the build already failed then).
 * @example
 * filters = applyFilterSplits(await buildFilters(cfg, services, previous), cfg.filterSplits ?? [], { observer })
 */
export function applyFilterSplits(built: BuiltFilters, splits: readonly FilterSplitConfig[], opts: { observer?: VariantObserver } = {}): BuiltFilters {
  const out = new Map<string, BuiltFilter>()
  for (const [name, b] of built) {
    if (name.startsWith(ALIAS) || name.startsWith(KILL_ALIAS)) continue
    let plain = b as SplitBuilt
    // A killed filter inside a slot, or a slot around killed versions: peel every layer.
    while (plain.original) plain = plain.original as SplitBuilt
    out.set(name, plain)
  }
  // Kills first: a killed version inside a split fails only its own share of requests.
  for (const s of splits) {
    if (s.kill === undefined) continue
    const orig = out.get(s.filter)
    if (!orig || orig.entry.factory instanceof KilledFilterFactory) continue
    if (s.signer !== undefined && s.signer !== orig.signer?.keyId && s.signer !== orig.signer?.publisher) continue
    const factory = new KilledFilterFactory(orig.entry.factory, { scope: s.signer === undefined ? 'filter' : 'signer', reason: s.kill })
    const killed: SplitBuilt = { key: orig.key, entry: { ...orig.entry, factory, phases: factory.phases }, original: orig }
    out.set(s.filter, killed)
    out.set(`${KILL_ALIAS}${s.filter}`, orig)
  }
  for (const s of splits) {
    if (s.kill !== undefined) continue
    const a = out.get(s.filter)
    const b = out.get(s.canary)
    if (!a || !b) continue
    const slotOpts: ConstructorParameters<typeof SplitSlot>[2] = { slot: s.slot ?? s.filter, weightB: s.weightB, name: a.entry.name, salt: s.name }
    if (s.pinHeader) slotOpts.pinHeader = s.pinHeader
    if (s.stickyHeader) slotOpts.stickyHeader = s.stickyHeader
    if (s.stickyCookie) slotOpts.stickyCookie = s.stickyCookie
    if (opts.observer) slotOpts.observer = opts.observer
    const slot = new SplitSlot(a.entry.factory, b.entry.factory, slotOpts)
    opts.observer?.track?.(slot)
    const entry: ChainEntry = {
      factory: slot,
      name: a.entry.name,
      phases: slot.phases,
      failurePolicy: slot.failurePolicy,
      maxBodyBytes: Math.min(a.entry.maxBodyBytes, b.entry.maxBodyBytes),
      stats: a.entry.stats,
    }
    // A's key: when A's definition is unchanged, the next build reuses this entry and we unwrap it.
    const wrapped: SplitBuilt = { key: a.key, entry, original: a }
    out.set(s.filter, wrapped)
    out.set(`${ALIAS}${s.filter}`, a)
  }
  return out
}
