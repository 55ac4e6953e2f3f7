/**
 * `workers: auto | N`: the primary forks one proxy per core with node:cluster (listening
 * sockets are shared by the workers). `WorkerPool` is the one primary implementation that
 * file mode (`startPrimary`, below) and xDS mode (`startXdsProxy`) share: it applies each
 * config to every worker with one epoch, all or nothing, merges the workers' metrics, and
 * re-forks a worker that dies with the state the others run.
 *
 * All or nothing: workers apply a new state in parallel; when any refuses (or does not
 * answer), the ones that applied are told to go back to the previous state, and one that
 * cannot is killed and re-forked with it. A refusal is not prevented by building first in
 * the primary: what can fail is worker-local (a filter's load, a listener's bind), so the
 * worker's own answer is the only reliable one.
 *
 * Forks, applies and revocation changes run one at a time, so a worker re-forked while a
 * new state is being applied starts only after that apply settled, with its outcome.
 */
import cluster, { type Worker } from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { AdminServer } from '../admin/admin-server.ts'
import type { RevocationSnapshot } from '../bundles/revocation-list.ts'
import { ConfigError, ConfigErrorCode, type ConfigIssue } from '../config/errors.ts'
import { loadConfigFile } from '../config/load.ts'
import { redactConfig } from '../config/redact.ts'
import type { ProxyConfig } from '../config/types.ts'
import { validateConfig } from '../config/validate.ts'
import { watchConfig, type ConfigWatcher } from '../config/watch.ts'
import { createLogger, type Logger } from '../observability/logger.ts'
import type { ProxyHandle } from '../index.ts'
import type { SeriesWire } from '../telemetry/proto.ts'
import { mergeWorkerMetrics } from './merge-metrics.ts'
import type { FromWorker, ToWorker, WorkerFailure, WorkerState } from './worker-messages.ts'

export type { WorkerState } from './worker-messages.ts'

export function workerCount(w: ProxyConfig['workers']): number {
  return w === 'auto' ? Math.max(1, availableParallelism()) : w
}

/** Stable codes of the pool's own failures (a worker's refusal keeps the worker's code). */
export const WorkerErrorCode = {
  /** A worker did not answer in time, or exited while applying. */
  NoAnswer: 'worker_no_answer',
  /** A worker exited before it was ready. */
  Exited: 'worker_exited',
} as const

export interface WorkerPoolOptions {
  /** Number of workers (see `workerCount`). */
  workers: number
  log: Logger
  /** The revocation list the workers enforce; kept current with `setRevocations`. */
  revocations?: RevocationSnapshot
  /** Workers aggregate rollout telemetry for `collectTelemetry` (xDS mode). */
  telemetry?: boolean
  /** How long a worker may take to apply a state (default 30 s). */
  applyTimeoutMs?: number
}

/** A worker's refusal rebuilt in the primary: a ConfigError when the worker's was one. */
function workerError(f: WorkerFailure | undefined): Error & { code: string } {
  if (!f) return Object.assign(new Error('a worker did not answer'), { code: WorkerErrorCode.NoAnswer })
  if (f.issues) return new ConfigError(f.code as ConfigErrorCode, f.issues as ConfigIssue[])
  return Object.assign(new Error(f.message), { code: f.code })
}

/**
 * @example
 * const pool = await WorkerPool.start({ config, epoch: 1 }, { workers: workerCount('auto'), log })
 * await pool.apply({ config: next, epoch: 2 })   // every worker runs epoch 2, or none does
 * pool.address('main').port
 * await pool.close(5_000)
 */
export class WorkerPool {
  readonly #o: WorkerPoolOptions
  readonly #log: Logger
  #state: WorkerState
  #revocations: RevocationSnapshot | undefined
  /** Workers that answered `ready`; the ones that serve and get every state. */
  readonly #ready = new Set<Worker>()
  readonly #all = new Set<Worker>()
  readonly #waiters = new Map<number, { worker: Worker; done: (m: FromWorker | undefined) => void }>()
  #addresses: Record<string, AddressInfo> = {}
  #nextId = 1
  #closing = false
  #chain: Promise<unknown> = Promise.resolve()
  #restartDelayMs = 500

  private constructor(state: WorkerState, o: WorkerPoolOptions) {
    this.#o = o
    this.#log = o.log
    this.#state = state
    this.#revocations = o.revocations
  }

  /**
   * Forks `workers` workers on `state`; resolves when all serve it.
   * @throws the first worker's refusal (ConfigError when the config is at fault); no worker is left running
   */
  static async start(state: WorkerState, o: WorkerPoolOptions): Promise<WorkerPool> {
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-entry.js', import.meta.url)), silent: false })
    const pool = new WorkerPool(state, o)
    try {
      await Promise.all(Array.from({ length: Math.max(1, o.workers) }, () => pool.#fork()))
    } catch (e) {
      pool.#closing = true
      for (const w of pool.#all) w.kill('SIGKILL')
      throw e
    }
    return pool
  }

  /** The state every serving worker runs. */
  get state(): WorkerState {
    return this.#state
  }

  /** Workers serving now. */
  get size(): number {
    return this.#ready.size
  }

  /** Process ids of the workers serving now. */
  pids(): number[] {
    return [...this.#ready].map((w) => w.process.pid!)
  }

  /** Bound address of a listener (the first by default). */
  address(listener?: string): AddressInfo {
    const a = listener === undefined ? Object.values(this.#addresses)[0] : this.#addresses[listener]
    if (!a) throw new Error(`no listener ${listener ?? ''}`)
    return a
  }

  /**
   * Applies `next` in every worker. Resolves when all run it; otherwise every worker is back
   * on the previous state and the first refusal is thrown (the worker's code and issues).
   */
  apply(next: WorkerState): Promise<void> {
    return this.#serial(() => this.#apply(next))
  }

  /** Hands a changed revocation list to every worker (they take revoked filters out). */
  setRevocations(snapshot: RevocationSnapshot): Promise<void> {
    return this.#serial(async () => {
      this.#revocations = snapshot
      await Promise.all([...this.#ready].map((w) => this.#ask(w, { type: 'revocations', id: this.#nextId++, snapshot }, this.#o.applyTimeoutMs)))
    })
  }

  /** Each worker's telemetry since the last collection (a worker that does not answer adds nothing). */
  async collectTelemetry(): Promise<{ series: SeriesWire[]; droppedSeries: number }[]> {
    const answers = await Promise.all([...this.#ready].map((w) => this.#ask(w, { type: 'telemetry', id: this.#nextId++ }, 2_000)))
    return answers.filter((a): a is Extract<FromWorker, { type: 'telemetry' }> => a?.type === 'telemetry')
  }

  /** Prometheus text: the number of workers, then every worker's metrics with a `worker` label. */
  async metrics(): Promise<string> {
    const ws = [...this.#ready]
    const texts = await Promise.all(
      ws.map(async (w) => {
        const r = await this.#ask(w, { type: 'metrics', id: this.#nextId++ }, 2_000)
        return { worker: String(w.id), text: r?.type === 'metrics' ? r.text : '' }
      }),
    )
    return `# HELP omnirelay_workers Worker processes serving\n# TYPE omnirelay_workers gauge\nomnirelay_workers ${ws.length}\n` + mergeWorkerMetrics(texts)
  }

  /** Tells every worker to drain (up to `drainMs`, then it is killed) and waits for all to exit. */
  async close(drainMs: number): Promise<void> {
    this.#closing = true
    await Promise.all(
      [...this.#all].map(
        (w) =>
          new Promise<void>((ok) => {
            if (w.isDead()) return ok()
            w.once('exit', () => ok())
            w.send({ type: 'close' } satisfies ToWorker)
            setTimeout(() => w.kill('SIGKILL'), drainMs + 2_000).unref()
          }),
      ),
    )
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#chain.then(fn)
    this.#chain = p.catch(() => {})
    return p
  }

  async #apply(next: WorkerState): Promise<void> {
    const prev = this.#state
    const ws = [...this.#ready]
    const answers = await Promise.all(ws.map((w) => this.#ask(w, { type: 'reload', id: this.#nextId++, state: next }, this.#o.applyTimeoutMs)))
    const bad = answers.findIndex((a) => a?.type !== 'reloaded' || !a.ok)
    if (bad < 0 && ws.length > 0) {
      const a = answers[0] as Extract<FromWorker, { type: 'reloaded'; ok: true }>
      this.#addresses = a.addresses
      this.#state = next
      return
    }
    if (ws.length === 0) {
      // Nothing serving (all died and restarts are pending): the restarts take the new state.
      this.#state = next
      return
    }
    // Back to the previous state in the workers that took the new one. A worker whose state is
    // unknown (no answer) or that cannot go back is replaced: its successor starts on `prev`.
    await Promise.all(
      ws.map(async (w, i) => {
        const a = answers[i]
        if (a?.type === 'reloaded' && !a.ok) return
        if (a?.type === 'reloaded') {
          const back = await this.#ask(w, { type: 'reload', id: this.#nextId++, state: prev }, this.#o.applyTimeoutMs)
          if (back?.type === 'reloaded' && back.ok) return
        }
        this.#log.error('worker could not return to the running config; replacing it', { pid: w.process.pid, epoch: prev.epoch })
        w.kill('SIGKILL')
      }),
    )
    const refused = answers[bad]
    throw workerError(refused?.type === 'reloaded' && !refused.ok ? refused : undefined)
  }

  #fork(rejoin = false): Promise<void> {
    return new Promise((ok, fail) => {
      const w = cluster.fork()
      this.#all.add(w)
      let ready = false
      w.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'hello': {
            const start: ToWorker = { type: 'start', state: this.#state }
            if (this.#revocations) start.revocations = this.#revocations
            if (this.#o.telemetry) start.telemetry = true
            if (rejoin) start.rejoin = true
            w.send(start)
            return
          }
          case 'ready':
            ready = true
            this.#restartDelayMs = 500
            this.#addresses = m.addresses
            this.#ready.add(w)
            ok()
            return
          case 'start-failed':
            fail(workerError(m))
            return
          default:
            if ('id' in m) this.#waiters.get(m.id)?.done(m)
        }
      })
      w.on('exit', (code, signal) => {
        this.#all.delete(w)
        this.#ready.delete(w)
        for (const [id, x] of this.#waiters) if (x.worker === w) x.done(undefined), this.#waiters.delete(id)
        if (!ready) return fail(Object.assign(new Error(`worker exited with code ${code} before it was ready`), { code: WorkerErrorCode.Exited }))
        if (this.#closing) return
        this.#log.error('worker died; starting a new one', { pid: w.process.pid, code, signal })
        this.#restart()
      })
    })
  }

  // Re-forks in the serial chain: the new worker starts on the state the others settled on.
  #restart(): void {
    const delay = this.#restartDelayMs
    this.#restartDelayMs = Math.min(30_000, delay * 2)
    setTimeout(() => {
      if (this.#closing) return
      void this.#serial(() => this.#fork(true)).catch((e: unknown) => {
        this.#log.error('worker restart failed; trying again', { err: e, inMs: this.#restartDelayMs })
        this.#restart()
      })
    }, delay).unref()
  }

  #ask(w: Worker, msg: ToWorker & { id: number }, timeoutMs = 30_000): Promise<FromWorker | undefined> {
    return new Promise((ok) => {
      const t = setTimeout(() => {
        this.#waiters.delete(msg.id)
        ok(undefined)
      }, timeoutMs)
      this.#waiters.set(msg.id, {
        worker: w,
        done: (m) => {
          clearTimeout(t)
          this.#waiters.delete(msg.id)
          ok(m)
        },
      })
      try {
        w.send(msg)
      } catch {
        this.#waiters.get(msg.id)?.done(undefined)
      }
    })
  }
}

export interface PrimaryOptions {
  path?: string
  log?: Logger
  watch?: boolean
  sighup?: boolean
}

/** File mode with workers: the pool, the admin server, and reloads from the file or the API. */
export async function startPrimary(initial: ProxyConfig, opts: PrimaryOptions): Promise<ProxyHandle> {
  const log = opts.log ?? createLogger({ level: initial.logLevel })
  let closing = false
  const n = workerCount(initial.workers)
  const pool = await WorkerPool.start({ config: initial, epoch: 1 }, { workers: n, log })
  log.info('workers started', { workers: n, epoch: 1 })
  if (initial.allowUnsigned) log.warn('!!! allowUnsigned is ON: unsigned filter modules may load. Development only. !!!')
  if (initial.allowNative) log.warn('!!! allowNative is ON: native filters run unsandboxed inside the proxy processes. !!!')

  const admin = initial.admin
    ? new AdminServer({
        ready: () => !closing && pool.size > 0,
        metrics: () => pool.metrics(),
        config: () => ({ epoch: pool.state.epoch, config: redactConfig(pool.state.config) }),
      })
    : undefined
  if (admin && initial.admin) await admin.listen(initial.admin.port, initial.admin.address)

  let chain: Promise<unknown> = Promise.resolve()
  const reload = (next?: unknown): Promise<number> => {
    const p = chain.then(async () => {
      const cfg = next === undefined || typeof next === 'string' ? await loadConfigFile((next as string | undefined) ?? opts.path ?? '') : validateConfig(next, initial.baseDir)
      const e = pool.state.epoch + 1
      try {
        await pool.apply({ config: cfg, epoch: e })
      } catch (err) {
        if (err instanceof ConfigError) throw err
        throw new ConfigError(ConfigErrorCode.FilterBuild, [{ path: '', message: `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}` }], { cause: err })
      }
      log.info('config applied', { epoch: e })
      return e
    })
    chain = p.catch((err: unknown) => log.error('config rejected; the running config keeps serving', { err, issues: (err as ConfigError).issues }))
    return p
  }
  let watcher: ConfigWatcher | undefined
  if (opts.path && (opts.watch || opts.sighup)) watcher = watchConfig(opts.path, () => void reload().catch(() => {}), { file: opts.watch ?? false, sighup: opts.sighup })

  return {
    address: (l) => pool.address(l),
    adminAddress: () => admin?.address(),
    get epoch() {
      return pool.state.epoch
    },
    reload,
    async close() {
      closing = true
      watcher?.close()
      await pool.close(pool.state.config.limits.drainTimeoutMs)
      await admin?.close()
    },
  }
}
