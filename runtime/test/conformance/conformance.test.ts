/**
 * One behaviour, three hosts: the same policy written as a QuickJS filter, a native filter
 * (both policy.js) and an AssemblyScript filter built with our SDK (as/assembly/index.ts),
 * run over the same corpus through the real pipeline executor. Each host must give the
 * corpus's expected decisions, and all hosts must agree exactly: status, reply headers and
 * body, final request and response headers, and the filter's metrics.
 *
 * New host features are added here (a rule in all three policies plus corpus cases), not to
 * one host's tests.
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildFilter } from '@omnirelay/sdk-as/build'
import { hostFor } from '../../src/hosts/index.ts'
import type { FilterDefinition, FilterFactory } from '../../src/pipeline/filter.ts'
import { drive, jsArtifact, makeDef, makeServices, metricValue, type TestServices } from '../quickjs/fixtures.ts'
import { CORPUS, EXPECTED_METRICS, type Case } from './corpus.ts'

const here = dirname(fileURLToPath(import.meta.url))
const POLICY_JS = join(here, 'policy.js')
// 'log': the AssemblyScript SDK imports proxy_log in every module.
const CAPS: FilterDefinition['capabilities'] = ['headers:read', 'headers:write', 'local-reply', 'metrics', 'log']

interface Leg {
  kind: FilterDefinition['kind']
  factory: FilterFactory
  services: TestServices
}

/** What a host decided for one case, in a host-independent shape. */
interface Decision {
  status: number | 'upstream'
  replyHeaders?: [string, string][]
  body?: string
  request: readonly string[]
  response?: readonly string[]
}

const legs: Leg[] = []

async function leg(kind: FilterDefinition['kind'], bytes: Uint8Array, entry?: string): Promise<Leg> {
  const services = makeServices()
  const host = await hostFor(kind)
  // A generous watchdog: on a loaded shared machine a 50 ms wall-clock limit trips on GC pauses.
  const def = makeDef('policy', kind, { capabilities: CAPS, quotas: { timeoutMs: 10_000 } })
  const artifact = { ...jsArtifact('', kind, CAPS, entry), bytes }
  const factory = await host.createFactory(def, artifact, { ...services, allowNative: kind === 'native' })
  return { kind, factory, services }
}

async function decide(l: Leg, c: Case): Promise<Decision> {
  const out = await drive([l.factory], { method: c.method, path: c.path, headers: c.headers, response: c.response, metrics: l.services.metrics })
  return {
    status: out.status,
    replyHeaders: out.reply?.headers,
    body: out.body,
    request: [...out.stream.requestHeaders.flat],
    response: out.status === 'upstream' ? [...out.stream.responseHeaders.flat] : undefined,
  }
}

function valuesOf(flat: readonly string[], name: string): string[] {
  const out: string[] = []
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === name) out.push(flat[i + 1]!)
  return out
}

function checkExpected(d: Decision, c: Case): void {
  const e = c.expect
  expect(d.status).toBe(e.status)
  if (e.json !== undefined) {
    expect(JSON.parse(d.body!)).toEqual(e.json)
    expect(d.replyHeaders).toContainEqual(['content-type', 'application/json'])
  }
  for (const [name, values] of Object.entries(e.request ?? {})) expect(valuesOf(d.request, name), name).toEqual(values)
  for (const name of e.absent ?? []) expect(valuesOf(d.request, name), name).toEqual([])
  for (const [name, values] of Object.entries(e.response ?? {})) expect(valuesOf(d.response ?? [], name), name).toEqual(values)
}

const asEntry = join(here, 'as', 'assembly', 'index.ts')

beforeAll(async () => {
  const js = new Uint8Array(readFileSync(POLICY_JS))
  legs.push(await leg('quickjs', js))
  legs.push(await leg('native', js, POLICY_JS))
  const built = await buildFilter({ entry: asEntry, outFile: join(here, 'as', 'build', 'filter.wasm'), cache: true })
  legs.push(await leg('wasm', built.wasm))
}, 120_000)

afterAll(async () => {
  await Promise.all(legs.map((l) => l.factory.close()))
})

describe('conformance: one policy, three hosts', () => {
  it('runs on quickjs, native and wasm (AssemblyScript)', () => {
    expect(legs.map((l) => l.kind)).toEqual(['quickjs', 'native', 'wasm'])
    for (const l of legs) expect(l.factory.phases, l.kind).toBe(1 | 8)
  })

  for (const c of CORPUS) {
    it(c.name, async () => {
      const decisions: Decision[] = []
      for (const l of legs) {
        const d = await decide(l, c)
        checkExpected(d, c)
        decisions.push(d)
      }
      for (let i = 1; i < decisions.length; i++) expect(decisions[i], `${legs[i]!.kind} vs ${legs[0]!.kind}`).toEqual(decisions[0])
    })
  }

  it('every host counted the same metrics, under the same series', () => {
    for (const l of legs) {
      for (const [name, n] of Object.entries(EXPECTED_METRICS)) {
        expect(metricValue(l.services.metrics, `omnirelay_wasm_${name}{filter="policy"}`), `${l.kind} ${name}`).toBe(n)
      }
    }
  })
})
