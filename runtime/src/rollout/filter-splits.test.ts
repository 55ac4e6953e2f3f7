import { describe, expect, it } from 'vitest'
import { Reader } from '../config/reader.ts'
import { MetricsRegistry } from '../observability/metrics.ts'
import type { BuiltFilter } from '../pipeline/build-filters.ts'
import { FilterStats } from '../pipeline/chain.ts'
import type { FilterFactory } from '../pipeline/filter.ts'
import { retiredFactories } from '../pipeline/build-filters.ts'
import type { MeshConfig } from '../xds/mapping/mesh-config.ts'
import { applyFilterSplits, filterSplitsFromMesh, readFilterSplits } from './filter-splits.ts'
import { KilledFilterFactory } from './kill.ts'
import { SplitSlot } from './split-slot.ts'

const metrics = new MetricsRegistry()
function built(name: string, version: string): BuiltFilter {
  const factory: FilterFactory = { name, version, kind: 'wasm', phases: 1, failurePolicy: 'fail-closed', createStream: () => ({}), close: async () => {} }
  return { key: `${name}#${version}`, entry: { factory, name, phases: 1, failurePolicy: 'fail-closed', maxBodyBytes: 1024, stats: new FilterStats(metrics, name) } }
}

describe('filter splits', () => {
  it('puts a SplitSlot in A’s place, keeps A alive under an alias, and unwraps it next epoch', () => {
    const a = built('main.waf', '1.0.0')
    const b = built('main:canary.waf', '2.0.0')
    const e1 = applyFilterSplits(new Map([['main.waf', a], ['main:canary.waf', b]]), [{ name: 's', filter: 'main.waf', canary: 'main:canary.waf', weightB: 500 }])
    const slot = e1.get('main.waf')!.entry.factory as SplitSlot
    expect(slot).toBeInstanceOf(SplitSlot)
    expect(slot.weightB).toBe(500)
    expect(slot.factories[0]).toBe(a.entry.factory)
    expect(e1.get('main.waf')!.key).toBe(a.key)
    // Next epoch: the build reused the wrapped entry for main.waf; the new weight applies to A again.
    const e2 = applyFilterSplits(new Map([['main.waf', e1.get('main.waf')!], ['main:canary.waf', b]]), [{ name: 's', filter: 'main.waf', canary: 'main:canary.waf', weightB: 2500 }])
    expect((e2.get('main.waf')!.entry.factory as SplitSlot).factories[0]).toBe(a.entry.factory)
    expect((e2.get('main.waf')!.entry.factory as SplitSlot).weightB).toBe(2500)
    // Neither A nor B is retired while the split runs; the old slot is (its close is a no-op).
    expect(retiredFactories(e1, e2)).toEqual([e1.get('main.waf')!.entry.factory])
    // Split gone: A is plain again, and nothing of A is retired.
    const e3 = applyFilterSplits(new Map([['main.waf', e2.get('main.waf')!]]), [])
    expect(e3.get('main.waf')).toBe(a)
    expect(retiredFactories(e2, e3)).not.toContain(a.entry.factory)
  })

  it('derives a filter split from a RolloutSplit over a chain and its twin', () => {
    const f = (bundle: string) => ({ name: 'waf', bundle, failurePolicy: 'fail-closed' as const, isolation: 'shared' as const, quotas: {}, capabilities: [] })
    const mesh = {
      listeners: [],
      routes: [{ name: 'r', filterChain: 'main' }],
      clusters: [],
      bundles: [],
      filterChains: [
        { name: 'main', filters: [f('waf@1.0.0')] },
        { name: 'main:canary', filters: [f('waf@2.0.0')] },
      ],
      splits: [{ name: 'rollout:main.waf', pinHeader: 'x-omnirelay-pin', rollout: 'r1', targets: [{ variant: 'a', weight: 9500, filterChain: 'main' }, { variant: 'b', weight: 500, filterChain: 'main:canary' }] }],
    } as unknown as MeshConfig
    expect(filterSplitsFromMesh(mesh)).toEqual([{ name: 'rollout:main.waf', filter: 'main.waf', canary: 'main:canary.waf', weightB: 500, slot: 'waf', pinHeader: 'x-omnirelay-pin', rollout: 'r1' }])
  })

  it('kills a filter (alone or as one version of a split) and brings it back unchanged', () => {
    const a = built('main.waf', '1.0.0')
    const b = built('main:canary.waf', '2.0.0')
    const split = { name: 's', filter: 'main.waf', canary: 'main:canary.waf', weightB: 500 }
    const kill = { name: 'kill:0:main:canary.waf', filter: 'main:canary.waf', canary: '', weightB: 0, kill: 'bundle waf@2.0.0' }
    const e1 = applyFilterSplits(new Map([['main.waf', a], ['main:canary.waf', b]]), [split, kill])
    const slot = e1.get('main.waf')!.entry.factory as SplitSlot
    expect(slot.factories[0]).toBe(a.entry.factory)
    expect(slot.factories[1]).toBeInstanceOf(KilledFilterFactory)
    // Neither original is retired while killed or split.
    const e2 = applyFilterSplits(new Map([['main.waf', e1.get('main.waf')!], ['main:canary.waf', e1.get('main:canary.waf')!]]), [])
    expect(e2.get('main.waf')).toBe(a)
    expect(e2.get('main:canary.waf')).toBe(b)
    expect(retiredFactories(e1, e2)).not.toContain(a.entry.factory)
    expect(retiredFactories(e1, e2)).not.toContain(b.entry.factory)
  })

  it('derives kills from kill:<n> splits by bundle and by filter name, only for chains that are built', () => {
    const f = (name: string, bundle: string) => ({ name, bundle, failurePolicy: 'fail-closed' as const, isolation: 'shared' as const, quotas: {}, capabilities: [] })
    const mesh = {
      listeners: [], routes: [{ name: 'r', filterChain: 'main' }], clusters: [], bundles: [],
      filterChains: [{ name: 'main', filters: [f('waf', 'waf@2.0.0'), f('auth', 'auth@1.0.0')] }, { name: 'other', filters: [f('waf', 'waf@1.0.0')] }],
      splits: [
        { name: 'kill:0', rollout: 'CVE', targets: [{ variant: 'bundle=waf@2.0.0', weight: 10000 }] },
        { name: 'kill:1', targets: [{ variant: 'filter=auth', weight: 10000 }] },
        // Chain `other` is used by no route: its filter is not built, so no kill may name it.
        { name: 'kill:2', targets: [{ variant: 'bundle=waf@1.0.0', weight: 10000 }] },
      ],
    } as unknown as MeshConfig
    expect(filterSplitsFromMesh(mesh).map((s) => [s.filter, s.kill])).toEqual([
      ['main.waf', 'bundle waf@2.0.0: CVE'],
      ['main.auth', 'filter auth'],
    ])
  })

  it('carries a signer kill to every built filter, to be matched against the verified signer', () => {
    const f = (name: string, bundle: string) => ({ name, bundle, failurePolicy: 'fail-closed' as const, isolation: 'shared' as const, quotas: {}, capabilities: [] })
    const mesh = {
      listeners: [], routes: [{ name: 'r', filterChain: 'main' }], clusters: [], bundles: [],
      filterChains: [{ name: 'main', filters: [f('waf', 'waf@2.0.0'), f('auth', 'auth@1.0.0')] }, { name: 'other', filters: [f('waf', 'waf@1.0.0')] }],
      splits: [{ name: 'kill:0', rollout: 'key leaked', targets: [{ variant: 'signer=dev-publisher', weight: 10000 }] }],
    } as unknown as MeshConfig
    expect(filterSplitsFromMesh(mesh).map((s) => [s.filter, s.signer, s.kill])).toEqual([
      ['main.waf', 'dev-publisher', 'signer dev-publisher: key leaked'],
      ['main.auth', 'dev-publisher', 'signer dev-publisher: key leaked'],
    ])
  })

  it('kills by signer only the filters that signer signed (key id or publisher), and unkill restores them', () => {
    const waf = { ...built('main.waf', '2.0.0'), signer: { keyId: 'k1', publisher: 'acme' } }
    const auth = { ...built('main.auth', '1.0.0'), signer: { keyId: 'k2', publisher: 'other' } }
    const plain = built('main.dev', '0.0.1')
    const input = new Map<string, BuiltFilter>([['main.waf', waf], ['main.auth', auth], ['main.dev', plain]])
    const kills = (signer: string) => [...input.keys()].map((filter) => ({ name: `kill:0:${filter}`, filter, canary: '', weightB: 0, kill: `signer ${signer}`, signer }))
    for (const signer of ['k1', 'acme']) {
      const e = applyFilterSplits(input, kills(signer))
      const killed = e.get('main.waf')!.entry.factory as KilledFilterFactory
      expect(killed).toBeInstanceOf(KilledFilterFactory)
      expect(killed.killed.scope).toBe('signer')
      expect(killed.original).toBe(waf.entry.factory)
      expect(e.get('main.auth')).toBe(auth)
      // Unsigned modules have no signer to match.
      expect(e.get('main.dev')).toBe(plain)
      const back = applyFilterSplits(e, [])
      expect(back.get('main.waf')).toBe(waf)
      expect(retiredFactories(e, back)).not.toContain(waf.entry.factory)
    }
  })

  it('validates filterSplits with paths', () => {
    const r = new Reader()
    readFilterSplits(r, [{ name: 's', filter: 'a', canary: 'zz', weightB: 20_000, extra: 1 }], new Set(['a']))
    expect(r.issues.map((i) => i.path).sort()).toEqual(['filterSplits[0].canary', 'filterSplits[0].extra', 'filterSplits[0].weightB'])
    const k = new Reader()
    const read = readFilterSplits(k, [{ name: 'k', filter: 'a', kill: 'why', signer: 'acme' }, { name: 's', filter: 'a', canary: 'b', weightB: 1, signer: 'acme' }], new Set(['a', 'b']))
    expect(k.issues.map((i) => i.path)).toEqual(['filterSplits[1].signer'])
    expect(read[0]).toMatchObject({ filter: 'a', kill: 'why', signer: 'acme' })
  })
})
