import { describe, expect, it } from 'vitest'
import { host } from '../../src/hosts/wasm/index.ts'
import { FilterStatus } from '../../src/pipeline/phases.ts'
import { CAPABILITIES, type Capability } from '../../src/pipeline/filter.ts'
import { wat } from './wat.ts'
import { PRELUDE, data, makeArtifact, makeDef, makeServices, makeStream } from './fixtures.ts'
import { cppLike, lifecycleFilter, bodyFilter, calloutFilter, denyFilter, goLike, headerFilter, misuseFilter, rustLike, stateFilter, tickFilter } from './modules.ts'

const dec = new TextDecoder()

async function load(src: string, over: Parameters<typeof makeDef>[1] = {}, services = makeServices(), caps?: Capability[]) {
  const bytes = await wat(src)
  const factory = await host.createFactory(makeDef('t', over), makeArtifact(bytes, caps), services)
  return { factory, services }
}

describe('wasm host: proxy-wasm ABI', () => {
  it('reads, adds, replaces and removes headers; logs; response headers', async () => {
    const { factory, services } = await load(headerFilter)
    const s = makeStream([[':method', 'GET'], [':path', '/'], ['x-in', 'abc'], ['x-replaced', 'no'], ['x-replaced', 'no2'], ['x-remove', '1']])
    const f = factory.createStream(s)
    expect(f.onRequestHeaders!(true)).toBe(FilterStatus.Continue)
    expect(s.requestHeaders.get('x-out')).toBe('abc')
    expect(s.requestHeaders.getAll('x-replaced')).toEqual(['yes'])
    expect(s.requestHeaders.has('x-remove')).toBe(false)
    expect(s.requestHeaders.get('x-count')).toBe('1')
    s.responseHeaders.set(':status', '200')
    expect(f.onResponseHeaders!(false)).toBe(FilterStatus.Continue)
    expect(s.responseHeaders.get('x-resp')).toBe('1')
    f.onDone!()
    expect(services.lines.some((l) => l.msg === 'hello from wasm' && l.filter === 't')).toBe(true)
    expect(services.metrics.render()).toMatch(/omnirelay_filter_fuel_used_count\{filter="t"\} 1/)
    await factory.close()
  })

  it('starts a stream with one call when the module exports create + request headers as one entry point', async () => {
    // Each entry point logs its name; the fused one answers Pause, so its result is the hook's.
    const mod = (fused: boolean) => `(module (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
      ${PRELUDE}
      ${data(1024, 'create')} ${data(1040, 'headers')} ${data(1056, 'both')}
      (func (export "proxy_on_context_create") (param i32 i32) (drop (call $log (i32.const 2) (i32.const 1024) (i32.const 6))))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (drop (call $log (i32.const 2) (i32.const 1040) (i32.const 7))) (i32.const 0))
      ${fused ? '(func (export "omnirelay_on_context_create_request_headers") (param i32 i32 i32 i32) (result i32) (drop (call $log (i32.const 2) (i32.const 1056) (i32.const 4))) (i32.const 1))' : ''})`
    const run = async (fused: boolean) => {
      const { factory, services } = await load(mod(fused))
      services.lines.length = 0 // the root context's creation at start
      const f = factory.createStream(makeStream())
      const status = f.onRequestHeaders!(true)
      f.onDone!()
      await factory.close()
      return { status, calls: services.lines.map((l) => l.msg) }
    }
    expect(await run(true)).toEqual({ status: FilterStatus.Pause, calls: ['both'] })
    expect(await run(false)).toEqual({ status: FilterStatus.Continue, calls: ['create', 'headers'] })
  })

  it('defers a finished stream\'s delete to the next stream start when the module allows it', async () => {
    // Counters sum the ids each entry point deleted: "direct" (proxy_on_delete) and "deferred"
    // (the fused start's fifth parameter). The marker export allows deferring.
    const mod = (marker: boolean) => `(module
      (import "env" "proxy_define_metric" (func $def (param i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
      ${PRELUDE}
      ${data(1024, 'direct')} ${data(1040, 'deferred')}
      (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
        (drop (call $def (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 2000)))
        (drop (call $def (i32.const 0) (i32.const 1040) (i32.const 8) (i32.const 2004)))
        (i32.const 1))
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
      (func (export "omnirelay_on_context_create_request_headers") (param i32 i32 i32 i32 i32) (result i32)
        (if (local.get 4) (then (drop (call $inc (i32.load (i32.const 2004)) (i64.extend_i32_u (local.get 4))))))
        (i32.const 0))
      (func (export "proxy_on_delete") (param i32) (drop (call $inc (i32.load (i32.const 2000)) (i64.extend_i32_u (local.get 0)))))
      ${marker ? '(func (export "omnirelay_deferred_delete"))' : ''})`
    const run = async (marker: boolean, isolation: 'shared' | 'per-request', batches: number[]) => {
      const { factory, services } = await load(mod(marker), { isolation })
      for (const n of batches) {
        const fs = Array.from({ length: n }, () => factory.createStream(makeStream()))
        for (const f of fs) f.onRequestHeaders!(true)
        for (const f of fs) f.onDone!()
      }
      await factory.close()
      const sum = (name: string) => Number(new RegExp(`^omnirelay_wasm_${name}\\{filter="t"\\} (\\d+)$`, 'm').exec(services.metrics.render())?.[1] ?? 0)
      return { direct: sum('direct'), deferred: sum('deferred') }
    }
    // Stream ids count up from 2. One at a time: 2 is deleted when 3 starts, 3 when 4 starts.
    expect(await run(true, 'shared', [1, 1, 1])).toEqual({ direct: 0, deferred: 2 + 3 })
    // Ten finish at once (ids 2..11): eight wait, the last two are deleted at once; the next
    // start takes the latest waiting one (9).
    expect(await run(true, 'shared', [10, 1])).toEqual({ direct: 10 + 11, deferred: 9 })
    // No marker, or per-request instances (restored from a snapshot between streams): at once.
    expect(await run(false, 'shared', [1, 1, 1])).toEqual({ direct: 2 + 3 + 4, deferred: 0 })
    expect((await run(true, 'per-request', [1, 1, 1])).deferred).toBe(0)
  })

  it('shared isolation keeps state across requests; per-request restores the snapshot', async () => {
    const shared = (await load(headerFilter)).factory
    const per = (await load(headerFilter, { isolation: 'per-request' })).factory
    const counts = (factory: typeof shared) =>
      [1, 2, 3].map(() => {
        const s = makeStream()
        const f = factory.createStream(s)
        f.onRequestHeaders!(true)
        f.onDone!()
        return s.requestHeaders.get('x-count')
      })
    expect(counts(shared)).toEqual(['1', '2', '3'])
    expect(counts(per)).toEqual(['1', '1', '1'])
  })

  it('per-request: concurrent streams get separate instances', async () => {
    const { factory } = await load(headerFilter, { isolation: 'per-request' })
    const a = makeStream()
    const b = makeStream()
    const fa = factory.createStream(a)
    const fb = factory.createStream(b)
    fa.onRequestHeaders!(true)
    fb.onRequestHeaders!(true)
    expect([a.requestHeaders.get('x-count'), b.requestHeaders.get('x-count')]).toEqual(['1', '1'])
    fa.onDone!()
    fb.onDone!()
  })

  it('runs a Rust-SDK-shaped module: _initialize, configuration buffer, pairs round trip, properties, WASI', async () => {
    const { factory, services } = await load(rustLike, { config: { greeting: 'hi' } })
    const s = makeStream([[':method', 'GET'], [':path', '/p?q=1'], [':authority', 'a'], ['x-a', '1']])
    const f = factory.createStream(s)
    f.onRequestHeaders!(true)
    expect(s.requestHeaders.get('x-path')).toBe('/p?q=1')
    expect(s.requestHeaders.get('x-config')).toBe('{"greeting":"hi"}')
    expect(s.requestHeaders.get('x-status-eff')).toBe('2')
    expect(s.requestHeaders.get('x-a')).toBe('1')
    expect(services.lines.some((l) => l.msg === 'configured' && l.level === 'info')).toBe(true)
    f.onDone!()
  })

  it('refuses a configuration the module rejects (proxy_on_configure false)', async () => {
    await expect(load(rustLike)).rejects.toMatchObject({ code: 'configure_rejected' })
  })

  it('runs a Go-shaped module: wasi_unstable, _start ending in proc_exit(0)', async () => {
    const { factory, services } = await load(goLike)
    const s = makeStream()
    factory.createStream(s).onRequestHeaders!(true)
    expect(s.requestHeaders.get('x-go')).toBe('tinygo')
    expect(services.lines.some((l) => l.msg === 'started' && l.level === 'error')).toBe(true)
  })

  it('runs a C++/Emscripten-shaped module: unused libc file calls answer EBADF, growth hook accepted', async () => {
    const { factory } = await load(cppLike, { capabilities: ['headers:write'] }, makeServices(), ['headers:write'])
    const s = makeStream()
    factory.createStream(s).onRequestHeaders!(true)
    expect(s.requestHeaders.get('x-errno')).toBe('88')
  })

  it('sends a local reply with status, body, headers and details', async () => {
    const { factory } = await load(denyFilter)
    const s = makeStream([[':method', 'GET'], [':path', '/deny/x']])
    expect(factory.createStream(s).onRequestHeaders!(true)).toBe(FilterStatus.Pause)
    expect(s.localReply!.status).toBe(403)
    expect(dec.decode(s.localReply!.body)).toBe('forbidden path')
    expect(s.localReply!.headers).toContainEqual(['x-why', 'denied-by-wasm'])
    expect(s.localReply!.details).toBe('filter:t:nope')
    const ok = makeStream([[':method', 'GET'], [':path', '/fine']])
    expect(factory.createStream(ok).onRequestHeaders!(true)).toBe(FilterStatus.Continue)
    expect(ok.localReply).toBeUndefined()
  })

  it('http callout: pauses, gets the response on the root context, continues', async () => {
    const services = makeServices(async () => ({ headers: [[':status', '200']], body: new TextEncoder().encode('ok!'), trailers: [] }))
    const { factory } = await load(calloutFilter, { calloutClusters: ['auth'] }, services)
    const s = makeStream()
    const f = factory.createStream(s)
    expect(f.onRequestHeaders!(true)).toBe(FilterStatus.Pause)
    expect(services.calls[0]).toMatchObject({ cluster: 'auth', timeoutMs: 500 })
    expect(services.calls[0]!.headers).toContainEqual([':path', '/check'])
    await new Promise((r) => setImmediate(r))
    expect(s.resumeCalls).toBe(1)
    expect(s.requestHeaders.get('x-auth-body')).toBe('ok!')
    f.onDone!()
  })

  it('http callout: a denied answer becomes the filter local reply; an unlisted cluster is BadArgument', async () => {
    const services = makeServices(async () => ({ headers: [[':status', '403']], body: new Uint8Array(0), trailers: [] }))
    const { factory } = await load(calloutFilter, { calloutClusters: ['auth'] }, services)
    const s = makeStream()
    factory.createStream(s).onRequestHeaders!(true)
    await new Promise((r) => setImmediate(r))
    expect(s.localReply!.status).toBe(401)
    const notListed = (await load(calloutFilter, { calloutClusters: ['other'] })).factory
    const s2 = makeStream()
    expect(notListed.createStream(s2).onRequestHeaders!(true)).toBe(FilterStatus.Continue)
  })

  it('streams waiting for a callout on an instance that fails get their policy answer at once', async () => {
    const services = makeServices(() => new Promise(() => {}))
    const { factory } = await load(calloutFilter.replace('(func (export "proxy_on_context_create") (param i32 i32))',
      '(func (export "proxy_on_context_create") (param i32 i32)) (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) unreachable)'), { calloutClusters: ['auth'] }, services)
    const waiting = makeStream()
    factory.createStream(waiting).onRequestHeaders!(true)
    const other = factory.createStream(makeStream())
    other.onRequestHeaders!(false)
    expect(() => other.onRequestTrailers!()).toThrow(expect.objectContaining({ code: 'trap' }))
    await Promise.resolve()
    expect(waiting.localReply?.status).toBe(503)
    expect(JSON.parse(dec.decode(waiting.localReply!.body))).toMatchObject({ error: 'filter_failed', code: 'unavailable' })
  })

  it('a closed factory (filter reload) lets its in-flight streams finish', async () => {
    let answer: (r: { headers: [string, string][]; body: Uint8Array; trailers: [string, string][] }) => void = () => {}
    const services = makeServices(() => new Promise((r) => (answer = r)))
    const { factory } = await load(calloutFilter, { calloutClusters: ['auth'] }, services)
    const s = makeStream()
    const f = factory.createStream(s)
    expect(f.onRequestHeaders!(true)).toBe(FilterStatus.Pause)
    await factory.close()
    answer({ headers: [[':status', '200']], body: new Uint8Array(0), trailers: [] })
    await new Promise((r) => setImmediate(r))
    expect(s.resumeCalls).toBe(1)
    f.onDone!()
    expect(() => factory.createStream(makeStream()).onRequestHeaders!(true)).toThrow(expect.objectContaining({ code: 'unavailable' }))
  })

  it('refuses a module without a memory as invalid_module', async () => {
    await expect(load('(module (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))')).rejects.toMatchObject({
      code: 'invalid_module',
    })
  })

  it('shared data with CAS, metrics, queues and properties', async () => {
    const services = makeServices()
    const { factory } = await load(stateFilter, {}, services)
    const run = () => {
      const s = makeStream(undefined, { epoch: 7 })
      const f = factory.createStream(s)
      f.onRequestHeaders!(true)
      f.onDone!()
      return s.requestHeaders
    }
    const h1 = run()
    expect(h1.get('x-hits')).toBe('1')
    expect(h1.get('x-epoch')).toBe('7')
    const h2 = run()
    expect(h2.get('x-hits')).toBe('2')
    expect(h2.get('x-cas-stale')).toBe('8')
    expect(services.metrics.render()).toContain('omnirelay_wasm_requests{filter="t"} 2')
    const q = services.sharedQueues.resolve('t', 'events')!
    expect(dec.decode(services.sharedQueues.dequeue(q) as Uint8Array)).toBe('x-hits')
  })

  it('shared data keys of any length are namespaced per filter, the long ones too', async () => {
    // Sets "short" under a 1-byte key and "long" under a 200-byte one, then reads the long one
    // back into a header (long keys skip the host's key cache).
    const long = 'L'.repeat(200)
    const mod = `(module
      (import "env" "proxy_get_shared_data" (func $get (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
      ${PRELUDE}
      ${data(1024, 'k')} ${data(1032, 'short')} ${data(1040, 'long')} ${data(1048, 'x-long')} ${data(1100, long)}
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (drop (call $set (i32.const 1024) (i32.const 1) (i32.const 1032) (i32.const 5) (i32.const 0)))
        (drop (call $set (i32.const 1100) (i32.const 200) (i32.const 1040) (i32.const 4) (i32.const 0)))
        (drop (call $get (i32.const 1100) (i32.const 200) (i32.const 2048) (i32.const 2052) (i32.const 2056)))
        (drop (call $add (i32.const 0) (i32.const 1048) (i32.const 6) (i32.load (i32.const 2048)) (i32.load (i32.const 2052))))
        (i32.const 0)))`
    const services = makeServices()
    const { factory } = await load(mod, {}, services)
    for (let i = 0; i < 2; i++) {
      const s = makeStream()
      const f = factory.createStream(s)
      f.onRequestHeaders!(true)
      f.onDone!()
      expect(s.requestHeaders.get('x-long')).toBe('long')
    }
    expect(dec.decode(services.sharedData.get('t\0k')!.value)).toBe('short')
    expect(dec.decode(services.sharedData.get(`t\0${long}`)!.value)).toBe('long')
    await factory.close()
  })

  it('answers misuse with the spec status codes, never a host exception', async () => {
    const caps = CAPABILITIES.filter((c) => c !== 'body:read')
    const { factory } = await load(misuseFilter, { capabilities: caps }, makeServices(), caps)
    const s = makeStream()
    factory.createStream(s).onRequestHeaders!(true)
    expect(s.requestHeaders.get('x-st')).toBe('1126112212')
  })

  it('body: buffers until end of stream, then rewrites the body', async () => {
    const { factory } = await load(bodyFilter)
    const s = makeStream()
    const f = factory.createStream(s)
    s.requestBody = new TextEncoder().encode('hello ')
    expect(f.onRequestBody!(6, false)).toBe(FilterStatus.Pause)
    s.requestBody = new TextEncoder().encode('hello world')
    expect(f.onRequestBody!(11, true)).toBe(FilterStatus.Continue)
    expect(dec.decode(s.requestBody)).toBe('HELLO WORLD')
  })

  it('body phases are only subscribed with body:read', async () => {
    const caps = CAPABILITIES.filter((c) => c !== 'body:read' && c !== 'body:write')
    await expect(load(bodyFilter, { capabilities: caps })).rejects.toMatchObject({ code: 'capability_denied' })
    const { factory } = await load(headerFilter, { capabilities: caps })
    expect(factory.phases & 2).toBe(0)
  })

  it('lifecycle: malloc, _initialize then main, queue readiness on the root context, deferred proxy_done', async () => {
    const services = makeServices()
    const u32 = (k: string) => {
      const v = services.sharedData.get(`t\u0000${k}`)
      return v && new DataView(v.value.buffer, v.value.byteOffset).getUint32(0, true)
    }
    const { factory } = await load(lifecycleFilter, {}, services)
    expect(u32('main')).toBe(42)
    const s = makeStream([[':method', 'GET'], [':path', '/copied']])
    const f = factory.createStream(s)
    f.onRequestHeaders!(true)
    expect(s.requestHeaders.get('x-path-copy')).toBe('/copied')
    f.onDone!()
    expect(services.sharedData.get('t\u0000deleted')).toBeUndefined() // proxy_on_done said "not yet"
    const q = services.sharedQueues.resolve('t', 'jobs')!
    services.sharedQueues.enqueue(q, new TextEncoder().encode('job-1'))
    await new Promise((r) => setImmediate(r))
    expect(dec.decode(services.sharedData.get('t\u0000job')!.value)).toBe('job-1')
    expect(u32('deleted')).toBe(1) // proxy_done from the queue callback -> proxy_on_delete
    await factory.close()
  })

  it('bounds what a module can make the host hold (headers, body)', async () => {
    const greedy = `(module
      (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))
      ${PRELUDE}
      (data (i32.const 1024) "x-many")
      (global $refused (mut i32) (i32.const 0))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $i i32)
        (loop $l
          (if (call $add (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 1024) (i32.const 6)) (then (global.set $refused (i32.add (global.get $refused) (i32.const 1)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 2000))))
        (i32.const 0))
      (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (local $i i32)
        ;; append 60 KiB 40 times: the body limit (1 MiB here) refuses the last ones
        (loop $l
          (drop (call $set (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 0) (i32.const 61440)))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 40))))
        (i32.const 0)))`
    const { factory } = await load(greedy, { quotas: { fuel: 1e8, maxBodyBytes: 1 << 20, timeoutMs: 1000 } })
    const s = makeStream()
    const f = factory.createStream(s)
    f.onRequestHeaders!(true)
    expect(s.requestHeaders.size).toBe(1024)
    f.onRequestBody!(0, true)
    expect(s.requestBody.length).toBe(17 * 61440)
  })

  it('module logging is rate-limited per filter', async () => {
    const chatty = `(module (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32))) ${PRELUDE}
      (data (i32.const 1024) "spam")
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $i i32)
        (loop $l (drop (call $log (i32.const 2) (i32.const 1024) (i32.const 4)))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
        (i32.const 0)))`
    const services = makeServices()
    const { factory } = await load(chatty, {}, services)
    factory.createStream(makeStream()).onRequestHeaders!(true)
    expect(services.lines.filter((l) => l.msg === 'spam')).toHaveLength(200)
    expect(services.metrics.render()).toContain('omnirelay_wasm_log_dropped_total{filter="t"} 800')
  })

  it('a queue callback that enqueues to itself does not starve the event loop', async () => {
    const selfFeeding = `(module
      (import "env" "proxy_register_shared_queue" (func $reg (param i32 i32 i32) (result i32)))
      (import "env" "proxy_dequeue_shared_queue" (func $get (param i32 i32 i32) (result i32)))
      (import "env" "proxy_enqueue_shared_queue" (func $put (param i32 i32 i32) (result i32)))
      (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
      ${PRELUDE}
      (data (i32.const 1024) "loop") (data (i32.const 1040) "n")
      (global $n (mut i32) (i32.const 0))
      (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (drop (call $reg (i32.const 1024) (i32.const 4) (i32.const 2000))) (i32.const 1))
      (func (export "proxy_on_queue_ready") (param i32 i32)
        (drop (call $get (local.get 1) (i32.const 2048) (i32.const 2052)))
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (i32.store (i32.const 2060) (global.get $n))
        (drop (call $sset (i32.const 1040) (i32.const 1) (i32.const 2060) (i32.const 4) (i32.const 0)))
        (drop (call $put (local.get 1) (i32.const 1024) (i32.const 4)))))`
    const services = makeServices()
    const { factory } = await load(selfFeeding, {}, services)
    services.sharedQueues.enqueue(services.sharedQueues.resolve('t', 'loop')!, new Uint8Array(1))
    await new Promise((r) => setTimeout(r, 30)) // a timer still fires
    const n = services.sharedData.get('t\u0000n')!
    expect(new DataView(n.value.buffer, n.value.byteOffset).getUint32(0, true)).toBeGreaterThan(1)
    await factory.close()
  })

  it('timers tick on the root instance', async () => {
    const services = makeServices()
    const { factory } = await load(tickFilter, {}, services)
    await new Promise((r) => setTimeout(r, 180)) // 10 ms asked, 50 ms minimum
    const ticks = services.sharedData.get('t\u0000ticks')
    expect(ticks && new DataView(ticks.value.buffer).getUint32(0, true)).toBeGreaterThan(1)
    await factory.close()
  })
})
