/**
 * MeshKit rollouts: a filter version moved by traffic steps, judged from telemetry, rolled
 * back or promoted on its own; the kill switch. Central supplies a `RolloutPublisher` and
 * a `RolloutTelemetry` (e.g. `storeTelemetry(telemetryStore)`).
 */
import { compareVersions } from '../telemetry/query.ts'
import type { TelemetryStore } from '../telemetry/store.ts'
import type { RolloutTelemetry } from './types.ts'

export { judge, type Check, type Verdict } from './analysis.ts'
export { RolloutError, RolloutErrorCode } from './errors.ts'
export { RolloutManager, versionOf, type RolloutManagerOptions } from './manager.ts'
export { RolloutStore } from './store.ts'
export * from './types.ts'

/** Analysis reads the telemetry store central's gRPC service fills. */
export function storeTelemetry(store: TelemetryStore): RolloutTelemetry {
  return { compare: (q, now) => compareVersions(store, q, now) }
}
