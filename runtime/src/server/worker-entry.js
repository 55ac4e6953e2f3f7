// node:cluster worker entry: plain JS so `cluster.setupPrimary({ exec })` can start it; it
// registers tsx and then loads the TypeScript worker.
import { register } from 'tsx/esm/api'
register()
await import('./worker-main.ts')
