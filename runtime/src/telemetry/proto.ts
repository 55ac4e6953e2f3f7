/**
 * The telemetry gRPC service definition (runtime/proto/omnirelay/v1/telemetry.proto), loaded
 * once per process with @grpc/proto-loader; the data-plane exporter and central's service
 * both use it, so the wire format has one source.
 */
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** Upper bounds (ms) of the latency buckets every series uses; a last bucket is +Inf. */
export const LATENCY_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] as const

/** Status classes in `responses_by_class` order. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

export interface SeriesWire {
  epoch: number
  route: string
  filter: string
  version: string
  variant: string
  requests: number
  responsesByClass: number[]
  localReplies: number
  latencyBuckets: number[]
  latencySumMs: number
  traps: Record<string, number>
  fuelSum: number
  fuelCount: number
}

export interface BatchWire {
  node: string
  group: string
  seq: number
  startMs: number
  endMs: number
  series: SeriesWire[]
  droppedBatches: number
  droppedSeries: number
}

export interface AckWire {
  seq: number
  stored: number
}

let service: grpc.ServiceDefinition | undefined
let ctor: grpc.ServiceClientConstructor | undefined

function load(): void {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto/omnirelay/v1/telemetry.proto')
  // longs as numbers: counters stay far below 2^53 within one batch.
  const def = protoLoader.loadSync(file, { longs: Number, defaults: true, keepCase: false })
  const pkg = grpc.loadPackageDefinition(def) as unknown as { omnirelay: { v1: { TelemetryService: grpc.ServiceClientConstructor } } }
  ctor = pkg.omnirelay.v1.TelemetryService
  service = ctor.service
}

/** The service definition for `server.addService`. */
export function telemetryServiceDefinition(): grpc.ServiceDefinition {
  if (!service) load()
  return service!
}

/** The generated client constructor. */
export function telemetryClientConstructor(): grpc.ServiceClientConstructor {
  if (!ctor) load()
  return ctor!
}
