/**
 * A node:cluster worker: runs a full proxy (listeners shared with the other workers through
 * the primary) on the state the primary sends, without an admin server. Filters are loaded
 * here, from the paths in the config: bundle signatures are verified by this process, against
 * the config's trust policy, at every start and reload.
 *
 * In xDS mode the worker also enforces the revocation list the primary forwards, and
 * aggregates rollout telemetry that the primary collects and sends to central.
 */
import type { AddressInfo } from 'node:net'
import { RevocationList } from '../bundles/revocation-list.ts'
import type { RevocationPoller } from '../bundles/revocation-poller.ts'
import { ConfigError } from '../config/errors.ts'
import { createLogger } from '../observability/logger.ts'
import { MetricsRegistry } from '../observability/metrics.ts'
import { MetricsTelemetry, SplitTelemetry, TelemetryAggregator } from '../telemetry/index.ts'
import { Proxy } from './proxy.ts'
import type { FromWorker, ToWorker, WorkerFailure } from './worker-messages.ts'

let proxy: Proxy | undefined
let versions: Record<string, string> = {}
let aggregator: TelemetryAggregator | undefined
const revocations = new RevocationList()
const send = (m: FromWorker) => process.send?.(m)

function addresses(p: Proxy): Record<string, AddressInfo> {
  const out: Record<string, AddressInfo> = {}
  for (const l of p.config.listeners) out[l.name] = p.address(l.name)
  return out
}

function failure(e: unknown): WorkerFailure {
  const err = e as Error & { code?: unknown }
  const f: WorkerFailure = { code: typeof err.code === 'string' ? err.code : 'start_failed', message: err.message ?? String(e) }
  if (e instanceof ConfigError) f.issues = e.issues.map((i) => ({ path: i.path, message: i.message }))
  return f
}

process.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'start': {
      const { config, epoch } = msg.state
      versions = msg.state.versions ?? {}
      const metrics = new MetricsRegistry()
      let splitObserver: SplitTelemetry | undefined
      if (msg.telemetry) {
        aggregator = new TelemetryAggregator()
        splitObserver = new SplitTelemetry(aggregator, metrics)
        new MetricsTelemetry(metrics, aggregator, { epoch: () => proxy?.epoch ?? epoch, versionOf: (f) => versions[f] })
      }
      if (msg.revocations) revocations.replace(msg.revocations)
      Proxy.start(config, {
        admin: false,
        epoch,
        metrics,
        log: createLogger({ level: config.logLevel, fields: { worker: process.pid } }),
        // The primary owns the poller; the proxy only reads `list` of a poller it did not start.
        ...(msg.revocations ? { revocations: { list: revocations } as unknown as RevocationPoller } : {}),
        ...(splitObserver ? { splitObserver } : {}),
        ...(msg.rejoin ? { startWithoutRevoked: true } : {}),
      }).then(
        (p) => {
          proxy = p
          send({ type: 'ready', addresses: addresses(p) })
        },
        (err: unknown) => {
          send({ type: 'start-failed', ...failure(err) })
          process.exit(1)
        },
      )
      return
    }
    case 'reload': {
      if (!proxy) return
      const p = proxy
      p.reload(msg.state.config, msg.state.epoch).then(
        () => {
          versions = msg.state.versions ?? {}
          send({ type: 'reloaded', id: msg.id, ok: true, addresses: addresses(p) })
        },
        (err: unknown) => send({ type: 'reloaded', id: msg.id, ok: false, ...failure(err) }),
      )
      return
    }
    case 'revocations':
      revocations.replace(msg.snapshot)
      void (proxy?.revocationsChanged() ?? Promise.resolve()).finally(() => send({ type: 'revoked', id: msg.id }))
      return
    case 'metrics':
      send({ type: 'metrics', id: msg.id, text: proxy ? proxy.metrics.render() : '' })
      return
    case 'telemetry': {
      const d = aggregator?.drain() ?? { series: [], droppedSeries: 0 }
      send({ type: 'telemetry', id: msg.id, series: d.series, droppedSeries: d.droppedSeries })
      return
    }
    case 'close':
      void (proxy?.close() ?? Promise.resolve()).finally(() => process.exit(0))
      return
  }
})

send({ type: 'hello' })

// The primary owns signals: a worker ignores SIGINT/SIGTERM sent to the process group and
// waits for the primary's 'close' so in-flight requests drain.
process.on('SIGINT', () => {})
process.on('SIGTERM', () => {})
process.on('SIGHUP', () => {})
process.on('disconnect', () => void (proxy?.close(0) ?? Promise.resolve()).finally(() => process.exit(0)))
