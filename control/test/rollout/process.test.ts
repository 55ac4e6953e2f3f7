/**
 * `meshkit central` and `meshkit rollout` as real processes: a rollout started from the CLI,
 * central stopped and started again mid-rollout (it resumes from its SQLite state), and the
 * rollout promoted from telemetry that simulated data planes report over gRPC to central's
 * xDS address.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { publishBundle } from '@meshkit/registry'
import { buildBundle, readSigningKey, signBundle } from '@omnirelay/runtime/bundles/index.ts'
import { TelemetryAggregator, TelemetryExporter } from '@omnirelay/runtime/telemetry/index.ts'
import { ADD_HEADERS_CONFIG, TOKEN, TRUST_POLICY, echoUpstream, edgeConfig, exampleBundle, tempDir, until } from '../central/helpers.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..')
const BIN = join(ROOT, 'control/bin/meshkit.js')
const run = promisify(execFile)

function startCentral(dataDir: string, port = 0): { child: ChildProcess; started: Promise<Record<string, unknown>> } {
  const child = spawn(process.execPath, [BIN, 'central', '--data', dataDir, '--port', String(port), '--xds-port', '0', '--registry-port', '0', '--trust-policy', TRUST_POLICY, '--token', `ci:${TOKEN}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let buf = ''
  const started = new Promise<Record<string, unknown>>((ok, fail) => {
    child.stderr!.on('data', (d: Buffer) => {
      buf += d.toString()
      for (const line of buf.split('\n')) {
        try {
          const j = JSON.parse(line) as Record<string, unknown>
          if (j.msg === 'meshkit central started') ok(j)
        } catch {}
      }
    })
    child.once('exit', (c) => fail(new Error(`central exited ${c}: ${buf}`)))
  })
  return { child, started }
}

function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve()
  return new Promise((ok) => {
    c.once('exit', () => ok())
    c.kill('SIGTERM')
    setTimeout(() => c.kill('SIGKILL'), 5000).unref()
  })
}

async function meshkit(url: string, ...args: string[]): Promise<any> {
  const { stdout } = await run(process.execPath, [BIN, ...args, '--url', url, '--json'])
  return JSON.parse(stdout)
}

describe('meshkit rollout as processes', () => {
  const children: ChildProcess[] = []
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const c of children) await stop(c)
    for (const c of cleanups.reverse()) await c()
  })

  it('starts from the CLI, survives a central restart mid-rollout, and promotes', { timeout: 90_000 }, async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const dataDir = join(tmp.dir, 'central')
    const c1 = startCentral(dataDir)
    children.push(c1.child)
    const s1 = await c1.started
    const url = s1.api as string
    const port = Number(new URL(url).port)
    await publishBundle(s1.registry as string, TOKEN, exampleBundle('add-headers').file)
    const key = await readSigningKey(join(ROOT, 'examples/bundles/build/dev-publisher.key.json'))
    const built = await buildBundle({ source: join(ROOT, 'examples/filters/add-headers/build/filter.wasm'), name: 'add-headers', version: '0.2.0', sourceUrl: undefined })
    const v2 = join(tmp.dir, 'v2.orb')
    await writeFile(v2, await signBundle(built.file, key))
    await publishBundle(s1.registry as string, TOKEN, v2)
    const up = await echoUpstream()
    cleanups.push(up.close)
    const put = await fetch(`${url}/v1/groups/edge`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ selector: { role: 'edge' }, config: edgeConfig(up.port, { bundle: 'add-headers@0.1.0', config: ADD_HEADERS_CONFIG }) }),
    })
    expect(put.status).toBe(200)

    const r = await meshkit(url, 'rollout', 'start', '--group', 'edge', '--chain', 'main', '--filter', 'headers', '--from', 'add-headers@0.1.0', '--to', 'add-headers@0.2.0', '--steps', '20,100', '--interval', '1s', '--min-requests', '20')
    expect(r).toMatchObject({ state: 'progressing', weightB: 2000 })

    // Central goes away mid-rollout and comes back on the same port and data.
    await stop(c1.child)
    const c2 = startCentral(dataDir, port)
    children.push(c2.child)
    const s2 = await c2.started
    expect(await meshkit(url, 'rollout', 'status', r.id)).toMatchObject({ state: 'progressing', step: 0, weightB: 2000 })

    const agg = new TelemetryAggregator()
    const exp = new TelemetryExporter({ target: s2.telemetry as string, node: 'sim', group: 'edge', aggregator: agg, intervalMs: 0 })
    cleanups.push(() => exp.close())
    const final = await until(
      async () => {
        // Polled over HTTP: a CLI process per poll would cost ~1 s each.
        const s = (await (await fetch(`${url}/v1/rollouts/${r.id}`)).json()) as { state: string; weightB: number }
        if (s.state !== 'progressing') return s
        const epoch = Number(s2.epoch) + 100 // any epoch at or after the step's
        const a = agg.cell({ epoch, route: 'app', filter: 'main.headers', version: '0.1.0', variant: 'a' })
        const b = agg.cell({ epoch, route: 'app', filter: 'main.headers', version: '0.2.0', variant: 'b' })
        for (let i = 0; i < 100; i++) (i < s.weightB / 100 ? b : a).observe(200, 1, false)
        await exp.flush()
        return undefined
      },
      60_000,
      'the rollout to end',
    )
    expect(final).toMatchObject({ state: 'promoted' })
    const history = (await meshkit(url, 'rollout', 'history', r.id)).history as { event: string }[]
    // "waiting" entries appear when a check found no data yet (central was restarting).
    expect(history.map((e) => e.event).filter((e) => e !== 'waiting')).toEqual(['started', 'step', 'promoted'])
    // The table form names the events too.
    const { stdout } = await run(process.execPath, [BIN, 'rollout', 'history', r.id, '--url', url])
    expect(stdout).toMatch(/EPOCH[\s\S]*promoted/)
  })
})
