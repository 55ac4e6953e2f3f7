/**
 * Rollout reaction times through real central at N simulated data planes (delta ADS
 * streams in a worker, ACKing at once; see sim-worker.ts) that also report telemetry over
 * gRPC (one exporter per data plane, 250 ms batches):
 *
 * - bad B -> all traffic on A: a rollout whose B answers 500 on a third of its requests;
 *   from the moment B starts serving (the rollout's first epoch) until every data plane has
 *   ACKed the rollback epoch. Split into the step interval (the analysis window the operator
 *   chose), the decision after it, and the fan-out.
 * - kill -> enforced: from the kill API call until every data plane ACKed the kill epoch.
 *
 *   npx tsx control/bench/rollout.ts [--planes 100] [--interval 1000]
 */
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { generateToken, publishBundle } from '@meshkit/registry'
import { buildBundle, readSigningKey, signBundle } from '@omnirelay/runtime/bundles/index.ts'
import { TelemetryAggregator, TelemetryExporter } from '@omnirelay/runtime/telemetry/index.ts'
import { protoRoot } from '@omnirelay/runtime/xds/proto/root.ts'
import { startCentralWithRollouts } from '../src/rollout/serve.ts'

const args = process.argv.slice(2)
const arg = (k: string, d: number) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : d)
const N = arg('--planes', 100)
const INTERVAL = arg('--interval', 1000)
const EXAMPLES = join(import.meta.dirname, '../../examples')
const TOKEN = generateToken()

const dir = await mkdtemp(join(tmpdir(), 'rollout-bench-'))
let want = 0
// Central may publish epochs of its own (registry re-checks): "at or past the epoch" counts.
const done = new Set<string>()
let resolve: (() => void) | undefined
let target = 0
const central = await startCentralWithRollouts({
  dataDir: join(dir, 'central'),
  trustPolicy: join(EXAMPLES, 'bundles/build/trust-policy.yaml'),
  tokens: [{ id: 'b', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
  registry: { admissionIsolation: 'inline' },
  tickMs: 50,
  callbacks: {
    onAck: (dp) => {
      if ((dp.appliedEpoch ?? 0) < want || done.has(dp.id)) return
      done.add(dp.id)
      if (done.size === target) resolve?.()
    },
  },
})
const acked = (epoch: number, count: number, keep = false) => {
  want = epoch
  target = count
  if (!keep) done.clear()
  for (const d of central.central.dataPlanes()) if (d.connected && (d.appliedEpoch ?? 0) >= epoch) done.add(d.id)
  if (done.size >= count) return Promise.resolve()
  return new Promise<void>((ok, fail) => {
    const t = setTimeout(() => {
      const states = central.central.dataPlanes().map((d) => `${d.appliedEpoch}/${d.state}`)
      fail(new Error(`epoch ${epoch}: ${done.size}/${count} ${JSON.stringify(states.slice(0, 5))}`))
    }, 20_000)
    resolve = () => (clearTimeout(t), ok())
  })
}
const call = async (method: string, path: string, body?: unknown) => {
  const r = await fetch(`${central.url}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const j = (await r.json()) as Record<string, any>
  if (r.status >= 300) throw new Error(JSON.stringify(j))
  return j
}

// Two versions of one JS filter, signed with the examples' development key.
const key = await readSigningKey(join(EXAMPLES, 'bundles/build/dev-publisher.key.json'))
for (const v of ['1.0.0', '2.0.0']) {
  const d = join(dir, v)
  await mkdir(d)
  await writeFile(join(d, 'filter.js'), `export function onRequestHeaders(req) { req.headers.set('x-v', '${v}') }`)
  const built = await buildBundle({ source: join(d, 'filter.js'), name: 'guard', version: v, sourceUrl: undefined, capabilities: ['headers:write'] })
  await writeFile(join(d, 'b.orb'), await signBundle(built.file, key))
  await publishBundle(central.registryUrl, TOKEN, join(d, 'b.orb'))
}
const e1 = (await call('PUT', '/v1/groups/fleet', {
  selector: { group: 'fleet' },
  config: {
    listeners: [{ name: 'edge', address: '127.0.0.1', port: 8080 }],
    clusters: [{ name: 'app', endpoints: ['127.0.0.1:9000'] }],
    routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filterChain: 'main' }],
    filterChains: [{ name: 'main', filters: [{ name: 'guard', bundle: 'guard@1.0.0', capabilities: ['headers:write'] }] }],
  },
})).epoch as number

protoRoot()
const entry = new URL('./sim-worker.ts', import.meta.url).href
const fleet = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`, { eval: true, workerData: { shared: false } })
await once(fleet, 'message')
const synced = acked(e1, N, true)
fleet.postMessage({ op: 'connect', address: central.xdsAddress, from: 0, to: N })
await once(fleet, 'message')
await synced

// Each simulated data plane reports what it served at the published split: 40 requests per batch.
const exporters = Array.from({ length: N }, (_, i) => {
  const aggregator = new TelemetryAggregator()
  return { aggregator, exporter: new TelemetryExporter({ target: central.xdsAddress, node: `dp-${i}`, group: 'fleet', aggregator, intervalMs: 0 }) }
})
let weightB = 0
let epoch = e1
let reporting = true
const report = (async () => {
  while (reporting) {
    await Promise.all(
      exporters.map(async ({ aggregator, exporter }) => {
        const a = aggregator.cell({ epoch, route: 'app', filter: 'main.guard', version: '1.0.0', variant: 'a' })
        const b = aggregator.cell({ epoch, route: 'app', filter: 'main.guard', version: '2.0.0', variant: 'b' })
        for (let i = 0; i < 40; i++) {
          if ((i * 10_000) / 40 < weightB) b.observe(i % 3 === 0 ? 500 : 200, 2, false)
          else a.observe(200, 2, false)
        }
        await exporter.flush()
      }),
    )
    await new Promise((r) => setTimeout(r, 250))
  }
})()

// Bad B: from the rollout's first epoch to every data plane on the rollback epoch.
const t0 = performance.now()
const r = await call('POST', '/v1/rollouts', { group: 'fleet', chain: 'main', filter: 'guard', from: 'guard@1.0.0', to: 'guard@2.0.0', steps: [10, 50, 100], intervalMs: INTERVAL, analysis: { minRequests: 50 } })
epoch = central.central.group('fleet').epoch
weightB = r.weightB as number
let decidedAt = 0
for (;;) {
  const s = await call('GET', `/v1/rollouts/${r.id}`)
  if (s.state !== 'progressing') {
    decidedAt = performance.now()
    break
  }
  await new Promise((res) => setTimeout(res, 5))
}
const rollbackEpoch = central.central.group('fleet').epoch
await acked(rollbackEpoch, N)
const t1 = performance.now()
weightB = 0
const status = await call('GET', `/v1/rollouts/${r.id}`)

// Kill: from the API call to every data plane on the kill epoch.
const k0 = performance.now()
const k = await call('POST', '/v1/kills', { scope: 'bundle', target: 'guard@1.0.0', reason: 'bench' })
await acked(k.epoch as number, N)
const killMs = performance.now() - k0

reporting = false
await report
await Promise.all(exporters.map((e) => e.exporter.close()))
fleet.postMessage({ op: 'close' })
await once(fleet, 'message')
await fleet.terminate()
await central.close()
await rm(dir, { recursive: true, force: true })

const row = {
  planes: N,
  state: status.state,
  stepIntervalMs: INTERVAL,
  badToAllOnAMs: Math.round(t1 - t0),
  decisionAfterIntervalMs: Math.round(decidedAt - t0 - INTERVAL),
  fanOutMs: Math.round(t1 - decidedAt),
  killToAllAckedMs: Math.round(killMs),
}
console.log(`rollout reaction, node ${process.version}`)
console.log(JSON.stringify(row))
process.exit(0)
