/** Entry points every module built with this SDK exports. */
export declare const REQUIRED_EXPORTS: readonly string[]

export type FilterBuildErrorCode =
  | 'SDK_AS_ENTRY_NOT_FOUND'
  | 'SDK_AS_COMPILE_FAILED'
  | 'SDK_AS_MISSING_EXPORTS'
  | 'SDK_AS_FORBIDDEN_IMPORT'

/** A build that failed; `code` says why, `diagnostics` holds the compiler's output. */
export declare class FilterBuildError extends Error {
  readonly code: FilterBuildErrorCode
  readonly diagnostics: string
  constructor(code: FilterBuildErrorCode, message: string, diagnostics?: string)
}

export interface BuildFilterOptions {
  /** The filter's AssemblyScript entry file (it must `export * from "@omnirelay/sdk-as/exports"`). */
  entry: string
  /** Where to write the module; nothing is written when absent. */
  outFile?: string
  /** Release build (-O3s, no asserts). Default true; false gives a debug build with names. */
  optimize?: boolean
  /**
   * Skip the build when `outFile` is there and no source file the last build read has
   * changed (digests kept in `<outFile>.inputs.json`). Needs `outFile`. Default false.
   */
  cache?: boolean
}

export interface BuiltFilter {
  /** The validated proxy-wasm module. */
  wasm: Uint8Array
  /** Its imports as "module.name", e.g. "env.proxy_log". */
  imports: string[]
  /** Its export names. */
  exports: string[]
}

/**
 * Compiles an AssemblyScript filter to a proxy-wasm ABI v0.2.1 module and checks it.
 *
 * @example
 * import { buildFilter } from '@omnirelay/sdk-as/build'
 * const { wasm, imports } = await buildFilter({ entry: 'assembly/index.ts', outFile: 'build/filter.wasm' })
 */
export declare function buildFilter(options: BuildFilterOptions): Promise<BuiltFilter>

/** Checks a compiled module (validates, required exports, only env.proxy_* imports). */
export declare function inspect(wasm: Uint8Array, label?: string): { imports: string[]; exports: string[] }

/** The asc command-line arguments the build uses, for running asc by hand. */
export declare function ascArgs(entry: string, options?: { optimize?: boolean }): string[]
