/**
 * The watchdog's clock for filter calls.
 *
 * A sandboxed call is timed after the fact (a second line of defence behind fuel), which needs
 * its start and end. `performance.now()` costs ~65 ns, and a request through five Wasm filters
 * makes ~30 calls: two reads each were ~4 µs a request. Calls made one after another in one
 * synchronous run of JS (a phase iterating its filters, `finish()` calling onLog/onDone) take
 * their start from the previous call's end, so each call reads the clock once. The run ends at
 * the next microtask checkpoint, where the shared reading is dropped: a call after an
 * event-loop turn or an await reads a fresh start.
 *
 * What lies between two calls of one run (the executor's bookkeeping, a few µs) counts towards
 * the second call: immaterial against limits of many milliseconds.
 *
 * A call its host knows to be short (fuel-metered, no host call, little fuel: context
 * create/done/delete, a hook with nothing to do) may skip its end reading: its time then
 * counts into the next measured call's. At most {@link MAX_SHORT_SKIPS} in a row, so the
 * error stays well under a millisecond.
 *
 * @example
 * const t0 = callStart()
 * runTheCall()
 * if (callEnd() - t0 > limitMs) fail()
 */
let last = -1
let scheduled = false
let skipped = 0

/** Short calls in a row that may skip their end reading. */
export const MAX_SHORT_SKIPS = 8

function endOfRun(): void {
  last = -1
  scheduled = false
  skipped = 0
}

/** Start time of a call: the end of the previous call of this synchronous run, else now. */
export function callStart(): number {
  if (last >= 0) return last
  last = performance.now()
  if (!scheduled) {
    scheduled = true
    queueMicrotask(endOfRun)
  }
  return last
}

/** End time of a call; also the start of the next call of this synchronous run. */
export function callEnd(): number {
  skipped = 0
  last = performance.now()
  if (!scheduled) {
    scheduled = true
    queueMicrotask(endOfRun)
  }
  return last
}

/** End time of a call known to be short: the previous reading, unless too many were skipped. */
export function callEndShort(): number {
  if (last >= 0 && skipped < MAX_SHORT_SKIPS) {
    skipped++
    return last
  }
  return callEnd()
}
