/**
 * Snapshots per node group, and watches on them. Knows nothing about gRPC: the
 * servers in ../server adapt it to a transport (the go-control-plane shape).
 */
import type { XdsNode } from '@omnirelay/runtime/xds/proto/messages.ts'
import { CacheErrorCode, XdsCacheError } from './errors.ts'
import type { Snapshot } from './snapshot.ts'

/** Maps a node to the group whose snapshot it gets. */
export type NodeGrouper = (node: XdsNode) => string

/** Group by node id (each data plane its own snapshot). */
export const groupByNodeId: NodeGrouper = (node) => node.id

/**
 * Group by a node metadata label, falling back to `fallback`.
 *
 * @example
 * new SnapshotCache({ groupOf: groupByLabel('meshkit.group', 'default') })
 */
export function groupByLabel(key: string, fallback = 'default'): NodeGrouper {
  return (node) => {
    const v = node.metadata[key]
    return typeof v === 'string' && v !== '' ? v : fallback
  }
}

export type SnapshotListener = (snapshot: Snapshot) => void

export interface SnapshotCacheOptions {
  groupOf?: NodeGrouper
  /** Refuse snapshots whose references do not resolve (default true). */
  requireConsistent?: boolean
}

/**
 * @example
 * const cache = new SnapshotCache({ groupOf: groupByLabel('group') })
 * cache.setSnapshot('edge', new Snapshot(1, resources))
 * const stop = cache.watch('edge', (snap) => console.log('epoch', snap.epoch))
 */
export class SnapshotCache {
  readonly groupOf: NodeGrouper
  readonly #requireConsistent: boolean
  readonly #snapshots = new Map<string, Snapshot>()
  readonly #watchers = new Map<string, Set<SnapshotListener>>()

  constructor(opts: SnapshotCacheOptions = {}) {
    this.groupOf = opts.groupOf ?? groupByNodeId
    this.#requireConsistent = opts.requireConsistent ?? true
  }

  /**
   * Publishes a snapshot and answers every open watch of the group. The epoch
   * must grow: data planes report epochs, and an epoch that went back would make
   * those reports ambiguous.
   */
  setSnapshot(group: string, snapshot: Snapshot): void {
    const current = this.#snapshots.get(group)
    if (current !== undefined && snapshot.epoch <= current.epoch) {
      throw new XdsCacheError(CacheErrorCode.EpochNotIncreasing, `epoch ${snapshot.epoch} <= current ${current.epoch} for group ${group}`)
    }
    if (this.#requireConsistent) {
      const errors = snapshot.consistencyErrors()
      if (errors.length > 0) throw new XdsCacheError(CacheErrorCode.SnapshotInconsistent, `snapshot ${snapshot.epoch} is inconsistent`, errors)
    }
    this.#snapshots.set(group, snapshot)
    const ws = this.#watchers.get(group)
    if (ws === undefined) return
    // Copy: a listener may cancel its own watch while being notified.
    for (const w of [...ws]) w(snapshot)
  }

  getSnapshot(group: string): Snapshot | undefined {
    return this.#snapshots.get(group)
  }

  /** Drops a group's snapshot; watchers keep waiting for the next one. */
  clearSnapshot(group: string): void {
    this.#snapshots.delete(group)
  }

  get groups(): string[] {
    return [...this.#snapshots.keys()]
  }

  /** Calls `listener` on each new snapshot of `group`; returns the cancel function. */
  watch(group: string, listener: SnapshotListener): () => void {
    let ws = this.#watchers.get(group)
    if (ws === undefined) this.#watchers.set(group, (ws = new Set()))
    ws.add(listener)
    return () => {
      ws.delete(listener)
      if (ws.size === 0 && this.#watchers.get(group) === ws) this.#watchers.delete(group)
    }
  }

  watcherCount(group?: string): number {
    if (group !== undefined) return this.#watchers.get(group)?.size ?? 0
    let n = 0
    for (const ws of this.#watchers.values()) n += ws.size
    return n
  }
}
