/**
 * Just enough of the Wasm binary format to patch sections in place (memory limits, the start
 * section) without a round trip through binaryen. Reads and writes top-level sections only.
 */

export const SectionId = {
  Custom: 0,
  Type: 1,
  Import: 2,
  Function: 3,
  Table: 4,
  Memory: 5,
  Global: 6,
  Export: 7,
  Start: 8,
  Element: 9,
  Code: 10,
  Data: 11,
  DataCount: 12,
  Tag: 13,
} as const

export interface Section {
  id: number
  /** The section payload (without id and size). A view into the original bytes. */
  body: Uint8Array
}

export class BinaryError extends Error {
  readonly code = 'invalid_module'
  constructor(message: string) {
    super(message)
    this.name = 'BinaryError'
  }
}

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

/** A cursor over bytes with LEB128 readers. */
export class Reader {
  pos: number
  constructor(
    readonly bytes: Uint8Array,
    pos = 0,
    readonly end = bytes.length,
  ) {
    this.pos = pos
  }

  byte(): number {
    if (this.pos >= this.end) throw new BinaryError('unexpected end of module')
    return this.bytes[this.pos++]!
  }

  u32(): number {
    let result = 0
    let shift = 0
    for (;;) {
      const b = this.byte()
      result += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
      shift += 7
      if (shift > 63) throw new BinaryError('LEB128 too long')
    }
    return result
  }

  /** A signed LEB128 (s33 heap types, etc.); only its extent matters to us. */
  s64(): void {
    for (let i = 0; ; i++) {
      if ((this.byte() & 0x80) === 0) return
      if (i > 10) throw new BinaryError('LEB128 too long')
    }
  }

  skip(n: number): void {
    if (this.pos + n > this.end) throw new BinaryError('unexpected end of module')
    this.pos += n
  }

  name(): string {
    const n = this.u32()
    const start = this.pos
    this.skip(n)
    return new TextDecoder().decode(this.bytes.subarray(start, start + n))
  }
}

export function writeU32(out: number[], v: number): void {
  do {
    let b = v % 128
    v = Math.floor(v / 128)
    if (v) b |= 0x80
    out.push(b)
  } while (v)
}

export function readSections(wasm: Uint8Array): Section[] {
  for (let i = 0; i < 8; i++) if (wasm[i] !== HEADER[i]) throw new BinaryError('not a WebAssembly module (bad header)')
  const r = new Reader(wasm, 8)
  const out: Section[] = []
  while (r.pos < r.end) {
    const id = r.byte()
    const size = r.u32()
    const start = r.pos
    r.skip(size)
    out.push({ id, body: wasm.subarray(start, start + size) })
  }
  return out
}

export function writeSections(sections: readonly Section[]): Uint8Array {
  let total = 8
  const heads: number[][] = []
  for (const s of sections) {
    const h: number[] = [s.id]
    writeU32(h, s.body.length)
    heads.push(h)
    total += h.length + s.body.length
  }
  const out = new Uint8Array(total)
  out.set(HEADER, 0)
  let pos = 8
  sections.forEach((s, i) => {
    out.set(heads[i]!, pos)
    pos += heads[i]!.length
    out.set(s.body, pos)
    pos += s.body.length
  })
  return out
}

/** Skips a value type (a single byte, or a GC reference type with a heap-type immediate). */
export function skipValType(r: Reader): void {
  const t = r.byte()
  if (t === 0x63 || t === 0x64) r.s64()
}

/** Limits as written in table and memory types. */
export interface Limits {
  flags: number
  min: number
  max: number | undefined
}

export function readLimits(r: Reader): Limits {
  const flags = r.byte()
  const min = r.u32()
  const max = flags & 1 ? r.u32() : undefined
  // Custom page sizes (flag 0x08) add a log2 page size: refuse, our page math assumes 64 KiB.
  if (flags & ~0x07) throw new BinaryError(`unsupported limits flags 0x${flags.toString(16)}`)
  return { flags, min, max }
}

export function writeLimits(out: number[], l: Limits): void {
  out.push(l.max === undefined ? l.flags & ~1 : l.flags | 1)
  writeU32(out, l.min)
  if (l.max !== undefined) writeU32(out, l.max)
}

/** Removes the start section; returns whether there was one. */
export function stripStart(wasm: Uint8Array): { bytes: Uint8Array; hadStart: boolean } {
  const sections = readSections(wasm)
  const kept = sections.filter((s) => s.id !== SectionId.Start)
  if (kept.length === sections.length) return { bytes: wasm, hadStart: false }
  return { bytes: writeSections(kept), hadStart: true }
}
