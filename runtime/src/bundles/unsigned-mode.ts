/**
 * Running with `allowUnsigned` must never go unnoticed: the host calls `announceUnsignedMode`
 * once at start (and on each config that changes the flag), which logs a loud warning and
 * sets a gauge operators can alert on.
 */
import type { Logger } from '../observability/logger.ts'
import type { MetricsRegistry } from '../observability/metrics.ts'

/** Gauge: 1 while the host accepts unsigned filter modules, else 0 (the name the proxy exports). */
export const UNSIGNED_MODE_METRIC = 'omnirelay_allow_unsigned'
/** Counter, labelled by filter: unsigned modules actually loaded. */
export const UNSIGNED_LOADED_METRIC = 'omnirelay_unsigned_artifacts_loaded_total'

export const UNSIGNED_WARNING =
  'INSECURE: allowUnsigned is on. Filter modules load WITHOUT signature verification. Development only; never in production.'

/**
 * Logs the warning (when on) and sets the gauge (always, so it drops to 0 when turned off).
 *
 * @example
 * announceUnsignedMode(config.allowUnsigned, log, metrics)
 */
export function announceUnsignedMode(allowUnsigned: boolean, log: Logger, metrics: MetricsRegistry): void {
  metrics.gauge(UNSIGNED_MODE_METRIC, '1 when unsigned filter modules may load (development mode: never in production)').labels().set(allowUnsigned ? 1 : 0)
  if (allowUnsigned) log.warn(UNSIGNED_WARNING, { allowUnsigned: true, metric: UNSIGNED_MODE_METRIC })
}

/** Counts one unsigned module load and warns naming it. */
export function recordUnsignedLoad(filter: string, file: string, log: Logger, metrics: MetricsRegistry): void {
  metrics.counter(UNSIGNED_LOADED_METRIC, 'Unsigned filter modules loaded (development mode)', ['filter']).labels(filter).inc()
  log.warn('loaded an UNSIGNED filter module', { filter, file })
}
