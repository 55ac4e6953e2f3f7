/**
 * Wall-clock time for a monotonic timestamp without calling Date.now() per request: the
 * offset between the two clocks is refreshed once a second, so NTP adjustments reach the
 * access log within a second.
 */
import { performance } from 'node:perf_hooks'
let offset = Date.now() - performance.now()
setInterval(() => {
  offset = Date.now() - performance.now()
}, 1000).unref()

/** Milliseconds since the epoch at monotonic time `mono` (a `performance.now()` value). */
export function wallTime(mono: number): number {
  return mono + offset
}
