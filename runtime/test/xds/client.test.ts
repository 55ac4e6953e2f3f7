import { afterEach, describe, expect, it } from 'vitest'
import { createXdsClient, decodeResource, TypeUrl, type XdsClient, type XdsUpdate } from '../../src/xds/index.ts'
import { SnapshotCache, startXdsServer, type XdsServer, type ResponseEvent } from '@meshkit/control/src/xds/index.ts'
import { serviceSnapshot } from '@meshkit/control/test/xds/fixtures.ts'
import { cutProxy, until } from './helpers.ts'

const cleanup: (() => Promise<unknown> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

interface Setup {
  cache: SnapshotCache
  server: XdsServer
  responses: ResponseEvent[]
}

async function server(cache = new SnapshotCache(), port = 0): Promise<Setup> {
  const responses: ResponseEvent[] = []
  const s = await startXdsServer({ cache, port, callbacks: { onResponse: (_dp, ev) => void responses.push(ev) } })
  cleanup.push(() => s.close())
  return { cache, server: s, responses }
}

function client(address: string, extra: Partial<Parameters<typeof createXdsClient>[0]> = {}) {
  const updates: XdsUpdate[] = []
  const c: XdsClient = createXdsClient({
    address,
    node: { id: 'edge-1', metadata: { group: 'edge' } },
    capabilities: { abis: ['proxy-wasm/0.2.1'], hostKinds: ['wasm'] },
    backoff: { initialMs: 20, maxMs: 200, jitter: 0.2 },
    onResources: (u) => void updates.push(u),
    ...extra,
  })
  cleanup.push(() => c.close())
  return { c, updates }
}

const typesOf = (us: XdsUpdate[]) => us.map((u) => u.typeUrl.split('.').pop())

describe('OmniRelay xDS client (delta)', () => {
  it('subscribes to everything, applies in make-before-break order, ACKs with the epoch', async () => {
    const { cache, server: s } = await server()
    cache.setSnapshot('edge-1', serviceSnapshot(3, [{ name: 'api', ports: [8080] }]))
    const { c, updates } = client(s.address)
    await until(() => s.dataPlanes()[0]?.appliedEpoch === 3, 5000, 'epoch 3 applied')
    expect(typesOf(updates)).toEqual(['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration'])
    expect(updates.every((u) => u.epoch === 3)).toBe(true)
    const cla = decodeResource(TypeUrl.ClusterLoadAssignment, updates[1]!.resources[0]!.value) as { cluster_name: string }
    expect(cla.cluster_name).toBe('api-cluster')
    // Four types plus the end-of-epoch marker.
    expect(c.status).toMatchObject({ state: 'connected', appliedEpoch: 3, acks: 5, nacks: 0 })
    const dp = s.dataPlanes()[0]!.toJSON()
    expect(dp).toMatchObject({ id: 'edge-1', protocol: 'delta', labels: { group: 'edge', 'omnirelay.host_kinds': ['wasm'] } })
  })

  it('NACKs with the apply error and keeps its state; the fix is applied', async () => {
    const { cache, server: s } = await server()
    cache.setSnapshot('edge-1', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
    const { c, updates } = client(s.address, {
      onResources: (u) => {
        if (u.typeUrl === TypeUrl.Cluster && u.resources.some((r) => r.name === 'bad-cluster')) {
          throw Object.assign(new Error('cluster bad-cluster: unknown lb policy'), { code: 'CONFIG_INVALID' })
        }
        updates.push(u)
      },
    })
    await until(() => s.dataPlanes()[0]?.appliedEpoch === 1)
    cache.setSnapshot('edge-1', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'bad', ports: [2] }]))
    await until(() => s.dataPlanes()[0]?.state === 'nack')
    const dp = s.dataPlanes()[0]!
    expect(dp.lastError?.error.message).toBe('CONFIG_INVALID: cluster bad-cluster: unknown lb policy')
    expect(dp.refusedEpoch).toBe(2)
    expect(c.status.refused).toMatchObject({ epoch: 2, typeUrl: TypeUrl.Cluster })
    expect([...c.held(TypeUrl.Cluster).keys()]).toEqual(['a-cluster'])
    cache.setSnapshot('edge-1', serviceSnapshot(3, [{ name: 'a', ports: [1] }, { name: 'good', ports: [3] }]))
    await until(() => dp.appliedEpoch === 3)
    expect([...c.held(TypeUrl.Cluster).keys()].sort()).toEqual(['a-cluster', 'good-cluster'])
    expect(updates.at(-1)!.epoch).toBe(3)
  })

  it('after a stream cut it reconnects with backoff and resumes without resending anything', async () => {
    const { cache, server: s, responses } = await server()
    cache.setSnapshot('edge-1', serviceSnapshot(1, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const proxy = await cutProxy(() => s.port)
    cleanup.push(() => proxy.close())
    const { c, updates } = client(`127.0.0.1:${proxy.port}`)
    await until(() => c.status.appliedEpoch === 1 && s.dataPlanes()[0]?.state === 'ack')
    const sentBefore = responses.length
    const appliedBefore = updates.length
    proxy.cut()
    await until(() => c.status.connects === 2 && s.dataPlanes().length === 1 && s.dataPlanes()[0]!.appliedEpoch === 1, 5000, 'reconnect')
    await new Promise((r) => setTimeout(r, 100))
    expect(responses.length).toBe(sentBefore)
    expect(updates.length).toBe(appliedBefore)
    // A change after the reconnect arrives alone.
    cache.setSnapshot('edge-1', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'b', ports: [20] }]))
    await until(() => c.status.appliedEpoch === 2)
    expect(updates.slice(appliedBefore).map((u) => [u.typeUrl.split('.').pop(), u.resources.map((r) => r.name)])).toEqual([
      ['ClusterLoadAssignment', ['b-cluster']],
    ])
  })

  it('survives a control plane restart mid-stream (new process state, same port) and gets only the difference', async () => {
    const first = await server()
    first.cache.setSnapshot('edge-1', serviceSnapshot(1, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    const { c, updates } = client(first.server.address)
    await until(() => first.server.dataPlanes()[0]?.appliedEpoch === 1)
    const applied = updates.length
    const port = first.server.port
    await first.server.close()
    await until(() => c.status.state === 'backoff', 3000, 'client notices')
    // Restarted central: a fresh cache that republishes, with one change.
    const cache = new SnapshotCache()
    cache.setSnapshot('edge-1', serviceSnapshot(7, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }, { name: 'c', ports: [3] }]))
    const second = await server(cache, port)
    await until(() => second.server.dataPlanes()[0]?.appliedEpoch === 7, 5000, 'epoch 7')
    const sent = second.responses.filter((r) => r.typeUrl !== TypeUrl.Epoch).flatMap((r) => r.resources.map((n) => `${r.typeUrl.split('.').pop()}:${n}`))
    expect(sent.sort()).toEqual(['Cluster:c-cluster', 'ClusterLoadAssignment:c-cluster', 'Listener:c', 'RouteConfiguration:c-route'])
    expect(updates.length).toBeGreaterThan(applied)
  })
})

describe('OmniRelay xDS client, atomic epochs', () => {
  for (const protocol of ['delta', 'sotw'] as const) {
    it(`${protocol}: applies each epoch as one batch after the marker; a refused epoch changes nothing`, async () => {
      const { cache, server: s } = await server()
      cache.setSnapshot('edge-1', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
      const batches: { epoch: number | undefined; types: (string | undefined)[] }[] = []
      let refuse = false
      const c = createXdsClient({
        address: s.address,
        node: { id: 'edge-1' },
        protocol,
        backoff: { initialMs: 20, maxMs: 200 },
        onEpoch: ({ epoch, updates }) => {
          if (refuse) throw Object.assign(new Error('bundle digest mismatch'), { code: 'BUNDLE_DIGEST_MISMATCH' })
          // SotW also sends (empty) full-state types like BundleRef; count what carries something.
          const real = updates.filter((u) => u.resources.length > 0 || u.removed.length > 0)
          batches.push({ epoch, types: real.map((u) => u.typeUrl.split('.').pop()) })
        },
      })
      cleanup.push(() => c.close())
      await until(() => s.dataPlanes()[0]?.appliedEpoch === 1 && s.dataPlanes()[0]?.state === 'ack')
      // SotW delivers the requested types as the requests arrive; all of them precede the marker.
      expect(batches.at(-1)!.epoch).toBe(1)
      expect(batches.flatMap((b) => b.types).sort()).toEqual(['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration'])
      const seen = batches.length

      refuse = true
      cache.setSnapshot('edge-1', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
      // Every response of epoch 2 (four types and the marker) refused.
      await until(() => Object.values(s.dataPlanes()[0]!.toJSON().types).filter((t) => t.state === 'nack' && t.epoch === 2).length === 5)
      expect(s.dataPlanes()[0]!.refusedEpoch).toBe(2)
      expect(s.dataPlanes()[0]!.lastError?.error.message).toBe('BUNDLE_DIGEST_MISMATCH: bundle digest mismatch')
      expect([...c.held(TypeUrl.Cluster).keys()]).toEqual(['a-cluster'])
      expect(c.status.appliedEpoch).toBe(1)

      refuse = false
      cache.setSnapshot('edge-1', serviceSnapshot(3, [{ name: 'a', ports: [1] }, { name: 'c', ports: [3] }]))
      await until(() => s.dataPlanes()[0]?.appliedEpoch === 3 && s.dataPlanes()[0]?.state === 'ack')
      const last = batches.slice(seen)
      expect(last).toHaveLength(1)
      expect(last[0]).toEqual({ epoch: 3, types: ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration'] })
      expect([...c.held(TypeUrl.Cluster).keys()].sort()).toEqual(['a-cluster', 'c-cluster'])
    })
  }
})

describe('OmniRelay xDS client (SotW)', () => {
  it('applies full-state updates, derives removals, NACKs and recovers', async () => {
    const { cache, server: s } = await server()
    cache.setSnapshot('edge-1', serviceSnapshot(1, [{ name: 'a', ports: [1] }, { name: 'b', ports: [2] }]))
    let refuse = false
    const { c, updates } = client(s.address, {
      protocol: 'sotw',
      subscriptions: [{ typeUrl: TypeUrl.Cluster }, { typeUrl: TypeUrl.Listener }],
      onResources: (u) => {
        if (refuse) throw new Error('refused')
        updates.push(u)
      },
    })
    await until(() => s.dataPlanes()[0]?.appliedEpoch === 1)
    expect([...c.held(TypeUrl.Cluster).keys()].sort()).toEqual(['a-cluster', 'b-cluster'])
    refuse = true
    cache.setSnapshot('edge-1', serviceSnapshot(2, [{ name: 'a', ports: [1] }, { name: 'c', ports: [2] }]))
    await until(() => s.dataPlanes()[0]?.state === 'nack')
    expect([...c.held(TypeUrl.Cluster).keys()].sort()).toEqual(['a-cluster', 'b-cluster'])
    refuse = false
    cache.setSnapshot('edge-1', serviceSnapshot(3, [{ name: 'a', ports: [1] }]))
    await until(() => s.dataPlanes()[0]?.appliedEpoch === 3)
    const last = updates.filter((u) => u.typeUrl === TypeUrl.Cluster).at(-1)!
    expect(last.removed).toEqual(['b-cluster'])
    expect([...c.held(TypeUrl.Cluster).keys()]).toEqual(['a-cluster'])
  })
})
