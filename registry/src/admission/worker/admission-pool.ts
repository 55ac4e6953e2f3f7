/**
 * The registry's side of the admission worker: one long-lived thread, started on first use,
 * restarted after it dies or is stopped. Each admission has a hard wall-clock limit, counted
 * from when the thread is ready (its start — binaryen, the Wasm host — is not the bundle's
 * fault); past it the thread is terminated, which interrupts even a module stuck in one long
 * call, and the publish is refused with `admission_timeout`.
 */
import { Worker } from 'node:worker_threads'
import { RegistryError, RegistryErrorCode, AdmissionStep } from '../../errors.ts'
import type { Admitted } from '../pipeline.ts'
import type { AdmitRequest, AdmitResponse, WorkerInit } from './protocol.ts'

const ENTRY = new URL('./entry.js', import.meta.url)

interface Job {
  request: AdmitRequest
  resolve: (a: Admitted) => void
  reject: (e: Error) => void
  timer?: NodeJS.Timeout
}

interface Thread {
  worker: Worker
  ready: boolean
  /** Sent (ready) or waiting for the thread to be ready. */
  jobs: Map<number, Job>
}

export class AdmissionPool {
  readonly #init: WorkerInit
  readonly #timeoutMs: number
  #thread: Thread | undefined
  #nextId = 1
  #closed = false

  /** `timeoutMs`: hard limit on one admission once the thread is ready. */
  constructor(init: WorkerInit, timeoutMs: number) {
    this.#init = init
    this.#timeoutMs = timeoutMs
  }

  admit(file: Uint8Array, now: Date): Promise<Admitted> {
    if (this.#closed) return Promise.reject(new RegistryError(RegistryErrorCode.Closed, 'registry is closed', { status: 503 }))
    const t = this.#ensure()
    return new Promise<Admitted>((resolve, reject) => {
      const job: Job = { request: { id: this.#nextId++, file, now: now.getTime() }, resolve, reject }
      t.jobs.set(job.request.id, job)
      if (t.ready) this.#send(t, job)
    })
  }

  /** Starts the thread now, so the first publish does not wait for binaryen and the hosts. */
  warm(): void {
    if (!this.#closed) this.#ensure()
  }

  async close(): Promise<void> {
    this.#closed = true
    const t = this.#thread
    if (t) this.#stop(t, 'registry closed')
  }

  #send(t: Thread, job: Job): void {
    job.timer = setTimeout(() => {
      t.jobs.delete(job.request.id)
      job.reject(new RegistryError(RegistryErrorCode.AdmissionTimeout, `admission took longer than ${this.#timeoutMs} ms; stopped`, { status: 422, step: AdmissionStep.Smoke }))
      // Other admissions in that thread go down with it.
      this.#stop(t, 'admission worker stopped after another admission timed out')
    }, this.#timeoutMs)
    t.worker.postMessage(job.request)
  }

  #ensure(): Thread {
    if (this.#thread) return this.#thread
    const worker = new Worker(ENTRY, { workerData: this.#init, execArgv: [], stdout: false, stderr: false })
    const t: Thread = { worker, ready: false, jobs: new Map() }
    worker.on('message', (res: AdmitResponse | { ready: true }) => {
      if ('ready' in res) {
        t.ready = true
        for (const job of t.jobs.values()) this.#send(t, job)
        return
      }
      const job = t.jobs.get(res.id)
      if (!job) return
      t.jobs.delete(res.id)
      clearTimeout(job.timer)
      if (res.ok) job.resolve(res.admitted)
      else job.reject(new RegistryError(res.error.code, res.error.message, { status: res.error.status, step: res.error.step as AdmissionStep | undefined }))
    })
    worker.on('error', (e) => this.#stop(t, `admission worker failed: ${e.message}`))
    worker.on('exit', () => this.#stop(t, 'admission worker exited'))
    this.#thread = t
    return t
  }

  /** Fails this thread's jobs and terminates it; the next admission starts a fresh one. */
  #stop(t: Thread, why: string): void {
    if (this.#thread === t) this.#thread = undefined
    for (const job of t.jobs.values()) {
      clearTimeout(job.timer)
      job.reject(new RegistryError(RegistryErrorCode.Internal, why, { status: 500 }))
    }
    t.jobs.clear()
    void t.worker.terminate()
  }
}
