/**
 * Which group a data plane belongs to, from its node labels (xDS node metadata). A node may
 * name its group outright with the `meshkit.group` label; otherwise the groups whose selector
 * labels all match compete: highest priority, then the most specific selector, then name.
 */
import type { XdsNode } from '@omnirelay/runtime/xds/proto/messages.ts'
import type { GroupRecord } from './store.ts'

/** Label a node may carry to choose its group by name. */
export const GROUP_LABEL = 'meshkit.group'
/** Group of nodes no group selects: they get nothing until one does (and are told to reconnect then). */
export const UNASSIGNED = '~unassigned'

export function selectGroup(groups: readonly GroupRecord[], labels: Record<string, unknown>): string {
  const named = labels[GROUP_LABEL]
  if (typeof named === 'string' && groups.some((g) => g.name === named)) return named
  let best: GroupRecord | undefined
  for (const g of groups) {
    const keys = Object.keys(g.selector)
    if (!keys.every((k) => String(labels[k] ?? '') === g.selector[k] && labels[k] !== undefined)) continue
    if (
      best === undefined ||
      g.priority > best.priority ||
      (g.priority === best.priority && keys.length > Object.keys(best.selector).length) ||
      (g.priority === best.priority && keys.length === Object.keys(best.selector).length && g.name < best.name)
    ) {
      best = g
    }
  }
  return best?.name ?? UNASSIGNED
}

/** A `NodeGrouper` for the snapshot cache over a live list of groups. */
export function groupOfNode(groups: () => readonly GroupRecord[]): (node: XdsNode) => string {
  return (node) => selectGroup(groups(), node.metadata)
}
