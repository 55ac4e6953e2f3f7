/**
 * The watchdog's clock for filter calls.
 *
 * A sandboxed call is timed after the fact (a second line of defence behind fuel), which needs
 * its start and end. `performance.now()` costs ~60 ns here, and a request through five Wasm
 * filters makes ~25 calls: two reads each were ~3 µs a request. Inside a pipeline run — one
 * entry of the executor (a phase starting, body bytes arriving, `finish()`), marked with
 * {@link runBegin}/{@link runEnd} — a call starts where the previous call of the run ended,
 * so each call reads the clock once. What lies between two calls of one run (the executor's
 * bookkeeping, a sink callback) counts towards the second call: a few µs against limits of
 * many milliseconds. Outside a run (ticks, callouts, hosts driven directly) every call reads
 * both ends.
 *
 * A call its host knows to be short (fuel-metered, no host call, little fuel: context
 * create/done/delete, a hook with nothing to do) may skip its end reading inside a run: its
 * time then counts into the next measured call's. At most {@link MAX_SHORT_SKIPS} in a row,
 * so the error stays well under a millisecond.
 *
 * @example
 * runBegin()
 * try {
 *   const t0 = callStart()
 *   runTheCall()
 *   if (callEnd() - t0 > limitMs) fail()
 * } finally {
 *   runEnd()
 * }
 */
// The global `performance` is a lazy accessor on globalThis (a getter per read): import it.
import { performance } from 'node:perf_hooks'

let depth = 0
let last = -1
let skipped = 0

/** Short calls in a row that may skip their end reading. */
export const MAX_SHORT_SKIPS = 8

/** A pipeline run starts (runs nest: only the outermost one resets the chain). */
export function runBegin(): void {
  if (depth++ === 0) {
    last = -1
    skipped = 0
  }
}

/** The run that {@link runBegin} started is over. */
export function runEnd(): void {
  if (--depth === 0) last = -1
}

/** Start time of a call: inside a run, the end of the run's previous call; else now. */
export function callStart(): number {
  if (depth > 0 && last >= 0) return last
  const t = performance.now()
  if (depth > 0) last = t
  return t
}

/** End time of a call; inside a run, also the start of its next call. */
export function callEnd(): number {
  const t = performance.now()
  if (depth > 0) {
    last = t
    skipped = 0
  }
  return t
}

/** End time of a call known to be short: inside a run, the previous reading (up to a limit). */
export function callEndShort(): number {
  if (depth > 0 && last >= 0 && skipped < MAX_SHORT_SKIPS) {
    skipped++
    return last
  }
  return callEnd()
}
