/** Names of the example filters (folders with an assembly/index.ts). */
export declare function exampleFilters(): string[]
/** The module path of example `name` (`<name>/build/filter.wasm`). */
export declare function exampleModule(name: string): string
/** Builds the named examples (all by default) unless up to date; returns name -> module bytes. */
export declare function buildExamples(names?: string[]): Promise<Record<string, Uint8Array>>
