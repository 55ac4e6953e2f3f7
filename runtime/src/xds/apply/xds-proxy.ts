/**
 * OmniRelay configured over xDS: the client receives whole epochs (atomic mode), this layer
 * turns them into a proxy config and applies it, and only then is the epoch ACKed.
 *
 * Per epoch: merge the updates into a copy of what is held -> MeshConfig -> fetch referenced
 * bundles by digest (checked) -> proxy config document -> the config validator -> reload
 * (filters are built and signatures verified before the swap; new requests take the new
 * epoch, in-flight ones finish on theirs) -> persist as last-known-good -> ACK. Any failure
 * throws, the client NACKs with the error's code and message, and the held state and the
 * running config stay as they were.
 *
 * On start, the newest last-known-good config (if any) is served at once, before the
 * control plane answers; /ready and metrics say so until an epoch from central is applied.
 *
 * With `workers` > 1, this process keeps everything control-plane related (the xDS client,
 * bundle store, last-known-good, revocation poller, telemetry exporter, admin server) and
 * worker processes serve the traffic: each epoch is validated here, then applied to every
 * worker with one epoch (`WorkerPool`: all or nothing), and ACKed only when all applied it.
 * Workers load the bundles from the bundle store's directory and verify their signatures
 * themselves; revocation changes are forwarded to them; their telemetry is collected here.
 */
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { AdminServer } from '../../admin/admin-server.ts'
import { redactConfig } from '../../config/redact.ts'
import { ConfigError } from '../../config/errors.ts'
import type { ProxyConfig } from '../../config/types.ts'
import { validateConfig } from '../../config/validate.ts'
import { createLogger, type Logger } from '../../observability/logger.ts'
import { MetricsRegistry } from '../../observability/metrics.ts'
import { Proxy } from '../../server/proxy.ts'
import { WorkerPool } from '../../server/workers.ts'
import type { XdsBootstrap } from '../client/bootstrap.ts'
import type { BackoffOptions } from '../client/backoff.ts'
import { createXdsClient, type XdsClient, type XdsClientStatus, type XdsEpochBatch } from '../client/xds-client.ts'
import { decodeWire, resourcesToMesh } from '../mapping/wire.ts'
import { meshToProxyDoc, withLocal, type LocalSettings } from '../mapping/proxy-doc.ts'
import { filterInstanceName, type MeshBundle } from '../mapping/mesh-config.ts'
import { ABIS } from '../../bundles/manifest.ts'
import { BundleStore } from './bundle-store.ts'
import { ApplyError, ApplyErrorCode } from './errors.ts'
import { LastKnownGood } from './last-known-good.ts'
import { RevocationPoller } from '../../bundles/revocation-poller.ts'
import { splitChains } from '../../rollout/filter-splits.ts'
import { MetricsTelemetry, SplitTelemetry, TelemetryAggregator, TelemetryExporter, type MetricsTelemetryOptions, type SeriesWire } from '../../telemetry/index.ts'
import { join } from 'node:path'
import { addWorkerSeries } from './worker-telemetry.ts'

export interface XdsProxyOptions {
  /** Control plane address, node identity, protocol, capabilities (see `loadXdsBootstrap`). */
  bootstrap: XdsBootstrap
  /** Where last-known-good configs and fetched bundles are kept. */
  dataDir: string
  /** Settings that stay local: trust policy (required for bundles), admin, access log, limits. */
  local?: LocalSettings
  log?: Logger
  metrics?: MetricsRegistry
  /** Reconnect backoff (tests shorten it). */
  backoff?: BackoffOptions
  /**
   * Follow this registry's revocation list (kept in `dataDir/revocations.json`): epochs and
   * last-known-good configs naming a revoked bundle or signer are refused, running ones are
   * taken out (see docs/configuration.md, `registry`).
   */
  registry?: { url: string; token?: string; pollIntervalMs?: number }
  /**
   * Report rollout telemetry (per filter version of split filters) to central's telemetry
   * service, by default at the xDS address every second; `false` turns it off.
   */
  telemetry?: false | { address?: string; intervalMs?: number }
  /**
   * Serve from this many worker processes (node:cluster, sharing the listening sockets; see
   * `workerCount`); the control-plane side stays in this process. Default 1: all in this process.
   */
  workers?: number
}

/** Where the running config came from. */
export type ConfigSource = 'none' | 'last-known-good' | 'control-plane'

export interface XdsProxy {
  /** The running proxy, once a config (LKG or from central) was applied; undefined with workers. */
  readonly proxy: Proxy | undefined
  readonly source: ConfigSource
  readonly epoch: number | undefined
  readonly client: XdsClient
  /** Resolves when a config is being served (from LKG or central). */
  readonly serving: Promise<void>
  /** Resolves after the next epoch from the control plane was applied or refused. */
  nextEpoch(): Promise<{ epoch: number | undefined; error?: string }>
  /**
   * Bound address of a listener (the first by default), with or without workers.
   * @throws when nothing is served yet or there is no such listener
   */
  address(listener?: string): AddressInfo
  /** The admin server's address, once a config is served (and unless admin is off). */
  adminAddress(): AddressInfo | undefined
  /** Process ids of the serving workers (empty without workers). */
  workerPids(): number[]
  close(): Promise<void>
}

type Held = Map<string, Map<string, Record<string, any>>>

/**
 * @example
 * const boot = await loadXdsBootstrap('bootstrap.json')
 * const dp = await startXdsProxy({ bootstrap: boot, dataDir: '/var/lib/omnirelay', local: { trustPolicy: 'trust.yaml', admin: { port: 9901 } } })
 * await dp.serving
 * dp.address('edge')
 * // Workers serve, this process keeps the xDS client: startXdsProxy({ ..., workers: workerCount('auto') })
 */
export async function startXdsProxy(opts: XdsProxyOptions): Promise<XdsProxy> {
  const dataDir = resolve(opts.dataDir)
  const local: LocalSettings = { ...opts.local }
  if (local.trustPolicy !== undefined) local.trustPolicy = resolve(local.trustPolicy)
  const log = opts.log ?? createLogger({ level: local.logLevel ?? 'info' })
  const metrics = opts.metrics ?? new MetricsRegistry()
  const bundles = new BundleStore(join(dataDir, 'bundles'))
  const lkg = new LastKnownGood(join(dataDir, 'lkg'))

  const workers = Math.max(1, opts.workers ?? 1)
  let proxy: Proxy | undefined
  let pool: WorkerPool | undefined
  let poolAdmin: AdminServer | undefined
  let closed = false
  let revocations: RevocationPoller | undefined
  // Filter instance -> bundle version of the running mesh, for per-version telemetry.
  let versions = new Map<string, string>()
  const telemetry =
    opts.telemetry === false
      ? undefined
      : startTelemetry(
          opts.bootstrap,
          opts.telemetry ?? {},
          workers > 1
            ? { collect: async () => (pool ? pool.collectTelemetry() : []) }
            : { metrics, running: { epoch: () => proxy?.epoch ?? 0, versionOf: (f) => versions.get(f) } },
        )
  if (opts.registry) {
    const token = opts.registry.token ?? process.env.OMNIRELAY_REGISTRY_TOKEN
    revocations = new RevocationPoller({
      url: opts.registry.url,
      ...(token ? { token } : {}),
      intervalMs: opts.registry.pollIntervalMs ?? 30_000,
      file: join(dataDir, 'revocations.json'),
      log,
      metrics,
      onChange: (list) => (pool ? pool.setRevocations(list.snapshot()) : proxy?.revocationsChanged()),
    })
    // Before last-known-good: a restart without the registry still refuses what it knew.
    await revocations.loadPersisted()
    revocations.start()
  }

  const mConnected = metrics.gauge('omnirelay_xds_connected', 'Whether the xDS stream to the control plane is up (1) or not (0)')
  const mSource = metrics.gauge('omnirelay_xds_config_source', 'Where the running config came from (1 on the active source)', ['source'])
  const mEpoch = metrics.gauge('omnirelay_xds_applied_epoch', 'Config epoch applied from the control plane or last-known-good')
  const mUpdates = metrics.counter('omnirelay_xds_epochs_total', 'Epochs received from the control plane, by result', ['result'])

  let source: ConfigSource = 'none'
  let epoch: number | undefined
  let held: Held = new Map()
  let lastDoc = ''
  let client: XdsClient | undefined
  let lkgSavedAt: string | undefined
  let servingResolve!: () => void
  const serving = new Promise<void>((r) => (servingResolve = r))
  const waiters: ((r: { epoch: number | undefined; error?: string }) => void)[] = []

  const setSource = (s: ConfigSource) => {
    source = s
    for (const x of ['none', 'last-known-good', 'control-plane']) mSource.labels(x).set(x === s ? 1 : 0)
  }
  setSource('none')

  const readyDetails = () => {
    const status: XdsClientStatus | undefined = client?.status
    const d: Record<string, string | number | boolean> = {
      'config-source': source,
      // The client reports `connected` once the server sent something on the stream.
      'control-plane': status?.state ?? 'connecting',
      epoch: epoch ?? 'none',
    }
    if (source === 'last-known-good') {
      d['last-known-good'] = `serving the config saved at ${lkgSavedAt ?? '?'}; no epoch from the control plane yet`
    }
    if (status?.refused) d['last-refused'] = `epoch ${status.refused.epoch ?? '?'}: ${status.refused.message.split('\n')[0]}`
    return d
  }

  const run = async (cfg: ProxyConfig, e: number | undefined): Promise<void> => {
    if (workers > 1) return runWorkers(cfg, e)
    if (proxy === undefined) {
      proxy = await Proxy.start(cfg, { log, metrics, readyDetails, ...(e !== undefined ? { epoch: e } : {}), ...(revocations ? { revocations } : {}), ...(telemetry?.observer ? { splitObserver: telemetry.observer } : {}) })
    } else {
      await proxy.reload(cfg, e)
    }
    epoch = proxy.epoch
    mEpoch.labels().set(proxy.epoch)
  }

  const runWorkers = async (cfg: ProxyConfig, e: number | undefined): Promise<void> => {
    const state = { config: cfg, epoch: e ?? (pool ? pool.state.epoch + 1 : 1), versions: Object.fromEntries(versions) }
    if (pool === undefined) {
      const list = revocations?.list.snapshot()
      const p = await WorkerPool.start(state, { workers, log, ...(list ? { revocations: list } : {}), ...(telemetry ? { telemetry: true } : {}) })
      try {
        if (cfg.admin) {
          const admin = new AdminServer({
            ready: () => !closed && p.size > 0,
            metrics: async () => metrics.render() + (await p.metrics()),
            config: () => ({ epoch: p.state.epoch, config: redactConfig(p.state.config) }),
            readyDetails,
          })
          await admin.listen(cfg.admin.port, cfg.admin.address)
          poolAdmin = admin
        }
      } catch (e) {
        // As without workers: a config whose admin port will not bind is not served at all.
        await p.close(0)
        throw e
      }
      pool = p
      // The list moved while the workers started: they get the new one before the first ACK.
      if (revocations && list && revocations.list.serial !== list.serial) await p.setRevocations(revocations.list.snapshot())
      log.info('workers started', { workers, epoch: state.epoch })
    } else {
      await pool.apply(state)
    }
    epoch = pool.state.epoch
    mEpoch.labels().set(epoch)
  }
  const hasConfig = () => proxy !== undefined || pool !== undefined

  // Last-known-good first: serve at once, whatever the control plane does.
  try {
    const rec = await lkg.load()
    if (rec) {
      // Local settings are this process's (a changed trust policy or admin port wins over the saved ones).
      const doc = withLocal(rec.config, local)
      await run(validateConfig(doc, dataDir), rec.epoch)
      lastDoc = JSON.stringify(doc)
      lkgSavedAt = rec.savedAt
      setSource('last-known-good')
      servingResolve()
      log.warn('serving last-known-good config until the control plane answers', { epoch: rec.epoch, savedAt: rec.savedAt })
    }
  } catch (e) {
    log.error('last-known-good config not usable; waiting for the control plane', { err: e })
  }
  if (!hasConfig()) log.info('no last-known-good config: nothing is served until the control plane sends an epoch', { dataDir })

  const apply = async (batch: XdsEpochBatch): Promise<void> => {
    const next: Held = new Map([...held].map(([t, m]) => [t, new Map(m)]))
    for (const u of batch.updates) {
      let m = next.get(u.typeUrl)
      if (m === undefined) next.set(u.typeUrl, (m = new Map()))
      for (const r of u.resources) m.set(r.name, decodeWire(u.typeUrl, r.value))
      for (const n of u.removed) m.delete(n)
    }
    const mesh = resourcesToMesh(next)
    versions = new Map(mesh.filterChains.flatMap((c) => c.filters.map((f) => [filterInstanceName(c.name, f.name), f.bundle.slice(f.bundle.lastIndexOf('@') + 1)] as [string, string])))
    if (mesh.listeners.length === 0) throw new ApplyError(ApplyErrorCode.NoListeners, 'the snapshot has no listener')
    const used = new Set<string>()
    const chains = new Map(mesh.filterChains.map((c) => [c.name, c]))
    for (const s of [...mesh.listeners, ...mesh.routes]) if (s.filterChain) for (const f of chains.get(s.filterChain)?.filters ?? []) used.add(f.bundle)
    for (const c of splitChains(mesh)) for (const f of chains.get(c)?.filters ?? []) used.add(f.bundle)
    const byName = new Map(mesh.bundles.map((b) => [b.name, b]))
    await Promise.all([...used].map((n) => byName.get(n)).filter((b): b is MeshBundle => b !== undefined).map((b) => bundles.ensure(b)))
    const doc = meshToProxyDoc(mesh, local, (b) => bundles.pathOf(b.digest))
    const text = JSON.stringify(doc)
    // Same config (e.g. central restarted, or it matches last-known-good): nothing to reload.
    if (text !== lastDoc || !hasConfig()) {
      const cfg = validateConfig(doc, dataDir)
      await run(cfg, batch.epoch)
      lastDoc = text
    } else if (batch.epoch !== undefined && epoch !== batch.epoch) {
      await run(validateConfig(doc, dataDir), batch.epoch)
    }
    held = next
    setSource('control-plane')
    if (batch.epoch !== undefined) await lkg.save(batch.epoch, doc).catch((e: unknown) => log.error('could not save last-known-good', { err: e }))
  }

  client = createXdsClient({
    ...opts.bootstrap,
    capabilities: {
      abis: opts.bootstrap.capabilities.abis ?? [...ABIS.wasm, ...ABIS.quickjs],
      hostKinds: opts.bootstrap.capabilities.hostKinds ?? ['wasm', 'quickjs'],
    },
    logger: log,
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    onStatus: (s) => {
      mConnected.labels().set(s.state === 'connected' ? 1 : 0)
    },
    onEpoch: async (batch) => {
      try {
        await apply(batch)
        mUpdates.labels('ack').inc()
        log.info('xds epoch applied', { epoch: batch.epoch, types: batch.updates.length })
        for (const w of waiters.splice(0)) w({ epoch: batch.epoch })
        servingResolve()
      } catch (e) {
        mUpdates.labels('nack').inc()
        const err = e as Error & { code?: string; issues?: { path: string; message: string }[] }
        // The NACK carries the code and every issue with its path.
        const message = e instanceof ConfigError ? err.issues!.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ') : err.message
        log.error('xds epoch refused; the running config keeps serving', { epoch: batch.epoch, code: err.code, error: message })
        for (const w of waiters.splice(0)) w({ epoch: batch.epoch, error: `${err.code ?? 'error'}: ${message}` })
        const out = new Error(message) as Error & { code?: string }
        if (err.code) out.code = err.code
        throw out
      }
    },
  })

  return {
    get proxy() {
      return proxy
    },
    get source() {
      return source
    },
    get epoch() {
      return epoch
    },
    client,
    serving,
    nextEpoch: () => new Promise((r) => waiters.push(r)),
    address(listener) {
      if (pool) return pool.address(listener)
      if (proxy) return proxy.address(listener)
      throw new Error('no config is served yet')
    },
    adminAddress: () => (pool ? poolAdmin?.address() : proxy?.adminAddress()),
    workerPids: () => pool?.pids() ?? [],
    async close() {
      closed = true
      await revocations?.stop()
      await telemetry?.close()
      await client.close()
      await proxy?.close()
      await pool?.close(pool.state.config.limits.drainTimeoutMs)
      await poolAdmin?.close()
    },
  }
}

type TelemetrySource =
  /** This process serves: split filters report per request, routes and filters from `metrics`. */
  | { metrics: MetricsRegistry; running: MetricsTelemetryOptions }
  /** Workers serve: their series are collected and added up before each batch. */
  | { collect: () => Promise<{ series: SeriesWire[] }[]> }

// Split filters report per version; batches go to central, bounded while it is away.
function startTelemetry(boot: XdsBootstrap, o: { address?: string; intervalMs?: number }, src: TelemetrySource) {
  const aggregator = new TelemetryAggregator()
  let observer: SplitTelemetry | undefined
  if ('metrics' in src) {
    observer = new SplitTelemetry(aggregator, src.metrics)
    // Every route and filter too, read from the proxy's metrics once per batch.
    new MetricsTelemetry(src.metrics, aggregator, src.running)
  }
  // Central fills in the group from its fleet view when the node does not name one.
  const group = boot.node.metadata?.['meshkit.group']
  const intervalMs = o.intervalMs ?? 1000
  const exporter = new TelemetryExporter({
    target: o.address ?? boot.address,
    node: boot.node.id,
    ...(typeof group === 'string' ? { group } : {}),
    aggregator,
    // With workers the batch is cut here, after the workers' series were added.
    intervalMs: 'collect' in src ? 0 : intervalMs,
  })
  let timer: NodeJS.Timeout | undefined
  let collecting: Promise<void> = Promise.resolve()
  const collect = async () => {
    if (!('collect' in src)) return
    for (const part of await src.collect()) addWorkerSeries(aggregator, part.series)
  }
  if ('collect' in src) {
    timer = setInterval(() => {
      collecting = collecting.then(() => collect().then(() => exporter.flush())).catch(() => {})
    }, intervalMs)
    timer.unref()
  } else exporter.start()
  return {
    observer,
    async close() {
      clearInterval(timer)
      await collecting
      await collect().catch(() => {})
      await exporter.close()
    },
  }
}
