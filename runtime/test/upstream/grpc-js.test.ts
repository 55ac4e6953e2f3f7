import * as grpc from '@grpc/grpc-js'
import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import type { ClusterManager } from '../../src/upstream/types.ts'
import { clusterConfig, grpcFrame, header, manager } from './helpers.ts'

const identity = (b: Buffer) => b

/** Splits a gRPC response body into its messages. */
function messages(buf: Buffer): string[] {
  const out: string[] = []
  while (buf.length >= 5) {
    const len = buf.readUInt32BE(1)
    out.push(buf.subarray(5, 5 + len).toString())
    buf = buf.subarray(5 + len)
  }
  return out
}

describe('a real gRPC server (@grpc/grpc-js) behind an http2 cluster', () => {
  let server: grpc.Server | undefined
  let clusters: ClusterManager | undefined
  afterEach(async () => {
    await clusters?.close()
    clusters = undefined
    server?.forceShutdown()
    server = undefined
  })

  async function start(): Promise<number> {
    server = new grpc.Server()
    server.addService(
      {
        chat: {
          path: '/test.Echo/Chat',
          requestStream: true,
          responseStream: true,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
        fail: {
          path: '/test.Echo/Fail',
          requestStream: false,
          responseStream: false,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      },
      {
        chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('data', (d: Buffer) => call.write(Buffer.from(d.toString().toUpperCase())))
          call.on('end', () => call.end())
        },
        fail: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'no way' }),
      },
    )
    return new Promise((resolve, reject) =>
      server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    )
  }

  const grpcHeaders = ['host', 'grpc.local', 'content-type', 'application/grpc', 'te', 'trailers']

  it('streams both ways and delivers grpc-status in trailers', async () => {
    const port = await start()
    clusters = manager([clusterConfig('grpc', [port], { http2: true })]).clusters
    const body = new PassThrough()
    // grpc-js sends response headers with its first message: write before awaiting them.
    body.write(grpcFrame('alpha'))
    const res = await clusters.get('grpc')!.request({
      method: 'POST',
      path: '/test.Echo/Chat',
      headers: grpcHeaders,
      body,
      policy: { requestTimeoutMs: 5_000, idleTimeoutMs: 1_000 },
    })
    expect(res.statusCode).toBe(200)
    const it = res.body[Symbol.asyncIterator]()
    const got: string[] = []
    got.push(...messages((await it.next()).value as Buffer))
    for (const w of ['beta', 'gamma']) {
      body.write(grpcFrame(w))
      got.push(...messages((await it.next()).value as Buffer))
    }
    body.end()
    while (!(await it.next()).done) {
      /* drain */
    }
    expect(got).toEqual(['ALPHA', 'BETA', 'GAMMA'])
    expect(header(res.trailers(), 'grpc-status')).toBe('0')
  })

  it('passes an error status through unchanged', async () => {
    const port = await start()
    clusters = manager([clusterConfig('grpc', [port], { http2: true })]).clusters
    const res = await clusters.get('grpc')!.request({
      method: 'POST',
      path: '/test.Echo/Fail',
      headers: grpcHeaders,
      body: grpcFrame('x'),
      policy: { requestTimeoutMs: 5_000, idleTimeoutMs: 0 },
    })
    for await (const _ of res.body) {
      /* drain */
    }
    // grpc-js sends the status as trailers (or trailers-only headers): either way it arrives.
    const status = header(res.trailers(), 'grpc-status') ?? header(res.headers, 'grpc-status')
    const message = header(res.trailers(), 'grpc-message') ?? header(res.headers, 'grpc-message')
    expect(status).toBe(String(grpc.status.PERMISSION_DENIED))
    expect(message).toBe('no%20way')
  })
})
