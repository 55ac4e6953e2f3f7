/**
 * `RolloutPublisher` over MeshKit central's group config: each rollout change is one
 * `central.change()` (validated like any config change, published as the next epoch).
 *
 * - split: the chain keeps A; a twin chain `<chain>:canary` is the same chain with the
 *   filter's bundle set to B; a RolloutSplit `rollout:<chain>.<filter>` sends `weightB` of
 *   the chain's traffic to the twin (targets `a` and `b`, pin header `x-omnirelay-pin`).
 * - set-version: the chain's filter runs the given bundle; twin and split are removed.
 * - kills: central keeps the whole rule set in every group, now and in every later change
 *   (a whole-config PUT, a new group), as RolloutSplit resources `kill:<n>` (one
 *   target, variant `<scope>=<target>`, the reason in `rollout`). A signer rule travels as
 *   is: data planes match it against each filter's verified signer whenever they build, so
 *   bundles of that signer attached later are covered too. One change (epoch) per group.
 */
import type { Central } from '../central/central.ts'
import type { Spec } from '../central/store.ts'
import { KILL_SPLIT_PREFIX } from '@omnirelay/runtime/rollout/filter-splits.ts'
import type { KillEntry, RolloutChange, RolloutPublisher } from './types.ts'

export const CANARY_SUFFIX = ':canary'
export const PIN_HEADER = 'x-omnirelay-pin'

/**
 * Kill rules as the `kill:<n>` RolloutSplit specs every group carries.
 * @example
 * central.setKillSplits(killSplits(store.kills()))
 */
export function killSplits(rules: readonly Pick<KillEntry, 'scope' | 'target' | 'reason'>[]): Spec[] {
  return rules.map((r, n) => ({ name: `${KILL_SPLIT_PREFIX}${n}`, rollout: r.reason ?? '', targets: [{ variant: `${r.scope}=${r.target}`, weight: 10_000 }] }))
}

export function splitName(chain: string, filter: string): string {
  return `rollout:${chain}.${filter}`
}

/**
 * @example
 * const manager = new RolloutManager({ store, publisher: centralPublisher(central), telemetry })
 */
export function centralPublisher(central: Central): RolloutPublisher {
  return {
    publish(group: string, change: RolloutChange): number {
      if (change.kind === 'kills') {
        // Central puts the rule set into every change from now on (and so into this one per group).
        const before = central.killSplits
        central.setKillSplits(killSplits(change.rules))
        try {
          let last = central.epoch
          for (const g of central.groups()) last = central.change(g.name, () => {}).epoch
          return last
        } catch (e) {
          central.setKillSplits(before)
          throw e
        }
      }
      return central.change(group, (_g, cfg) => {
        const chain = cfg.filterChains.find((c) => c.name === change.chain)
        if (!chain) throw Object.assign(new Error(`no filter chain "${change.chain}" in group "${group}"`), { code: 'not_found' })
        const filters = (chain.filters ?? []) as Spec[]
        const idx = filters.findIndex((f) => (f.name ?? String(f.bundle).slice(0, String(f.bundle).lastIndexOf('@'))) === change.filter)
        if (idx < 0) throw Object.assign(new Error(`no filter "${change.filter}" in chain "${change.chain}"`), { code: 'not_found' })
        const twin = `${change.chain}${CANARY_SUFFIX}`
        const split = splitName(change.chain, change.filter)
        cfg.filterChains = cfg.filterChains.filter((c) => c.name !== twin)
        cfg.splits = cfg.splits.filter((s) => s.name !== split)
        if (change.kind === 'set-version') {
          filters[idx] = { ...filters[idx]!, bundle: change.version }
          return
        }
        filters[idx] = { ...filters[idx]!, bundle: change.from }
        const twinFilters = filters.map((f, i) => (i === idx ? { ...f, bundle: change.to } : f))
        cfg.filterChains.push({ ...chain, name: twin, filters: twinFilters })
        cfg.splits.push({
          name: split,
          rollout: change.rollout,
          pinHeader: PIN_HEADER,
          ...(change.stickyHeader ? { stickyHeader: change.stickyHeader } : {}),
          ...(change.stickyCookie ? { stickyCookie: change.stickyCookie } : {}),
          targets: [
            { variant: 'a', weight: 10_000 - change.weightB, filterChain: change.chain },
            { variant: 'b', weight: change.weightB, filterChain: twin },
          ],
        })
      }).epoch
    },
  }
}
