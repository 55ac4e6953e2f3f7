/**
 * A standalone xDS server: a grpc-js server with ADS on it.
 *
 * @example
 * const cache = new SnapshotCache()
 * const xds = await startXdsServer({ cache, callbacks: { onNack: (dp, ev) => log(dp.id, ev.error) } })
 * cache.setSnapshot('node-1', new Snapshot(1, resources))
 * // ... clients connect to `127.0.0.1:${xds.port}`
 * await xds.close()
 */
import * as grpc from '@grpc/grpc-js'
import { addAdsService, StreamRegistry } from './grpc/ads-service.ts'
import type { AdsStreamOptions } from './stream-base.ts'
import type { DataPlane } from './data-plane.ts'

export interface XdsServerOptions extends AdsStreamOptions {
  host?: string
  /** 0 (default) picks a free port. */
  port?: number
  grpcOptions?: grpc.ServerOptions
}

export interface XdsServer {
  readonly port: number
  readonly address: string
  readonly grpcServer: grpc.Server
  /** Connected data planes (after their first request). */
  dataPlanes(): DataPlane[]
  readonly streamCount: number
  /** Stops accepting, ends open streams after `graceMs` (default 0: at once). */
  close(graceMs?: number): Promise<void>
}

export async function startXdsServer(opts: XdsServerOptions): Promise<XdsServer> {
  const server = new grpc.Server({
    // Many long-lived streams per connection is the normal case for ADS clients.
    'grpc.max_concurrent_streams': 1 << 20,
    ...opts.grpcOptions,
  })
  const registry = addAdsService(server, opts, new StreamRegistry())
  const host = opts.host ?? '127.0.0.1'
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  )
  return {
    port,
    address: `${host}:${port}`,
    grpcServer: server,
    dataPlanes: () => registry.dataPlanes(),
    get streamCount() {
      return registry.size
    },
    close: (graceMs = 0) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown()
          resolve()
        }, graceMs)
        server.tryShutdown(() => {
          clearTimeout(force)
          resolve()
        })
      }),
  }
}
