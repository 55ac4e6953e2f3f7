/**
 * Sandbox tools shared by the Wasm and QuickJS hosts: fuel metering (fuel.ts), memory caps
 * (memory-cap.ts) and the digest-keyed cache of instrumented, compiled modules
 * (module-cache.ts). binaryen is imported lazily by fuel.ts, only when a module is instrumented.
 */
export * from './fuel.ts'
export * from './memory-cap.ts'
export * from './module-cache.ts'
