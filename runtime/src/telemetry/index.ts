/**
 * Data-plane telemetry: aggregation per (epoch, route, filter, version, variant) and the
 * batched gRPC exporter to MeshKit central.
 */
export { SeriesCell, TelemetryAggregator, type SeriesKey, type TelemetryAggregatorOptions } from './aggregator.ts'
export { SplitTelemetry } from './split-observer.ts'
export { TelemetryExporter, type ExporterStatus, type TelemetryExporterOptions } from './exporter.ts'
export { LATENCY_BOUNDS_MS, STATUS_CLASSES, telemetryClientConstructor, telemetryServiceDefinition, type AckWire, type BatchWire, type SeriesWire } from './proto.ts'
export { MetricsTelemetry, type MetricsTelemetryOptions } from './metrics-poller.ts'
