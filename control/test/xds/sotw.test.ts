import { afterEach, describe, expect, it } from 'vitest'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { decodeResource } from '@omnirelay/runtime/xds/proto/resource-codec.ts'
import { Snapshot } from '../../src/xds/index.ts'
import { cluster, endpoints, listener, routeConfig, serviceSnapshot } from './fixtures.ts'
import { harness, until } from './harness.ts'
import { node } from './raw-client.ts'

type H = Awaited<ReturnType<typeof harness>>
let h: H
afterEach(async () => h?.close())

const names = (res: { resources: { typeUrl: string; value: Uint8Array }[] }) =>
  res.resources.map((a) => {
    const m = decodeResource(a.typeUrl, a.value)
    return (m.name || m.cluster_name) as string
  })

describe('SotW ADS', () => {
  it('serves wildcard LDS/CDS and named RDS/EDS, then stays silent after ACKs', async () => {
    h = await harness()
    h.cache.setSnapshot('dp-1', serviceSnapshot(1, [{ name: 'api', ports: [1] }]))
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.Listener, node: node('dp-1', { zone: 'a' }) })
    const lds = await s.next()
    expect(lds.typeUrl).toBe(TypeUrl.Listener)
    expect(lds.versionInfo).toMatch(/^1\./)
    expect(lds.controlPlane).toBe('meshkit-test')
    expect(names(lds)).toEqual(['api'])
    s.ack(lds)
    s.request({ typeUrl: TypeUrl.RouteConfiguration, resourceNames: ['api-route'] })
    const rds = await s.next()
    expect(names(rds)).toEqual(['api-route'])
    s.ack(rds, ['api-route'])
    s.request({ typeUrl: TypeUrl.Cluster })
    const cds = await s.next()
    s.ack(cds)
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['api-cluster'] })
    const eds = await s.next()
    expect(names(eds)).toEqual(['api-cluster'])
    s.ack(eds, ['api-cluster'])
    expect(await s.silent()).toBe(true)
    await until(() => h.server.dataPlanes()[0]?.state === 'ack')
    const dp = h.server.dataPlanes()[0]!.toJSON()
    expect(dp).toMatchObject({ id: 'dp-1', protocol: 'sotw', appliedEpoch: 1, refusedEpoch: null, labels: { zone: 'a' } })
    expect(h.events.filter((e) => e.event === 'onAck')).toHaveLength(4)
  })

  it('ignores requests with a stale nonce', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    const first = await s.next()
    h.cache.setSnapshot('dp', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const second = await s.next()
    expect(second.nonce).not.toBe(first.nonce)
    // Answering the old nonce, even with a changed subscription, is ignored.
    s.request({ typeUrl: TypeUrl.Cluster, responseNonce: first.nonce, resourceNames: ['a-cluster'] })
    expect(await s.silent()).toBe(true)
    s.ack(second)
    expect(await s.silent()).toBe(true)
    expect(h.events.filter((e) => e.event === 'onAck')).toHaveLength(1)
  })

  it('NACK: detected by error_detail, not resent, reported with the epoch; a fix is sent and ACKed', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    const v1 = await s.next()
    s.ack(v1)
    await until(() => h.server.dataPlanes()[0]?.appliedEpoch === 1)
    h.cache.setSnapshot('dp', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'bad', ports: [2] }]))
    const v2 = await s.next()
    expect(v2.versionInfo).toMatch(/^2\./)
    // NACK: version_info is the last accepted one, the nonce is the new response's.
    s.request({ typeUrl: TypeUrl.Cluster, versionInfo: v1.versionInfo, responseNonce: v2.nonce, errorDetail: { code: 3, message: 'cluster bad: no endpoints' } })
    expect(await s.silent(300)).toBe(true)
    await until(() => h.events.some((e) => e.event === 'onNack'))
    expect(h.events.find((e) => e.event === 'onNack')).toMatchObject({ typeUrl: TypeUrl.Cluster, epoch: 2, error: { code: 3, message: 'cluster bad: no endpoints' } })
    const dp = h.server.dataPlanes()[0]!
    expect(dp.state).toBe('nack')
    expect(dp.appliedEpoch).toBe(1)
    expect(dp.refusedEpoch).toBe(2)
    // An unrelated request (same names) does not trigger a resend either.
    s.request({ typeUrl: TypeUrl.Cluster, versionInfo: v1.versionInfo, responseNonce: v2.nonce })
    expect(await s.silent()).toBe(true)
    h.cache.setSnapshot('dp', serviceSnapshot(3, [{ name: 'a', ports: [1] }, { name: 'good', ports: [3] }]))
    const v3 = await s.next()
    expect(v3.versionInfo).toMatch(/^3\./)
    expect(names(v3).sort()).toEqual(['a-cluster', 'good-cluster'])
    s.ack(v3)
    await until(() => dp.state === 'ack')
    expect(dp.appliedEpoch).toBe(3)
  })

  it('removals: a cluster missing from CDS is deleted, after the routes moved (make-before-break)', async () => {
    h = await harness()
    const base = (epoch: number, target: string) =>
      new Snapshot(epoch, [listener('l', 'r'), routeConfig('r', 'x', target), cluster(target), endpoints(target, [1])])
    h.cache.setSnapshot('dp', base(1, 'old'))
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    s.ack(await s.next())
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['old'] })
    s.ack(await s.next(), ['old'])
    s.request({ typeUrl: TypeUrl.Listener })
    s.ack(await s.next())
    s.request({ typeUrl: TypeUrl.RouteConfiguration, resourceNames: ['r'] })
    s.ack(await s.next(), ['r'])
    expect(await s.silent()).toBe(true)

    h.cache.setSnapshot('dp', base(2, 'new'))
    const order: string[] = []
    const got = []
    for (;;) {
      const r = await s.next(300).catch(() => undefined)
      if (!r) break
      got.push(r)
      order.push(`${r.typeUrl.split('.').pop()}:${names(r).sort().join(',')}`)
    }
    // CDS first holds both clusters, the route moves, then CDS drops the old one.
    expect(order).toEqual(['Cluster:new,old', 'RouteConfiguration:r', 'Cluster:new'])
    // The client asks for the new cluster's endpoints once it sees it.
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['new'] })
    expect(names(await s.next())).toEqual(['new'])
  })

  it('resends unchanged endpoints after their cluster changed (Envoy keeps it warming otherwise)', async () => {
    h = await harness()
    const snap = (epoch: number, lb: string) => new Snapshot(epoch, [cluster('c', lb), endpoints('c', [1]), cluster('d'), endpoints('d', [2])])
    h.cache.setSnapshot('dp', snap(1, 'ROUND_ROBIN'))
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    s.ack(await s.next())
    s.request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['c', 'd'] })
    const e1 = await s.next()
    s.ack(e1, ['c', 'd'])
    expect(await s.silent()).toBe(true)
    h.cache.setSnapshot('dp', snap(2, 'LEAST_REQUEST'))
    const cds = await s.next()
    expect(cds.typeUrl).toBe(TypeUrl.Cluster)
    const eds = await s.next()
    expect(eds.typeUrl).toBe(TypeUrl.ClusterLoadAssignment)
    expect(names(eds).sort()).toEqual(['c', 'd'])
    expect(eds.versionInfo.split('.')[1]).toBe(e1.versionInfo.split('.')[1])
  })

  it('remembers a requested-but-missing name and sends it when it appears', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.RouteConfiguration, node: node('dp'), resourceNames: ['a-route', 'later-route'] })
    const r1 = await s.next()
    expect(names(r1)).toEqual(['a-route'])
    s.ack(r1, ['a-route', 'later-route'])
    expect(await s.silent()).toBe(true)
    h.cache.setSnapshot('dp', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'later', ports: [2] }]))
    const r2 = await s.next()
    expect(names(r2).sort()).toEqual(['a-route', 'later-route'])
  })

  it('an empty list is wildcard only until the client names something', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    const all = await s.next()
    expect(names(all).sort()).toEqual(['a-cluster', 'b-cluster'])
    s.ack(all, ['a-cluster'])
    const one = await s.next()
    expect(names(one)).toEqual(['a-cluster'])
    s.ack(one, [])
    // Now empty means "nothing".
    const none = await s.next()
    expect(none.resources).toHaveLength(0)
    s.ack(none, ['*'])
    expect(names(await s.next()).sort()).toEqual(['a-cluster', 'b-cluster'])
  })

  it('on a new stream, a client that names the version it holds gets nothing resent', async () => {
    h = await harness()
    h.cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
    const c = h.client()
    const s1 = c.sotw()
    s1.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
    const v = await s1.next()
    s1.ack(v)
    s1.close()
    const s2 = c.sotw()
    s2.request({ typeUrl: TypeUrl.Cluster, node: node('dp'), versionInfo: v.versionInfo })
    expect(await s2.silent()).toBe(true)
    const s3 = c.sotw()
    s3.request({ typeUrl: TypeUrl.Cluster, node: node('dp'), versionInfo: '0.stale' })
    expect((await s3.next()).versionInfo).toBe(v.versionInfo)
  })

  it('refuses a first request without a node', async () => {
    h = await harness()
    const s = h.client().sotw()
    s.request({ typeUrl: TypeUrl.Cluster })
    const status = await s.ended
    expect(status.code).toBe(3)
  })
})
