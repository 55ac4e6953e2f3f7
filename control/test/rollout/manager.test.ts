import { afterEach, describe, expect, it } from 'vitest'
import { RolloutState, type RolloutSpec } from '../../src/rollout/index.ts'
import { fleet } from './helpers.ts'

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of closers.splice(0)) await c()
})

async function setup(a: Parameters<typeof fleet>[0], b: Parameters<typeof fleet>[1]) {
  const f = await fleet(a, b)
  closers.push(() => f.close())
  return f
}

const SPEC: RolloutSpec = { group: 'edge', chain: 'api', filter: 'waf', from: 'waf@1.0.0', to: 'waf@2.0.0', steps: [5, 25, 50, 100], intervalMs: 10_000, analysis: { minRequests: 20 } }

describe('RolloutManager (fake clock, real SQLite, telemetry over real gRPC)', () => {
  it('promotes a good B through every step; each step is an epoch with its split and reason', async () => {
    const f = await setup({}, {})
    const r = await f.manager.start(SPEC)
    for (let i = 0; i < 6 && f.manager.status(r.id).state === RolloutState.Progressing; i++) {
      await f.dp.serve(2000)
      f.clock.advance(10_000)
      await f.manager.tick()
    }
    const done = f.manager.status(r.id)
    expect(done.state).toBe(RolloutState.Promoted)
    expect(f.publisher.changes.map((c) => (c.change.kind === 'split' ? c.change.weightB : c.change.kind))).toEqual([500, 2500, 5000, 10_000, 'set-version'])
    const h = f.manager.history(r.id)
    expect(h.map((e) => e.event)).toEqual(['started', 'step', 'step', 'step', 'promoted'])
    expect(h.map((e) => e.epoch)).toEqual(f.publisher.changes.map((c) => c.epoch))
    expect(h.map((e) => e.weightB)).toEqual([500, 2500, 5000, 10_000, 10_000])
    expect(f.store.verifyHistory()).toBe(0)
    expect(f.manager.versions('edge', 'api', 'waf').map((v) => v.version)).toEqual(['waf@2.0.0', 'waf@1.0.0'])
  })

  it('rolls back a B that answers 500 on some paths at the first step, with only its share affected', async () => {
    const f = await setup({}, { errorShare: 1 })
    const r = await f.manager.start(SPEC)
    const onB = await f.dp.serve(2000)
    expect(onB / 2000).toBeGreaterThan(0.02)
    expect(onB / 2000).toBeLessThan(0.09)
    f.clock.advance(10_000)
    await f.manager.tick()
    const s = f.manager.status(r.id)
    expect(s.state).toBe(RolloutState.RolledBack)
    expect(s.weightB).toBe(0)
    expect(s.reason).toMatch(/success-rate/)
    const last = f.publisher.changes.at(-1)!.change
    expect(last).toMatchObject({ kind: 'set-version', version: 'waf@1.0.0' })
    expect(f.manager.history(r.id).map((e) => e.event)).toEqual(['started', 'rolled-back'])
  })

  it('rolls back a B that burns far more fuel, or traps', async () => {
    const f1 = await setup({ fuel: 100 }, { fuel: 1000 })
    const r1 = await f1.manager.start(SPEC)
    await f1.dp.serve(2000)
    f1.clock.advance(10_000)
    await f1.manager.tick()
    expect(f1.manager.status(r1.id)).toMatchObject({ state: 'rolled-back' })
    expect(f1.manager.status(r1.id).reason).toMatch(/fuel/)
    const f2 = await setup({}, { trapShare: 0.1 })
    const r2 = await f2.manager.start(SPEC)
    await f2.dp.serve(3000)
    f2.clock.advance(10_000)
    await f2.manager.tick()
    expect(f2.manager.status(r2.id).reason).toMatch(/trap-rate/)
  })

  it('waits without data and never promotes on none', async () => {
    const f = await setup({}, {})
    const r = await f.manager.start(SPEC)
    for (let i = 0; i < 10; i++) {
      f.clock.advance(10_000)
      await f.manager.tick()
    }
    const s = f.manager.status(r.id)
    expect(s).toMatchObject({ state: 'progressing', step: 0, weightB: 500 })
    expect(s.waiting).toMatch(/not enough traffic on B/)
    // One history entry for the wait, not one per tick.
    expect(f.manager.history(r.id).map((e) => e.event)).toEqual(['started', 'waiting'])
    await f.dp.serve(2000)
    f.clock.advance(1)
    await f.manager.tick()
    expect(f.manager.status(r.id).step).toBe(1)
  })

  it('resumes from stored state after a central restart', async () => {
    const f = await setup({}, {})
    const r = await f.manager.start(SPEC)
    await f.dp.serve(2000)
    f.clock.advance(10_000)
    await f.manager.tick()
    expect(f.manager.status(r.id).step).toBe(1)
    f.restart()
    expect(f.manager.status(r.id)).toMatchObject({ state: 'progressing', step: 1, weightB: 2500 })
    await f.dp.serve(2000)
    f.clock.advance(10_000)
    await f.manager.tick()
    expect(f.manager.status(r.id)).toMatchObject({ step: 2, weightB: 5000 })
    expect(f.store.verifyHistory()).toBe(0)
  })

  it('pause, resume, promote and abort by hand; wrong-state actions have codes', async () => {
    const f = await setup({}, {})
    const r = await f.manager.start(SPEC)
    await expect(f.manager.start(SPEC)).rejects.toMatchObject({ code: 'rollout_conflict' })
    await f.manager.pause(r.id)
    await f.dp.serve(2000)
    f.clock.advance(60_000)
    await f.manager.tick()
    expect(f.manager.status(r.id)).toMatchObject({ state: 'paused', step: 0 })
    await expect(f.manager.pause(r.id)).rejects.toMatchObject({ code: 'rollout_bad_state' })
    await f.manager.resume(r.id)
    await f.manager.promote(r.id)
    expect(f.manager.status(r.id)).toMatchObject({ state: 'promoted', weightB: 10_000 })
    await expect(f.manager.abort(r.id)).rejects.toMatchObject({ code: 'rollout_bad_state' })
    expect(f.manager.history(r.id).map((e) => e.event)).toEqual(['started', 'paused', 'resumed', 'promoted'])
    // Every state change is an epoch.
    expect(new Set(f.manager.history(r.id).map((e) => e.epoch)).size).toBe(4)
    const r2 = await f.manager.start({ ...SPEC, from: 'waf@2.0.0', to: 'waf@3.0.0' })
    await f.manager.abort(r2.id)
    expect(f.publisher.changes.at(-1)!.change).toMatchObject({ kind: 'set-version', version: 'waf@2.0.0' })
    expect(() => f.manager.status('nope')).toThrow(expect.objectContaining({ code: 'rollout_not_found' }))
  })

  it('rolls back after promotion to any of the last N versions only', async () => {
    const f = await setup({}, {})
    const r = await f.manager.start(SPEC)
    await f.manager.promote(r.id)
    const out = await f.manager.rollbackTo('edge', 'api', 'waf', 'waf@1.0.0')
    expect(f.publisher.changes.at(-1)).toMatchObject({ epoch: out.epoch, change: { kind: 'set-version', version: 'waf@1.0.0' } })
    await expect(f.manager.rollbackTo('edge', 'api', 'waf', 'waf@0.9.0')).rejects.toMatchObject({ code: 'rollout_unknown_version' })
  })

  it('refuses bad specs, and does not move when central refuses to publish', async () => {
    const f = await setup({}, {})
    await expect(f.manager.start({ ...SPEC, steps: [50, 25] })).rejects.toMatchObject({ code: 'rollout_invalid' })
    await expect(f.manager.start({ ...SPEC, to: 'other@1.0.0' })).rejects.toMatchObject({ code: 'rollout_invalid' })
    await expect(f.manager.start({ ...SPEC, analysis: { failureLimit: 0 } })).rejects.toMatchObject({ code: 'rollout_invalid' })
    f.publisher.fail = true
    await expect(f.manager.start(SPEC)).rejects.toMatchObject({ code: 'rollout_publish_failed' })
    expect(f.manager.list()).toEqual([])
  })

  it('kill and unkill publish the whole rule set to every group as one epoch', async () => {
    const f = await setup({}, {})
    const k = await f.manager.kill('bundle', 'waf@2.0.0', 'CVE')
    expect(f.publisher.changes.at(-1)).toMatchObject({ group: '*', epoch: k.epoch, change: { kind: 'kills', rules: [{ scope: 'bundle', target: 'waf@2.0.0' }] } })
    await f.manager.kill('signer', 'ci@example.com')
    expect(f.manager.kills().map((x) => x.target)).toEqual(['waf@2.0.0', 'ci@example.com'])
    await f.manager.unkill('bundle', 'waf@2.0.0')
    expect(f.publisher.changes.at(-1)!.change).toMatchObject({ kind: 'kills', rules: [{ scope: 'signer' }] })
    await expect(f.manager.unkill('bundle', 'waf@2.0.0')).rejects.toMatchObject({ code: 'rollout_not_found' })
  })
})
