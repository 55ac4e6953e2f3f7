/**
 * Picking an endpoint among the available ones. Both policies are allocation-free per pick.
 */
import type { Endpoint } from './endpoint.ts'
import type { ClusterConfig } from './types.ts'

export interface LoadBalancer {
  /** One of `endpoints` (all available), or undefined when the list is empty. */
  pick(endpoints: readonly Endpoint[]): Endpoint | undefined
}

/**
 * Smooth weighted round-robin (the nginx algorithm): with weights 5,1,1 the order is
 * a a b a c a a, never bursts of the heavy endpoint. Equal weights reduce to plain rotation.
 */
export class RoundRobin implements LoadBalancer {
  #next = 0
  readonly #weighted: boolean

  constructor(weighted: boolean) {
    this.#weighted = weighted
  }

  pick(eps: readonly Endpoint[]): Endpoint | undefined {
    const n = eps.length
    if (n <= 1) return eps[0]
    if (!this.#weighted) {
      if (this.#next >= n) this.#next = 0
      return eps[this.#next++]
    }
    let total = 0
    let best: Endpoint | undefined
    for (let i = 0; i < n; i++) {
      const e = eps[i]!
      e.currentWeight += e.weight
      total += e.weight
      if (best === undefined || e.currentWeight > best.currentWeight) best = e
    }
    best!.currentWeight -= total
    return best
  }
}

/**
 * Least request by the power of two choices: two distinct random endpoints, the one with
 * fewer requests in flight per unit of weight wins. Avoids the herding a global minimum
 * causes when many pickers see the same counts.
 */
export class LeastRequest implements LoadBalancer {
  pick(eps: readonly Endpoint[]): Endpoint | undefined {
    const n = eps.length
    if (n <= 1) return eps[0]
    const i = (Math.random() * n) | 0
    let j = (Math.random() * (n - 1)) | 0
    if (j >= i) j++
    const a = eps[i]!
    const b = eps[j]!
    // (inflight + 1) / weight compared without division.
    return (a.inflight + 1) * b.weight <= (b.inflight + 1) * a.weight ? a : b
  }
}

export function createLoadBalancer(cfg: ClusterConfig): LoadBalancer {
  if (cfg.loadBalancing === 'least-request') return new LeastRequest()
  const w0 = cfg.endpoints[0]?.weight ?? 1
  return new RoundRobin(cfg.endpoints.some((e) => (e.weight ?? 1) !== w0))
}
