/**
 * The fleet as central shows it: every data plane seen, by node id, connected or
 * not, with its last known epoch/ACK state. Plug it in as (part of) the callbacks.
 *
 * @example
 * const directory = new DataPlaneDirectory()
 * await startXdsServer({ cache, callbacks: composeCallbacks(directory, myHooks) })
 * directory.list() // [{ id: 'edge-1', connected: true, appliedEpoch: 7, state: 'ack', ... }]
 */
import type { CloseEvent, XdsCallbacks } from './callbacks.ts'
import type { DataPlane, DataPlaneSummary } from './data-plane.ts'

export interface DirectoryEntry extends DataPlaneSummary {
  connected: boolean
  disconnectedAt: string | null
  closeReason: string | null
}

interface Entry {
  dp: DataPlane
  connected: boolean
  disconnectedAt: number | undefined
  closeReason: string | undefined
}

export class DataPlaneDirectory implements XdsCallbacks {
  readonly #byId = new Map<string, Entry>()
  readonly #maxDisconnected: number

  /** @param maxDisconnected how many disconnected data planes to remember (oldest forgotten first). */
  constructor(maxDisconnected = 10_000) {
    this.#maxDisconnected = maxDisconnected
  }

  onStreamOpen(dp: DataPlane): void {
    this.#byId.delete(dp.id)
    this.#byId.set(dp.id, { dp, connected: true, disconnectedAt: undefined, closeReason: undefined })
  }

  onClose(dp: DataPlane, ev: CloseEvent): void {
    const e = this.#byId.get(dp.id)
    // A newer stream of the same node may already have replaced this one.
    if (e === undefined || e.dp !== dp) return
    e.connected = false
    e.disconnectedAt = Date.now()
    e.closeReason = ev.reason
    this.#trim()
  }

  #trim(): void {
    let disconnected = 0
    for (const e of this.#byId.values()) if (!e.connected) disconnected++
    for (const [id, e] of this.#byId) {
      if (disconnected <= this.#maxDisconnected) break
      if (!e.connected) {
        this.#byId.delete(id)
        disconnected--
      }
    }
  }

  get(id: string): DirectoryEntry | undefined {
    const e = this.#byId.get(id)
    return e && summary(e)
  }

  list(): DirectoryEntry[] {
    return [...this.#byId.values()].map(summary)
  }
}

function summary(e: Entry): DirectoryEntry {
  return {
    ...e.dp.toJSON(),
    connected: e.connected,
    disconnectedAt: e.disconnectedAt === undefined ? null : new Date(e.disconnectedAt).toISOString(),
    closeReason: e.closeReason ?? null,
  }
}

/** Calls each set of callbacks in order. */
export function composeCallbacks(...all: XdsCallbacks[]): XdsCallbacks {
  const out: XdsCallbacks = {}
  const names: (keyof XdsCallbacks)[] = ['onStreamOpen', 'onRequest', 'onResponse', 'onAck', 'onNack', 'onWithheld', 'onClose']
  for (const name of names) {
    const fns = all.filter((c) => c[name] !== undefined)
    if (fns.length === 0) continue
    ;(out as Record<string, unknown>)[name] = (...args: unknown[]) => {
      for (const c of fns) (c[name] as (...a: unknown[]) => void).apply(c, args)
    }
  }
  return out
}
