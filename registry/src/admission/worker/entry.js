// Admission worker bootstrap (plain JS: it runs before any TypeScript loader). binaryen is a
// 15 MB module that takes ~20 s through the tsx loader and ~1 s natively: load it natively
// first, so later imports of it hit the module cache; then register tsx for our sources.
await import('binaryen')
const { register } = await import('tsx/esm/api')
register()
await import('./admission-worker.ts')
