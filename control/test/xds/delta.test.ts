import { afterEach, describe, expect, it } from 'vitest'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { Snapshot } from '../../src/xds/index.ts'
import { bundle, cluster, endpoints, filterChain, listener, routeConfig, serviceSnapshot } from './fixtures.ts'
import { harness, until } from './harness.ts'
import { node, type DeltaRaw } from './raw-client.ts'
import type { DeltaDiscoveryResponse } from '@omnirelay/runtime/xds/proto/messages.ts'

type H = Awaited<ReturnType<typeof harness>>
let h: H
afterEach(async () => h?.close())

const names = (r: DeltaDiscoveryResponse) => r.resources.map((x) => x.name).sort()
const short = (t: string) => t.split('.').pop()

/** Collects responses until the server is quiet, ACKing each. */
async function drain(s: DeltaRaw, quietMs = 200): Promise<DeltaDiscoveryResponse[]> {
  const out: DeltaDiscoveryResponse[] = []
  for (;;) {
    const r = await s.next(quietMs).catch(() => undefined)
    if (!r) return out
    out.push(r)
    s.ack(r)
  }
}

describe('delta ADS', () => {
  it('wildcard: all resources with their versions, epoch in system_version_info, then silence', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(4, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const s = h.client().delta()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    const r = await s.next()
    expect(r.systemVersionInfo).toBe('4')
    expect(names(r)).toEqual(['a-cluster', 'b-cluster'])
    expect(r.resources[0]!.version).toMatch(/^[\w-]{16}$/)
    s.ack(r)
    expect(await s.silent()).toBe(true)
    await until(() => h.server.dataPlanes()[0]?.appliedEpoch === 4)
  })

  it('sends only what changed; removals after additions, in reverse dependency order', async () => {
    h = await harness()
    const snap = (epoch: number, target: string, ports: number[]) =>
      new Snapshot(epoch, [listener('l', 'r'), routeConfig('r', 'x', target), cluster(target), endpoints(target, ports), cluster('keep'), endpoints('keep', [9])])
    h.cache.setSnapshot('dp', snap(1, 'old', [1]))
    const s = h.client().delta()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['old', 'keep'] })
    s.request({ typeUrl: TypeUrl.Listener })
    s.request({ typeUrl: TypeUrl.RouteConfiguration, resourceNamesSubscribe: ['r'] })
    expect(await drain(s)).toHaveLength(4)

    h.cache.setSnapshot('dp', snap(2, 'new', [1]))
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['new'] })
    const got = await drain(s)
    const seq = got.map((r) => `${short(r.typeUrl)}+${names(r).join(',')}-${r.removedResources.join(',')}`)
    // Cluster 'new' first, then the route moves to it, then 'old' goes; 'keep' is never resent.
    expect(seq.slice(0, 4)).toEqual(['Cluster+new-', 'RouteConfiguration+r-', 'ClusterLoadAssignment+-old', 'Cluster+-old'])
    expect(seq).toContain('ClusterLoadAssignment+new-')
  })

  it('resends the endpoints of a changed cluster even if they did not change', async () => {
    h = await harness()
    const snap = (epoch: number, lb: string) => new Snapshot(epoch, [cluster('c', lb), endpoints('c', [1]), cluster('d'), endpoints('d', [2])])
    h.cache.setSnapshot('dp', snap(1, 'ROUND_ROBIN'))
    const s = h.client().delta()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment })
    expect(await drain(s)).toHaveLength(2)
    h.cache.setSnapshot('dp', snap(2, 'LEAST_REQUEST'))
    const got = await drain(s)
    expect(got.map((r) => `${short(r.typeUrl)}+${names(r).join(',')}`)).toEqual(['Cluster+c', 'ClusterLoadAssignment+c'])
  })

  it('explicit subscriptions: subscribe, unsubscribe, and subscribe again resends', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const s = h.client().delta()
    s.request({ typeUrl: TypeUrl.RouteConfiguration, node: node('dp'), resourceNamesSubscribe: ['a-route'] })
    const r1 = await s.next()
    expect(names(r1)).toEqual(['a-route'])
    s.ack(r1)
    s.request({ typeUrl: TypeUrl.RouteConfiguration, resourceNamesUnsubscribe: ['a-route'] })
    expect(await s.silent()).toBe(true)
    s.request({ typeUrl: TypeUrl.RouteConfiguration, resourceNamesSubscribe: ['a-route', 'b-route'] })
    const r2 = await s.next()
    expect(names(r2)).toEqual(['a-route', 'b-route'])
  })

  it('honours subscription changes that come with a stale nonce', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const s = h.client().delta()
    s.request({ typeUrl: TypeUrl.RouteConfiguration, node: node('dp'), resourceNamesSubscribe: ['a-route'] })
    const r1 = await s.next()
    s.ack(r1)
    s.request({ typeUrl: TypeUrl.RouteConfiguration, responseNonce: r1.nonce, resourceNamesSubscribe: ['b-route'] })
    expect(names(await s.next())).toEqual(['b-route'])
  })

  it('reconnect with initial_resource_versions: unchanged not resent, changed sent, vanished removed', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }, { name: 'c', ports: [3] }]))
    const c = h.client()
    const s1 = c.delta()
    s1.request({ typeUrl: TypeUrl.ClusterLoadAssignment, node: node('dp'), resourceNamesSubscribe: ['a-cluster', 'b-cluster', 'c-cluster'] })
    const r1 = await s1.next()
    s1.ack(r1)
    const held = Object.fromEntries(r1.resources.map((r) => [r.name, r.version]))
    s1.close()
    // While disconnected: b changes, c disappears.
    h.cache.setSnapshot('dp', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'b', ports: [20] }]))
    const s2 = c.delta()
    s2.request({
      typeUrl: TypeUrl.ClusterLoadAssignment, node: node('dp'),
      resourceNamesSubscribe: ['a-cluster', 'b-cluster', 'c-cluster'], initialResourceVersions: held,
    })
    const r2 = await s2.next()
    expect(names(r2)).toEqual(['b-cluster'])
    expect(r2.removedResources).toEqual(['c-cluster'])
    s2.ack(r2)
    expect(await s2.silent()).toBe(true)
  })

  it('NACK keeps the client state, is not resent, and a fix goes through; repeated NACKs back off', async () => {
    h = await harness({ nackBackoff: { baseMs: 300, maxMs: 1000 } })
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
    const s = h.client().delta()
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment, node: node('dp'), resourceNamesSubscribe: ['*'] })
    s.ack(await s.next())
    await until(() => h.server.dataPlanes()[0]?.appliedEpoch === 1)
    const nack = (r: DeltaDiscoveryResponse, msg: string) =>
      s.request({ typeUrl: r.typeUrl, responseNonce: r.nonce, errorDetail: { code: 3, message: msg } })

    h.cache.setSnapshot('dp', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const r2 = await s.next()
    nack(r2, 'b: refused')
    expect(await s.silent(200)).toBe(true)
    const dp = h.server.dataPlanes()[0]!
    await until(() => dp.state === 'nack')
    expect(dp.toJSON()).toMatchObject({ appliedEpoch: 1, refusedEpoch: 2, lastError: { epoch: 2, message: 'b: refused' } })

    // Second bad version: sent at once (first NACK), NACKed again -> the next send waits for the backoff.
    h.cache.setSnapshot('dp', serviceSnapshot(3, [{ name: 'a', ports: [1] }, { name: 'b', ports: [3] }]))
    nack(await s.next(), 'b: still refused')
    await until(() => h.events.filter((e) => e.event === 'onNack').length === 2)
    const t0 = Date.now()
    h.cache.setSnapshot('dp', serviceSnapshot(4, [{ name: 'a', ports: [1] }, { name: 'c', ports: [4] }]))
    const r4 = await s.next(2000)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200)
    // b was never accepted, so the client holds only a: c is added, nothing is removed.
    expect(names(r4)).toEqual(['c-cluster'])
    expect(r4.removedResources).toEqual([])
    s.ack(r4)
    await until(() => dp.state === 'ack')
    expect(dp.appliedEpoch).toBe(4)
  })

  it('a requested-but-missing resource is sent when it appears', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
    const s = h.client().delta()
    s.request({ typeUrl: TypeUrl.RouteConfiguration, node: node('dp'), resourceNamesSubscribe: ['later-route'] })
    expect(await s.silent()).toBe(true)
    h.cache.setSnapshot('dp', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'later', ports: [2] }]))
    const r = await s.next()
    expect(names(r)).toEqual(['later-route'])
  })

  it('capabilities: down-levels what a rule allows, withholds the rest and says why', async () => {
    h = await harness()
    const snap = new Snapshot(1, [
      bundle('js-auth', 'sha256:aa', { hostKind: 'quickjs', requires: { hostKinds: ['quickjs'] } }),
      bundle('wasm-auth', 'sha256:bb', { requires: { hostKinds: ['wasm'], abis: ['proxy-wasm/0.2.1'] } }),
      filterChain('edge', ['js-auth'], { requires: { hostKinds: ['quickjs'] }, downlevel: [{ requires: { hostKinds: ['wasm'] }, message: { name: 'edge', filters: [{ name: 'auth', bundle: 'wasm-auth' }] } }] }),
    ])
    // Both clients map to group 'g' (grouping by node id).
    h.cache.setSnapshot('g', snap)
    const c = h.client()
    const wasmOnly = c.delta()
    wasmOnly.request({ typeUrl: TypeUrl.FilterChain, node: node('g', { 'omnirelay.abis': ['proxy-wasm/0.2.1'], 'omnirelay.host_kinds': ['wasm'] }) })
    wasmOnly.request({ typeUrl: TypeUrl.BundleRef })
    const got = await drain(wasmOnly)
    const fc = got.find((r) => r.typeUrl === TypeUrl.FilterChain)!
    const { decodeResource } = await import('@omnirelay/runtime/xds/proto/resource-codec.ts')
    const chain = decodeResource(TypeUrl.FilterChain, fc.resources[0]!.resource!.value) as { filters: { bundle: string }[] }
    expect(chain.filters[0]!.bundle).toBe('wasm-auth')
    expect(names(got.find((r) => r.typeUrl === TypeUrl.BundleRef)!)).toEqual(['wasm-auth'])
    await until(() => h.events.some((e) => e.event === 'onWithheld'))
    expect(h.events.filter((e) => e.event === 'onWithheld')).toEqual([
      expect.objectContaining({ typeUrl: TypeUrl.BundleRef, name: 'js-auth', reason: 'host kind quickjs not supported', epoch: 1 }),
    ])

    const full = c.delta()
    full.request({ typeUrl: TypeUrl.BundleRef, node: node('g', { 'omnirelay.abis': 'proxy-wasm/0.2.1', 'omnirelay.host_kinds': 'wasm,quickjs' }) })
    expect(names(await full.next())).toEqual(['js-auth', 'wasm-auth'])
  })
})
