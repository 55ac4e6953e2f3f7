/**
 * Rollouts through real central: the registry holds two admitted versions of a filter, the
 * rollout API is driven by the `meshkit rollout` CLI code over HTTP, every step is a real
 * epoch of the group's config (a twin chain + RolloutSplit), an OmniRelay data plane ACKs
 * those epochs over xDS, and telemetry arrives over the real gRPC service. The data-plane
 * traffic itself is simulated at the published weight (OmniRelay does not apply
 * RolloutSplit yet).
 */
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publishBundle } from '@meshkit/registry'
import { buildBundle, readSigningKey, signBundle } from '@omnirelay/runtime/bundles/index.ts'
import { TelemetryAggregator, TelemetryExporter } from '@omnirelay/runtime/telemetry/index.ts'
import { rolloutCli } from '../../src/rollout/cli.ts'
import { startCentralWithRollouts, type RunningCentralWithRollouts } from '../../src/rollout/serve.ts'
import { ADD_HEADERS_CONFIG, api, converged, dataPlane, echoUpstream, edgeConfig, publish, tempDir, TOKEN, TRUST_POLICY, until } from '../central/helpers.ts'

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '../../../examples')

let central: RunningCentralWithRollouts
let cleanup: (() => Promise<void>)[] = []

async function cli(...argv: string[]): Promise<{ code: number; out: any; err: string }> {
  let out = ''
  let err = ''
  const code = await rolloutCli([...argv, '--url', central.url, '--json'], { out: (s) => void (out += s), err: (s) => void (err += s) })
  return { code, out: out ? JSON.parse(out) : undefined, err }
}

async function groupConfig(): Promise<any> {
  return (await fetch(`${central.url}/v1/groups/edge/config`)).json()
}

/** The split central publishes now: B's weight (0 without a split) and the chain's version. */
async function published(): Promise<{ weightB: number; version: string }> {
  const cfg = await groupConfig()
  const split = cfg.splits.find((s: any) => s.name === 'rollout:main.headers')
  const bundle: string = cfg.filterChains.find((c: any) => c.name === 'main').filters[0].bundle
  return { weightB: split ? split.targets[1].weight : 0, version: bundle.slice(bundle.lastIndexOf('@') + 1) }
}

/**
 * Simulated data planes: each round, 400 requests at the published split; B answers 500 on
 * a third of its requests when bad. Runs until `done` or the bound.
 */
async function traffic(versions: [string, string], bBad: boolean, done: () => Promise<boolean>): Promise<number> {
  const agg = new TelemetryAggregator()
  const exp = new TelemetryExporter({ target: central.telemetryAddress, node: 'sim-1', group: 'edge', aggregator: agg, intervalMs: 0 })
  let rounds = 0
  try {
    for (; rounds < 150 && !(await done()); rounds++) {
      const { weightB } = await published()
      const epoch = central.central.group('edge').epoch
      const a = agg.cell({ epoch, route: 'app', filter: 'main.headers', version: versions[0], variant: 'a' })
      const b = agg.cell({ epoch, route: 'app', filter: 'main.headers', version: versions[1], variant: 'b' })
      for (let i = 0; i < 400; i++) {
        const onB = (i * 10_000) / 400 < weightB
        if (onB) b.observe(bBad && i % 3 === 0 ? 500 : 200, 2, false)
        else a.observe(200, 2, false)
      }
      await exp.flush()
      await new Promise((r) => setTimeout(r, 60))
    }
  } finally {
    await exp.close()
  }
  return rounds
}

beforeAll(async () => {
  const { dir, cleanup: rmDir } = await tempDir()
  cleanup.push(rmDir)
  // A second version of add-headers, signed by the same dev publisher as the examples.
  const key = await readSigningKey(join(EXAMPLES, 'bundles/build/dev-publisher.key.json'))
  const built = await buildBundle({ source: join(EXAMPLES, 'filters/add-headers/build/filter.wasm'), name: 'add-headers', version: '0.2.0', sourceUrl: undefined })
  const v2 = join(dir, 'add-headers-0.2.0.orb')
  await writeFile(v2, await signBundle(built.file, key))
  central = await startCentralWithRollouts({
    dataDir: join(dir, 'central'),
    trustPolicy: TRUST_POLICY,
    tokens: [{ id: 'ci', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
    registry: { admissionIsolation: 'inline' },
    tickMs: 50,
  })
  cleanup.push(() => central.close())
  const v1 = await publish(central as never, 'add-headers')
  expect(v1).toBe('add-headers@0.1.0')
  await publishBundle(central.registryUrl, TOKEN, v2)
  const up = await echoUpstream()
  cleanup.push(up.close)
  const put = await api(central as never, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(up.port, { bundle: v1, config: ADD_HEADERS_CONFIG }) })
  expect(put.status, JSON.stringify(put.body)).toBeLessThan(300)
}, 120_000)

afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

describe('rollouts through central', () => {
  it('promotes a good B through every step, one epoch per step, and a data plane ACKs each', async () => {
    const dpDir = await tempDir()
    cleanup.push(dpDir.cleanup)
    const dp = await dataPlane(central.xdsAddress, dpDir.dir, 'edge-rollout')
    cleanup.push(() => dp.close())
    await dp.serving

    const start = await cli('rollout', 'start', '--group', 'edge', '--chain', 'main', '--filter', 'headers', '--from', 'add-headers@0.1.0', '--to', 'add-headers@0.2.0', '--steps', '10,50,100', '--interval', '300ms', '--min-requests', '50')
    expect(start.code).toBe(0)
    const id: string = start.out.id
    expect(await published()).toEqual({ weightB: 1000, version: '0.1.0' })
    await converged(central as never, 'edge-rollout', central.central.group('edge').epoch)

    await traffic(['0.1.0', '0.2.0'], false, async () => (await cli('rollout', 'status', id)).out.state !== 'progressing')
    const status = await cli('rollout', 'status', id)
    expect(status.out).toMatchObject({ state: 'promoted', weightB: 10_000 })
    expect(await published()).toEqual({ weightB: 0, version: '0.2.0' })
    const cfg = await groupConfig()
    expect(cfg.filterChains.map((c: any) => c.name)).toEqual(['main'])
    const history = (await cli('rollout', 'history', id)).out.history as { event: string; epoch: number; weightB: number }[]
    expect(history.filter((e) => e.epoch).map((e) => [e.event, e.weightB])).toEqual([
      ['started', 1000],
      ['step', 5000],
      ['step', 10_000],
      ['promoted', 10_000],
    ])
    // The last epoch is the group's, and the data plane runs it.
    expect(history.at(-1)!.epoch).toBe(central.central.group('edge').epoch)
    await converged(central as never, 'edge-rollout', central.central.group('edge').epoch)
  }, 60_000)

  it('rolls a B that answers 500 on some paths back at the first step', async () => {
    const start = await cli('rollout', 'start', '--group', 'edge', '--chain', 'main', '--filter', 'headers', '--from', 'add-headers@0.2.0', '--to', 'add-headers@0.1.0', '--steps', '10,50,100', '--interval', '300ms', '--min-requests', '30')
    expect(start.code).toBe(0)
    const id: string = start.out.id
    await traffic(['0.2.0', '0.1.0'], true, async () => (await cli('rollout', 'status', id)).out.state !== 'progressing')
    const s = (await cli('rollout', 'status', id)).out
    expect(s).toMatchObject({ state: 'rolled-back', step: 0, weightB: 0 })
    expect(s.reason).toMatch(/success-rate/)
    expect(await published()).toEqual({ weightB: 0, version: '0.2.0' })
    // Manual actions on an ended rollout are refused with a code.
    expect(await cli('rollout', 'resume', id)).toMatchObject({ code: 1, out: { error: { code: 'rollout_bad_state' } } })
    // Rollback after promotion to one of the last versions.
    const rb = await cli('rollout', 'rollback', '--group', 'edge', '--chain', 'main', '--filter', 'headers', '--version', 'add-headers@0.1.0')
    expect(rb.code).toBe(0)
    expect(await published()).toEqual({ weightB: 0, version: '0.1.0' })
  }, 60_000)

  it('answers usage errors with exit code 2 and unknown rollouts with their code', async () => {
    expect((await cli('rollout', 'start', '--group', 'edge')).code).toBe(2)
    expect(await cli('rollout', 'status', 'nope')).toMatchObject({ code: 1, out: { error: { code: 'rollout_not_found' } } })
  })
})
