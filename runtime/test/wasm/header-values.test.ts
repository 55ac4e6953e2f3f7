/**
 * Header values cross between a module and the wire as bytes: what a module sets arrives
 * byte for byte (a UTF-8 value stays UTF-8). Bytes HTTP never allows in a value (control
 * characters but HTAB, DEL) are refused at the host call (BadArgument, header not set), so
 * the request is served instead of failing later on the wire as the client's or upstream's
 * fault. Properties read from headers (`request.headers.<name>`, the serialized map) are the
 * same bytes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type ProxyHandle } from '../../src/index.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { request, startUpstream, type Upstream } from '../helpers/servers.ts'
import { PRELUDE, data } from './fixtures.ts'
import { wat } from './wat.ts'

/** Adds request header x-req and response header x-resp with `value` (UTF-8), and x-status: the add's status digit. */
const setter = (value: string) => {
  const bytes = new TextEncoder().encode(value)
  return `(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'x-req')} ${data(1040, 'x-resp')} ${data(1056, 'x-status')} ${data(1088, bytes)}
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 1080) (i32.add (i32.const 48) (call $add (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 1088) (i32.const ${bytes.length}))))
    (drop (call $add (i32.const 0) (i32.const 1056) (i32.const 8) (i32.const 1080) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 1040) (i32.const 6) (i32.const 1088) (i32.const ${bytes.length})))
    (i32.const 0)))`
}

/** Logs the request's x-in value as the module got it (the host decodes log lines as UTF-8). */
const echo = `(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'x-in')}
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 1024) (i32.const 4) (i32.const 2048) (i32.const 2052)))
      (then (drop (call $log (i32.const 2) (i32.load (i32.const 2048)) (i32.load (i32.const 2052))))))
    (i32.const 0)))`

/** Logs the property request.headers.x-in, and the x-in entry of the serialized map request.headers, as the module got them. */
const echoProperty = `(module
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'request.headers.x-in')} ${data(1056, 'request.headers')}
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $p i32) (local $n i32) (local $i i32)
    (if (i32.eqz (call $prop (i32.const 1024) (i32.const 20) (i32.const 2048) (i32.const 2052)))
      (then (drop (call $log (i32.const 2) (i32.load (i32.const 2048)) (i32.load (i32.const 2052))))))
    ;; the map: count, then (name length, value length) per pair, then NUL-terminated names and values
    (if (i32.eqz (call $prop (i32.const 1056) (i32.const 15) (i32.const 2048) (i32.const 2052)))
      (then
        (local.set $n (i32.load (i32.load (i32.const 2048))))
        (local.set $p (i32.add (i32.add (i32.load (i32.const 2048)) (i32.const 4)) (i32.mul (local.get $n) (i32.const 8))))
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          ;; a 4-byte name "x-in": log the value that follows it
          (if (i32.and (i32.eq (i32.load (i32.add (i32.add (i32.load (i32.const 2048)) (i32.const 4)) (i32.mul (local.get $i) (i32.const 8)))) (i32.const 4))
                       (i32.eq (i32.load (local.get $p)) (i32.const 0x6e692d78)))
            (then (drop (call $log (i32.const 2) (i32.add (local.get $p) (i32.const 5))
              (i32.load (i32.add (i32.add (i32.load (i32.const 2048)) (i32.const 8)) (i32.mul (local.get $i) (i32.const 8))))))))
          (local.set $p (i32.add (local.get $p) (i32.add (i32.load (i32.add (i32.add (i32.load (i32.const 2048)) (i32.const 4)) (i32.mul (local.get $i) (i32.const 8)))) (i32.const 1))))
          (local.set $p (i32.add (local.get $p) (i32.add (i32.load (i32.add (i32.add (i32.load (i32.const 2048)) (i32.const 8)) (i32.mul (local.get $i) (i32.const 8)))) (i32.const 1))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))))
    (i32.const 0)))`

const lines: { msg: string }[] = []

const VALUES: [string, string, boolean][] = [
  ['plain', 'ok value', true],
  ['htab', 'a\tb', true],
  ['utf8', 'café', true],
  ['wide', 'price: €5', true],
  ['ctl', 'a\u0001b', false],
  ['del', 'a\u007fb', false],
]

let dir: string
let up: Upstream
let proxy: ProxyHandle

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omnirelay-hv-'))
  for (const [name, value] of VALUES) await writeFile(join(dir, `${name}.wasm`), await wat(setter(value)))
  await writeFile(join(dir, 'echo.wasm'), await wat(echo))
  await writeFile(join(dir, 'echoprop.wasm'), await wat(echoProperty))
  up = await startUpstream()
  proxy = await startProxy(
    {
      listeners: [{ name: 'main', address: '127.0.0.1', port: 0 }],
      accessLog: 'off',
      allowUnsigned: true,
      clusters: [{ name: 'app', endpoints: [`127.0.0.1:${up.port}`] }],
      filters: [...VALUES.map(([name]) => name), 'echo', 'echoprop'].map((name) => ({ name, kind: 'wasm', module: `${name}.wasm`, capabilities: ['headers:read', 'headers:write', 'log', 'properties'] })),
      routes: [...VALUES.map(([name]) => name), 'echo', 'echoprop'].map((name) => ({ name, match: { prefix: '/', host: `${name}.test` }, cluster: 'app', filters: [name] })),
    },
    { log: createLogger({ level: 'info', write: (l) => lines.push(JSON.parse(l)) }), baseDir: dir },
  )
})
afterAll(async () => {
  await proxy?.close()
  await up?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('header values set by a Wasm filter', () => {
  it.each(VALUES)('%s: set when HTTP allows it, refused at the call otherwise; the request is served', async (name, value, ok) => {
    const r = await request(proxy.address().port, { headers: { host: `${name}.test` } })
    expect(r.status).toBe(200)
    const seen = up.seen.at(-1)!.headers
    expect(seen['x-status']).toBe(ok ? '0' : '2') // Ok, BadArgument
    // node hands header bytes over as latin1 characters: back to bytes, read as UTF-8
    const wire = (s: string | string[] | undefined) => (s === undefined ? undefined : Buffer.from(String(s), 'latin1').toString('utf8'))
    expect(wire(seen['x-req'])).toBe(ok ? value : undefined)
    expect(wire(r.headers['x-resp'] as string | undefined)).toBe(ok ? value : undefined)
  })

  it('a module reads the bytes a client sent: a UTF-8 value arrives as UTF-8', async () => {
    // node sends header strings as latin1, one byte per character: these are UTF-8 bytes.
    const utf8 = Buffer.from('naïve café €', 'utf8').toString('latin1')
    const r = await request(proxy.address().port, { headers: { host: 'echo.test', 'x-in': utf8 } })
    expect(r.status).toBe(200)
    expect(lines.map((l) => l.msg)).toContain('naïve café €')
  })
})

describe('properties read from headers', () => {
  it('a module reads the bytes a client sent, as a property and in the serialized map', async () => {
    lines.length = 0
    const utf8 = Buffer.from('grüße €', 'utf8').toString('latin1')
    const r = await request(proxy.address().port, { headers: { host: 'echoprop.test', 'x-in': utf8 } })
    expect(r.status).toBe(200)
    // both log lines: the host decodes them as UTF-8, so double-encoded bytes would read "grÃ¼Ã"
    expect(lines.map((l) => l.msg).filter((m) => m === 'grüße €')).toHaveLength(2)
  })
})
