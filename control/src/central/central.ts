/**
 * MeshKit central in one process: the desired config per group (SQLite), the registry,
 * validation/compilation, the xDS snapshot cache and ADS server, and the fleet view.
 * Every accepted change takes the next epoch and is published as one consistent snapshot of
 * its group; a refused change leaves nothing behind (store and cache untouched).
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { DEFAULT_ADMISSION_POLICY, RegistryError, startRegistry, type RunningRegistry, type TokenGrant } from '@meshkit/registry'
import { silentLogger, type Logger } from '@omnirelay/runtime/observability/logger.ts'
import type { Quotas } from '@omnirelay/runtime/pipeline/filter.ts'
import type { MeshConfig } from '@omnirelay/runtime/xds/mapping/index.ts'
import { KILL_SPLIT_PREFIX } from '@omnirelay/runtime/rollout/filter-splits.ts'
import { Snapshot, SnapshotCache, type XdsResource } from '../xds/cache/index.ts'
import { addAdsService, composeCallbacks, DataPlaneDirectory, StreamRegistry, type XdsCallbacks } from '../xds/server/index.ts'
import { meshResources } from './resources.ts'
import { compileGroup, type BundleInfo, type CompileContext } from './compile.ts'
import { CentralError, CentralErrorCode } from './errors.ts'
import { groupOfNode, selectGroup } from './groups.ts'
import { CentralStore, OBJECT_KINDS, type GroupConfig, type GroupRecord, type ObjectKind, type Spec } from './store.ts'

export interface CentralOptions {
  dataDir: string
  /** Trust policy of the embedded registry (file path or document). Default: `<dataDir>/trust-policy.yaml`. */
  trustPolicy?: string | object
  /** Registry tokens (publish/read/admin), re-installed at every start. */
  tokens?: TokenGrant[]
  /** Registry port (default 0: any free port). */
  registryPort?: number
  /** Registry URL data planes fetch bundles from (default: the embedded registry's URL). */
  registryPublicUrl?: string
  /** Highest quotas per host kind any filter may get (default: the registry's admission maximums). */
  maxQuotas?: Record<string, Quotas>
  host?: string
  /** xDS (gRPC) port; default 0. */
  xdsPort?: number
  log?: Logger
  /** Extra xDS callbacks (tests, telemetry). */
  callbacks?: XdsCallbacks
  /** How often central re-checks every group against the registry (yanks, revocations). Default 2 s. */
  registryWatchMs?: number
  /** Registry options passed through (admission isolation, policy...). */
  registry?: Record<string, unknown>
}

export interface GroupView extends GroupRecord {
  /** Whether a snapshot of the group is being served (a group needs a listener first). */
  published: boolean
  counts: Record<ObjectKind, number>
  /** Why the stored config no longer compiles (e.g. a bundle it uses was revoked); empty when fine. */
  problems: { path: string; message: string }[]
}

type Mutation = (group: Omit<GroupRecord, 'epoch' | 'updatedAt'>, config: GroupConfig) => void

export class Central {
  readonly store: CentralStore
  readonly cache: SnapshotCache
  readonly directory = new DataPlaneDirectory()
  readonly streams = new StreamRegistry()
  readonly registry: RunningRegistry
  readonly grpcServer: grpc.Server
  readonly log: Logger
  readonly #registryUrl: string
  readonly #maxQuotas: Record<string, Quotas>
  #groups: GroupRecord[] = []
  /** group -> why its stored config no longer compiles (a bundle yanked or revoked since). */
  readonly #problems = new Map<string, { path: string; message: string }[]>()
  #auditSeq = -1
  #watchTimer: NodeJS.Timeout | undefined
  readonly #withheld = new Map<string, { typeUrl: string; name: string; reason: string; epoch: number }[]>()
  #xdsAddress = ''
  #killSplits: Spec[] | undefined

  private constructor(opts: CentralOptions, store: CentralStore, registry: RunningRegistry) {
    this.store = store
    this.registry = registry
    this.log = opts.log ?? silentLogger
    this.#registryUrl = opts.registryPublicUrl ?? registry.url
    this.#maxQuotas = opts.maxQuotas ?? (DEFAULT_ADMISSION_POLICY.maxQuotas as Record<string, Quotas>)
    this.#groups = store.groups()
    this.cache = new SnapshotCache({ groupOf: groupOfNode(() => this.#groups) })
    this.grpcServer = new grpc.Server({ 'grpc.max_concurrent_streams': 1 << 20 })
    const withheld: XdsCallbacks = {
      onWithheld: (dp, ev) => {
        const list = this.#withheld.get(dp.id) ?? []
        // One entry per resource: the newest reason and epoch.
        const next = list.filter((w) => !(w.typeUrl === ev.typeUrl && w.name === ev.name) && w.epoch === ev.epoch)
        next.push({ typeUrl: ev.typeUrl, name: ev.name, reason: ev.reason, epoch: ev.epoch })
        this.#withheld.set(dp.id, next.slice(-100))
      },
      onStreamOpen: (dp) => void this.#withheld.delete(dp.id),
    }
    const own = composeCallbacks(this.directory, withheld)
    const callbacks = opts.callbacks ? composeCallbacks(own, opts.callbacks) : own
    addAdsService(this.grpcServer, { cache: this.cache, callbacks, logger: this.log, controlPlaneId: 'meshkit-central' }, this.streams)
  }

  /** Opens the store and the registry, republishes every group at its stored epoch, serves xDS. */
  static async start(opts: CentralOptions): Promise<Central> {
    mkdirSync(opts.dataDir, { recursive: true })
    const store = CentralStore.open(join(opts.dataDir, 'central.sqlite'))
    let registry: RunningRegistry
    try {
      registry = await startRegistry({
        ...(opts.registry ?? {}),
        dataDir: join(opts.dataDir, 'registry'),
        trustPolicy: opts.trustPolicy ?? join(opts.dataDir, 'trust-policy.yaml'),
        tokens: opts.tokens ?? [],
        port: opts.registryPort ?? 0,
        host: opts.host ?? '127.0.0.1',
      })
    } catch (e) {
      store.close()
      throw e
    }
    const c = new Central(opts, store, registry)
    try {
      c.#republish()
      c.#auditSeq = c.registry.registry.health().auditHead.seq
      c.#watchTimer = setInterval(() => c.#watchRegistry(), opts.registryWatchMs ?? 2000)
      c.#watchTimer.unref()
      const host = opts.host ?? '127.0.0.1'
      const port = await new Promise<number>((ok, fail) =>
        c.grpcServer.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${opts.xdsPort ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
          err ? fail(err) : ok(p),
        ),
      )
      c.#xdsAddress = `${host.includes(':') ? `[${host}]` : host}:${port}`
    } catch (e) {
      await c.close()
      throw e
    }
    return c
  }

  get xdsAddress(): string {
    return this.#xdsAddress
  }

  get registryUrl(): string {
    return this.#registryUrl
  }

  get epoch(): number {
    return this.store.epoch
  }

  // A group whose stored config no longer compiles (a bundle revoked while central was down)
  // is not served: its data planes keep their last-known-good config, and the log says why.
  #republish(): void {
    for (const g of this.#groups) {
      if (g.epoch === 0) continue
      try {
        const compiled = compileGroup(this.store.config(g.name), this.#context())
        if (compiled.mesh.listeners.length) this.cache.setSnapshot(g.name, new Snapshot(g.epoch, this.#resources(compiled.mesh)))
      } catch (e) {
        this.#problems.set(g.name, (e as { issues?: { path: string; message: string }[] }).issues ?? [{ path: '', message: (e as Error).message }])
        this.log.error('group config no longer valid; not served', { group: g.name, epoch: g.epoch, err: e })
      }
    }
  }

  // Every registry action (publish, yank, revocation) advances its audit head: then every
  // group is compiled again, and one that no longer compiles is reported (its data planes keep
  // their config: central does not drop a filter behind the operator's back).
  #watchRegistry(): void {
    let seq: number
    try {
      seq = this.registry.registry.health().auditHead.seq
    } catch {
      return
    }
    if (seq === this.#auditSeq) return
    this.#auditSeq = seq
    for (const g of this.#groups) {
      try {
        compileGroup(this.store.config(g.name), this.#context())
        this.#problems.delete(g.name)
      } catch (e) {
        const issues = (e as { issues?: { path: string; message: string }[] }).issues ?? [{ path: '', message: (e as Error).message }]
        if (!this.#problems.has(g.name)) this.log.error('group config no longer valid against the registry', { group: g.name, issues })
        this.#problems.set(g.name, issues)
      }
    }
  }

  #context(): CompileContext {
    return {
      registryUrl: this.#registryUrl,
      maxQuotas: this.#maxQuotas,
      bundle: (name, version) => this.#bundleInfo(name, version),
    }
  }

  #bundleInfo(name: string, version: string): BundleInfo | undefined {
    try {
      const b = this.registry.registry.get(name, version)
      const imports = (b.admission as { imports?: unknown }).imports
      return {
        name: b.name,
        version: b.version,
        kind: b.kind,
        digest: b.digest,
        manifest: b.manifest,
        capabilities: b.capabilities,
        ...(Array.isArray(imports) ? { imports: imports as string[] } : {}),
        yanked: b.yanked,
        revoked: b.revoked ? { reason: b.revoked.reason } : null,
      }
    } catch (e) {
      if (e instanceof RegistryError && e.code === 'not_found') return undefined
      throw e
    }
  }

  #resources(mesh: MeshConfig): XdsResource[] {
    return meshResources(mesh)
  }

  groups(): GroupView[] {
    return this.#groups.map((g) => this.#view(g))
  }

  group(name: string): GroupView {
    const g = this.#groups.find((x) => x.name === name)
    if (!g) throw new CentralError(CentralErrorCode.NotFound, `no group "${name}"`)
    return this.#view(g)
  }

  #view(g: GroupRecord): GroupView {
    const cfg = this.store.config(g.name)
    const counts = Object.fromEntries(OBJECT_KINDS.map((k) => [k, cfg[k].length])) as Record<ObjectKind, number>
    return { ...g, published: this.cache.getSnapshot(g.name) !== undefined, counts, problems: this.#problems.get(g.name) ?? [] }
  }

  config(name: string): GroupConfig {
    this.group(name)
    return this.store.config(name)
  }

  /**
   * The kill rules every group carries (`kill:<n>` splits, see docs/rollouts.md). Once set,
   * every change keeps exactly these: a whole-config PUT cannot drop them, and a group
   * created after the kill has them from its first epoch. Unset, changes leave splits alone.
   * @example
   * central.setKillSplits([{ name: 'kill:0', rollout: 'CVE', targets: [{ variant: 'signer=acme-1', weight: 10000 }] }])
   */
  setKillSplits(splits: readonly Spec[] | undefined): void {
    this.#killSplits = splits === undefined ? undefined : [...splits]
  }

  get killSplits(): readonly Spec[] | undefined {
    return this.#killSplits
  }

  /**
   * Validates and applies a change to a group (creating it when `create`), publishing the
   * result under the next epoch.
   * @throws CentralError `config_invalid` (with issues), `not_found`
   */
  change(name: string, mutate: Mutation, opts: { create?: boolean } = {}): { group: string; epoch: number; published: boolean } {
    const current = this.#groups.find((g) => g.name === name)
    if (!current && !opts.create) throw new CentralError(CentralErrorCode.NotFound, `no group "${name}"`)
    const rec = { name, selector: { ...(current?.selector ?? {}) }, priority: current?.priority ?? 0 }
    const cfg = current ? this.store.config(name) : { listeners: [], routes: [], clusters: [], filterChains: [], splits: [] }
    mutate(rec, cfg)
    if (this.#killSplits) cfg.splits = [...cfg.splits.filter((s) => !String(s.name).startsWith(KILL_SPLIT_PREFIX)), ...this.#killSplits.map((s) => ({ ...s }))]
    const compiled = compileGroup(cfg, this.#context())
    const resources = compiled.mesh.listeners.length ? this.#resources(compiled.mesh) : undefined
    let published = false
    const epoch = this.store.save(rec, cfg, (epoch) => {
      if (resources) {
        this.cache.setSnapshot(name, new Snapshot(epoch, resources))
        published = true
      }
    })
    const selectorChanged = !current || JSON.stringify(current.selector) !== JSON.stringify(rec.selector) || current.priority !== rec.priority
    this.#groups = this.store.groups()
    this.#problems.delete(name)
    if (selectorChanged) this.#regroup()
    this.log.info('group config applied', { group: name, epoch, published })
    return { group: name, epoch, published }
  }

  deleteGroup(name: string): void {
    if (!this.store.deleteGroup(name)) throw new CentralError(CentralErrorCode.NotFound, `no group "${name}"`)
    this.cache.clearSnapshot(name)
    this.#groups = this.store.groups()
    this.#regroup()
  }

  // Streams are bound to the group their node mapped to when they opened: when the groups
  // change, the nodes that now map elsewhere are asked to reconnect (they keep serving meanwhile).
  #regroup(): void {
    const n = this.streams.disconnect((dp) => selectGroup(this.#groups, dp.labels) !== dp.group, 'group assignment changed; reconnect')
    if (n) this.log.info('data planes re-grouped', { count: n })
  }

  dataPlanes() {
    return this.directory.list()
  }

  /** What central withheld from a data plane at its current epoch, and why (capability negotiation). */
  withheldFrom(id: string): { typeUrl: string; name: string; reason: string; epoch: number }[] {
    return this.#withheld.get(id) ?? []
  }

  async close(): Promise<void> {
    clearInterval(this.#watchTimer)
    await new Promise<void>((ok) => {
      const force = setTimeout(() => {
        this.grpcServer.forceShutdown()
        ok()
      }, 200)
      this.grpcServer.tryShutdown(() => {
        clearTimeout(force)
        ok()
      })
      // Open ADS streams never end on their own.
      this.streams.disconnect(() => true, 'central shutting down')
    })
    await this.registry.close()
    this.store.close()
  }
}

export type { Spec }
