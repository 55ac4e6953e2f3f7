/** `omnirelay run --xds … --workers 2` as a process: serves from two workers, drains on SIGTERM. */
import { spawn } from 'node:child_process'
import net, { type AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { ADD_HEADERS_CONFIG, api, centralAt, echoUpstream, edgeConfig, publish, tempDir, TRUST_POLICY, until } from '@meshkit/control/test/central/helpers.ts'
import { request } from '../helpers/servers.ts'

const BIN = join(dirname(fileURLToPath(import.meta.url)), '../../bin/omnirelay.js')
const cleanup: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((ok) => s.close(() => ok()))
  return port
}

describe('omnirelay run --xds --workers, as a process', () => {
  it('serves from two workers and exits 0 on SIGTERM', { timeout: 30_000 }, async () => {
    const tmp = await tempDir()
    cleanup.push(tmp.cleanup)
    const central = await centralAt(join(tmp.dir, 'central'))
    cleanup.push(() => central.close())
    const up = await echoUpstream()
    cleanup.push(up.close)
    const [listenerPort, adminPort] = [await freePort(), await freePort()]
    const bundle = await publish(central, 'add-headers')
    const put = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(up.port, { bundle, config: ADD_HEADERS_CONFIG }, listenerPort) })
    expect(put.status).toBe(200)

    const child = spawn(
      process.execPath,
      [BIN, 'run', '--xds', central.xdsAddress, '--node-id', 'edge-1', '--label', 'role=edge', '--trust-policy', TRUST_POLICY,
        '--data', join(tmp.dir, 'dp'), '--admin', `127.0.0.1:${adminPort}`, '--access-log', 'off', '--workers', '2'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let err = ''
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)))
    cleanup.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    const serving = await until(() => err.split('\n').find((l) => l.includes('"msg":"serving"')), 20_000, `the relay to serve: ${err}`)
    expect(JSON.parse(serving)).toMatchObject({ source: 'control-plane', epoch: put.body.epoch, workers: 2 })
    for (let i = 0; i < 4; i++) expect(JSON.parse((await request(listenerPort, { path: `/c/${i}` })).body).headers['x-added-by']).toBe('omnirelay')
    const m = (await request(adminPort, { path: '/metrics' })).body
    expect(m).toMatch(/^omnirelay_workers 2$/m)
    expect([...m.matchAll(/^omnirelay_config_epoch\{worker="\d+"\} (\d+)$/gm)].map((x) => Number(x[1]))).toEqual([put.body.epoch, put.body.epoch])

    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    await expect(request(listenerPort, { path: '/after' })).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })
})
