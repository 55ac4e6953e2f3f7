import { mkdir, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { publishBundle } from '@meshkit/registry'
import { startCentralWithRollouts, type RunningCentralWithRollouts } from '@meshkit/control/src/rollout/serve.ts'
import { api, echoUpstream, TOKEN, TRUST_POLICY } from '@meshkit/control/test/central/helpers.ts'
import { buildBundle, readSigningKey, signBundle } from '../../src/bundles/index.ts'
import type { Capability } from '../../src/pipeline/filter.ts'

/** A TCP relay on port 0 whose connections a test can cut, to simulate a broken stream. */
export async function cutProxy(target: () => number) {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((down) => {
    const up = net.connect(target(), '127.0.0.1')
    sockets.add(down).add(up)
    down.pipe(up).pipe(down)
    const drop = () => {
      down.destroy()
      up.destroy()
      sockets.delete(down)
      sockets.delete(up)
    }
    down.on('error', drop).on('close', drop)
    up.on('error', drop).on('close', drop)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const KEY = join(dirname(fileURLToPath(import.meta.url)), '../../../examples/bundles/build/dev-publisher.key.json')

/**
 * A central with rollouts for rollout tests: QuickJS bundle `guard` published in versions
 * 1.0.0 and 2.0.0 (source from `source(version)`), signed with the dev key, and group `edge`
 * (selector role=edge) running guard@1.0.0 in chain `main` on one route to an echo upstream.
 * Closers go to `cleanup`, to be run in reverse.
 */
export async function guardCentral(
  dir: string,
  cleanup: (() => Promise<unknown>)[],
  guard: { capabilities: readonly Capability[]; source: (version: string) => string; failurePolicy?: string },
): Promise<RunningCentralWithRollouts> {
  const central = await startCentralWithRollouts({
    dataDir: join(dir, 'central'),
    trustPolicy: TRUST_POLICY,
    tokens: [{ id: 'ci', token: TOKEN, scopes: ['read', 'publish', 'admin'] }],
    registry: { admissionIsolation: 'inline' },
  })
  cleanup.push(() => central.close())
  const key = await readSigningKey(KEY)
  for (const version of ['1.0.0', '2.0.0']) {
    const d = join(dir, `guard-${version}`)
    await mkdir(d)
    await writeFile(join(d, 'filter.js'), guard.source(version))
    const built = await buildBundle({ source: join(d, 'filter.js'), name: 'guard', version, sourceUrl: undefined, capabilities: [...guard.capabilities] })
    await writeFile(join(d, 'guard.orb'), await signBundle(built.file, key))
    await publishBundle(central.registryUrl, TOKEN, join(d, 'guard.orb'))
  }
  const up = await echoUpstream()
  cleanup.push(up.close)
  const filter = { name: 'guard', bundle: 'guard@1.0.0', capabilities: [...guard.capabilities], ...(guard.failurePolicy ? { failurePolicy: guard.failurePolicy } : {}) }
  const put = await api(central, 'PUT', '/v1/groups/edge', {
    selector: { role: 'edge' },
    config: {
      listeners: [{ name: 'edge', address: '127.0.0.1', port: 0 }],
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
      routes: [{ name: 'app', match: { prefix: '/' }, cluster: 'app', filterChain: 'main' }],
      filterChains: [{ name: 'main', filters: [filter] }],
    },
  })
  if (put.status !== 200) throw new Error(`group edge refused: ${JSON.stringify(put.body)}`)
  return central
}
