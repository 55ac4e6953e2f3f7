import { CACHED_STRING_BYTES, ShortStringCache } from './short-string-cache.ts'

/**
 * Reading and writing a module's linear memory from host calls, with bounds checks on every
 * pointer the module hands us (a bad pointer is an `InvalidMemoryAccess` status, never a host
 * exception). Views are rebuilt only when the memory's buffer changes (after `memory.grow`).
 *
 * Returned data is written proxy-wasm style: the host asks the module to allocate
 * (`proxy_on_memory_allocate`, else `malloc`), copies the bytes in, and stores pointer and
 * size at the module's return pointers. An empty value is returned as pointer 0, size 0
 * (what Envoy's host does).
 *
 * Header names and values cross as bytes, one character per byte (latin1), both ways: what
 * node reads from and writes to the wire, so a module sees and sets exactly the bytes a peer
 * sent or will get (a UTF-8 value stays UTF-8), as under Envoy. Other strings are UTF-8.
 */

/**
 * Bytes allowed in a header name (RFC 9110 token characters; upper-case letters are accepted
 * and lower-cased). A pseudo-header's leading ':' is checked apart.
 */
const NAME_BYTE = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") NAME_BYTE[c.charCodeAt(0)] = 1

export class GuestMemory {
  readonly #memory: WebAssembly.Memory
  #buffer: ArrayBuffer
  /** `#buffer.byteLength`, kept: the getter is a builtin call, and every pointer check needs it. */
  #size: number
  #u8: Uint8Array
  #dv: DataView
  #node: Buffer
  readonly #shared: boolean
  /** The module's allocator, bound once exports are known. */
  alloc: ((size: number) => number) | undefined
  /** Recently decoded short strings, header names (lower-cased, valid) and header values. */
  readonly #strings = new ShortStringCache()
  readonly #names = new ShortStringCache()
  readonly #values = new ShortStringCache()

  constructor(memory: WebAssembly.Memory) {
    this.#memory = memory
    this.#buffer = memory.buffer
    this.#size = this.#buffer.byteLength
    this.#shared = typeof SharedArrayBuffer !== 'undefined' && this.#buffer instanceof SharedArrayBuffer
    this.#u8 = new Uint8Array(this.#buffer)
    this.#dv = new DataView(this.#buffer)
    this.#node = Buffer.from(this.#buffer)
  }

  get memory(): WebAssembly.Memory {
    return this.#memory
  }

  #sync(): void {
    // `memory.grow` detaches the old buffer (length 0): while the view has bytes it is current,
    // and that check is inlined where the `memory.buffer` getter is a call into the engine
    // (every host call reads memory a few times). A shared memory never detaches: always ask.
    if (this.#u8.length !== 0 && !this.#shared) return
    const b = this.#memory.buffer
    if (b === this.#buffer) return
    this.#buffer = b
    this.#size = b.byteLength
    this.#u8 = new Uint8Array(b)
    this.#dv = new DataView(b)
    this.#node = Buffer.from(b)
  }

  get u8(): Uint8Array {
    this.#sync()
    return this.#u8
  }

  get byteLength(): number {
    this.#sync()
    return this.#size
  }

  /** Whether [ptr, ptr+len) lies inside memory. Pointers and sizes are u32 from the module. */
  ok(ptr: number, len: number): boolean {
    this.#sync()
    return ptr >>> 0 === ptr && len >>> 0 === len && ptr + len <= this.#size
  }

  /** A copy of the bytes (the module may overwrite its memory later). Caller checks bounds. */
  bytes(ptr: number, len: number): Uint8Array {
    this.#sync()
    return this.#u8.slice(ptr, ptr + len)
  }

  /** UTF-8 string at [ptr, ptr+len). Caller checks bounds. */
  string(ptr: number, len: number): string {
    this.#sync()
    if (len > CACHED_STRING_BYTES) return this.#node.toString('utf8', ptr, ptr + len)
    const u8 = this.#u8
    let s = this.#strings.get(u8, ptr, len)
    if (s === undefined) this.#strings.put(u8, ptr, len, (s = this.#node.toString('utf8', ptr, ptr + len)))
    return s
  }

  /**
   * The header name at [ptr, ptr+len), lower-cased, or undefined when it is not one (empty,
   * or a byte outside the token characters; `:` only first, for pseudo-headers). Checked on
   * the bytes, without a regular expression, and lower-cased only when it has upper-case
   * letters; cached like strings. Caller checks bounds.
   */
  headerName(ptr: number, len: number): string | undefined {
    this.#sync()
    const u8 = this.#u8
    const cacheable = len <= CACHED_STRING_BYTES
    if (cacheable) {
      const hit = this.#names.get(u8, ptr, len)
      if (hit !== undefined) return hit
    }
    let upper = false
    for (let i = 0; i < len; i++) {
      const b = u8[ptr + i]!
      if (b >= 128 || (NAME_BYTE[b] === 0 && !(b === 58 /* : */ && i === 0))) return undefined
      if (b >= 65 && b <= 90) upper = true
    }
    if (len === 0 || (len === 1 && u8[ptr] === 58)) return undefined
    let name = this.#node.toString('latin1', ptr, ptr + len)
    if (upper) name = name.toLowerCase()
    if (cacheable) this.#names.put(u8, ptr, len, name)
    return name
  }

  /**
   * The header value at [ptr, ptr+len) (latin1: one character per byte), or undefined when it
   * holds a control character other than HTAB, or DEL: `BAD_HEADER_VALUE`
   * (pipeline/header-syntax.ts) checked on the bytes, which are at most U+00FF here. Caller
   * checks bounds.
   */
  headerValue(ptr: number, len: number): string | undefined {
    this.#sync()
    const u8 = this.#u8
    for (let i = ptr; i < ptr + len; i++) {
      const b = u8[i]!
      if ((b < 0x20 && b !== 0x09) || b === 0x7f) return undefined
    }
    if (len > CACHED_STRING_BYTES) return this.#node.toString('latin1', ptr, ptr + len)
    let s = this.#values.get(u8, ptr, len)
    if (s === undefined) this.#values.put(u8, ptr, len, (s = this.#node.toString('latin1', ptr, ptr + len)))
    return s
  }

  u32(ptr: number): number {
    this.#sync()
    return this.#dv.getUint32(ptr, true)
  }

  setU32(ptr: number, v: number): void {
    this.#sync()
    this.#dv.setUint32(ptr, v >>> 0, true)
  }

  setU64(ptr: number, v: bigint): void {
    this.#sync()
    // setBigUint64 already wraps modulo 2^64 (ToBigUint64): no BigInt.asUintN copy.
    this.#dv.setBigUint64(ptr, v, true)
  }

  /**
   * Copies `value` into module-allocated memory and writes pointer/size to the return slots
   * (a string as UTF-8, or as latin1 for header names and values). Returns false when a return
   * slot is out of bounds or the module's allocator failed.
   */
  returnValue(value: string | Uint8Array, ptrPtr: number, sizePtr: number, encoding: 'utf8' | 'latin1' = 'utf8'): boolean {
    if (!this.ok(ptrPtr, 4) || !this.ok(sizePtr, 4)) return false
    const size = typeof value === 'string' ? Buffer.byteLength(value, encoding) : value.length
    let ptr = 0
    if (size > 0) {
      if (!this.alloc) return false
      // The allocator runs module code: it may grow memory (views resync) or trap (propagates).
      ptr = this.alloc(size) >>> 0
      if (ptr === 0 || !this.ok(ptr, size)) return false
      if (typeof value === 'string') this.#node.write(value, ptr, size, encoding)
      else this.#u8.set(value, ptr)
    }
    this.setU32(ptrPtr, ptr)
    this.setU32(sizePtr, size)
    return true
  }

  /** Serializes a flat `[name, value, ...]` header list (latin1) as a proxy-wasm map into module memory. */
  returnPairs(flat: readonly string[], ptrPtr: number, sizePtr: number): boolean {
    if (!this.ok(ptrPtr, 4) || !this.ok(sizePtr, 4)) return false
    const n = flat.length >>> 1
    let size = 4 + n * 8
    for (let i = 0; i < flat.length; i++) size += flat[i]!.length + 1
    if (!this.alloc) return false
    const ptr = this.alloc(size) >>> 0
    if (ptr === 0 || !this.ok(ptr, size)) return false
    const dv = this.#dv
    const node = this.#node
    dv.setUint32(ptr, n, true)
    let lp = ptr + 4
    let dp = ptr + 4 + n * 8
    for (let i = 0; i < flat.length; i++, lp += 4) {
      const written = node.write(flat[i]!, dp, 'latin1')
      dv.setUint32(lp, written, true)
      node[dp + written] = 0
      dp += written + 1
    }
    this.setU32(ptrPtr, ptr)
    this.setU32(sizePtr, size)
    return true
  }

  /**
   * Parses a proxy-wasm serialized header map at [ptr, ptr+len) (latin1) into a flat list
   * with lower-cased names. Undefined when malformed. An empty map may be 0 bytes or one 0x00 byte.
   */
  pairs(ptr: number, len: number): string[] | undefined {
    if (len < 4) return len <= 1 ? [] : undefined
    this.#sync()
    const dv = this.#dv
    const n = dv.getUint32(ptr, true)
    const end = ptr + len
    if (n > (len - 4) / 8) return undefined
    const out = new Array<string>(n * 2)
    let lp = ptr + 4
    let dp = ptr + 4 + n * 8
    for (let i = 0; i < n * 2; i++, lp += 4) {
      const l = dv.getUint32(lp, true)
      if (dp + l + 1 > end) return undefined
      const s = this.#node.toString('latin1', dp, dp + l)
      out[i] = i % 2 === 0 ? s.toLowerCase() : s
      dp += l + 1
    }
    return out
  }
}
