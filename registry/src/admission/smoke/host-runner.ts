/**
 * Smoke run through one of the runtime's own extension hosts (Wasm: runtime/src/hosts/wasm,
 * QuickJS: runtime/src/hosts/quickjs), so admission runs a filter exactly as a data plane
 * would: same linking, capability checks, fuel meter, memory cap and watchdog. Each sample is
 * a real `PipelineStream` driven through the filter's hooks.
 */
import { HeaderMap } from '@omnirelay/runtime/pipeline/header-map.ts'
import { PipelineStream } from '@omnirelay/runtime/pipeline/stream.ts'
import { FilterError, type FilterDefinition, type LoadedArtifact, type Quotas, type StreamFilter } from '@omnirelay/runtime/pipeline/filter.ts'
import type { ExtensionHost, HostServices } from '@omnirelay/runtime/hosts/host-services.ts'
import { silentLogger } from '@omnirelay/runtime/observability/logger.ts'
import { MetricsRegistry } from '@omnirelay/runtime/observability/metrics.ts'
import { createSharedData, createSharedQueues } from '@omnirelay/runtime/hosts/shared-state/index.ts'
import { sha256Hex } from '@omnirelay/runtime/bundles/digest.ts'
import { refusal, AdmissionStep, RegistryErrorCode } from '../../errors.ts'
import type { SmokeInput, SmokeReport } from './runner.ts'
import type { ModuleCache } from '@omnirelay/runtime/sandbox/module-cache.ts'

const enc = new TextEncoder()

const CODE_BY_FILTER_ERROR: Record<string, string> = {
  fuel_exhausted: RegistryErrorCode.SmokeFuelExhausted,
  memory_exceeded: RegistryErrorCode.SmokeMemoryExceeded,
  timeout: RegistryErrorCode.SmokeTimeout,
}

function asRefusal(e: unknown, where: string): Error {
  if (e instanceof FilterError) return refusal(AdmissionStep.Smoke, CODE_BY_FILTER_ERROR[e.code] ?? RegistryErrorCode.SmokeTrap, `${where}: ${e.code}: ${e.message}`, { cause: e })
  return refusal(AdmissionStep.Smoke, RegistryErrorCode.SmokeTrap, `${where}: ${(e as Error)?.message ?? String(e)}`, { cause: e })
}

/** Returns a runner bound to `host`. */
export function hostSmokeRunner(host: ExtensionHost, cache?: ModuleCache): (input: SmokeInput) => Promise<SmokeReport> {
  return async (input) => {
    // The host would instrument the module again: hand it what admission step 4 produced.
    if (input.instrumented && cache) cache.seedInstrumented(input.entry, { fuel: true }, { bytes: input.instrumented, hasStart: input.hasStart ?? false })
    return run(input)
  }

  async function run(input: SmokeInput): Promise<SmokeReport> {
    const t0 = performance.now()
    const m = input.manifest
    const quotas: Quotas = { ...m.quotas.default, timeoutMs: Math.min(m.quotas.default.timeoutMs ?? input.timeoutMs, input.timeoutMs) }
    if (input.fuel !== undefined) quotas.fuel = input.fuel
    if (input.memoryBytes !== undefined) quotas.memoryBytes = input.memoryBytes
    const def: FilterDefinition = {
      name: `smoke:${m.name}`,
      kind: m.kind,
      config: input.samples.config,
      failurePolicy: 'fail-closed',
      isolation: 'shared',
      quotas,
      capabilities: [...m.capabilities],
    }
    const artifact: LoadedArtifact = {
      kind: m.kind,
      bytes: input.entry,
      digest: sha256Hex(input.entry),
      bundle: input.bundle,
      capabilities: [...m.capabilities],
      quotas: def.quotas,
      unsigned: false,
    }
    const services: HostServices = {
      log: silentLogger,
      metrics: new MetricsRegistry(),
      httpCall: () => Promise.reject(Object.assign(new Error('no callouts during admission'), { code: 'unavailable' })),
      sharedData: createSharedData(),
      sharedQueues: createSharedQueues(),
      epoch: 0,
    }
    let factory
    try {
      factory = await host.createFactory(def, artifact, services)
    } catch (e) {
      if ((e as { code?: unknown })?.code === 'configure_rejected') {
        throw refusal(AdmissionStep.Smoke, RegistryErrorCode.SmokeConfigureRejected, `start: ${(e as Error).message}`, { cause: e })
      }
      if (e instanceof FilterError) throw asRefusal(e, 'start')
      throw refusal(AdmissionStep.Smoke, RegistryErrorCode.SmokeInstantiateFailed, `start: ${(e as Error)?.message ?? String(e)}`, { cause: e })
    }
    let localReplies = 0
    try {
      for (const [i, req] of input.samples.requests.entries()) {
        const where = `request ${i} ${req.method} ${req.path}`
        const stream = new PipelineStream({
          requestHeaders: HeaderMap.fromPairs([[':method', req.method], [':path', req.path], [':authority', req.authority], [':scheme', 'http'], ...req.headers]),
        })
        let f: StreamFilter | undefined
        try {
          f = factory.createStream(stream)
          const body = req.body === undefined ? undefined : enc.encode(req.body)
          f.onRequestHeaders?.(body === undefined)
          if (body && !stream.localReply) {
            stream.requestBody = body
            f.onRequestBody?.(body.length, true)
          }
          if (!stream.localReply) {
            stream.responseHeaders.set(':status', String(req.response.status))
            for (const [k, v] of req.response.headers) stream.responseHeaders.add(k, v)
            const rbody = req.response.body === undefined ? undefined : enc.encode(req.response.body)
            f.onResponseHeaders?.(rbody === undefined)
            if (rbody) {
              stream.responseBody = rbody
              f.onResponseBody?.(rbody.length, true)
            }
          }
          f.onLog?.()
        } catch (e) {
          throw asRefusal(e, where)
        } finally {
          f?.onDone?.()
        }
        if (stream.localReply) localReplies++
        if (performance.now() - t0 > input.timeoutMs) {
          throw refusal(AdmissionStep.Smoke, RegistryErrorCode.SmokeTimeout, `${where}: smoke run took longer than ${input.timeoutMs} ms`)
        }
      }
    } finally {
      await factory.close()
    }
    return { runner: 'host', requests: input.samples.requests.length, maxFuel: null, localReplies, ms: performance.now() - t0 }
  }
}
