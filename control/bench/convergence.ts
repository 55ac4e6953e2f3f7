/**
 * Convergence benchmark: how long a change takes to be applied (ACKed) by every
 * data plane, at 100 / 500 / 1000 simulated data planes, and memory per stream.
 *
 *   npx tsx control/bench/convergence.ts [--sizes 100,500,1000] [--shared-connection]
 *
 * Simulated data planes are delta ADS streams in one worker thread (one TCP
 * connection each unless --shared-connection), subscribed wildcard to CDS, EDS,
 * LDS, RDS and the Epoch marker, ACKing each response as soon as it arrives. Convergence = time from
 * setSnapshot until the server has the ACK of the new epoch from every stream.
 * Server and simulated clients share the machine's 2 cores, so the times are an
 * upper bound; the heap figure is the server's (main thread) only.
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { protoRoot } from '@omnirelay/runtime/xds/proto/root.ts'
import { groupByLabel, SnapshotCache, startXdsServer, type DataPlane, type XdsServer } from '../src/xds/index.ts'
import { serviceSnapshot } from '../test/xds/fixtures.ts'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

const args = process.argv.slice(2)
const sizesArg = args[args.indexOf('--sizes') + 1]
const SIZES = args.includes('--sizes') && sizesArg ? sizesArg.split(',').map(Number) : [100, 500, 1000]
const SHARED = args.includes('--shared-connection')
const SERVICES = 20
const BATCH = 100

/**
 * Resolves when `n` distinct data planes have applied `epoch`, driven by the
 * server's ACK callback (polling 1000 streams would steal the CPU being measured).
 */
class Convergence {
  #want = 0
  #n = 0
  #done = new Set<DataPlane>()
  #resolve: (() => void) | undefined

  onAck = (dp: DataPlane): void => {
    if (dp.appliedEpoch !== this.#want || this.#done.has(dp)) return
    this.#done.add(dp)
    if (this.#done.size === this.#n) this.#resolve?.()
  }

  wait(epoch: number, n: number, ms: number, keep = false): Promise<void> {
    this.#want = epoch
    this.#n = n
    if (!keep) this.#done.clear()
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`epoch ${epoch}: ${this.#done.size}/${n} after ${ms} ms`)), ms)
      this.#resolve = () => {
        clearTimeout(t)
        resolve()
      }
    })
  }
}

function heapMb(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed / 1048576
}

async function run(n: number) {
  const cache = new SnapshotCache({ groupOf: groupByLabel('group') })
  const services = Array.from({ length: SERVICES }, (_, i) => ({ name: `svc${i}`, ports: [10_000 + i] }))
  cache.setSnapshot('fleet', serviceSnapshot(1, services))
  const conv = new Convergence()
  const xds: XdsServer = await startXdsServer({ cache, callbacks: { onAck: conv.onAck } })
  // tsx's loader is not inherited by workers: register it, then load the fleet.
  const entry = new URL('./sim-worker.ts', import.meta.url).href
  const fleet = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`, {
    eval: true,
    workerData: { shared: SHARED },
  })
  await once(fleet, 'message') // ready
  const before = heapMb()
  const t0 = performance.now()
  // Connect in batches: 1000 simultaneous SYNs overflow the listen backlog and
  // measure the kernel's SYN retry timer, not the control plane.
  for (let i = 0; i < n; i += BATCH) {
    const synced = conv.wait(1, Math.min(n, i + BATCH), 60_000, true)
    fleet.postMessage({ op: 'connect', address: xds.address, from: i, to: Math.min(n, i + BATCH) })
    await once(fleet, 'message')
    await synced
  }
  const initialMs = performance.now() - t0
  const after = heapMb()

  // Change 1: one endpoint moves (EDS only).
  services[3]!.ports = [20_003]
  const t1 = performance.now()
  const c2 = conv.wait(2, n, 30_000)
  cache.setSnapshot('fleet', serviceSnapshot(2, services))
  await c2
  const edsMs = performance.now() - t1

  // Change 2: a new service (CDS + EDS + LDS + RDS, make-before-break order).
  services.push({ name: 'svc-new', ports: [30_000] })
  const t2 = performance.now()
  const c3 = conv.wait(3, n, 30_000)
  cache.setSnapshot('fleet', serviceSnapshot(3, services))
  await c3
  const addMs = performance.now() - t2

  fleet.postMessage({ op: 'close' })
  await once(fleet, 'message')
  await fleet.terminate()
  await xds.close()
  return {
    streams: n,
    initialSyncMs: Math.round(initialMs),
    endpointChangeMs: Math.round(edsMs),
    newServiceMs: Math.round(addMs),
    serverHeapPerStreamKb: Math.round(((after - before) * 1024) / n),
  }
}

protoRoot()
console.log(`convergence: ${SERVICES} services (${SERVICES * 4} resources), ${SHARED ? 'one shared connection' : 'one connection per data plane'}, node ${process.version}`)
const rows = []
for (const n of SIZES) {
  const r = await run(n)
  rows.push(r)
  console.log(JSON.stringify(r))
  await new Promise((res) => setTimeout(res, 200))
}
console.table(rows)
process.exit(0)
