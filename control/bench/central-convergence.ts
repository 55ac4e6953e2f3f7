/**
 * Convergence through central: from the config API call (validation, compilation, one
 * snapshot marshaled, epoch persisted in SQLite) until every simulated data plane has ACKed
 * the new epoch. The fleet is convergence.ts's: delta ADS streams in a worker thread, one
 * connection each, ACKing at once.
 *
 *   npx tsx control/bench/central-convergence.ts [--sizes 200,1000]
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { generateToken } from '@meshkit/registry'
import { protoRoot } from '@omnirelay/runtime/xds/proto/root.ts'
import { startCentral } from '../src/central/index.ts'
import type { DataPlane } from '../src/xds/index.ts'

const args = process.argv.slice(2)
const sizesArg = args[args.indexOf('--sizes') + 1]
const SIZES = args.includes('--sizes') && sizesArg ? sizesArg.split(',').map(Number) : [200, 1000]
const SERVICES = 20
const BATCH = 100
const TRUST = join(import.meta.dirname, '../../examples/bundles/build/trust-policy.yaml')

function config(ports: number[], extra = 0) {
  const names = Array.from({ length: SERVICES + extra }, (_, i) => `svc${i}`)
  return {
    listeners: [{ name: 'edge', address: '127.0.0.1', port: 8080 }],
    clusters: names.map((n, i) => ({ name: n, endpoints: [`127.0.0.1:${ports[i] ?? 10_000 + i}`] })),
    routes: names.map((n) => ({ name: n, match: { prefix: `/${n}/` }, cluster: n })),
  }
}

async function run(n: number) {
  const dir = await mkdtemp(join(tmpdir(), 'central-bench-'))
  let want = 0
  const done = new Set<DataPlane>()
  let resolve: (() => void) | undefined
  let target = 0
  const central = await startCentral({
    dataDir: dir,
    trustPolicy: TRUST,
    tokens: [{ id: 'b', token: generateToken() }],
    callbacks: {
      onAck: (dp) => {
        if (dp.appliedEpoch !== want || done.has(dp)) return
        done.add(dp)
        if (done.size === target) resolve?.()
      },
    },
  })
  const wait = (epoch: number, count: number, keep = false) => {
    want = epoch
    target = count
    if (!keep) done.clear()
    return new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`epoch ${epoch}: ${done.size}/${count}`)), 60_000)
      resolve = () => (clearTimeout(t), ok())
    })
  }
  const put = async (path: string, body: unknown) => {
    const r = await fetch(`${central.url}${path}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const j = (await r.json()) as { epoch: number }
    if (r.status !== 200) throw new Error(JSON.stringify(j))
    return j.epoch
  }
  const ports = Array.from({ length: SERVICES }, (_, i) => 10_000 + i)
  const e1 = await put('/v1/groups/fleet', { selector: { group: 'fleet' }, config: config(ports) })
  const entry = new URL('./sim-worker.ts', import.meta.url).href
  const fleet = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`, { eval: true, workerData: { shared: false } })
  await once(fleet, 'message')
  for (let i = 0; i < n; i += BATCH) {
    const synced = wait(e1, Math.min(n, i + BATCH), true)
    fleet.postMessage({ op: 'connect', address: central.xdsAddress, from: i, to: Math.min(n, i + BATCH) })
    await once(fleet, 'message')
    await synced
  }

  // An endpoint moves: PUT one cluster.
  const t1 = performance.now()
  const c2 = wait(central.central.epoch + 1, n)
  await put('/v1/groups/fleet/clusters/svc3', { endpoints: ['127.0.0.1:20003'] })
  await c2
  const endpointMs = performance.now() - t1

  // A new service: the whole config replaced (cluster + endpoints + route).
  ports[3] = 20_003
  const t2 = performance.now()
  const c3 = wait(central.central.epoch + 1, n)
  await put('/v1/groups/fleet/config', config(ports, 1))
  await c3
  const newServiceMs = performance.now() - t2

  fleet.postMessage({ op: 'close' })
  await once(fleet, 'message')
  await fleet.terminate()
  await central.close()
  await rm(dir, { recursive: true, force: true })
  return { streams: n, endpointChangeMs: Math.round(endpointMs), newServiceMs: Math.round(newServiceMs) }
}

protoRoot()
console.log(`central convergence: ${SERVICES} services through the config API, node ${process.version}`)
const rows = []
for (const n of SIZES) {
  const r = await run(n)
  rows.push(r)
  console.log(JSON.stringify(r))
}
console.table(rows)
process.exit(0)
