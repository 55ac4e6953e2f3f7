import { describe, expect, it } from 'vitest'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { capabilitiesOf } from './capabilities.ts'
import { makeResource } from './resource.ts'
import { Snapshot } from './snapshot.ts'
import { SnapshotCache, groupByLabel } from './snapshot-cache.ts'
import { CacheErrorCode } from './errors.ts'

const node = (metadata: Record<string, string | string[]> = {}, features: string[] = []) => ({
  id: 'n', cluster: '', metadata, userAgentName: '', userAgentVersion: '', clientFeatures: features,
})
const bundle = (name: string, hostKind: string) =>
  makeResource(TypeUrl.BundleRef, name, { name, digest: `sha256:${name}`, host_kind: hostKind }, { requires: { hostKinds: [hostKind] } })

describe('Snapshot', () => {
  it('versions by content: equal content, equal version, across snapshots', () => {
    const a = makeResource(TypeUrl.Cluster, 'c', { name: 'c', type: 'STATIC' })
    const b = makeResource(TypeUrl.Cluster, 'c', { name: 'c', type: 'STATIC' })
    const c = makeResource(TypeUrl.Cluster, 'c', { name: 'c', type: 'EDS' })
    expect(a.variants[0]!.version).toBe(b.variants[0]!.version)
    expect(a.variants[0]!.version).not.toBe(c.variants[0]!.version)
  })

  it('reports references that do not resolve', () => {
    const s = new Snapshot(1, [
      makeResource(TypeUrl.Cluster, 'api', { name: 'api', type: 'EDS', eds_cluster_config: { service_name: 'api-eds' } }),
      makeResource(TypeUrl.FilterChain, 'fc', { name: 'fc', filters: [{ name: 'f', bundle: 'missing' }] }),
    ])
    expect(s.consistencyErrors().sort()).toEqual([
      'Cluster api references missing ClusterLoadAssignment api-eds',
      'FilterChain fc references missing BundleRef missing',
    ])
  })

  it('refuses duplicate names within a type', () => {
    expect(() => new Snapshot(1, [bundle('x', 'wasm'), bundle('x', 'wasm')])).toThrow(expect.objectContaining({ code: CacheErrorCode.DuplicateResource }))
  })

  it('views per capability class: best variant, withheld with a reason, memoized', () => {
    const s = new Snapshot(1, [
      bundle('js', 'quickjs'),
      makeResource(TypeUrl.FilterChain, 'fc', { name: 'fc' }, { requires: { features: ['omnirelay.fc.v2'] }, downlevel: [{ message: { name: 'fc', filters: [{ name: 'legacy' }] } }] }),
    ])
    const plain = capabilitiesOf(node())
    const v = s.view(TypeUrl.BundleRef, plain)
    expect([...v.entries.keys()]).toEqual([])
    expect(v.withheld.get('js')).toBe('host kind quickjs not supported')
    expect(s.view(TypeUrl.BundleRef, capabilitiesOf(node()))).toBe(v)
    expect(s.view(TypeUrl.BundleRef, capabilitiesOf(node({ 'omnirelay.host_kinds': 'quickjs' }))).entries.has('js')).toBe(true)
    const fcOld = s.view(TypeUrl.FilterChain, plain).entries.get('fc')!
    const fcNew = s.view(TypeUrl.FilterChain, capabilitiesOf(node({}, ['omnirelay.fc.v2']))).entries.get('fc')!
    expect(fcOld.version).not.toBe(fcNew.version)
  })
})

describe('SnapshotCache', () => {
  it('answers watches of the group, refuses epochs that do not grow and inconsistent snapshots', () => {
    const cache = new SnapshotCache({ groupOf: groupByLabel('group') })
    expect(cache.groupOf(node({ group: 'edge' }))).toBe('edge')
    expect(cache.groupOf(node())).toBe('default')
    const seen: number[] = []
    const stop = cache.watch('edge', (s) => seen.push(s.epoch))
    cache.setSnapshot('edge', new Snapshot(1, []))
    cache.setSnapshot('other', new Snapshot(5, []))
    expect(() => cache.setSnapshot('edge', new Snapshot(1, []))).toThrow(expect.objectContaining({ code: CacheErrorCode.EpochNotIncreasing }))
    const bad = new Snapshot(2, [makeResource(TypeUrl.FilterChain, 'fc', { name: 'fc', filters: [{ name: 'f', bundle: 'nope' }] })])
    expect(() => cache.setSnapshot('edge', bad)).toThrow(expect.objectContaining({ code: CacheErrorCode.SnapshotInconsistent }))
    cache.setSnapshot('edge', new Snapshot(3, []))
    stop()
    cache.setSnapshot('edge', new Snapshot(4, []))
    expect(seen).toEqual([1, 3])
    expect(cache.watcherCount()).toBe(0)
  })
})
