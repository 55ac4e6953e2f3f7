/**
 * A minimal proxy-wasm ABI v0.2.1 host written from the spec, for testing the SDK's guest side
 * in isolation (the real host is runtime/src/hosts/wasm; the examples' tests also run there).
 * One root context (id 1), streams with ids >= 2; values are what the spec says, nothing more.
 */
const Status = { Ok: 0, NotFound: 1, BadArgument: 2, CasMismatch: 8 } as const
const enc = new TextEncoder()
const dec = new TextDecoder()

type Pairs = [string, string][]

export interface LocalReply {
  status: number
  body: string
  headers: Pairs
  details: string
}

export interface Callout {
  token: number
  cluster: string
  headers: Pairs
  timeoutMs: number
  context: number
}

interface Exports {
  memory: WebAssembly.Memory
  _initialize(): void
  proxy_on_memory_allocate(size: number): number
  proxy_on_context_create(id: number, parent: number): void
  proxy_on_vm_start?(id: number, size: number): number
  proxy_on_configure?(id: number, size: number): number
  proxy_on_request_headers?(id: number, n: number, eos: number): number
  proxy_on_response_headers?(id: number, n: number, eos: number): number
  proxy_on_http_call_response?(id: number, token: number, nh: number, bs: number, nt: number): void
  proxy_on_done?(id: number): number
  proxy_on_log?(id: number): void
  proxy_on_delete(id: number): void
}

export class AbiHarness {
  readonly logs: { level: number; message: string }[] = []
  readonly shared = new Map<string, { value: Uint8Array; cas: number }>()
  readonly metrics: { type: number; name: string; value: bigint }[] = []
  readonly callouts: Callout[] = []
  readonly continued: number[] = []
  /** Per-stream state, keyed by context id. */
  readonly streams = new Map<number, { request: Pairs; response: Pairs; reply?: LocalReply }>()
  nowNs = 1_700_000_000_000_000_000n
  instance!: WebAssembly.Instance
  #ex!: Exports
  #active = 0
  #config = new Uint8Array()
  #call?: { headers: Pairs; body: Uint8Array }
  #cas = 1

  /** `extra`: more import modules (e.g. a fuel pass's); `beforeInit` runs before `_initialize` (returning false skips it). */
  static async load(wasm: Uint8Array | WebAssembly.Module, extra: WebAssembly.Imports = {}, beforeInit?: (i: WebAssembly.Instance) => boolean | void): Promise<AbiHarness> {
    const h = new AbiHarness()
    const imports = { ...extra, env: h.#imports() }
    const instance = wasm instanceof WebAssembly.Module ? await WebAssembly.instantiate(wasm, imports) : (await WebAssembly.instantiate(wasm, imports)).instance
    h.instance = instance
    h.#ex = instance.exports as unknown as Exports
    if (beforeInit?.(instance) !== false) h.#ex._initialize()
    return h
  }

  get exports(): Exports {
    return this.#ex
  }

  /** Creates root context 1 and configures it; returns what `proxy_on_configure` answered. */
  configure(config: unknown): boolean {
    this.#config = enc.encode(typeof config === 'string' ? config : JSON.stringify(config))
    this.#active = 1
    this.#ex.proxy_on_context_create(1, 0)
    if (this.#ex.proxy_on_vm_start) this.#ex.proxy_on_vm_start(1, 0)
    const ok = this.#ex.proxy_on_configure ? this.#ex.proxy_on_configure(1, this.#config.length) : 1
    this.#config = new Uint8Array()
    return ok === 1
  }

  /** Runs request headers on a new stream `id`; returns the action (0 continue, 1 pause). */
  requestHeaders(id: number, headers: Pairs): number {
    this.streams.set(id, { request: headers.map(([k, v]) => [k, v]), response: [] })
    this.#active = id
    this.#ex.proxy_on_context_create(id, 1)
    return this.#ex.proxy_on_request_headers ? this.#ex.proxy_on_request_headers(id, headers.length, 0) : 0
  }

  responseHeaders(id: number, headers: Pairs): number {
    this.streams.get(id)!.response = headers.map(([k, v]) => [k, v])
    this.#active = id
    return this.#ex.proxy_on_response_headers ? this.#ex.proxy_on_response_headers(id, headers.length, 0) : 0
  }

  /** Delivers a callout response to the root context, as Envoy does. Empty headers = failed call. */
  callResponse(token: number, headers: Pairs, body = ''): void {
    this.#call = { headers, body: enc.encode(body) }
    this.#active = 1
    this.#ex.proxy_on_http_call_response!(1, token, headers.length, this.#call.body.length, 0)
    this.#call = undefined
  }

  finish(id: number): void {
    this.#active = id
    if ((this.#ex.proxy_on_done?.(id) ?? 1) === 1) {
      this.#ex.proxy_on_log?.(id)
      this.#ex.proxy_on_delete(id)
    }
    this.streams.delete(id)
  }

  #mem(): Uint8Array {
    return new Uint8Array(this.#ex.memory.buffer)
  }
  #view(): DataView {
    return new DataView(this.#ex.memory.buffer)
  }
  #str(ptr: number, len: number): string {
    return dec.decode(this.#mem().subarray(ptr, ptr + len))
  }
  #bytes(ptr: number, len: number): Uint8Array {
    return this.#mem().slice(ptr, ptr + len)
  }
  /** Returns data to the guest the ABI way: allocate inside, copy, write ptr/size. */
  #give(data: Uint8Array, retPtr: number, retSize: number): number {
    const p = this.#ex.proxy_on_memory_allocate(data.length)
    this.#mem().set(data, p)
    this.#view().setUint32(retPtr, p, true)
    this.#view().setUint32(retSize, data.length, true)
    return Status.Ok
  }
  #pairs(ptr: number, len: number): Pairs {
    if (len < 4) return []
    const v = this.#view()
    const n = v.getUint32(ptr, true)
    const out: Pairs = []
    let data = ptr + 4 + n * 8
    for (let i = 0; i < n; i++) {
      const kl = v.getUint32(ptr + 4 + i * 8, true)
      const vl = v.getUint32(ptr + 8 + i * 8, true)
      out.push([this.#str(data, kl), this.#str(data + kl + 1, vl)])
      data += kl + vl + 2
    }
    return out
  }
  #map(type: number): Pairs | undefined {
    const s = this.streams.get(this.#active)
    if (type === 0) return s?.request
    if (type === 2) return s?.response
    if (type === 6) return this.#call?.headers
    return undefined
  }

  #imports(): Record<string, (...a: never[]) => number> {
    const imports: Record<string, (...a: number[]) => number> = {
      proxy_log: (level, p, n) => (this.logs.push({ level, message: this.#str(p, n) }), Status.Ok),
      proxy_get_current_time_nanoseconds: (ret) => (this.#view().setBigUint64(ret, this.nowNs, true), Status.Ok),
      proxy_set_effective_context: (id) => {
        if (id !== 1 && !this.streams.has(id)) return Status.BadArgument
        this.#active = id
        return Status.Ok
      },
      proxy_get_buffer_bytes: (type, start, max, rp, rs) => {
        const buf = type === 7 ? this.#config : type === 4 ? this.#call?.body : undefined
        if (!buf) return Status.NotFound
        return this.#give(buf.subarray(start, start + max), rp, rs)
      },
      proxy_get_buffer_status: (type, rs) => {
        const buf = type === 7 ? this.#config : type === 4 ? this.#call?.body : undefined
        if (!buf) return Status.NotFound
        this.#view().setUint32(rs, buf.length, true)
        return Status.Ok
      },
      proxy_get_header_map_pairs: (type, rp, rs) => {
        const m = this.#map(type)
        if (!m) return Status.BadArgument
        const parts = m.map(([k, v]) => [enc.encode(k), enc.encode(v)] as const)
        const size = 4 + parts.length * 8 + parts.reduce((a, [k, v]) => a + k.length + v.length + 2, 0)
        const out = new Uint8Array(size)
        const dv = new DataView(out.buffer)
        dv.setUint32(0, parts.length, true)
        let p = 4 + parts.length * 8
        parts.forEach(([k, v], i) => {
          dv.setUint32(4 + i * 8, k.length, true)
          dv.setUint32(8 + i * 8, v.length, true)
          out.set(k, p)
          out.set(v, p + k.length + 1)
          p += k.length + v.length + 2
        })
        return this.#give(out, rp, rs)
      },
      proxy_get_header_map_value: (type, kp, kn, rp, rs) => {
        const m = this.#map(type)
        if (!m) return Status.BadArgument
        const key = this.#str(kp, kn)
        const hit = m.find(([k]) => k === key)
        return hit ? this.#give(enc.encode(hit[1]), rp, rs) : Status.NotFound
      },
      proxy_add_header_map_value: (type, kp, kn, vp, vn) => {
        const m = this.#map(type)
        if (!m) return Status.BadArgument
        m.push([this.#str(kp, kn), this.#str(vp, vn)])
        return Status.Ok
      },
      proxy_replace_header_map_value: (type, kp, kn, vp, vn) => {
        const m = this.#map(type)
        if (!m) return Status.BadArgument
        const key = this.#str(kp, kn)
        const rest = m.filter(([k]) => k !== key)
        m.length = 0
        m.push(...rest, [key, this.#str(vp, vn)])
        return Status.Ok
      },
      proxy_remove_header_map_value: (type, kp, kn) => {
        const m = this.#map(type)
        if (!m) return Status.BadArgument
        const key = this.#str(kp, kn)
        const rest = m.filter(([k]) => k !== key)
        m.length = 0
        m.push(...rest)
        return Status.Ok
      },
      proxy_send_local_response: (status, dp, dn, bp, bn, hp, hn) => {
        const s = this.streams.get(this.#active)
        if (!s) return Status.NotFound
        s.reply = { status, details: this.#str(dp, dn), body: this.#str(bp, bn), headers: this.#pairs(hp, hn) }
        return Status.Ok
      },
      proxy_continue_stream: (type) => (this.continued.push(this.#active * 10 + type), Status.Ok),
      proxy_http_call: (up, un, hp, hn, _bp, _bn, _tp, _tn, timeout, rt) => {
        const cluster = this.#str(up, un)
        if (cluster === 'missing') return Status.BadArgument
        const token = this.callouts.length + 100
        this.callouts.push({ token, cluster, headers: this.#pairs(hp, hn), timeoutMs: timeout, context: this.#active })
        this.#view().setUint32(rt, token, true)
        return Status.Ok
      },
      proxy_get_shared_data: (kp, kn, rp, rs, rc) => {
        const v = this.shared.get(this.#str(kp, kn))
        if (!v) return Status.NotFound
        this.#view().setUint32(rc, v.cas, true)
        return this.#give(v.value, rp, rs)
      },
      proxy_set_shared_data: (kp, kn, vp, vn, cas) => {
        const key = this.#str(kp, kn)
        const cur = this.shared.get(key)
        if (cas !== 0 && cur && cur.cas !== cas) return Status.CasMismatch
        this.shared.set(key, { value: this.#bytes(vp, vn), cas: this.#cas++ })
        return Status.Ok
      },
      proxy_define_metric: (type, np, nn, rid) => {
        this.metrics.push({ type, name: this.#str(np, nn), value: 0n })
        this.#view().setUint32(rid, this.metrics.length, true)
        return Status.Ok
      },
    }
    const big: Record<string, (id: number, v: bigint) => number> = {
      proxy_increment_metric: (id, d) => {
        const m = this.metrics[id - 1]
        if (!m) return Status.NotFound
        m.value += d
        return Status.Ok
      },
    }
    return { ...imports, ...big } as unknown as Record<string, (...a: never[]) => number>
  }
}
