/**
 * OmniRelay over xDS with two workers against a real MeshKit central (registry, xDS,
 * telemetry): the primary holds the xDS client and applies each epoch to both workers, ACKs
 * only when both applied it, NACKs a bad one while both keep serving, forwards revocations,
 * re-forks a dead worker on the current epoch, and reports the sum of the workers' telemetry.
 */
import { generateKeyPairSync } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCentralWithRollouts, type RunningCentralWithRollouts } from '@meshkit/control/src/rollout/serve.ts'
import {
  ADD_HEADERS_CONFIG,
  api,
  converged,
  dataPlane,
  echoUpstream,
  edgeConfig,
  exampleBundle,
  publish,
  tempDir,
  TOKEN,
  TRUST_POLICY,
  until,
} from '@meshkit/control/test/central/helpers.ts'
import type { XdsProxy } from '../../src/xds/apply/index.ts'
import { request, type Reply } from '../helpers/servers.ts'

let central: RunningCentralWithRollouts
let dp: XdsProxy
let port = 0
let addHeaders = ''
let dpDir = ''
const cleanup: (() => Promise<unknown>)[] = []

const get = (path: string): Promise<Reply> => request(port, { path })
const body = (r: Reply) => JSON.parse(r.body) as { headers: Record<string, string> }
const metrics = async () => (await request(dp.adminAddress()!.port, { path: '/metrics' })).body
/** Per worker id: the value of a metric without other labels. */
function perWorker(text: string, name: string): Map<string, number> {
  return new Map([...text.matchAll(new RegExp(`^${name}\\{worker="(\\d+)"\\} (\\S+)$`, 'gm'))].map((m) => [m[1]!, Number(m[2])]))
}
const groupEpoch = () => central.central.group('edge').epoch

beforeAll(async () => {
  const tmp = await tempDir()
  cleanup.push(tmp.cleanup)
  central = await startCentralWithRollouts({
    dataDir: `${tmp.dir}/central`,
    trustPolicy: TRUST_POLICY,
    tokens: [{ id: 'ci', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
    registry: { admissionIsolation: 'inline' },
  })
  cleanup.push(() => central.close())
  const up = await echoUpstream()
  cleanup.push(up.close)
  addHeaders = await publish(central, 'add-headers')
  const put = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(up.port, { bundle: addHeaders, config: ADD_HEADERS_CONFIG }) })
  expect(put.status, JSON.stringify(put.body)).toBe(200)
  dpDir = `${tmp.dir}/dp`
  dp = await startDataPlane()
  cleanup.push(() => dp.close())
}, 60_000)

async function startDataPlane(): Promise<XdsProxy> {
  const d = await dataPlane(central.xdsAddress, dpDir, 'edge-1', {
    workers: 2,
    telemetry: { intervalMs: 200 },
    registry: { url: central.registryUrl, pollIntervalMs: 200 },
  })
  await d.serving
  port = d.address('edge').port
  return d
}

afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

describe('omnirelay run --xds --workers 2', () => {
  it('serves from both workers, ACKs, and central gets the sum of their telemetry', async () => {
    expect(dp.proxy).toBeUndefined()
    expect(dp.workerPids()).toHaveLength(2)
    await converged(central, 'edge-1', groupEpoch())
    for (let i = 0; i < 20; i++) {
      const r = await get(`/x/${i}`)
      expect(r.status).toBe(200)
      expect(body(r).headers['x-added-by']).toBe('omnirelay')
    }
    // A request is counted when its exchange ends, just after the client has the response.
    const servedBy = (text: string) => [...text.matchAll(/^omnirelay_requests_total\{worker="(\d+)",listener="edge",route="app"\} (\d+)$/gm)].map((x) => Number(x[2]))
    const m = await until(async () => {
      const text = await metrics()
      return servedBy(text).reduce((a, n) => a + n, 0) >= 20 ? text : undefined
    }, 3000, 'requests counted')
    const served = servedBy(m)
    expect(served).toHaveLength(2)
    expect(served.every((n) => n > 0)).toBe(true)
    expect(served[0]! + served[1]!).toBe(20)
    expect(m).toMatch(/^omnirelay_workers 2$/m)
    expect(m).toMatch(/^omnirelay_xds_applied_epoch \d+$/m)

    // Route series from both workers add up at central under one node; the filter's fuel too,
    // under its bundle version (the primary hands the versions to the workers).
    const route = () => central.telemetry.totals({ filter: '', version: '', route: 'app', sinceMs: 0 })
    await until(() => (route().requests >= 20 ? true : undefined), 5000, 'route telemetry')
    const version = exampleBundle('add-headers').version
    const fuel = () => central.telemetry.totals({ filter: 'main.headers', version, sinceMs: 0 })
    await until(() => (fuel().fuelCount >= 20 ? true : undefined), 5000, 'filter telemetry')
    await new Promise((r) => setTimeout(r, 600))
    expect(route()).toMatchObject({ requests: 20, nodes: 1 })
    expect(route().classes[1]).toBe(20)
    expect(fuel().fuelCount).toBe(20)
  })

  it('applies a new epoch in both workers before the ACK', async () => {
    const next = dp.nextEpoch()
    const put = await api(central, 'PUT', '/v1/groups/edge/filter-chains/main', {
      filters: [{ name: 'headers', bundle: addHeaders, config: { request: { add: { 'x-added-by': 'epoch-2' } } }, quotas: { fuel: 2_000_000 } }],
    })
    expect(put.status).toBe(200)
    expect(await next).toEqual({ epoch: put.body.epoch })
    await converged(central, 'edge-1', put.body.epoch)
    expect([...perWorker(await metrics(), 'omnirelay_config_epoch').values()]).toEqual([put.body.epoch, put.body.epoch])
    for (let i = 0; i < 6; i++) expect(body(await get(`/y/${i}`)).headers['x-added-by']).toBe('epoch-2')
  })

  it('NACKs an epoch the workers refuse; both keep serving the running one', async () => {
    const running = dp.epoch!
    // A port another socket holds: the listener cannot bind in the workers.
    const blocker = net.createServer()
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok))
    cleanup.push(() => new Promise((ok) => blocker.close(ok)))
    const taken = (blocker.address() as net.AddressInfo).port
    const next = dp.nextEpoch()
    const put = await api(central, 'PUT', '/v1/groups/edge/listeners/edge', { address: '127.0.0.1', port: taken })
    expect(put.status, JSON.stringify(put.body)).toBe(200)
    const r = await next
    expect(r.epoch).toBe(put.body.epoch)
    expect(r.error).toMatch(/^EADDRINUSE/)
    const view = await until(async () => {
      const v = (await api(central, 'GET', '/v1/dataplanes/edge-1')).body
      return v.state === 'nack' ? v : undefined
    }, 5000, 'NACK in the fleet view')
    expect(view.epoch).toBe(running)
    expect(dp.epoch).toBe(running)
    expect([...perWorker(await metrics(), 'omnirelay_config_epoch').values()]).toEqual([running, running])
    for (let i = 0; i < 6; i++) expect(body(await get(`/z/${i}`)).headers['x-added-by']).toBe('epoch-2')
    // Central takes the listener back: the next epoch applies again.
    const back = dp.nextEpoch()
    const fix = await api(central, 'PUT', '/v1/groups/edge/listeners/edge', { address: '127.0.0.1', port: 0 })
    expect(fix.status).toBe(200)
    expect(await back).toEqual({ epoch: fix.body.epoch })
    port = dp.address('edge').port
  })

  it('re-forks a dead worker on the current epoch', async () => {
    const epoch = dp.epoch!
    const [victim, survivor] = dp.workerPids()
    process.kill(victim!, 'SIGKILL')
    await until(() => (dp.workerPids().length === 2 && !dp.workerPids().includes(victim!) ? true : undefined), 15_000, 'a new worker')
    expect(dp.workerPids()).toContain(survivor)
    expect([...perWorker(await metrics(), 'omnirelay_config_epoch').values()]).toEqual([epoch, epoch])
    const served = new Set<string>()
    for (let i = 0; i < 8; i++) {
      const r = await get(`/k/${i}`)
      expect(body(r).headers['x-added-by']).toBe('epoch-2')
    }
    // Both the survivor and the new worker serve (the new one has only these requests).
    await until(async () => {
      served.clear()
      for (const x of (await metrics()).matchAll(/^omnirelay_requests_total\{worker="(\d+)",listener="edge",route="app"\} (\d+)$/gm)) if (Number(x[2]) > 0) served.add(x[1]!)
      return served.size === 2 ? true : undefined
    }, 3000, 'both workers serving')
  }, 30_000)

  it('starts the workers on the last-known-good config when central is unreachable', async () => {
    // One process runs one pool in production; here the running one goes first, so the
    // listeners (port 0, shared through node:cluster) are new ones.
    const epoch = dp.epoch
    await dp.close()
    const offline = await dataPlane('127.0.0.1:1', dpDir, 'edge-1', { workers: 2, telemetry: false })
    try {
      expect(offline.source).toBe('last-known-good')
      expect(offline.epoch).toBe(epoch)
      expect(offline.workerPids()).toHaveLength(2)
      const r = await request(offline.address('edge').port, { path: '/lkg' })
      expect(body(r).headers['x-added-by']).toBe('epoch-2')
      const ready = await request(offline.adminAddress()!.port, { path: '/ready' })
      expect(ready.status).toBe(200)
      expect(ready.body).toContain('config-source: last-known-good')
    } finally {
      await offline.close()
    }
    dp = await startDataPlane()
    expect(dp.epoch).toBe(epoch)
  })

  it('verifies bundle signatures in the workers: a bundle the local trust policy does not accept is refused there', async () => {
    // Same key id as the publisher's, another key: only a real signature check refuses it.
    const dir = await tempDir()
    cleanup.push(dir.cleanup)
    const { publicKey } = generateKeyPairSync('ed25519')
    await writeFile(join(dir.dir, 'other.pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }))
    const policy = join(dir.dir, 'trust-policy.yaml')
    await writeFile(policy, `version: 1\npublishers:\n  - name: other\n    keys:\n      - keyId: dev-publisher\n        publicKeyFile: other.pub.pem\n    kinds: [wasm, quickjs]\n    names: ["*"]\n`)
    const other = await dataPlane(central.xdsAddress, join(dir.dir, 'dp'), 'edge-2', {
      workers: 2,
      telemetry: false,
      local: { trustPolicy: policy, accessLog: 'off', logLevel: 'error', admin: { address: '127.0.0.1', port: 0 } },
    })
    cleanup.push(() => other.close())
    const r = await other.nextEpoch()
    expect(r.error).toMatch(/signature_invalid/)
    expect(other.workerPids()).toEqual([])
    expect(other.source).toBe('none')
  })

  it('takes a revoked bundle out of every worker, and a re-forked worker joins without it', async () => {
    const res = await fetch(`${central.registryUrl}/v1/revocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ digest: exampleBundle('add-headers').digest, reason: 'cve' }),
    })
    expect(res.status).toBe(201)
    await until(async () => ([...perWorker(await metrics(), 'omnirelay_filters_revoked').values()].join() === '1,1' ? true : undefined), 5000, 'both workers to take the filter out')
    for (let i = 0; i < 6; i++) expect((await get(`/r/${i}`)).status).toBe(503)
    const [victim] = dp.workerPids()
    process.kill(victim!, 'SIGKILL')
    await until(() => (dp.workerPids().length === 2 && !dp.workerPids().includes(victim!) ? true : undefined), 15_000, 'a new worker')
    expect([...perWorker(await metrics(), 'omnirelay_filters_revoked').values()]).toEqual([1, 1])
    for (let i = 0; i < 6; i++) expect((await get(`/s/${i}`)).status).toBe(503)
  }, 30_000)
})
