/**
 * Convergence benchmark: how long a change takes to be applied (ACKed) by every
 * data plane, at 100 / 500 / 1000 simulated data planes, and memory per stream.
 *
 *   npx tsx control/bench/convergence.ts [--sizes 100,500,1000] [--shared-connection]
 *
 * Simulated data planes are delta ADS streams in this same process (one TCP
 * connection each unless --shared-connection), subscribed wildcard to CDS, EDS,
 * LDS and RDS, ACKing each response as soon as it is decoded. Server and clients
 * share the CPU, so the times are an upper bound for the server alone.
 */
import * as grpc from '@grpc/grpc-js'
import v8 from 'node:v8'
import vm from 'node:vm'
import {
  decodeDeltaDiscoveryResponse,
  encodeDeltaDiscoveryRequest,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
} from '@omnirelay/runtime/xds/proto/messages.ts'
import { protoRoot } from '@omnirelay/runtime/xds/proto/root.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
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
const PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources'
const TYPES = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration]

interface Sim {
  client: grpc.Client
  call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>
}

function simulate(address: string, i: number): Sim {
  // A distinct channel option gives each simulated data plane its own connection.
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), SHARED ? {} : { 'bench.sim': i })
  const call = client.makeBidiStreamRequest(PATH, encodeDeltaDiscoveryRequest, decodeDeltaDiscoveryResponse)
  call.on('data', (r: DeltaDiscoveryResponse) => {
    call.write({ typeUrl: r.typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: r.nonce })
  })
  call.on('error', () => {})
  TYPES.forEach((typeUrl, k) => {
    call.write({
      ...(k === 0 ? { node: { id: `dp-${i}`, cluster: 'bench', metadata: { group: 'fleet' }, userAgentName: 'sim', userAgentVersion: '0', clientFeatures: [] } } : {}),
      typeUrl, resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: '',
    })
  })
  return { client, call }
}

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
  const before = heapMb()
  const rssBefore = process.memoryUsage().rss
  const t0 = performance.now()
  const sims: Sim[] = []
  // Connect in batches: 1000 simultaneous SYNs overflow the listen backlog and
  // measure the kernel's SYN retry timer, not the control plane.
  for (let i = 0; i < n; i += BATCH) {
    const synced = conv.wait(1, Math.min(n, i + BATCH), 60_000, true)
    for (let j = i; j < Math.min(n, i + BATCH); j++) sims.push(simulate(xds.address, j))
    await synced
  }
  const initialMs = performance.now() - t0
  const after = heapMb()
  const rssAfter = process.memoryUsage().rss

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

  for (const s of sims) {
    s.call.cancel()
    s.client.close()
  }
  await xds.close()
  return {
    streams: n,
    initialSyncMs: Math.round(initialMs),
    endpointChangeMs: Math.round(edsMs),
    newServiceMs: Math.round(addMs),
    heapPerStreamKb: Math.round(((after - before) * 1024) / n),
    rssPerStreamKb: Math.round((rssAfter - rssBefore) / 1024 / n),
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
