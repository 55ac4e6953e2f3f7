/**
 * Central with rollouts: central (config API, registry, xDS) plus the telemetry gRPC
 * service, the telemetry and rollout stores (SQLite files in the data dir), the rollout
 * manager ticking, and one HTTP server answering both APIs.
 */
import http from 'node:http'
import { join } from 'node:path'
import { Central, createCentralHandler, type RunningCentral, type StartCentralOptions } from '../central/index.ts'
import { listen } from '../central/api.ts'
import { addTelemetryService, startTelemetryServer, TelemetryStore } from '../telemetry/index.ts'
import { createRolloutApi } from './api.ts'
import { centralPublisher, killSplits } from './central-publisher.ts'
import { storeTelemetry } from './index.ts'
import { RolloutManager } from './manager.ts'
import { RolloutStore } from './store.ts'

export interface StartWithRolloutsOptions extends StartCentralOptions {
  /** A separate telemetry gRPC port; by default telemetry shares the xDS server (and address). */
  telemetryPort?: number
  /** Rollout manager tick (default 1000 ms). */
  tickMs?: number
  /** Telemetry retention (default 1 h). */
  telemetryRetentionMs?: number
}

export interface RunningCentralWithRollouts extends RunningCentral {
  /** `host:port` of the telemetry gRPC service (the xDS address unless a port was given). */
  telemetryAddress: string
  rollouts: RolloutManager
  telemetry: TelemetryStore
}

/**
 * @example
 * const c = await startCentralWithRollouts({ dataDir, trustPolicy, port: 7080 })
 * // POST {c.url}/v1/rollouts {"group":"edge","chain":"api","filter":"waf","from":"waf@1.0.0","to":"waf@2.0.0"}
 */
export async function startCentralWithRollouts(opts: StartWithRolloutsOptions): Promise<RunningCentralWithRollouts> {
  const central = await Central.start(opts)
  const host = opts.host ?? '127.0.0.1'
  const telemetry = TelemetryStore.open(join(opts.dataDir, 'telemetry.sqlite'), opts.telemetryRetentionMs ? { retentionMs: opts.telemetryRetentionMs } : {})
  const store = RolloutStore.open(join(opts.dataDir, 'rollouts.sqlite'))
  // Stored kills stay in every group's config through any later change (restart included).
  central.setKillSplits(killSplits(store.kills()))
  const rollouts = new RolloutManager({ store, publisher: centralPublisher(central), telemetry: storeTelemetry(telemetry), tickMs: opts.tickMs ?? 1000 })
  const closeStores = async () => {
    rollouts.stop()
    await rollouts.idle()
    store.close()
    telemetry.close()
  }
  let tserver: { address: string; close(): Promise<void> }
  try {
    if (opts.telemetryPort === undefined) {
      // grpc-js looks handlers up per call: a service added after bind is served.
      addTelemetryService(central.grpcServer, telemetry, undefined, { groupOf: groupResolver(central) })
      tserver = { address: central.xdsAddress, close: async () => {} }
    } else tserver = await startTelemetryServer(telemetry, host, opts.telemetryPort)
  } catch (e) {
    await closeStores()
    await central.close()
    throw e
  }
  const api = createRolloutApi(rollouts, telemetry)
  const centralApi = createCentralHandler(central)
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    void api(req, res).then((handled) => {
      if (!handled) centralApi(req, res)
    })
  })
  const addr = await listen(server, opts.port ?? 0, host)
  rollouts.run()
  const h = addr.address.includes(':') ? `[${addr.address}]` : addr.address
  return {
    url: `http://${h}:${addr.port}`,
    xdsAddress: central.xdsAddress,
    registryUrl: central.registry.url,
    telemetryAddress: tserver.address,
    central,
    rollouts,
    telemetry,
    async close() {
      rollouts.stop()
      await new Promise<void>((ok) => {
        server.close(() => ok())
        server.closeAllConnections()
      })
      await tserver.close()
      await closeStores()
      await central.close()
    },
  }
}

// Node id -> group from the fleet view, refreshed at most once a second (batches arrive per node per second).
function groupResolver(central: Central): (node: string) => string | undefined {
  let map = new Map<string, string>()
  let at = 0
  return (node) => {
    const now = Date.now()
    if (now - at > 1000 || !map.has(node)) {
      map = new Map(central.dataPlanes().map((d) => [d.id, d.group] as [string, string]))
      at = now
    }
    return map.get(node)
  }
}
