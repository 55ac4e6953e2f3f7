/**
 * TelemetryService.Report on @grpc/grpc-js: validates the shape of a batch (untrusted input:
 * a bad batch is refused with INVALID_ARGUMENT, never crashes central) and stores it.
 */
import * as grpc from '@grpc/grpc-js'
import { telemetryServiceDefinition, type AckWire, type BatchWire } from '@omnirelay/runtime/telemetry/proto.ts'
import type { TelemetryStore } from './store.ts'

export interface TelemetryServiceStats {
  batches: number
  series: number
  refused: number
}

const MAX_SERIES_PER_BATCH = 10_000

/**
 * @example
 * const server = new grpc.Server()
 * addTelemetryService(server, store)
 */
export interface TelemetryServiceOptions {
  /** The group of a data plane that did not say (central's fleet view knows it). */
  groupOf?: (node: string) => string | undefined
}

export function addTelemetryService(server: grpc.Server, store: TelemetryStore, stats: TelemetryServiceStats = { batches: 0, series: 0, refused: 0 }, opts: TelemetryServiceOptions = {}): TelemetryServiceStats {
  server.addService(telemetryServiceDefinition(), {
    Report(call: grpc.ServerUnaryCall<BatchWire, AckWire>, cb: grpc.sendUnaryData<AckWire>) {
      const b = call.request
      const bad = check(b)
      if (bad) {
        stats.refused++
        cb({ code: grpc.status.INVALID_ARGUMENT, details: bad })
        return
      }
      if (!b.group && opts.groupOf) b.group = opts.groupOf(b.node) ?? ''
      try {
        const stored = store.insert(b)
        stats.batches++
        stats.series += stored
        cb(null, { seq: b.seq, stored })
      } catch (e) {
        cb({ code: grpc.status.INTERNAL, details: `telemetry not stored: ${(e as Error).message}` })
      }
    },
  })
  return stats
}

function check(b: BatchWire): string | undefined {
  if (!b.node) return 'node is required'
  if (b.series.length > MAX_SERIES_PER_BATCH) return `more than ${MAX_SERIES_PER_BATCH} series`
  for (const s of b.series) {
    if (!Number.isFinite(s.requests) || s.requests < 0) return 'bad requests count'
    if (!Number.isFinite(s.latencySumMs) || !Number.isFinite(s.fuelSum)) return 'non-finite sum'
  }
  return undefined
}

/** A standalone telemetry server on loopback (tests, benchmarks); central adds the service to its own server. */
export async function startTelemetryServer(store: TelemetryStore, host = '127.0.0.1', port = 0): Promise<{ address: string; stats: TelemetryServiceStats; close(): Promise<void> }> {
  const server = new grpc.Server()
  const stats = addTelemetryService(server, store)
  const p = await new Promise<number>((ok, fail) => server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (e, n) => (e ? fail(e) : ok(n))))
  return {
    address: `${host}:${p}`,
    stats,
    close: () =>
      new Promise<void>((ok) => {
        const t = setTimeout(() => (server.forceShutdown(), ok()), 200)
        server.tryShutdown(() => (clearTimeout(t), ok()))
      }),
  }
}
