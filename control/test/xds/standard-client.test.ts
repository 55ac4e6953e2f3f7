/**
 * A standard xDS client — grpc-js's own xds resolver from @grpc/grpc-js-xds — reads
 * Listener, RouteConfiguration, Cluster and ClusterLoadAssignment from our server
 * and routes a real RPC to a real gRPC server through them.
 */
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { makeResource, Snapshot, SnapshotCache, startXdsServer, type XdsServer } from '../../src/xds/index.ts'
import { decodeResource } from '@omnirelay/runtime/xds/proto/resource-codec.ts'
import { serviceSnapshot } from './fixtures.ts'
import { until } from './harness.ts'

const ECHO = {
  Echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
} satisfies grpc.ServiceDefinition

let echo: grpc.Server
let echoPort: number
let echo2: grpc.Server
let echo2Port: number
let xds: XdsServer
const cache = new SnapshotCache()

async function echoServer(prefix: string): Promise<[grpc.Server, number]> {
  const server = new grpc.Server()
  server.addService(ECHO, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([Buffer.from(`${prefix}:`), call.request])),
  })
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))))
  return [server, port]
}

function call(client: grpc.Client): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(ECHO.Echo.path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from('hi'), { deadline: Date.now() + 10_000 }, (err, res) =>
      err ? reject(err) : resolve(res!.toString()),
    ),
  )
}

beforeAll(async () => {
  ;[echo, echoPort] = await echoServer('echo')
  ;[echo2, echo2Port] = await echoServer('echo2')
  xds = await startXdsServer({ cache })
  // The xds resolver reads its bootstrap when the first xds:// channel is made.
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: xds.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'grpc-std-client', cluster: 'test', locality: { zone: 'z' } },
  })
  const xdsPlugin = await import('@grpc/grpc-js-xds')
  xdsPlugin.register()
})

afterAll(async () => {
  await xds?.close()
  echo?.forceShutdown()
  echo2?.forceShutdown()
})

it('grpc-js-xds resolves xds:///echo.test through our server and reaches the real backend', async () => {
  cache.setSnapshot('grpc-std-client', serviceSnapshot(5, [{ name: 'echo.test', ports: [echoPort] }]))
  const client = new grpc.Client('xds:///echo.test', grpc.credentials.createInsecure())
  try {
    expect(await call(client)).toBe('echo:hi')
    const dp = xds.dataPlanes().find((d) => d.id === 'grpc-std-client')!
    await until(() => dp.appliedEpoch === 5, 3000, 'epoch 5 acked')
    expect(dp.protocol).toBe('sotw')
    expect(dp.node.userAgentName).toMatch(/grpc/i)
    const types = dp.toJSON().types
    for (const t of [TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment]) {
      expect(types[t]?.state, t).toBe('ack')
      expect(types[t]?.epoch).toBe(5)
    }

    // An endpoint change reaches the standard client: traffic moves to the second backend.
    cache.setSnapshot('grpc-std-client', serviceSnapshot(6, [{ name: 'echo.test', ports: [echo2Port] }]))
    let reply = ''
    for (let i = 0; i < 200 && reply !== 'echo2:hi'; i++) {
      reply = await call(client)
      if (reply !== 'echo2:hi') await new Promise((r) => setTimeout(r, 10))
    }
    expect(reply).toBe('echo2:hi')
    await until(() => dp.appliedEpoch === 6, 3000, 'epoch 6 acked')

    // grpc-js-xds refuses a listener it cannot use: we see its NACK with the reason and the epoch,
    // and it keeps serving the previous config.
    const bad = serviceSnapshot(7, [{ name: 'echo.test', ports: [echo2Port] }])
    const badListener = makeResource(TypeUrl.Listener, 'echo.test', {
      ...decodeResource(TypeUrl.Listener, bad.resources(TypeUrl.Listener).get('echo.test')!.variants[0]!.value),
      use_original_dst: { value: true },
    })
    cache.setSnapshot('grpc-std-client', new Snapshot(7, [badListener, ...[TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment].flatMap((t) => [...bad.resources(t).values()])]))
    await until(() => dp.state === 'nack', 3000, 'NACK from grpc-js-xds')
    expect(dp.refusedEpoch).toBe(7)
    expect(dp.lastError).toMatchObject({ typeUrl: TypeUrl.Listener, epoch: 7, error: { message: expect.stringContaining('use_original_dst') } })
    expect(await call(client)).toBe('echo2:hi')
    cache.setSnapshot('grpc-std-client', serviceSnapshot(8, [{ name: 'echo.test', ports: [echoPort] }]))
    await until(() => dp.appliedEpoch === 8 && dp.state === 'ack', 3000, 'fix acked')
  } finally {
    client.close()
  }
})
