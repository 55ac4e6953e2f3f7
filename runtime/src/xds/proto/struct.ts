/**
 * google.protobuf.Struct/Value <-> plain JSON. Node metadata and filter configs
 * travel as Struct; everything above the wire deals in JSON.
 *
 * protobufjs predefines the well-known Struct types with camelCase field names
 * even when the rest of the root is loaded with keepCase, hence `stringValue`.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue }

interface PbValue {
  nullValue?: number | string
  numberValue?: number
  stringValue?: string
  boolValue?: boolean
  structValue?: PbStruct
  listValue?: { values?: PbValue[] }
  kind?: string
}
export interface PbStruct {
  fields?: Record<string, PbValue>
}

/** Sets an own property even for keys like `__proto__` (node metadata is untrusted). */
function put<T>(o: Record<string, T>, k: string, v: T): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
}

export function structToJson(s: PbStruct | null | undefined): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {}
  if (s?.fields == null) return out
  for (const [k, v] of Object.entries(s.fields)) put(out, k, valueToJson(v))
  return out
}

function valueToJson(v: PbValue | null | undefined): JsonValue {
  if (v == null) return null
  // protobufjs decodes a oneof as its set member; decoded instances also carry `kind`.
  if (v.structValue != null) return structToJson(v.structValue)
  if (v.listValue != null) return (v.listValue.values ?? []).map(valueToJson)
  if (v.stringValue != null && (v.kind === undefined || v.kind === 'stringValue')) return v.stringValue
  if (v.numberValue != null && (v.kind === undefined || v.kind === 'numberValue')) return v.numberValue
  if (v.boolValue != null && (v.kind === undefined || v.kind === 'boolValue')) return v.boolValue
  return null
}

export function jsonToStruct(o: Record<string, unknown>): PbStruct {
  const fields: Record<string, PbValue> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) put(fields, k, jsonToValue(v))
  return { fields }
}

function jsonToValue(v: unknown): PbValue {
  if (v === null || v === undefined) return { nullValue: 0 }
  if (typeof v === 'boolean') return { boolValue: v }
  if (typeof v === 'number') return { numberValue: v }
  if (typeof v === 'string') return { stringValue: v }
  if (typeof v === 'bigint') return { stringValue: v.toString() }
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } }
  if (typeof v === 'object') return { structValue: jsonToStruct(v as Record<string, unknown>) }
  return { nullValue: 0 }
}
