/**
 * All clusters of the running config. `update()` is called on every config epoch: clusters
 * whose config did not change keep their pools, health and ejection state; changed and
 * removed ones are replaced and closed gracefully (their in-flight requests finish on the
 * old pools, new requests go to the new cluster). A changed cluster keeps the endpoints
 * (pools and state) whose connection settings are the same.
 */
import { canonical } from '../config/canonical.ts'
import { Cluster, type ClusterDeps } from './cluster.ts'
import type { ClusterConfig, ClusterManager as ClusterManagerContract } from './types.ts'

export class ClusterManager implements ClusterManagerContract {
  readonly #deps: ClusterDeps
  #clusters = new Map<string, { cluster: Cluster; key: string }>()
  readonly #closing = new Set<Promise<void>>()
  #closed = false

  constructor(configs: ClusterConfig[], deps: ClusterDeps) {
    this.#deps = deps
    this.update(configs)
  }

  get(name: string): Cluster | undefined {
    return this.#clusters.get(name)?.cluster
  }

  update(configs: ClusterConfig[]): void {
    if (this.#closed) throw new Error('cluster manager is closed')
    const next = new Map<string, { cluster: Cluster; key: string }>()
    for (const cfg of configs) {
      const key = canonical(cfg)
      const old = this.#clusters.get(cfg.name)
      if (old !== undefined && old.key === key) {
        next.set(cfg.name, old)
        continue
      }
      // A changed cluster adopts the old one's endpoints whose connection settings did not
      // change: their pools stay warm and their health and ejection state carries over.
      next.set(cfg.name, { cluster: new Cluster(cfg, this.#deps, old?.cluster), key })
    }
    for (const [name, old] of this.#clusters) {
      if (next.get(name) !== old) this.#retire(old.cluster)
    }
    this.#clusters = next
  }

  async close(graceMs?: number): Promise<void> {
    this.#closed = true
    for (const { cluster } of this.#clusters.values()) this.#retire(cluster, graceMs)
    this.#clusters.clear()
    await Promise.all(this.#closing)
  }

  #retire(cluster: Cluster, graceMs?: number): void {
    const p = cluster.close(graceMs).finally(() => this.#closing.delete(p))
    this.#closing.add(p)
    this.#deps.log.info('cluster retired', { cluster: cluster.name })
  }
}
