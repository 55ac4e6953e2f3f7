/**
 * A small typed reader over an untrusted parsed document. Each getter records an issue
 * (with the full path) instead of throwing, so one validation pass reports every problem.
 */
import type { ConfigIssue } from './errors.ts'

export type Obj = Record<string, unknown>

export class Reader {
  readonly issues: ConfigIssue[] = []

  fail(path: string, message: string): void {
    this.issues.push({ path, message })
  }

  isObj(v: unknown): v is Obj {
    return typeof v === 'object' && v !== null && !Array.isArray(v)
  }

  /** An object at `path`, or an empty one (with an issue) when it is something else. */
  obj(v: unknown, path: string, required = false): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is required')
      return undefined
    }
    if (!this.isObj(v)) {
      this.fail(path, `must be an object, got ${describe(v)}`)
      return undefined
    }
    return v
  }

  /** Reports keys that the schema does not know (typos are the commonest config bug). */
  known(o: Obj, path: string, keys: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!keys.includes(k)) this.fail(join(path, k), `unknown field (expected one of: ${keys.join(', ')})`)
    }
  }

  arr(v: unknown, path: string, required = false): unknown[] {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is required')
      return []
    }
    if (!Array.isArray(v)) {
      this.fail(path, `must be a list, got ${describe(v)}`)
      return []
    }
    return v
  }

  str(v: unknown, path: string, dflt?: string): string | undefined {
    if (v === undefined || v === null) {
      if (dflt === undefined) this.fail(path, 'is required')
      return dflt
    }
    if (typeof v !== 'string') {
      this.fail(path, `must be a string, got ${describe(v)}`)
      return dflt
    }
    return v
  }

  optStr(v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined
    return this.str(v, path)
  }

  bool(v: unknown, path: string, dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt
    if (typeof v !== 'boolean') {
      this.fail(path, `must be true or false, got ${describe(v)}`)
      return dflt
    }
    return v
  }

  /** An integer in [min, max]. `dflt` undefined = required. */
  int(v: unknown, path: string, min: number, max: number, dflt?: number): number {
    if (v === undefined || v === null) {
      if (dflt === undefined) this.fail(path, 'is required')
      return dflt ?? min
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.fail(path, `must be an integer, got ${describe(v)}`)
      return dflt ?? min
    }
    if (v < min || v > max) {
      this.fail(path, `must be between ${min} and ${max}, got ${v}`)
      return dflt ?? min
    }
    return v
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt?: T): T {
    if (v === undefined || v === null) {
      if (dflt === undefined) this.fail(path, `is required (one of: ${allowed.join(', ')})`)
      return dflt ?? allowed[0]!
    }
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      this.fail(path, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describe(v)}`)
      return dflt ?? allowed[0]!
    }
    return v as T
  }

  strList(v: unknown, path: string): string[] {
    const out: string[] = []
    const list = typeof v === 'string' ? [v] : this.arr(v, path)
    list.forEach((item, i) => {
      const s = this.str(item, `${path}[${i}]`)
      if (s !== undefined) out.push(s)
    })
    return out
  }
}

export function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}
