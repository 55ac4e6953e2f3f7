/**
 * Test fixtures for the Wasm host: services with captured logs and a real metrics registry,
 * filter definitions, artifacts, and a stream. A WAT prelude gives modules a bump allocator
 * (`proxy_on_memory_allocate`) and the ABI marker, as every SDK does.
 */
import { createHash } from 'node:crypto'
import { createSharedData, createSharedQueues } from '../../src/hosts/shared-state/index.ts'
import type { HostServices, HttpCallRequest, HttpCallResponse } from '../../src/hosts/host-services.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { MetricsRegistry } from '../../src/observability/metrics.ts'
import { CAPABILITIES, type Capability, type FilterDefinition, type LoadedArtifact, type StreamInfo } from '../../src/pipeline/filter.ts'
import { HeaderMap } from '../../src/pipeline/header-map.ts'
import { PipelineStream, createStreamInfo } from '../../src/pipeline/stream.ts'
import { serializePairs } from '../../src/hosts/properties.ts'

export interface TestServices extends HostServices {
  lines: Record<string, unknown>[]
  calls: HttpCallRequest[]
}

export function makeServices(httpCall?: (req: HttpCallRequest) => Promise<HttpCallResponse>): TestServices {
  const lines: Record<string, unknown>[] = []
  const calls: HttpCallRequest[] = []
  return {
    lines,
    calls,
    log: createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l)) }),
    metrics: new MetricsRegistry(),
    httpCall: (req) => {
      calls.push(req)
      return httpCall ? httpCall(req) : Promise.reject(Object.assign(new Error('no upstream'), { code: 'no_cluster' }))
    },
    sharedData: createSharedData(),
    sharedQueues: createSharedQueues(),
    epoch: 7,
  }
}

export function makeDef(name: string, over: Partial<FilterDefinition> = {}): FilterDefinition {
  return {
    name,
    kind: 'wasm',
    module: `${name}.wasm`,
    failurePolicy: 'fail-closed',
    isolation: 'shared',
    quotas: { fuel: 1_000_000, memoryBytes: 4 * 65536, timeoutMs: 1000 },
    capabilities: [...CAPABILITIES],
    ...over,
  }
}

export function makeArtifact(bytes: Uint8Array, capabilities: Capability[] = [...CAPABILITIES]): LoadedArtifact {
  return { kind: 'wasm', bytes, digest: createHash('sha256').update(bytes).digest('hex'), capabilities, unsigned: true }
}

export function makeStream(
  headers: [string, string][] = [[':method', 'GET'], [':path', '/'], [':authority', 'example.com']],
  info: Partial<StreamInfo> = {},
): PipelineStream {
  return new PipelineStream({ requestHeaders: HeaderMap.fromPairs(headers), info: createStreamInfo(info) })
}

/** A WAT data segment holding `bytes` at `offset`. */
export function data(offset: number, bytes: Uint8Array | string): string {
  const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes
  let s = ''
  for (const x of b) s += `\\${x.toString(16).padStart(2, '0')}`
  return `(data (i32.const ${offset}) "${s}")`
}

export function pairs(p: [string, string][]): Uint8Array {
  return serializePairs(p.flat())
}

/** Memory, bump allocator (grows memory when needed), ABI marker. Heap starts at 32 KiB. */
export const PRELUDE = `
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 32768))
  (func (export "proxy_abi_version_0_2_1"))
  (func $alloc (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1))) (i32.const -1))
        (then (unreachable)))))
    (local.get $p))
`
