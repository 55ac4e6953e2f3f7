/** MeshKit telemetry: the gRPC service data planes report to, its SQLite store, and the B-vs-A query. */
export { TelemetryStore, type Selection, type TelemetryStoreOptions, type WindowTotals } from './store.ts'
export { compareVersions, quantileMs, statsOf, type CompareQuery, type Comparison, type VersionStats } from './query.ts'
export { addTelemetryService, startTelemetryServer, type TelemetryServiceOptions, type TelemetryServiceStats } from './service.ts'
