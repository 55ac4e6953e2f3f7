/**
 * Rate limit for a filter's failure log lines, shared by the three hosts: a crash loop
 * produces at most one line per window, and that line says how many were suppressed since
 * the previous one. Failures are still counted in metrics; only the log is limited.
 */
export class FailureLogWindow {
  readonly #windowMs: number
  // -Infinity: the very first failure of a process is always logged.
  #windowStart = -Infinity
  #suppressed = 0

  constructor(windowMs = 1000) {
    this.#windowMs = windowMs
  }

  /**
   * Whether to log a failure now.
   * @returns undefined when the line is suppressed (and counted), else how many lines were
   *   suppressed since the last one logged
   * @example
   * const suppressed = this.#failureLog.take()
   * if (suppressed !== undefined) log.warn('filter failed', { code, suppressed })
   */
  take(now: number = performance.now()): number | undefined {
    if (now - this.#windowStart < this.#windowMs) {
      this.#suppressed++
      return undefined
    }
    this.#windowStart = now
    const suppressed = this.#suppressed
    this.#suppressed = 0
    return suppressed
  }
}
