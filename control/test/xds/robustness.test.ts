import * as grpc from '@grpc/grpc-js'
import { afterEach, expect, it } from 'vitest'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { SnapshotCache, startXdsServer, type XdsServer } from '../../src/xds/index.ts'
import { serviceSnapshot } from './fixtures.ts'
import { node, rawClient } from './raw-client.ts'

let xds: XdsServer | undefined
afterEach(async () => xds?.close())

it('garbage on a stream ends that stream only; callbacks that throw do not break streams', async () => {
  const cache = new SnapshotCache()
  cache.setSnapshot('dp', serviceSnapshot(1, [{ name: 'a', ports: [1] }]))
  xds = await startXdsServer({
    cache,
    callbacks: {
      onRequest: () => {
        throw new Error('buggy hook')
      },
    },
  })
  const client = new grpc.Client(xds.address, grpc.credentials.createInsecure())
  const bad = client.makeBidiStreamRequest(
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
    (b: Buffer) => b,
    (b: Buffer) => b,
  )
  bad.on('error', () => {})
  const status = new Promise<grpc.StatusObject>((r) => bad.on('status', r))
  bad.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]))
  expect((await status).code).not.toBe(grpc.status.OK)
  client.close()

  const c = rawClient(xds.address)
  const s = c.delta()
  s.request({ typeUrl: TypeUrl.Cluster, node: node('dp') })
  expect((await s.next()).resources.map((r) => r.name)).toEqual(['a-cluster'])
  // A type nobody publishes is simply empty, not an error.
  s.request({ typeUrl: 'type.googleapis.com/unknown.v1.Thing' })
  expect(await s.silent()).toBe(true)
  c.close()
})
