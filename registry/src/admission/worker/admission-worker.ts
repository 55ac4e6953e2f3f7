/**
 * The admission worker thread: runs `admitBundle` off the registry's event loop, so a publish
 * (binaryen instrumentation, compilation, the smoke run) never stalls other requests — which
 * matters once the registry shares a process with MeshKit central's config streams — and so a
 * runaway admission can be stopped by terminating the thread.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { compileTrustPolicy, loadTrustPolicy, type TrustPolicy } from '@omnirelay/runtime/bundles/trust-policy.ts'
import { RegistryError, RegistryErrorCode } from '../../errors.ts'
import { admitBundle } from '../pipeline.ts'
import { selectSmokeRunner, type SmokeRunner } from '../smoke/index.ts'
import type { AdmitRequest, AdmitResponse, WorkerInit } from './protocol.ts'

const port = parentPort
if (!port) throw new Error('admission-worker.ts must run in a worker thread')
const init = workerData as WorkerInit

let ready: Promise<{ trust: TrustPolicy; smoke: SmokeRunner }>
try {
  ready = (async () => ({
    trust: 'file' in init.trustPolicy ? await loadTrustPolicy(init.trustPolicy.file) : await compileTrustPolicy(init.trustPolicy.document, init.trustPolicy.baseDir),
    smoke: await selectSmokeRunner(init.policy.smoke.runner),
  }))()
} catch (e) {
  ready = Promise.reject(e)
}

// Ready once the policy is compiled and the smoke runner (Wasm host) is loaded: the pool
// starts each admission's clock from here.
void ready.then(
  () => port.postMessage({ ready: true }),
  () => port.postMessage({ ready: true }), // admissions then fail with the start error, by code
)

port.on('message', (req: AdmitRequest) => {
  void handle(req).then((res) => {
    const transfer = res.ok && res.admitted.instrumented ? [res.admitted.instrumented.buffer as ArrayBuffer] : []
    port.postMessage(res, transfer)
  })
})

async function handle(req: AdmitRequest): Promise<AdmitResponse> {
  try {
    const { trust, smoke } = await ready
    const admitted = await admitBundle(req.file, { trustPolicy: trust, policy: init.policy, smoke, now: new Date(req.now) })
    if (admitted.instrumented && admitted.instrumented.byteOffset !== 0) admitted.instrumented = admitted.instrumented.slice()
    return { id: req.id, ok: true, admitted }
  } catch (e) {
    if (e instanceof RegistryError) return { id: req.id, ok: false, error: { code: e.code, message: e.message, status: e.status, step: e.step } }
    const err = e as { code?: unknown; message?: unknown }
    return { id: req.id, ok: false, error: { code: typeof err?.code === 'string' ? err.code : RegistryErrorCode.Internal, message: String(err?.message ?? e), status: 500 } }
  }
}
