/**
 * `workers: auto | N`: the primary forks one proxy per core with node:cluster (listening
 * sockets are shared by the workers), runs the admin server, merges the workers' metrics,
 * fans out reloads with one epoch for all, and re-forks a worker that dies.
 */
import cluster, { type Worker } from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { AdminServer } from '../admin/admin-server.ts'
import { ConfigError, ConfigErrorCode } from '../config/errors.ts'
import { loadConfigFile } from '../config/load.ts'
import { redactConfig } from '../config/redact.ts'
import type { ProxyConfig } from '../config/types.ts'
import { validateConfig } from '../config/validate.ts'
import { watchConfig, type ConfigWatcher } from '../config/watch.ts'
import { createLogger, type Logger } from '../observability/logger.ts'
import type { ProxyHandle } from '../index.ts'
import { mergeWorkerMetrics } from './merge-metrics.ts'
import type { FromWorker, ToWorker } from './worker-messages.ts'

export interface PrimaryOptions {
  path?: string
  log?: Logger
  watch?: boolean
  sighup?: boolean
}

export function workerCount(w: ProxyConfig['workers']): number {
  return w === 'auto' ? Math.max(1, availableParallelism()) : w
}

export async function startPrimary(initial: ProxyConfig, opts: PrimaryOptions): Promise<ProxyHandle> {
  const log = opts.log ?? createLogger({ level: initial.logLevel })
  let config = initial
  let epoch = 1
  let closing = false
  let nextId = 1
  let addresses: Record<string, AddressInfo> = {}
  const workers = new Set<Worker>()
  const waiters = new Map<number, (m: FromWorker) => void>()
  const n = workerCount(config.workers)

  cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-entry.js', import.meta.url)), silent: false })

  const fork = (): Promise<void> =>
    new Promise((ok, fail) => {
      const w = cluster.fork()
      workers.add(w)
      let ready = false
      w.on('message', (m: FromWorker) => {
        if (m.type === 'hello') w.send({ type: 'start', config, epoch } satisfies ToWorker)
        else if (m.type === 'ready') {
          ready = true
          addresses = m.addresses
          ok()
        } else if (m.type === 'start-failed') fail(Object.assign(new Error(m.message), { code: m.code }))
        else if ('id' in m) waiters.get(m.id)?.(m)
      })
      w.on('exit', (code) => {
        workers.delete(w)
        if (!ready) return fail(new Error(`worker exited with code ${code} before it was ready`))
        if (closing) return
        log.error('worker died; starting a new one', { pid: w.process.pid, code })
        setTimeout(() => void fork().catch((e: unknown) => log.error('worker restart failed', { err: e })), 500).unref()
      })
    })

  const ask = (w: Worker, msg: ToWorker & { id: number }, timeoutMs = 30_000): Promise<FromWorker | undefined> =>
    new Promise((ok) => {
      const t = setTimeout(() => {
        waiters.delete(msg.id)
        ok(undefined)
      }, timeoutMs)
      waiters.set(msg.id, (m) => {
        clearTimeout(t)
        waiters.delete(msg.id)
        ok(m)
      })
      w.send(msg)
    })

  try {
    await Promise.all(Array.from({ length: n }, fork))
  } catch (e) {
    closing = true
    for (const w of workers) w.kill()
    throw e
  }
  log.info('workers started', { workers: n, epoch })
  if (config.allowUnsigned) log.warn('!!! allowUnsigned is ON: unsigned filter modules may load. Development only. !!!')
  if (config.allowNative) log.warn('!!! allowNative is ON: native filters run unsandboxed inside the proxy processes. !!!')

  const admin = config.admin ? new AdminServer({
    ready: () => !closing && workers.size > 0,
    metrics: async () => {
      const texts = await Promise.all([...workers].map(async (w) => {
        const r = await ask(w, { type: 'metrics', id: nextId++ }, 2_000)
        return { worker: String(w.id), text: r?.type === 'metrics' ? r.text : '' }
      }))
      return `# HELP omnirelay_workers Worker processes serving\n# TYPE omnirelay_workers gauge\nomnirelay_workers ${workers.size}\n` + mergeWorkerMetrics(texts)
    },
    config: () => ({ epoch, config: redactConfig(config) }),
  }) : undefined
  if (admin && config.admin) await admin.listen(config.admin.port, config.admin.address)

  let chain: Promise<unknown> = Promise.resolve()
  const reload = (next?: unknown): Promise<number> => {
    const p = chain.then(async () => {
      const cfg = next === undefined || typeof next === 'string' ? await loadConfigFile((next as string | undefined) ?? opts.path ?? '') : validateConfig(next, initial.baseDir)
      const e = epoch + 1
      const results = await Promise.all([...workers].map((w) => ask(w, { type: 'reload', id: nextId++, config: cfg, epoch: e })))
      const failed = results.find((r) => r?.type !== 'reloaded' || !r.ok)
      if (failed) {
        const f = failed as Extract<FromWorker, { type: 'reloaded' }> | undefined
        throw new ConfigError(ConfigErrorCode.FilterBuild, [{ path: '', message: f?.message ?? 'a worker did not answer the reload' }])
      }
      const r0 = results[0]
      if (r0?.type === 'reloaded' && r0.addresses) addresses = r0.addresses
      config = cfg
      epoch = e
      log.info('config applied', { epoch })
      return e
    })
    chain = p.catch((err: unknown) => log.error('config rejected; the running config keeps serving', { err, issues: (err as ConfigError).issues }))
    return p
  }
  let watcher: ConfigWatcher | undefined
  if (opts.path && (opts.watch || opts.sighup)) watcher = watchConfig(opts.path, () => void reload().catch(() => {}), { file: opts.watch ?? false, sighup: opts.sighup })

  return {
    address: (l) => {
      const a = l === undefined ? Object.values(addresses)[0] : addresses[l]
      if (!a) throw new Error(`no listener ${l ?? ''}`)
      return a
    },
    adminAddress: () => admin?.address(),
    get epoch() {
      return epoch
    },
    reload,
    async close() {
      closing = true
      watcher?.close()
      const exits = [...workers].map((w) => new Promise<void>((ok) => {
        if (w.isDead()) return ok()
        w.once('exit', () => ok())
        w.send({ type: 'close' } satisfies ToWorker)
        setTimeout(() => w.kill('SIGKILL'), config.limits.drainTimeoutMs + 2_000).unref()
      }))
      await Promise.all(exits)
      await admin?.close()
    },
  }
}
