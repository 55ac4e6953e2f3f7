/**
 * MeshKit central: config API, registry, xDS server and fleet view in one process.
 *
 * @example
 * import { startCentral } from '@meshkit/control/src/central/index.ts'
 * const central = await startCentral({ dataDir: './meshkit-data', trustPolicy: './trust-policy.yaml', port: 7080, xdsPort: 18000 })
 * // PUT {central.url}/v1/groups/edge {"selector": {"role": "edge"}}
 * // omnirelay run --xds {central.xdsAddress} --bootstrap bootstrap.json
 * await central.close()
 */
import http from 'node:http'
import { createCentralHandler, listen } from './api.ts'
import { Central, type CentralOptions } from './central.ts'

export interface StartCentralOptions extends CentralOptions {
  /** Config API port (default 0: any free port). */
  port?: number
}

export interface RunningCentral {
  /** Config API base URL, `http://host:port`. */
  url: string
  /** `host:port` of the xDS (ADS) server. */
  xdsAddress: string
  /** The embedded registry's URL. */
  registryUrl: string
  central: Central
  close(): Promise<void>
}

/** Starts central (store, registry, xDS, config API). `close()` stops all of them. */
export async function startCentral(opts: StartCentralOptions): Promise<RunningCentral> {
  const central = await Central.start(opts)
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, createCentralHandler(central))
  server.keepAliveTimeout = 5_000
  let addr
  try {
    addr = await listen(server, opts.port ?? 0, opts.host ?? '127.0.0.1')
  } catch (e) {
    await central.close()
    throw e
  }
  const h = addr.address.includes(':') ? `[${addr.address}]` : addr.address
  return {
    url: `http://${h}:${addr.port}`,
    xdsAddress: central.xdsAddress,
    registryUrl: central.registry.url,
    central,
    async close() {
      await new Promise<void>((ok) => {
        server.close(() => ok())
        server.closeAllConnections()
      })
      await central.close()
    },
  }
}

export { Central, type CentralOptions, type GroupView } from './central.ts'
export { CentralError, CentralErrorCode } from './errors.ts'
export { compileGroup, parseBundleRef, type BundleInfo, type CompileContext } from './compile.ts'
export { selectGroup, GROUP_LABEL, UNASSIGNED } from './groups.ts'
export { CentralStore, OBJECT_KINDS, type GroupConfig, type GroupRecord, type ObjectKind, type Spec } from './store.ts'
export { createCentralHandler } from './api.ts'
