/**
 * A hard cap on a module's linear memory, enforced by V8: the module's memory type gets a
 * maximum no larger than the cap, so `memory.grow` past it returns -1 (and allocators trap)
 * while the host process is never at risk.
 *
 * binaryen cannot change the maximum of an existing memory, so this patches the binary:
 * the memory section's limits for a defined memory, the import's limits for an imported one
 * (the host then creates `new WebAssembly.Memory({ initial, maximum })` with the same cap —
 * see {@link CappedMemory.imported}). Shared and 64-bit memories are refused.
 *
 * @example
 * const capped = capMemory(bytes, pagesFor(16 * 1024 * 1024))
 * capped.bytes      // module whose memory can never exceed 16 MiB
 * capped.memories   // [{ imported: false, initial: 2, maximum: 256 }]
 */
import { BinaryError, Reader, SectionId, readLimits, readSections, skipValType, writeLimits, writeSections, writeU32 } from './wasm-binary.ts'
import type { Limits, Section } from './wasm-binary.ts'

export const PAGE_BYTES = 65536
/** The most a 32-bit memory can have (4 GiB). */
export const MAX_PAGES = 65536

/** Bytes -> 64 KiB pages, rounded up, clamped to [1, 65536]. */
export function pagesFor(bytes: number): number {
  return Math.min(MAX_PAGES, Math.max(1, Math.ceil(bytes / PAGE_BYTES)))
}

export interface MemoryFacts {
  imported: boolean
  /** For imported memories: the import's module and field. */
  module?: string
  name?: string
  initial: number
  /** The maximum after capping. */
  maximum: number
}

export interface CappedMemory {
  bytes: Uint8Array
  memories: MemoryFacts[]
}

/** A module whose memory cannot fit the cap (its initial size is already larger). */
export class MemoryCapError extends Error {
  readonly code = 'memory_exceeded'
  constructor(message: string) {
    super(message)
    this.name = 'MemoryCapError'
  }
}

/**
 * Returns `wasm` with every memory's maximum set to `min(declared maximum, maxPages)`.
 * Throws `MemoryCapError` when a memory's initial size exceeds `maxPages`, `BinaryError` on
 * malformed input or unsupported memory types.
 */
export function capMemory(wasm: Uint8Array, maxPages: number): CappedMemory {
  if (!Number.isInteger(maxPages) || maxPages < 0 || maxPages > MAX_PAGES) throw new RangeError(`maxPages out of range: ${maxPages}`)
  const sections = readSections(wasm)
  const memories: MemoryFacts[] = []
  const out: Section[] = sections.map((s) => {
    if (s.id === SectionId.Import) return { id: s.id, body: patchImports(s.body, maxPages, memories) }
    if (s.id === SectionId.Memory) return { id: s.id, body: patchMemories(s.body, maxPages, memories) }
    return s
  })
  return { bytes: writeSections(out), memories }
}

function cap(l: Limits, maxPages: number, where: string): Limits {
  if (l.flags & 0x02) throw new BinaryError(`${where}: shared memories are not supported`)
  if (l.flags & 0x04) throw new BinaryError(`${where}: 64-bit memories are not supported`)
  if (l.min > maxPages) {
    throw new MemoryCapError(`${where}: needs ${l.min} pages (${l.min * 64} KiB) at start, the cap is ${maxPages} pages`)
  }
  return { flags: l.flags, min: l.min, max: Math.min(l.max ?? MAX_PAGES, maxPages) }
}

function patchMemories(body: Uint8Array, maxPages: number, facts: MemoryFacts[]): Uint8Array {
  const r = new Reader(body)
  const out: number[] = []
  const n = r.u32()
  writeU32(out, n)
  for (let i = 0; i < n; i++) {
    const l = cap(readLimits(r), maxPages, `memory ${i}`)
    writeLimits(out, l)
    facts.push({ imported: false, initial: l.min, maximum: l.max! })
  }
  if (r.pos !== r.end) throw new BinaryError('memory section has trailing bytes')
  return Uint8Array.from(out)
}

function patchImports(body: Uint8Array, maxPages: number, facts: MemoryFacts[]): Uint8Array {
  const r = new Reader(body)
  const out: number[] = []
  const n = r.u32()
  writeU32(out, n)
  for (let i = 0; i < n; i++) {
    const start = r.pos
    const module = r.name()
    const name = r.name()
    const kind = r.byte()
    if (kind === 2) {
      for (let j = start; j < r.pos; j++) out.push(body[j]!)
      const l = cap(readLimits(r), maxPages, `imported memory ${module}.${name}`)
      writeLimits(out, l)
      facts.push({ imported: true, module, name, initial: l.min, maximum: l.max! })
      continue
    }
    if (kind === 0) r.u32()
    else if (kind === 1) {
      skipValType(r)
      readLimits(r)
    } else if (kind === 3) {
      skipValType(r)
      r.byte()
    } else if (kind === 4) {
      r.byte()
      r.u32()
    } else throw new BinaryError(`unknown import kind ${kind}`)
    for (let j = start; j < r.pos; j++) out.push(body[j]!)
  }
  if (r.pos !== r.end) throw new BinaryError('import section has trailing bytes')
  return Uint8Array.from(out)
}
