/**
 * Reads a Wasm module's imports straight from its import section, without compiling it:
 * admission and load need only the names, and compiling twice (here and in the host) would
 * double the cost of every load. Any malformed input gives `undefined`, never a throw.
 */

export interface WasmImport {
  module: string
  name: string
  /** 0 func, 1 table, 2 memory, 3 global, 4 tag */
  kind: number
}

/** The module's imports, or undefined when the bytes are not a well-formed Wasm binary. */
export function readWasmImports(bytes: Uint8Array): WasmImport[] | undefined {
  try {
    return parse(bytes)
  } catch {
    return undefined
  }
}

const dec = new TextDecoder('utf-8', { fatal: true })

function parse(b: Uint8Array): WasmImport[] | undefined {
  if (b.length < 8 || b[0] !== 0 || b[1] !== 0x61 || b[2] !== 0x73 || b[3] !== 0x6d || b[4] !== 1 || b[5] !== 0 || b[6] !== 0 || b[7] !== 0) {
    return undefined
  }
  let at = 8
  const u32 = (): number => {
    let result = 0
    let shift = 0
    for (let i = 0; i < 5; i++) {
      if (at >= b.length) throw new RangeError('eof')
      const byte = b[at++]
      result += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return result
      shift += 7
    }
    throw new RangeError('leb')
  }
  const name = (): string => {
    const len = u32()
    if (at + len > b.length) throw new RangeError('eof')
    const s = dec.decode(b.subarray(at, at + len))
    at += len
    return s
  }
  while (at < b.length) {
    const id = b[at++]
    const size = u32()
    const end = at + size
    if (end > b.length) return undefined
    if (id !== 2) {
      at = end
      continue
    }
    const out: WasmImport[] = []
    const count = u32()
    for (let i = 0; i < count; i++) {
      const module = name()
      const field = name()
      const kind = b[at++]
      switch (kind) {
        case 0: u32(); break // type index
        case 1: at++; limits(); break // reftype + limits
        case 2: limits(); break
        case 3: at += 2; break // valtype + mut
        case 4: at++; u32(); break // attribute + type index
        default: return undefined
      }
      out.push({ module, name: field, kind })
    }
    if (at !== end) return undefined
    return out
  }
  return []

  function limits(): void {
    const flags = b[at++]
    u32()
    if (flags & 1) u32()
  }
}

// The global WebAssembly API, typed locally: the repo's TS lib set has no DOM/wasm types.
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: { new (bytes: Uint8Array): object; exports(m: object): { name: string; kind: string }[] }
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

/** Whether the bytes are a valid Wasm module (full validation, no compilation). */
export function validateWasm(bytes: Uint8Array): boolean {
  return WA.validate(bytes)
}

/** The names of a module's exports, or undefined for malformed input. Compiles: build time only. */
export function readWasmExports(bytes: Uint8Array): string[] | undefined {
  try {
    return WA.Module.exports(new WA.Module(bytes)).map((e) => e.name)
  } catch {
    return undefined
  }
}
