/**
 * Down-level rules: how to serve a resource to a client that cannot run its
 * newest form. A rule says what the full form requires and derives an older
 * form (or none: then the resource is withheld from such clients). Rules run
 * once, when the resource is made; the variants are marshaled then.
 */
import type { Requirement } from './capabilities.ts'
import { makeResource, type XdsResource } from './resource.ts'

type Message = Record<string, unknown>

export interface DownlevelRule {
  /** For reports and errors. */
  readonly name: string
  readonly typeUrl: string
  /** What `message` needs from a client, or undefined when this rule has nothing to say. */
  requires(message: Message): Requirement | undefined
  /** The form for clients lacking that requirement; undefined withholds the resource from them. */
  downlevel(message: Message): Message | undefined
}

/** Down-levelled forms can themselves be subject to a rule; this bounds the chain. */
const MAX_STEPS = 4

/**
 * Makes a resource whose variants follow the rules: the full form first, then
 * each older form a rule derives, each with the requirement the next rule finds.
 *
 * @example
 * const quickjsNeeded: DownlevelRule = {
 *   name: 'quickjs-filters', typeUrl: TypeUrl.FilterChain,
 *   requires: (fc) => usesQuickjs(fc) ? { hostKinds: ['quickjs'] } : undefined,
 *   downlevel: (fc) => dropFailOpenQuickjs(fc), // undefined if a fail-closed one remains
 * }
 * makeResourceByRules(TypeUrl.FilterChain, 'edge', chain, [quickjsNeeded])
 */
export function makeResourceByRules(typeUrl: string, name: string, message: Message, rules: readonly DownlevelRule[]): XdsResource {
  const forType = rules.filter((r) => r.typeUrl === typeUrl)
  const forms: { message: Message; requires?: Requirement }[] = []
  let current: Message | undefined = message
  for (let step = 0; current !== undefined && step <= MAX_STEPS; step++) {
    const rule = forType.find((r) => r.requires(current!) !== undefined)
    if (rule === undefined) {
      forms.push({ message: current })
      break
    }
    forms.push({ message: current, requires: rule.requires(current)! })
    current = rule.downlevel(current)
  }
  const [first, ...rest] = forms
  return makeResource(typeUrl, name, first!.message, {
    ...(first!.requires ? { requires: first!.requires } : {}),
    downlevel: rest.map((f) => (f.requires ? { message: f.message, requires: f.requires } : { message: f.message })),
  })
}
