/**
 * The rollout manager: moves one filter of a filter chain from version A to version B for a
 * group, step by step, judging B against A from telemetry at the end of each step.
 *
 *   start -> step 1 (split published) -> [interval] -> analysis:
 *     wait -> check again next tick (never promote on no data)
 *     fail -> failures+1; at the failure limit: rollback (all traffic on A)
 *     pass -> next step (new split), or after the last step: promote (all traffic on B)
 *   pause/resume/promote/abort by hand; rollback to any of the slot's last N versions.
 *
 * Every change of traffic is published through `RolloutPublisher` (one epoch each) before
 * the state is stored; every state change is a history entry naming its epoch and reason.
 * State lives in SQLite, so a new manager on the same file resumes where the old one was.
 */
import { randomUUID } from 'node:crypto'
import { judge, type Verdict } from './analysis.ts'
import { RolloutError, RolloutErrorCode } from './errors.ts'
import type { RolloutStore } from './store.ts'
import {
  ACTIVE_STATES,
  DEFAULT_ANALYSIS,
  RolloutState,
  type AnalysisSpec,
  type Clock,
  type HistoryEntry,
  type KillEntry,
  type Rollout,
  type RolloutChange,
  type RolloutPublisher,
  type RolloutSpec,
  type RolloutTelemetry,
} from './types.ts'

export interface RolloutManagerOptions {
  store: RolloutStore
  publisher: RolloutPublisher
  telemetry: RolloutTelemetry
  clock?: Clock
  /** How many past versions of a slot a rollback may go to (default 10). */
  keepVersions?: number
  /** Period of `run()`'s ticks (default 1000 ms). */
  tickMs?: number
  /** Called after every state change (metrics, logs). */
  onChange?: (r: Rollout, e: HistoryEntry) => void
}

const DEFAULT_STEPS = [1, 5, 25, 50, 100]

/** The version part of `name@version` (scoped names keep their leading `@`). */
export function versionOf(ref: string): string {
  const at = ref.lastIndexOf('@')
  return at > 0 ? ref.slice(at + 1) : ref
}

/**
 * @example
 * const m = new RolloutManager({ store, publisher: central, telemetry })
 * const r = await m.start({ group: 'edge', chain: 'api', filter: 'waf', from: 'waf@1.0.0', to: 'waf@2.0.0', intervalMs: 30_000 })
 * m.run() // ticks every second; or call `await m.tick()` yourself
 */
export class RolloutManager {
  readonly #store: RolloutStore
  readonly #publisher: RolloutPublisher
  readonly #telemetry: RolloutTelemetry
  readonly #clock: Clock
  readonly #keep: number
  readonly #tickMs: number
  readonly #onChange: RolloutManagerOptions['onChange']
  #timer: NodeJS.Timeout | undefined
  // One action at a time: a tick and an operator's pause must not interleave across awaits.
  #queue: Promise<unknown> = Promise.resolve()
  /** Counters for metrics: started, promoted, rolledBack, aborted. */
  readonly counts = { started: 0, promoted: 0, rolledBack: 0, aborted: 0, analysisFailed: 0 }

  constructor(opts: RolloutManagerOptions) {
    this.#store = opts.store
    this.#publisher = opts.publisher
    this.#telemetry = opts.telemetry
    this.#clock = opts.clock ?? { now: Date.now }
    this.#keep = opts.keepVersions ?? 10
    this.#tickMs = opts.tickMs ?? 1000
    this.#onChange = opts.onChange
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(fn, fn)
    this.#queue = p.catch(() => {})
    return p
  }

  /** Ticks every `tickMs` until `stop()`. */
  run(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => void this.tick().catch(() => {}), this.#tickMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /**
   * Validates and starts a rollout: publishes the first step's split.
   * @throws RolloutError `rollout_invalid`, `rollout_conflict`, `rollout_publish_failed`
   */
  start(spec: RolloutSpec): Promise<Rollout> {
    return this.#serial(async () => {
      const r = this.#validate(spec)
      if (this.#store.activeFor(r.group, `${r.chain}.${r.filter}`, ACTIVE_STATES)) {
        throw new RolloutError(RolloutErrorCode.Conflict, `a rollout of ${r.chain}.${r.filter} in group ${r.group} is already active`)
      }
      const epoch = await this.#publish(r, this.#split(r, r.steps[0]!, `start: step 1 at ${r.steps[0]! / 100} %`))
      r.weightB = r.steps[0]!
      r.stepEpoch = epoch
      this.counts.started++
      this.#commit(r, epoch, 'started', r.reason, () => this.#store.recordVersion(r.group, slotOf(r), r.from, r.createdMs, epoch))
      return r
    })
  }

  #validate(spec: RolloutSpec): Rollout {
    const bad = (m: string): never => {
      throw new RolloutError(RolloutErrorCode.Invalid, m)
    }
    for (const k of ['group', 'chain', 'filter', 'from', 'to'] as const) if (typeof spec[k] !== 'string' || !spec[k]) bad(`${k} is required`)
    if (spec.from === spec.to) bad('from and to must differ')
    if (versionOf(spec.from) === versionOf(spec.to)) bad('from and to must have different versions (telemetry tells them apart by version)')
    const pct = spec.steps ?? DEFAULT_STEPS
    if (!Array.isArray(pct) || pct.length === 0) bad('steps must be a non-empty list')
    const steps = pct.map((p) => Math.round(p * 100))
    steps.forEach((s, i) => {
      if (!Number.isFinite(s) || s <= 0 || s > 10_000) bad(`steps[${i}] must be in (0, 100]`)
      if (i > 0 && s <= steps[i - 1]!) bad('steps must increase')
    })
    const intervalMs = spec.intervalMs ?? 60_000
    if (!Number.isInteger(intervalMs) || intervalMs < 1) bad('intervalMs must be a positive integer')
    const analysis: AnalysisSpec = { ...DEFAULT_ANALYSIS, ...(spec.analysis ?? {}) }
    for (const [k, v] of Object.entries(analysis)) if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(`analysis.${k} must be a non-negative number`)
    if (analysis.failureLimit < 1) bad('analysis.failureLimit must be at least 1')
    const now = this.#clock.now()
    const r: Rollout = {
      id: randomUUID().slice(0, 8),
      group: spec.group,
      chain: spec.chain,
      filter: spec.filter,
      from: spec.from,
      to: spec.to,
      steps,
      intervalMs,
      analysis,
      state: RolloutState.Progressing,
      step: 0,
      weightB: 0,
      stepStartedMs: now,
      stepEpoch: 0,
      failures: 0,
      waiting: undefined,
      createdMs: now,
      updatedMs: now,
      reason: `started: ${spec.from} -> ${spec.to}`,
    }
    if (spec.stickyHeader) r.stickyHeader = spec.stickyHeader
    if (spec.stickyCookie) r.stickyCookie = spec.stickyCookie
    return r
  }

  #split(r: Rollout, weightB: number, reason: string): RolloutChange {
    const c: RolloutChange = { kind: 'split', rollout: r.id, chain: r.chain, filter: r.filter, from: r.from, to: r.to, weightB, reason }
    if (r.stickyHeader) c.stickyHeader = r.stickyHeader
    if (r.stickyCookie) c.stickyCookie = r.stickyCookie
    return c
  }

  async #publish(r: { group: string }, change: RolloutChange): Promise<number> {
    try {
      return await this.#publisher.publish(r.group, change)
    } catch (e) {
      throw new RolloutError(RolloutErrorCode.PublishFailed, `central refused the change: ${(e as Error).message}`, { cause: e })
    }
  }

  #commit(r: Rollout, epoch: number, event: string, reason: string, extra?: () => void, detail?: unknown): HistoryEntry {
    r.updatedMs = this.#clock.now()
    r.reason = reason
    const e = this.#store.tx(() => {
      this.#store.save(r)
      extra?.()
      const entry: Omit<HistoryEntry, 'seq' | 'hash'> = { rollout: r.id, atMs: r.updatedMs, epoch, event, state: r.state, weightB: r.weightB, reason }
      if (detail !== undefined) entry.detail = detail
      return this.#store.append(entry)
    })
    this.#onChange?.(r, e)
    return e
  }

  /** Runs every due analysis. Safe to call at any time; `run()` calls it on a timer. */
  tick(): Promise<void> {
    return this.#serial(async () => {
      for (const r of this.#store.list([RolloutState.Progressing])) {
        if (this.#clock.now() < r.stepStartedMs + r.intervalMs) continue
        await this.#analyze(r)
      }
    })
  }

  async #analyze(r: Rollout): Promise<void> {
    const now = this.#clock.now()
    const slot = slotOf(r)
    const versions = [versionOf(r.from), versionOf(r.to)] as const
    const cmp = this.#telemetry.compare({ filter: slot, versions, windowMs: now - r.stepStartedMs, minEpoch: r.stepEpoch, group: r.group }, now)
    let a = cmp.a
    // At high weights A gets little traffic; its baseline then spans the whole rollout.
    if (a.requests < r.analysis.minRequests) a = this.#telemetry.compare({ filter: slot, versions, windowMs: now - r.createdMs, group: r.group }, now).a
    const v = judge(a, cmp.b, r.analysis)
    const detail = { a, b: cmp.b, checks: v.checks }
    if (v.result === 'wait') {
      if (r.waiting !== v.reason) {
        r.waiting = v.reason
        this.#commit(r, 0, 'waiting', v.reason, undefined, detail)
      }
      return
    }
    r.waiting = undefined
    if (v.result === 'fail') {
      r.failures++
      this.counts.analysisFailed++
      if (r.failures >= r.analysis.failureLimit) {
        await this.#end(r, RolloutState.RolledBack, r.from, `analysis failed ${r.failures}/${r.analysis.failureLimit} at ${r.weightB / 100} %: ${v.reason}`, detail)
        return
      }
      r.stepStartedMs = now
      this.#commit(r, 0, 'analysis-failed', `analysis failed ${r.failures}/${r.analysis.failureLimit}: ${v.reason}`, undefined, detail)
      return
    }
    await this.#advance(r, v, detail)
  }

  async #advance(r: Rollout, v: Verdict, detail: unknown): Promise<void> {
    if (r.step + 1 >= r.steps.length) {
      await this.#end(r, RolloutState.Promoted, r.to, `every step passed; promoted (${v.reason})`, detail)
      return
    }
    const next = r.steps[r.step + 1]!
    const reason = `step ${r.step + 1} passed (${v.reason}); step ${r.step + 2} at ${next / 100} %`
    const epoch = await this.#publish(r, this.#split(r, next, reason))
    r.step++
    r.weightB = next
    r.stepEpoch = epoch
    r.stepStartedMs = this.#clock.now()
    r.failures = 0
    this.#commit(r, epoch, 'step', reason, undefined, detail)
  }

  // Ends a rollout on one version: A (rollback, abort) or B (promotion).
  async #end(r: Rollout, state: RolloutState, version: string, reason: string, detail?: unknown): Promise<void> {
    const epoch = await this.#publish(r, { kind: 'set-version', rollout: r.id, chain: r.chain, filter: r.filter, version, reason })
    r.state = state
    r.weightB = version === r.to ? 10_000 : 0
    const event = state === RolloutState.Promoted ? 'promoted' : state === RolloutState.RolledBack ? 'rolled-back' : 'aborted'
    if (state === RolloutState.Promoted) this.counts.promoted++
    else if (state === RolloutState.RolledBack) this.counts.rolledBack++
    else this.counts.aborted++
    this.#commit(r, epoch, event, reason, () => this.#store.recordVersion(r.group, slotOf(r), version, this.#clock.now(), epoch), detail)
  }

  #get(id: string): Rollout {
    const r = this.#store.get(id)
    if (!r) throw new RolloutError(RolloutErrorCode.NotFound, `no rollout "${id}"`)
    return r
  }

  #expect(r: Rollout, states: readonly RolloutState[], action: string): void {
    if (!states.includes(r.state)) throw new RolloutError(RolloutErrorCode.BadState, `cannot ${action} a rollout that is ${r.state}`)
  }

  /** Freezes the rollout at its current weight (a new epoch records the pause). */
  pause(id: string, reason = 'paused by operator'): Promise<Rollout> {
    return this.#serial(async () => {
      const r = this.#get(id)
      this.#expect(r, [RolloutState.Progressing], 'pause')
      const epoch = await this.#publish(r, this.#split(r, r.weightB, reason))
      r.state = RolloutState.Paused
      this.#commit(r, epoch, 'paused', reason)
      return r
    })
  }

  /** Continues a paused rollout; the current step's interval starts again. */
  resume(id: string, reason = 'resumed by operator'): Promise<Rollout> {
    return this.#serial(async () => {
      const r = this.#get(id)
      this.#expect(r, [RolloutState.Paused], 'resume')
      const epoch = await this.#publish(r, this.#split(r, r.weightB, reason))
      r.state = RolloutState.Progressing
      r.stepStartedMs = this.#clock.now()
      r.stepEpoch = epoch
      this.#commit(r, epoch, 'resumed', reason)
      return r
    })
  }

  /** Skips the remaining steps: all traffic on B now. */
  promote(id: string, reason = 'promoted by operator'): Promise<Rollout> {
    return this.#serial(async () => {
      const r = this.#get(id)
      this.#expect(r, ACTIVE_STATES, 'promote')
      await this.#end(r, RolloutState.Promoted, r.to, reason)
      return r
    })
  }

  /** Stops the rollout: all traffic back on A. */
  abort(id: string, reason = 'aborted by operator'): Promise<Rollout> {
    return this.#serial(async () => {
      const r = this.#get(id)
      this.#expect(r, ACTIVE_STATES, 'abort')
      await this.#end(r, RolloutState.Aborted, r.from, reason)
      return r
    })
  }

  /**
   * After a rollout ended: puts the slot back on one of its last N versions (a bundle ref).
   * @throws RolloutError `rollout_unknown_version`, `rollout_conflict` (a rollout is active)
   */
  rollbackTo(group: string, chain: string, filter: string, version: string, reason = 'rollback by operator'): Promise<{ epoch: number; version: string }> {
    return this.#serial(async () => {
      const slot = `${chain}.${filter}`
      if (this.#store.activeFor(group, slot, ACTIVE_STATES)) throw new RolloutError(RolloutErrorCode.Conflict, `a rollout of ${slot} is active; abort it first`)
      const known = this.#store.versions(group, slot, this.#keep)
      if (!known.some((k) => k.version === version)) {
        throw new RolloutError(RolloutErrorCode.UnknownVersion, `${version} is not one of the last ${this.#keep} versions of ${slot} (${known.map((k) => k.version).join(', ') || 'none'})`)
      }
      const epoch = await this.#publish({ group }, { kind: 'set-version', chain, filter, version, reason })
      const now = this.#clock.now()
      this.#store.tx(() => {
        this.#store.recordVersion(group, slot, version, now, epoch)
        this.#store.append({ rollout: '', atMs: now, epoch, event: 'rollback', state: RolloutState.RolledBack, weightB: 0, reason: `${group}/${slot} -> ${version}: ${reason}` })
      })
      return { epoch, version }
    })
  }

  /** Versions the slot ran, newest first (the rollback targets). */
  versions(group: string, chain: string, filter: string): { version: string; atMs: number; epoch: number }[] {
    return this.#store.versions(group, `${chain}.${filter}`, this.#keep)
  }

  /**
   * Kill switch: every group gets the rule in the next epoch; data planes apply the filter's
   * failure policy to whatever matches (a filter by name, a bundle `name@version`, a signer).
   */
  kill(scope: KillEntry['scope'], target: string, reason?: string): Promise<{ epoch: number; kills: KillEntry[] }> {
    return this.#serial(async () => {
      if (!['filter', 'bundle', 'signer'].includes(scope) || !target) throw new RolloutError(RolloutErrorCode.Invalid, 'kill needs scope (filter|bundle|signer) and target')
      return this.#publishKills({ scope, target, ...(reason ? { reason } : {}) }, undefined, reason ?? `kill ${scope} ${target}`)
    })
  }

  unkill(scope: KillEntry['scope'], target: string): Promise<{ epoch: number; kills: KillEntry[] }> {
    return this.#serial(async () => {
      if (!this.#store.kills().some((k) => k.scope === scope && k.target === target)) throw new RolloutError(RolloutErrorCode.NotFound, `no kill rule for ${scope} ${target}`)
      return this.#publishKills(undefined, { scope, target }, `unkill ${scope} ${target}`)
    })
  }

  async #publishKills(add: Omit<KillEntry, 'atMs' | 'epoch'> | undefined, remove: { scope: string; target: string } | undefined, reason: string): Promise<{ epoch: number; kills: KillEntry[] }> {
    const now = this.#clock.now()
    let rules = this.#store.kills()
    if (remove) rules = rules.filter((k) => !(k.scope === remove.scope && k.target === remove.target))
    if (add) rules = [...rules.filter((k) => !(k.scope === add.scope && k.target === add.target)), { ...add, atMs: now, epoch: 0 }]
    const epoch = await this.#publish({ group: '*' }, { kind: 'kills', rules, reason })
    this.#store.tx(() => {
      if (add) this.#store.putKill({ ...add, atMs: now, epoch })
      if (remove) this.#store.deleteKill(remove.scope, remove.target)
      this.#store.append({ rollout: '', atMs: now, epoch, event: add ? 'kill' : 'unkill', state: RolloutState.Progressing, weightB: 0, reason })
    })
    return { epoch, kills: this.#store.kills() }
  }

  kills(): KillEntry[] {
    return this.#store.kills()
  }

  status(id: string): Rollout {
    return this.#get(id)
  }

  list(): Rollout[] {
    return this.#store.list()
  }

  history(id: string): HistoryEntry[] {
    this.#get(id)
    return this.#store.history(id)
  }

  /** Waits for queued actions (tests, shutdown). */
  async idle(): Promise<void> {
    await this.#queue
  }
}

function slotOf(r: { chain: string; filter: string }): string {
  return `${r.chain}.${r.filter}`
}
