/**
 * The WASI subset proxy-wasm SDKs import (spec v0.2.1: fd_write to the log, clocks, random,
 * empty environ/args, proc_exit), served under both `wasi_snapshot_preview1` and the older
 * `wasi_unstable`, plus harmless stubs the Rust and TinyGo standard libraries link in
 * (no files: every fd other than stdout/stderr is EBADF, which also tells libc there are no
 * preopened directories). And AssemblyScript's own runtime imports (`env.abort/trace/seed`).
 */
import { getRandomValues } from 'node:crypto'
import { LogLevel, WasiErrno } from './abi.ts'
import type { WasmVm } from './vm.ts'

const E = WasiErrno

/** `proc_exit` unwinds the module; the host reports a trap (or a clean exit from `_start`). */
export class ProcExit extends Error {
  readonly exitCode: number
  constructor(code: number) {
    super(`module called proc_exit(${code})`)
    this.name = 'ProcExit'
    this.exitCode = code
  }
}

/** AssemblyScript's `abort()`: an assertion or allocation failure inside the module. */
export class GuestAbort extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'GuestAbort'
  }
}

export function wasiImports(vm: WasmVm): Record<string, (...args: any[]) => number | void> {
  const m = () => vm.mem
  const badf = () => E.Badf
  /** environ_sizes_get / args_sizes_get: a filter gets no environment and no arguments. */
  const noEntries = (countPtr: number, sizePtr: number) => {
    const mem = m()
    if (!mem.ok(countPtr, 4) || !mem.ok(sizePtr, 4)) return E.Fault
    mem.setU32(countPtr, 0)
    mem.setU32(sizePtr, 0)
    return E.Success
  }
  const nosys = () => E.Nosys
  return {
    fd_write(fd: number, iovs: number, iovsLen: number, nwritten: number) {
      if (fd !== 1 && fd !== 2) return E.Badf
      const mem = m()
      if (!mem.ok(iovs, iovsLen * 8) || !mem.ok(nwritten, 4)) return E.Fault
      let text = ''
      let total = 0
      for (let i = 0; i < iovsLen; i++) {
        const ptr = mem.u32(iovs + i * 8)
        const len = mem.u32(iovs + i * 8 + 4)
        if (!mem.ok(ptr, len)) return E.Fault
        if (text.length < 4097) text += mem.string(ptr, Math.min(len, 4097))
        total += len
      }
      const trimmed = text.endsWith('\n') ? text.slice(0, -1) : text
      if (trimmed) vm.guestLog(fd === 1 ? LogLevel.Info : LogLevel.Error, trimmed)
      mem.setU32(nwritten, total)
      return E.Success
    },
    fd_read: badf,
    fd_close: badf,
    fd_seek: badf,
    fd_fdstat_get: badf,
    fd_prestat_get: badf,
    fd_prestat_dir_name: badf,
    clock_time_get(id: number, _precision: bigint, retPtr: number) {
      const mem = m()
      if (!mem.ok(retPtr, 8)) return E.Fault
      if (id === 0) mem.setU64(retPtr, BigInt(Date.now()) * 1_000_000n)
      else if (id === 1) mem.setU64(retPtr, process.hrtime.bigint())
      else return E.Notsup
      return E.Success
    },
    clock_res_get(id: number, retPtr: number) {
      const mem = m()
      if (id !== 0 && id !== 1) return E.Notsup
      if (!mem.ok(retPtr, 8)) return E.Fault
      mem.setU64(retPtr, 1000n)
      return E.Success
    },
    random_get(ptr: number, len: number) {
      const mem = m()
      if (len > 1 << 20) return E.Inval
      if (!mem.ok(ptr, len)) return E.Fault
      for (let off = 0; off < len; off += 65536) getRandomValues(mem.u8.subarray(ptr + off, ptr + Math.min(len, off + 65536)))
      return E.Success
    },
    environ_sizes_get: noEntries,
    environ_get: () => E.Success,
    args_sizes_get: noEntries,
    args_get: () => E.Success,
    proc_exit(code: number) {
      throw new ProcExit(code)
    },
    sched_yield: () => E.Success,
    poll_oneoff: () => E.Nosys,
    fd_advise: badf,
    fd_allocate: badf,
    fd_datasync: badf,
    fd_fdstat_set_flags: badf,
    fd_filestat_get: badf,
    fd_pread: badf,
    fd_pwrite: badf,
    fd_readdir: badf,
    fd_renumber: badf,
    fd_sync: badf,
    fd_tell: badf,
    path_create_directory: badf,
    path_filestat_get: badf,
    path_link: badf,
    path_open: badf,
    path_readlink: badf,
    path_remove_directory: badf,
    path_rename: badf,
    path_symlink: badf,
    path_unlink_file: badf,
    proc_raise: nosys,
    sock_accept: badf,
    sock_recv: badf,
    sock_send: badf,
    sock_shutdown: badf,
  }
}

/** Reads an AssemblyScript string (UTF-16LE, byte length at ptr - 4); '' if out of bounds. */
function asString(vm: WasmVm, ptr: number): string {
  const mem = vm.mem
  if (!ptr || ptr < 4 || !mem.ok(ptr - 4, 4)) return ''
  const len = Math.min(mem.u32(ptr - 4), 4096)
  if (!mem.ok(ptr, len)) return ''
  return Buffer.from(mem.u8.buffer, ptr, len & ~1).toString('utf16le')
}

/** `env` functions of the toolchains' runtimes (AssemblyScript; Emscripten's growth hook). */
export function assemblyScriptImports(vm: WasmVm): Record<string, (...args: any[]) => number | void> {
  return {
    abort(msg: number, file: number, line: number, col: number) {
      throw new GuestAbort(`abort: ${asString(vm, msg) || 'unknown'} at ${asString(vm, file) || '?'}:${line}:${col}`)
    },
    trace(msg: number, n: number, ...args: number[]) {
      vm.guestLog(LogLevel.Debug, `trace: ${asString(vm, msg)}${n ? ` ${args.slice(0, n).join(', ')}` : ''}`)
    },
    seed() {
      return getRandomValues(new Uint32Array(1))[0]! * 2 ** 20
    },
    emscripten_notify_memory_growth() {},
  }
}
