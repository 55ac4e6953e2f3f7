import { expect, it } from 'vitest'
import { decodeResource } from '@omnirelay/runtime/xds/proto/resource-codec.ts'
import { TypeUrl } from '@omnirelay/runtime/xds/type-urls.ts'
import { capabilitiesOf } from './capabilities.ts'
import { makeResourceByRules, type DownlevelRule } from './downlevel.ts'
import { Snapshot } from './snapshot.ts'

type Filter = { name: string; bundle: string; failure_policy: string }
const QUICKJS = new Set(['js-auth', 'js-log'])

/** Chains using QuickJS bundles need the quickjs host; without it, fail-open QuickJS filters are dropped. */
const quickjsFilters: DownlevelRule = {
  name: 'quickjs-filters',
  typeUrl: TypeUrl.FilterChain,
  requires: (fc) => ((fc.filters as Filter[]).some((f) => QUICKJS.has(f.bundle)) ? { hostKinds: ['quickjs'] } : undefined),
  downlevel: (fc) => {
    const filters = fc.filters as Filter[]
    if (filters.some((f) => QUICKJS.has(f.bundle) && f.failure_policy !== 'fail-open')) return undefined
    return { ...fc, filters: filters.filter((f) => !QUICKJS.has(f.bundle)) }
  },
}

const node = (hostKinds: string) => capabilitiesOf({ id: 'n', cluster: '', metadata: { 'omnirelay.host_kinds': hostKinds }, userAgentName: '', userAgentVersion: '', clientFeatures: [] })
const filtersOf = (s: Snapshot, hostKinds: string, name: string) => {
  const v = s.view(TypeUrl.FilterChain, node(hostKinds))
  const e = v.entries.get(name)
  return e ? (decodeResource(TypeUrl.FilterChain, e.value).filters as Filter[]).map((f) => f.name) : v.withheld.get(name)
}

it('derives variants from rules: full form, down-levelled form, or withheld', () => {
  const soft = makeResourceByRules(TypeUrl.FilterChain, 'soft', {
    name: 'soft',
    filters: [{ name: 'auth', bundle: 'wasm-auth', failure_policy: 'fail-closed' }, { name: 'log', bundle: 'js-log', failure_policy: 'fail-open' }],
  }, [quickjsFilters])
  const hard = makeResourceByRules(TypeUrl.FilterChain, 'hard', {
    name: 'hard',
    filters: [{ name: 'auth', bundle: 'js-auth', failure_policy: 'fail-closed' }],
  }, [quickjsFilters])
  const plain = makeResourceByRules(TypeUrl.FilterChain, 'plain', { name: 'plain', filters: [{ name: 'auth', bundle: 'wasm-auth' }] }, [quickjsFilters])
  expect(soft.variants).toHaveLength(2)
  expect(hard.variants).toHaveLength(1)
  expect(plain.variants).toHaveLength(1)
  const snap = new Snapshot(1, [soft, hard, plain])
  expect(filtersOf(snap, 'wasm,quickjs', 'soft')).toEqual(['auth', 'log'])
  expect(filtersOf(snap, 'wasm', 'soft')).toEqual(['auth'])
  expect(filtersOf(snap, 'wasm', 'hard')).toBe('host kind quickjs not supported')
  expect(filtersOf(snap, 'wasm', 'plain')).toEqual(['auth'])
})
