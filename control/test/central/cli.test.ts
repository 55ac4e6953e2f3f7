import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { publishBundle } from '@meshkit/registry'
import { ADD_HEADERS_CONFIG, TOKEN, TRUST_POLICY, echoUpstream, edgeConfig, exampleBundle, get, tempDir, until } from './helpers.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..')

/** A child process whose JSON log lines (stderr) are collected. */
function start(bin: string, args: string[]): { child: ChildProcess; lines: Record<string, unknown>[]; text: () => string } {
  const child = spawn(process.execPath, [join(ROOT, bin), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: Record<string, unknown>[] = []
  let raw = ''
  let buf = ''
  child.stderr!.on('data', (d: Buffer) => {
    raw += d.toString()
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {}
    }
  })
  child.stdout!.resume()
  return { child, lines, text: () => raw }
}

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((ok) => s.close(() => ok()))
  return port
}

function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return Promise.resolve()
  return new Promise((ok) => {
    c.once('exit', () => ok())
    c.kill('SIGTERM')
    setTimeout(() => c.kill('SIGKILL'), 5000).unref()
  })
}

describe('meshkit central + omnirelay run --xds, as processes', () => {
  const children: ChildProcess[] = []
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const c of children) await stop(c)
    for (const c of cleanups) await c()
  })

  it('runs central from its CLI and an OmniRelay configured only over xDS', { timeout: 60_000 }, async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const upstream = await echoUpstream()
    cleanups.push(upstream.close)
    const central = start('control/bin/meshkit.js', [
      'central', '--data', join(tmp.dir, 'central'), '--port', '0', '--xds-port', '0', '--registry-port', '0',
      '--trust-policy', TRUST_POLICY, '--token', `ci:${TOKEN}`, '--log-level', 'info',
    ])
    children.push(central.child)
    const started = await until(() => central.lines.find((l) => l.msg === 'meshkit central started'), 30_000, `central to start: ${central.text()}`)
    const apiUrl = started.api as string
    await publishBundle(started.registry as string, TOKEN, exampleBundle('add-headers').file)
    const listenerPort = await freePort()
    const put = await fetch(`${apiUrl}/v1/groups/edge`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ selector: { role: 'edge' }, config: edgeConfig(upstream.port, { bundle: 'add-headers@0.1.0', config: ADD_HEADERS_CONFIG }, listenerPort) }),
    })
    expect(put.status).toBe(200)

    const relay = start('runtime/bin/omnirelay.js', [
      'run', '--xds', started.xds as string, '--node-id', 'edge-cli', '--label', 'role=edge', '--data', join(tmp.dir, 'dp'),
      '--trust-policy', TRUST_POLICY, '--admin', '127.0.0.1:0', '--access-log', 'off',
    ])
    children.push(relay.child)
    await until(() => relay.lines.find((l) => l.msg === 'serving'), 30_000, `omnirelay to serve: ${relay.text()}`)
    const r = await get(listenerPort, '/cli')
    expect(r.body.headers['x-added-by']).toBe('omnirelay')
    const dps = (await (await fetch(`${apiUrl}/v1/dataplanes`)).json()) as { dataPlanes: { id: string; group: string }[] }
    expect(dps.dataPlanes.map((d) => [d.id, d.group])).toContainEqual(['edge-cli', 'edge'])
  })
})
