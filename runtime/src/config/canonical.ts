/**
 * A key-order independent serialization, so a config re-read from a file compares equal.
 * Reload uses it for reuse keys (clusters, endpoints, filter factories); keys whose value is
 * `undefined` are left out, as JSON would.
 */
export function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined'
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  const o = v as Record<string, unknown>
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`
}
