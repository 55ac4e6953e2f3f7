/**
 * Hand-written WAT modules: what the Rust/Go/C++ proxy-wasm SDKs import and call (including
 * the older WASI module name), and hostile modules. Compiled with wabt in the tests.
 */
import { PRELUDE, data, pairs } from './fixtures.ts'

const IMPORTS_HEADERS = `
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $rep (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $rem (param i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))`

/**
 * Copies x-in to x-out, sets x-replaced: yes, removes x-remove, logs, counts requests in a
 * global (x-count: '1', '2', ...) and adds x-resp: 1 to responses.
 */
export const headerFilter = `(module ${IMPORTS_HEADERS}
  ${PRELUDE}
  ${data(1024, 'x-in')} ${data(1040, 'x-out')} ${data(1056, 'x-replaced')} ${data(1072, 'yes')}
  ${data(1088, 'x-remove')} ${data(1104, 'x-resp')} ${data(1120, '1')} ${data(1136, 'hello from wasm')}
  ${data(1184, 'x-count')}
  (global $count (mut i32) (i32.const 0))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 1024) (i32.const 4) (i32.const 2048) (i32.const 2052)))
      (then (drop (call $add (i32.const 0) (i32.const 1040) (i32.const 5) (i32.load (i32.const 2048)) (i32.load (i32.const 2052))))))
    (drop (call $rep (i32.const 0) (i32.const 1056) (i32.const 10) (i32.const 1072) (i32.const 3)))
    (drop (call $rem (i32.const 0) (i32.const 1088) (i32.const 8)))
    (drop (call $log (i32.const 2) (i32.const 1136) (i32.const 15)))
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store8 (i32.const 1200) (i32.add (global.get $count) (i32.const 48)))
    (drop (call $add (i32.const 0) (i32.const 1184) (i32.const 7) (i32.const 1200) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 1104) (i32.const 6) (i32.const 1120) (i32.const 1)))
    (i32.const 0)))`

/**
 * Rust-SDK-shaped: _initialize, vm_start/configure reading the plugin configuration buffer
 * (configure fails on an empty configuration), get/set_header_map_pairs round trip, WASI
 * fd_write/clock/random/environ from wasi_snapshot_preview1, and a property read.
 */
export const rustLike = `(module
  (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $setpairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $eff (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $envsz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $envget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $argsz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  ${PRELUDE}
  ${data(1024, 'request\u0000path')} ${data(1040, 'x-path')} ${data(1056, 'configured\n')} ${data(1072, 'x-status-eff')}
  ${data(1088, 'x-config')}
  (global $cfg_ptr (mut i32) (i32.const 0))
  (global $cfg_len (mut i32) (i32.const 0))
  (global $initialized (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $initialized (i32.const 1)))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $envsz (i32.const 2000) (i32.const 2004)))
    (drop (call $argsz (i32.const 2000) (i32.const 2004)))
    (i32.const 1))
  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (if (i32.eqz (local.get $size)) (then (return (i32.const 0))))
    (drop (call $buf (i32.const 7) (i32.const 0) (local.get $size) (i32.const 2048) (i32.const 2052)))
    (global.set $cfg_ptr (i32.load (i32.const 2048)))
    (global.set $cfg_len (i32.load (i32.const 2052)))
    ;; fd_write one iovec "configured\\n" to stdout
    (i32.store (i32.const 2100) (i32.const 1056))
    (i32.store (i32.const 2104) (i32.const 11))
    (drop (call $fd_write (i32.const 1) (i32.const 2100) (i32.const 1) (i32.const 2108)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 2112)))
    (drop (call $random (i32.const 2120) (i32.const 16)))
    (global.get $initialized))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    ;; round-trip all headers through get_pairs/set_pairs
    (drop (call $pairs (i32.const 0) (i32.const 2048) (i32.const 2052)))
    (drop (call $setpairs (i32.const 0) (i32.load (i32.const 2048)) (i32.load (i32.const 2052))))
    ;; x-path: <request.path property>
    (if (i32.eqz (call $prop (i32.const 1024) (i32.const 12) (i32.const 2056) (i32.const 2060)))
      (then (drop (call $add (i32.const 0) (i32.const 1040) (i32.const 6) (i32.load (i32.const 2056)) (i32.load (i32.const 2060))))))
    ;; x-config: the configuration bytes
    (drop (call $add (i32.const 0) (i32.const 1088) (i32.const 8) (global.get $cfg_ptr) (global.get $cfg_len)))
    ;; x-status-eff: status of set_effective_context on an unknown context (BadArgument = 2)
    (i32.store8 (i32.const 2064) (i32.add (i32.const 48) (call $eff (i32.const 9999))))
    (drop (call $add (i32.const 0) (i32.const 1072) (i32.const 12) (i32.const 2064) (i32.const 1)))
    (i32.const 0)))`

/** Go/TinyGo-shaped: the older `wasi_unstable` module name and `_start`, which ends with proc_exit(0). */
export const goLike = `(module
  (import "wasi_unstable" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_unstable" "proc_exit" (func $exit (param i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'x-go')} ${data(1040, 'tinygo')} ${data(1056, 'started\n')}
  (func (export "_start")
    (i32.store (i32.const 2100) (i32.const 1056))
    (i32.store (i32.const 2104) (i32.const 8))
    (drop (call $fd_write (i32.const 2) (i32.const 2100) (i32.const 1) (i32.const 2108)))
    (call $exit (i32.const 0)))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 1024) (i32.const 4) (i32.const 1040) (i32.const 6)))
    (i32.const 0)))`

const denyHeaders = pairs([['x-why', 'denied-by-wasm'], ['content-type', 'text/plain']])
/** Sends 403 with a body and headers when :path starts with /deny; Pause afterwards. */
export const denyFilter = `(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, ':path')} ${data(1040, 'nope')} ${data(1056, 'forbidden path')}
  ${data(1280, denyHeaders)}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $p i32)
    (drop (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052)))
    (local.set $p (i32.load (i32.const 2048)))
    ;; "/deny" = 2f 64 65 6e 79: compare the first 4 bytes "/den" as a little-endian i32
    (if (i32.and (i32.ge_u (i32.load (i32.const 2052)) (i32.const 5)) (i32.eq (i32.load (local.get $p)) (i32.const 0x6e65642f)))
      (then
        (drop (call $reply (i32.const 403) (i32.const 1040) (i32.const 4) (i32.const 1056) (i32.const 14) (i32.const 1280) (i32.const ${denyHeaders.length}) (i32.const -1)))
        (return (i32.const 1))))
    (i32.const 0)))`

const calloutHeaders = pairs([[':method', 'GET'], [':path', '/check'], [':authority', 'auth']])
/**
 * Calls cluster "auth" from request headers and pauses; on the response (root context),
 * switches to the stream's context and continues when :status is 200, else replies 401.
 */
export const calloutFilter = `(module
  (import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $eff (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $cont (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'auth')} ${data(1040, ':status')} ${data(1056, '200')} ${data(1072, 'x-auth-body')}
  ${data(1280, calloutHeaders)}
  (global $ctx (mut i32) (i32.const 0))
  (global $status (mut i32) (i32.const -1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param $c i32) (param i32 i32) (result i32)
    (global.set $ctx (local.get $c))
    (global.set $status (call $call (i32.const 1024) (i32.const 4) (i32.const 1280) (i32.const ${calloutHeaders.length})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 500) (i32.const 2000)))
    (if (result i32) (i32.eqz (global.get $status)) (then (i32.const 1)) (else (i32.const 0))))
  (func (export "proxy_on_http_call_response") (param $root i32) (param $token i32) (param $nh i32) (param $bs i32) (param $nt i32)
    (drop (call $eff (global.get $ctx)))
    (if (i32.and (i32.eqz (call $get (i32.const 6) (i32.const 1040) (i32.const 7) (i32.const 2048) (i32.const 2052)))
                 (i32.eq (i32.and (i32.load (i32.load (i32.const 2048))) (i32.const 0xffffff)) (i32.and (i32.load (i32.const 1056)) (i32.const 0xffffff))))
      (then
        (if (i32.gt_u (local.get $bs) (i32.const 0))
          (then
            (drop (call $buf (i32.const 4) (i32.const 0) (local.get $bs) (i32.const 2056) (i32.const 2060)))
            (drop (call $add (i32.const 0) (i32.const 1072) (i32.const 11) (i32.load (i32.const 2056)) (i32.load (i32.const 2060))))))
        (drop (call $cont (i32.const 0))))
      (else (drop (call $reply (i32.const 401) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))))))`

/**
 * Shared data with CAS (a counter), metrics, a shared queue and properties: on each request
 * increments "hits" in shared data via get + CAS set, increments counter "requests",
 * enqueues on "events", and adds x-hits and x-epoch (the omnirelay.epoch property, 8 bytes
 * little-endian, first byte as a digit) headers.
 */
export const stateFilter = `(module
  (import "env" "proxy_get_shared_data" (func $sget (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $def (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $qreg (param i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $qput (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'hits')} ${data(1040, 'requests')} ${data(1056, 'events')} ${data(1072, 'x-hits')}
  ${data(1088, 'omnirelay.epoch')} ${data(1104, 'x-epoch')} ${data(1120, 'x-cas-stale')}
  (global $metric (mut i32) (i32.const 0))
  (global $queue (mut i32) (i32.const 0))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $def (i32.const 0) (i32.const 1040) (i32.const 8) (i32.const 2000)))
    (global.set $metric (i32.load (i32.const 2000)))
    (drop (call $qreg (i32.const 1056) (i32.const 6) (i32.const 2004)))
    (global.set $queue (i32.load (i32.const 2004)))
    (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $v i32) (local $cas i32)
    (if (i32.eqz (call $sget (i32.const 1024) (i32.const 4) (i32.const 2048) (i32.const 2052) (i32.const 2056)))
      (then (local.set $v (i32.load (i32.load (i32.const 2048)))) (local.set $cas (i32.load (i32.const 2056)))))
    (i32.store (i32.const 2060) (i32.add (local.get $v) (i32.const 1)))
    (drop (call $sset (i32.const 1024) (i32.const 4) (i32.const 2060) (i32.const 4) (local.get $cas)))
    ;; a second set with the now-stale CAS must fail with CasMismatch (8), when there was a CAS
    (if (local.get $cas) (then
      (i32.store8 (i32.const 2070) (i32.add (i32.const 48) (call $sset (i32.const 1024) (i32.const 4) (i32.const 2060) (i32.const 4) (local.get $cas))))
      (drop (call $add (i32.const 0) (i32.const 1120) (i32.const 11) (i32.const 2070) (i32.const 1)))))
    (i32.store8 (i32.const 2064) (i32.add (i32.const 48) (i32.load (i32.const 2060))))
    (drop (call $add (i32.const 0) (i32.const 1072) (i32.const 6) (i32.const 2064) (i32.const 1)))
    (drop (call $inc (global.get $metric) (i64.const 1)))
    (drop (call $qput (global.get $queue) (i32.const 1072) (i32.const 6)))
    (if (i32.eqz (call $prop (i32.const 1088) (i32.const 15) (i32.const 2080) (i32.const 2084)))
      (then
        (i32.store8 (i32.const 2088) (i32.add (i32.const 48) (i32.load8_u (i32.load (i32.const 2080)))))
        (drop (call $add (i32.const 0) (i32.const 1104) (i32.const 7) (i32.const 2088) (i32.const 1)))))
    (i32.const 0)))`

/** Calls every map/buffer host call from the root context and with bad pointers; records statuses as header x-st: digits. */
export const misuseFilter = `(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, ':path')} ${data(1040, 'x-st')}
  (global $root_status (mut i32) (i32.const 0))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    ;; request headers outside a request: NotFound (1); reply outside a request: NotFound (1)
    (global.set $root_status (i32.add
      (i32.mul (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052)) (i32.const 10))
      (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))
    (i32.const 1))
  (func $digit (param $at i32) (param $v i32) (i32.store8 (local.get $at) (i32.add (i32.const 48) (local.get $v))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $digit (i32.const 3000) (i32.div_u (global.get $root_status) (i32.const 10)))
    (call $digit (i32.const 3001) (i32.rem_u (global.get $root_status) (i32.const 10)))
    ;; unknown map type: BadArgument (2)
    (call $digit (i32.const 3002) (call $get (i32.const 99) (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052)))
    ;; key pointer outside memory: InvalidMemoryAccess (6)
    (call $digit (i32.const 3003) (call $get (i32.const 0) (i32.const 0x7fffff00) (i32.const 5) (i32.const 2048) (i32.const 2052)))
    ;; missing header: NotFound (1)
    (call $digit (i32.const 3004) (call $get (i32.const 0) (i32.const 1040) (i32.const 4) (i32.const 2048) (i32.const 2052)))
    ;; call-response headers outside a callout: NotFound (1)
    (call $digit (i32.const 3005) (call $get (i32.const 6) (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052)))
    ;; bad log level: BadArgument (2)
    (call $digit (i32.const 3006) (call $log (i32.const 9) (i32.const 1024) (i32.const 5)))
    ;; unknown buffer: BadArgument (2); body buffer without body:read grant: NotFound (1)
    (call $digit (i32.const 3007) (call $buf (i32.const 42) (i32.const 0) (i32.const 1) (i32.const 2048) (i32.const 2052)))
    (call $digit (i32.const 3008) (call $buf (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 2048) (i32.const 2052)))
    ;; a header value with CR LF: BadArgument (2)
    (i32.store (i32.const 3100) (i32.const 0x0a0d4141))
    (call $digit (i32.const 3009) (call $add (i32.const 0) (i32.const 1040) (i32.const 4) (i32.const 3100) (i32.const 4)))
    (drop (call $add (i32.const 0) (i32.const 1040) (i32.const 4) (i32.const 3000) (i32.const 10)))
    (i32.const 0)))`

/** Body filter: on request body at end of stream, replaces the body with its upper-case copy (ASCII). */
export const bodyFilter = `(module
  (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $setbuf (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32) (local $p i32) (local $i i32) (local $c i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (drop (call $buf (i32.const 0) (i32.const 0) (local.get $size) (i32.const 2048) (i32.const 2052)))
    (local.set $p (i32.load (i32.const 2048)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $size)))
      (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
        (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (drop (call $setbuf (i32.const 0) (i32.const 0) (local.get $size) (local.get $p) (local.get $size)))
    (i32.const 0)))`

/** The phases a trap can be placed in. */
export type TrapPhase = 'request_headers' | 'request_body' | 'response_headers' | 'response_body' | 'log' | 'vm_start' | 'configure' | 'start'

/** A module whose callback for `phase` traps (`unreachable`); the others continue. */
export function trapIn(phase: TrapPhase): string {
  const body = (p: TrapPhase, ok: string) => (p === phase ? 'unreachable' : ok)
  return `(module ${PRELUDE}
    (func $s ${phase === 'start' ? 'unreachable' : 'nop'}) (start $s)
    (func (export "proxy_on_vm_start") (param i32 i32) (result i32) ${body('vm_start', '(i32.const 1)')})
    (func (export "proxy_on_configure") (param i32 i32) (result i32) ${body('configure', '(i32.const 1)')})
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) ${body('request_headers', '(i32.const 0)')})
    (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) ${body('request_body', '(i32.const 0)')})
    (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) ${body('response_headers', '(i32.const 0)')})
    (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) ${body('response_body', '(i32.const 0)')})
    (func (export "proxy_on_log") (param i32) ${body('log', 'nop')}))`
}

/**
 * Misbehaves on request headers when :path is /bad (otherwise continues): `kind` picks how.
 * - loop: while(true); recursion: unbounded recursion; chain: fib(40) (no loops, exponential calls);
 * - bomb: memory.grow(1) until it fails, then unreachable (what allocators do).
 */
export function hostile(kind: 'loop' | 'recursion' | 'chain' | 'bomb'): string {
  const bad = {
    loop: '(loop $l (br $l))',
    recursion: '(drop (call $rec (i32.const 1)))',
    chain: '(drop (call $fib (i32.const 40)))',
    bomb: '(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable',
  }[kind]
  return `(module
    (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
    ${PRELUDE}
    ${data(1024, ':path')}
    (func $rec (param i32) (result i32) (i32.add (call $rec (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
    (func $fib (param i32) (result i32)
      (if (result i32) (i32.lt_u (local.get 0) (i32.const 2)) (then (local.get 0))
        (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1))) (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (drop (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052)))
      ;; "/bad" little-endian = 0x6461622f
      (if (i32.eq (i32.load (i32.load (i32.const 2048))) (i32.const 0x6461622f)) (then ${bad}))
      (i32.const 0)))`
}

/** A module whose start function never returns. */
export const neverStarts = `(module ${PRELUDE} (func $s (loop $l (br $l))) (start $s)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))`

/** Imports proxy_http_call (needs http-callout) and proxy_log (needs log). */
export const needsCallout = `(module
  (import "env" "proxy_http_call" (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
  ${PRELUDE})`

/** Imports something no host provides. */
export const unknownImport = `(module
  (import "env" "evil_syscall" (func (param i32) (result i32)))
  (import "os" "exec" (func))
  ${PRELUDE})`

/** Ticks: sets a 10 ms tick period in configure and counts ticks in shared data key "ticks". */
export const tickFilter = `(module
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'ticks')}
  (global $n (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (drop (call $tick (i32.const 10))) (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store (i32.const 2000) (global.get $n))
    (drop (call $sset (i32.const 1024) (i32.const 5) (i32.const 2000) (i32.const 4) (i32.const 0)))))`

/**
 * Lifecycle corner cases: `malloc` instead of proxy_on_memory_allocate, `_initialize` then
 * `main`, a shared queue whose readiness calls back the root context, and proxy_on_done
 * returning false until the module calls proxy_done (from the queue callback).
 * Shared data: "main" = value main saw, "job" = last dequeued item, "deleted" = deletes seen.
 */
export const lifecycleFilter = `(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $qreg (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $qget (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $eff (param i32) (result i32)))
  (import "env" "proxy_done" (func $done (result i32)))
  ${PRELUDE.replace('(export "proxy_on_memory_allocate")', '(export "malloc")')}
  ${data(1024, ':path')} ${data(1040, 'x-path-copy')} ${data(1056, 'jobs')} ${data(1072, 'main')} ${data(1088, 'job')} ${data(1104, 'deleted')}
  (global $init (mut i32) (i32.const 0))
  (global $main (mut i32) (i32.const 0))
  (global $pending (mut i32) (i32.const 0))
  (global $deleted (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $init (i32.const 21)))
  (func (export "main") (param i32 i32) (result i32) (global.set $main (i32.mul (global.get $init) (i32.const 2))) (i32.const 0))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $qreg (i32.const 1056) (i32.const 4) (i32.const 2000)))
    (i32.store (i32.const 2004) (global.get $main))
    (drop (call $sset (i32.const 1072) (i32.const 4) (i32.const 2004) (i32.const 4) (i32.const 0)))
    (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052)))
      (then (drop (call $add (i32.const 0) (i32.const 1040) (i32.const 11) (i32.load (i32.const 2048)) (i32.load (i32.const 2052))))))
    (i32.const 0))
  (func (export "proxy_on_done") (param $ctx i32) (result i32) (global.set $pending (local.get $ctx)) (i32.const 0))
  (func (export "proxy_on_delete") (param i32)
    (global.set $deleted (i32.add (global.get $deleted) (i32.const 1)))
    (i32.store (i32.const 2008) (global.get $deleted))
    (drop (call $sset (i32.const 1104) (i32.const 7) (i32.const 2008) (i32.const 4) (i32.const 0))))
  (func (export "proxy_on_queue_ready") (param $root i32) (param $q i32)
    (if (i32.eqz (call $qget (local.get $q) (i32.const 2056) (i32.const 2060)))
      (then (drop (call $sset (i32.const 1088) (i32.const 3) (i32.load (i32.const 2056)) (i32.load (i32.const 2060)) (i32.const 0)))))
    (if (global.get $pending) (then
      (drop (call $eff (global.get $pending)))
      (drop (call $done))
      (global.set $pending (i32.const 0))))))`

/**
 * C++-SDK/Emscripten-shaped: libc links file and socket calls it never uses, and Emscripten
 * imports its memory-growth hook. On request headers it calls fd_seek (i64 offset) and
 * path_open and reports both errnos in x-errno (EBADF = 8 -> "88").
 */
export const cppLike = `(module
  (import "env" "emscripten_notify_memory_growth" (func (param i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func (param i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'x-errno')}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 2000) (i32.add (i32.const 48) (call $seek (i32.const 3) (i64.const 10) (i32.const 0) (i32.const 2008))))
    (i32.store8 (i32.const 2001) (i32.add (i32.const 48) (call $open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 4) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 2008))))
    (drop (call $add (i32.const 0) (i32.const 1024) (i32.const 7) (i32.const 2000) (i32.const 2)))
    (i32.const 0)))`

/** Where `failsToStart` fails: the start section, `_start`, `proxy_on_vm_start` (all never return), or `proxy_on_configure` returning false. */
export type StartFailurePhase = 'start' | '_start' | 'vm_start' | 'configure'

/**
 * A module that never finishes starting (`where`); once started it would add `x-started: yes`
 * to requests. Valid in every other way (its imports need only headers:write).
 */
export function failsToStart(where: StartFailurePhase): string {
  const loop = '(loop $l (br $l))'
  return `(module
    (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
    ${PRELUDE}
    ${data(1040, 'x-started')} ${data(1056, 'yes')}
    ${where === 'start' ? `(func $s ${loop}) (start $s)` : ''}
    ${where === '_start' ? `(func (export "_start") ${loop})` : ''}
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_vm_start") (param i32 i32) (result i32) ${where === 'vm_start' ? loop : ''} (i32.const 1))
    (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const ${where === 'configure' ? 0 : 1}))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (drop (call $add (i32.const 0) (i32.const 1040) (i32.const 9) (i32.const 1056) (i32.const 3)))
      (i32.const 0)))`
}

/**
 * Refuses its configuration the first time it starts in a process (shared data key "tried"
 * absent, then set), starts every later time; adds `x-started: yes` to requests.
 */
export const startsOnSecondTry = `(module
  (import "env" "proxy_get_shared_data" (func $sget (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  ${PRELUDE}
  ${data(1024, 'tried')} ${data(1040, 'x-started')} ${data(1056, 'yes')}
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (if (result i32) (i32.eqz (call $sget (i32.const 1024) (i32.const 5) (i32.const 2048) (i32.const 2052) (i32.const 2056)))
      (then (i32.const 1))
      (else (drop (call $sset (i32.const 1024) (i32.const 5) (i32.const 1056) (i32.const 3) (i32.const 0))) (i32.const 0))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 1040) (i32.const 9) (i32.const 1056) (i32.const 3)))
    (i32.const 0)))`
