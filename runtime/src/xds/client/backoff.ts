/** Exponential backoff with full-range jitter, for reconnecting to the control plane. */
export interface BackoffOptions {
  initialMs?: number
  maxMs?: number
  multiplier?: number
  /** 0..1: the delay is drawn from [d*(1-jitter), d*(1+jitter)]. */
  jitter?: number
}

export class Backoff {
  readonly #initial: number
  readonly #max: number
  readonly #mult: number
  readonly #jitter: number
  readonly #random: () => number
  #attempt = 0

  constructor(opts: BackoffOptions = {}, random: () => number = Math.random) {
    this.#initial = opts.initialMs ?? 500
    this.#max = opts.maxMs ?? 30_000
    this.#mult = opts.multiplier ?? 2
    this.#jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.2))
    this.#random = random
  }

  get attempt(): number {
    return this.#attempt
  }

  /** The next delay; each call grows the base until `maxMs`. */
  next(): number {
    const base = Math.min(this.#max, this.#initial * this.#mult ** this.#attempt)
    this.#attempt++
    const spread = base * this.#jitter * (2 * this.#random() - 1)
    return Math.max(0, Math.round(base + spread))
  }

  reset(): void {
    this.#attempt = 0
  }
}
