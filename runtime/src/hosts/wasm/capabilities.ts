/**
 * Which capability each host function needs. The table is the single source of truth: the
 * load-time check, the bundle builder (`requiredCapabilities`) and the hostcall factory all
 * read it, so a host function cannot exist without a capability decision.
 *
 * `null` means "always provided": lifecycle plumbing every SDK imports (buffers for the plugin
 * configuration, continue/done, time, the harmless WASI stubs). Everything that reads or
 * changes the request, talks to other filters or leaves the process needs a grant.
 */
import type { Capability } from '../../pipeline/filter.ts'
import { FUEL_IMPORT_MODULE } from '../../sandbox/fuel.ts'

const ENV = 'env'
/** WASI module names proxy-wasm SDKs import: preview1, and the older name some toolchains still emit. */
export const WASI_MODULES = ['wasi_snapshot_preview1', 'wasi_unstable'] as const

/** proxy-wasm host functions (module `env`) -> capability. */
export const PROXY_IMPORTS: Readonly<Record<string, Capability | null>> = {
  // logging
  proxy_log: 'log',
  proxy_get_log_level: null,
  // lifecycle, contexts, time, buffers (bodies are checked per call: see hostcalls)
  proxy_done: null,
  proxy_set_effective_context: null,
  proxy_get_current_time_nanoseconds: null,
  proxy_get_buffer_bytes: null,
  proxy_get_buffer_status: null,
  proxy_set_buffer_bytes: 'body:write',
  proxy_continue_stream: null,
  proxy_close_stream: null,
  proxy_continue_request: null,
  proxy_continue_response: null,
  proxy_clear_route_cache: null,
  proxy_get_status: null,
  proxy_call_foreign_function: null,
  // header maps
  proxy_get_header_map_size: 'headers:read',
  proxy_get_header_map_pairs: 'headers:read',
  proxy_get_header_map_value: 'headers:read',
  proxy_set_header_map_pairs: 'headers:write',
  proxy_add_header_map_value: 'headers:write',
  proxy_replace_header_map_value: 'headers:write',
  proxy_remove_header_map_value: 'headers:write',
  // local reply
  proxy_send_local_response: 'local-reply',
  // properties
  proxy_get_property: 'properties',
  proxy_set_property: 'properties',
  // metrics
  proxy_define_metric: 'metrics',
  proxy_increment_metric: 'metrics',
  proxy_record_metric: 'metrics',
  proxy_get_metric: 'metrics',
  // shared data and queues
  proxy_get_shared_data: 'shared-data',
  proxy_set_shared_data: 'shared-data',
  proxy_register_shared_queue: 'shared-queue',
  proxy_resolve_shared_queue: 'shared-queue',
  proxy_enqueue_shared_queue: 'shared-queue',
  proxy_dequeue_shared_queue: 'shared-queue',
  // timers
  proxy_set_tick_period_milliseconds: 'timers',
  // callouts (gRPC is answered with Unimplemented, under the same grant)
  proxy_http_call: 'http-callout',
  proxy_grpc_call: 'http-callout',
  proxy_grpc_stream: 'http-callout',
  proxy_grpc_send: 'http-callout',
  proxy_grpc_cancel: 'http-callout',
  proxy_grpc_close: 'http-callout',
}

/** The WASI subset (same table for every name in `WASI_MODULES`). */
export const WASI_IMPORTS: Readonly<Record<string, Capability | null>> = {
  fd_write: 'log',
  fd_read: null,
  fd_close: null,
  fd_seek: null,
  fd_fdstat_get: null,
  fd_prestat_get: null,
  fd_prestat_dir_name: null,
  clock_time_get: null,
  clock_res_get: null,
  random_get: null,
  environ_sizes_get: null,
  environ_get: null,
  args_sizes_get: null,
  args_get: null,
  proc_exit: null,
  sched_yield: null,
  poll_oneoff: null,
  // No files, sockets or signals: linked in by libc/std even when unused, answered EBADF/ENOSYS.
  fd_advise: null,
  fd_allocate: null,
  fd_datasync: null,
  fd_fdstat_set_flags: null,
  fd_filestat_get: null,
  fd_pread: null,
  fd_pwrite: null,
  fd_readdir: null,
  fd_renumber: null,
  fd_sync: null,
  fd_tell: null,
  path_create_directory: null,
  path_filestat_get: null,
  path_link: null,
  path_open: null,
  path_readlink: null,
  path_remove_directory: null,
  path_rename: null,
  path_symlink: null,
  path_unlink_file: null,
  proc_raise: null,
  sock_accept: null,
  sock_recv: null,
  sock_send: null,
  sock_shutdown: null,
}

/** Toolchain runtime imports in module `env`: AssemblyScript's, and Emscripten's growth hook. */
export const ASSEMBLYSCRIPT_IMPORTS: Readonly<Record<string, Capability | null>> = {
  abort: null,
  trace: 'log',
  seed: null,
  // Emscripten (the C++ SDK's toolchain) tells the host about growth; nothing to do here.
  emscripten_notify_memory_growth: null,
}

export interface ImportCheck {
  /** Capabilities the imports need, sorted. */
  required: Capability[]
  /** Imports this host does not provide at all (`module.name`). */
  unknown: string[]
}

/** The capability an import needs: a Capability, null (always provided), or undefined (unknown import). */
export function capabilityOf(imp: { module: string; name: string; kind: string }): Capability | null | undefined {
  if (imp.kind === 'memory') return null // the host creates a capped memory for it
  if (imp.kind !== 'function') return undefined
  if (imp.module === ENV) {
    if (Object.hasOwn(PROXY_IMPORTS, imp.name)) return PROXY_IMPORTS[imp.name]
    if (Object.hasOwn(ASSEMBLYSCRIPT_IMPORTS, imp.name)) return ASSEMBLYSCRIPT_IMPORTS[imp.name]
    return undefined
  }
  if ((WASI_MODULES as readonly string[]).includes(imp.module) && Object.hasOwn(WASI_IMPORTS, imp.name)) return WASI_IMPORTS[imp.name]
  if (imp.module === FUEL_IMPORT_MODULE) return null // added by our own instrumentation
  return undefined
}

/** Maps a module's imports to the capabilities they need and the imports nobody provides. */
export function checkImports(imports: readonly { module: string; name: string; kind: string }[]): ImportCheck {
  const required = new Set<Capability>()
  const unknown: string[] = []
  for (const imp of imports) {
    const cap = capabilityOf(imp)
    if (cap === undefined) unknown.push(`${imp.module}.${imp.name} (${imp.kind})`)
    else if (cap !== null) required.add(cap)
  }
  return { required: [...required].sort(), unknown }
}

/** Why a module was refused at load. */
export class CapabilityError extends Error {
  readonly code: 'unknown_import' | 'capability_denied'
  /** Missing grants (capability_denied) or unknown imports (unknown_import). */
  readonly names: string[]
  constructor(code: CapabilityError['code'], names: string[], message: string) {
    super(message)
    this.name = 'CapabilityError'
    this.code = code
    this.names = names
  }
}

/**
 * The capabilities a compiled module needs, from its imports: what a bundle must request.
 * Throws `CapabilityError('unknown_import')` naming imports no host provides. (The bundle
 * builder and the registry use bundles/wasm-capabilities.ts, which reads the imports from the
 * bytes without compiling and throws ArtifactError.)
 *
 * @example
 * const caps = requiredCapabilities(await WebAssembly.compile(bytes)) // ['headers:read', 'log']
 */
export function requiredCapabilities(module: WebAssembly.Module): Capability[] {
  const check = checkImports(WebAssembly.Module.imports(module))
  if (check.unknown.length) {
    throw new CapabilityError('unknown_import', check.unknown, `module imports functions this host does not provide: ${check.unknown.join(', ')}`)
  }
  return check.required
}

/**
 * Refuses a module whose imports exceed `granted`: names unknown imports first, then the
 * missing grants (with the imports that need them).
 */
export function assertImportsGranted(
  filter: string,
  imports: readonly { module: string; name: string; kind: string }[],
  granted: ReadonlySet<Capability>,
): void {
  const check = checkImports(imports)
  if (check.unknown.length) {
    throw new CapabilityError(
      'unknown_import',
      check.unknown,
      `filter "${filter}": module imports functions this host does not provide: ${check.unknown.join(', ')}`,
    )
  }
  const missing = check.required.filter((c) => !granted.has(c))
  if (missing.length) {
    const why = missing.map((c) => {
      const users = imports.filter((i) => capabilityOf(i) === c).map((i) => i.name)
      return `${c} (for ${users.join(', ')})`
    })
    throw new CapabilityError('capability_denied', missing, `filter "${filter}": module needs capabilities that are not granted: ${why.join('; ')}`)
  }
}
