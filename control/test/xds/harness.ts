import { SnapshotCache, startXdsServer, type NackBackoff, type XdsCallbacks, type XdsServer } from '../../src/xds/index.ts'
import { rawClient } from './raw-client.ts'

export interface Recorded {
  event: keyof XdsCallbacks
  id: string
  [k: string]: unknown
}

/** A cache, a server on port 0 and a callback log. */
export async function harness(opts: { nackBackoff?: NackBackoff; requireConsistent?: boolean } = {}) {
  const cache = new SnapshotCache(opts.requireConsistent === undefined ? {} : { requireConsistent: opts.requireConsistent })
  const events: Recorded[] = []
  const rec =
    (event: keyof XdsCallbacks) =>
    (dp: { id: string }, ev?: object): void => {
      events.push({ event, id: dp.id, ...ev })
    }
  const callbacks: XdsCallbacks = {
    onStreamOpen: rec('onStreamOpen'),
    onAck: rec('onAck'),
    onNack: rec('onNack'),
    onWithheld: rec('onWithheld'),
    onClose: rec('onClose'),
  }
  const server: XdsServer = await startXdsServer({ cache, callbacks, controlPlaneId: 'meshkit-test', nackBackoff: opts.nackBackoff ?? { baseMs: 50, maxMs: 400 } })
  const clients: ReturnType<typeof rawClient>[] = []
  return {
    cache,
    server,
    events,
    client() {
      const c = rawClient(server.address)
      clients.push(c)
      return c
    },
    async close() {
      for (const c of clients) c.close()
      await server.close()
    },
  }
}

export async function until(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
