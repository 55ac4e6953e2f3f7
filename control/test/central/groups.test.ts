import { afterEach, describe, expect, it } from 'vitest'
import { CentralStore, selectGroup, UNASSIGNED, type GroupRecord } from '../../src/central/index.ts'
import { TOKEN, api, centralAt, converged, dataPlane, echoUpstream, edgeConfig, get, publish, tempDir, until } from './helpers.ts'

const g = (name: string, selector: Record<string, string>, priority = 0): GroupRecord => ({ name, selector, priority, epoch: 0, updatedAt: '' })

describe('groups', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  it('selects by label, priority, specificity, or the meshkit.group label', () => {
    const groups = [g('all', {}), g('edge', { role: 'edge' }), g('edge-eu', { role: 'edge', region: 'eu' }), g('canary', { role: 'edge' }, 5)]
    expect(selectGroup(groups, { role: 'edge', region: 'eu' })).toBe('canary')
    expect(selectGroup(groups.filter((x) => x.name !== 'canary'), { role: 'edge', region: 'eu' })).toBe('edge-eu')
    expect(selectGroup(groups, { role: 'sidecar' })).toBe('all')
    expect(selectGroup(groups, { role: 'edge', 'meshkit.group': 'all' })).toBe('all')
    expect(selectGroup([g('edge', { role: 'edge' })], { role: 'api' })).toBe(UNASSIGNED)
  })

  it('keeps the epoch counter and the objects across reopen', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const file = `${tmp.dir}/c.sqlite`
    let s = CentralStore.open(file)
    const e1 = s.save({ name: 'a', selector: {}, priority: 0 }, { listeners: [{ name: 'l', port: 1 }], routes: [], clusters: [], filterChains: [], splits: [] }, () => {})
    expect(() => s.save({ name: 'b', selector: {}, priority: 0 }, undefined, () => { throw new Error('publish failed') })).toThrow('publish failed')
    s.close()
    s = CentralStore.open(file)
    expect(s.epoch).toBe(e1)
    expect(s.groups().map((x) => x.name)).toEqual(['a'])
    expect(s.config('a').listeners).toEqual([{ name: 'l', port: 1 }])
    expect(s.save({ name: 'a', selector: {}, priority: 0 }, undefined, () => {})).toBe(e1 + 1)
    s.close()
  })

  it('a SotW data plane that connected before its group existed is re-grouped and configured', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const upstream = await echoUpstream()
    cleanups.push(upstream.close)
    const central = await centralAt(`${tmp.dir}/central`)
    cleanups.push(() => central.close())
    const dp = await dataPlane(central.xdsAddress, `${tmp.dir}/dp`, 'early', {
      bootstrap: { address: central.xdsAddress, node: { id: 'early', metadata: { role: 'edge' } }, protocol: 'sotw', capabilities: {} },
    })
    cleanups.push(() => dp.close())
    const seen = await (async () => {
      for (let i = 0; i < 200; i++) {
        const r = await api(central, 'GET', '/v1/dataplanes/early')
        if (r.status === 200) return r.body
        await new Promise((ok) => setTimeout(ok, 25))
      }
      throw new Error('never connected')
    })()
    expect(seen.group).toBe(UNASSIGNED)
    expect(dp.proxy).toBeUndefined()

    const put = await api(central, 'PUT', '/v1/groups/edge', { selector: { role: 'edge' }, config: edgeConfig(upstream.port) })
    await dp.serving
    await converged(central, 'early', put.body.epoch)
    expect((await api(central, 'GET', '/v1/dataplanes/early')).body.group).toBe('edge')
    expect((await get(dp.proxy!.address('edge').port, '/hello')).body).toBe('hi')
  })

  it('reports a group whose bundle was yanked in the registry after it was attached', async () => {
    const tmp = await tempDir()
    cleanups.push(tmp.cleanup)
    const central = await centralAt(`${tmp.dir}/central`, { registryWatchMs: 20 })
    cleanups.push(() => central.close())
    const bundle = await publish(central, 'add-headers')
    expect((await api(central, 'PUT', '/v1/groups/edge', { config: edgeConfig(1, { bundle }) })).status).toBe(200)
    expect((await api(central, 'GET', '/v1/groups/edge')).body.problems).toEqual([])
    const yank = await fetch(`${central.registryUrl}/v1/bundles/add-headers/0.1.0/yank`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'bad release' }),
    })
    expect(yank.status).toBe(200)
    const problems = await until(async () => {
      const p = (await api(central, 'GET', '/v1/groups/edge')).body.problems
      return p.length ? p : undefined
    }, 5000, 'problems after the yank')
    expect(problems.map((p: { path: string }) => p.path)).toEqual(['filterChains[main].filters[0].bundle'])
  })
})
