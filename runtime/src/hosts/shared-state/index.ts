/**
 * Process-wide shared data (key/value with compare-and-swap) and shared queues: the state
 * proxy-wasm filters share across requests and instances (`proxy_get/set_shared_data`,
 * `proxy_register/resolve/enqueue/dequeue_shared_queue`). Hosts namespace keys per VM/plugin
 * if they need to; these stores only enforce the semantics and the bounds.
 *
 * Bounds: filters are untrusted, so total bytes and queue depth are capped; exceeding them
 * throws a `SharedStateError` with code `quota_exceeded` (hosts map it to a status code).
 *
 * @example
 * const data = createSharedData()
 * data.set('tokens', bytes, 0)            // unconditional
 * const cur = data.get('tokens')!
 * data.set('tokens', next, cur.cas)       // false if someone wrote in between
 */
import type { SharedData, SharedQueues } from '../host-services.ts'

export class SharedStateError extends Error {
  readonly code = 'quota_exceeded'
  constructor(message: string) {
    super(message)
    this.name = 'SharedStateError'
  }
}

export interface SharedDataOptions {
  /** Total bytes of keys + values. Default 64 MiB. */
  maxBytes?: number
}

interface Entry {
  value: Uint8Array
  cas: number
}

/** Shared data with Envoy's CAS semantics: a non-zero `cas` must match an existing key's token; a new key is always set. */
export function createSharedData(opts: SharedDataOptions = {}): SharedData {
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024
  const map = new Map<string, Entry>()
  let bytes = 0
  let nextCas = 1
  return {
    get(key) {
      const e = map.get(key)
      return e && { value: e.value, cas: e.cas }
    },
    set(key, value, cas) {
      const e = map.get(key)
      if (e && cas !== 0 && cas !== e.cas) return false
      const delta = e ? value.length - e.value.length : key.length + value.length
      if (bytes + delta > maxBytes) throw new SharedStateError(`shared data is full (${maxBytes} bytes)`)
      bytes += delta
      // Copy: the caller's bytes may be a view of a sandbox's memory that changes later.
      const copy = value.slice()
      // CAS tokens stay in u32 (they cross the ABI as u32) and never become 0 (0 means "no CAS").
      const token = nextCas
      nextCas = nextCas >= 0xffffffff ? 1 : nextCas + 1
      if (e) {
        e.value = copy
        e.cas = token
      } else map.set(key, { value: copy, cas: token })
      return true
    },
  }
}

export interface SharedQueuesOptions {
  /** Items per queue before enqueue is refused. Default 10,000. */
  maxDepth?: number
  /** Number of queues. Default 1,024. */
  maxQueues?: number
  /** Bytes held by all queues together. Default 64 MiB. */
  maxBytes?: number
}

interface Queue {
  items: Uint8Array[]
  head: number
  listeners: Set<() => void>
  scheduled: boolean
}

/** Named FIFO queues; ids are small positive integers, never reused while the process lives. */
export function createSharedQueues(opts: SharedQueuesOptions = {}): SharedQueues {
  const maxDepth = opts.maxDepth ?? 10_000
  const maxQueues = opts.maxQueues ?? 1024
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024
  let bytes = 0
  const byName = new Map<string, number>()
  const byId = new Map<number, Queue>()
  let nextId = 1
  const keyOf = (vmId: string, name: string) => `${vmId}\u0000${name}`
  return {
    register(vmId, name) {
      const k = keyOf(vmId, name)
      const existing = byName.get(k)
      if (existing !== undefined) return existing
      if (byId.size >= maxQueues) throw new SharedStateError(`too many shared queues (${maxQueues})`)
      const id = nextId++
      byName.set(k, id)
      byId.set(id, { items: [], head: 0, listeners: new Set(), scheduled: false })
      return id
    },
    resolve(vmId, name) {
      return byName.get(keyOf(vmId, name))
    },
    enqueue(id, data) {
      const q = byId.get(id)
      if (!q) return false
      if (q.items.length - q.head >= maxDepth) throw new SharedStateError(`shared queue ${id} is full (${maxDepth} items)`)
      if (bytes + data.length > maxBytes) throw new SharedStateError(`shared queues are full (${maxBytes} bytes)`)
      bytes += data.length
      q.items.push(data.slice())
      // Listeners run a sandbox's callback: never inside the enqueuing sandbox's own host call,
      // and on the next event-loop turn, coalesced per queue: a callback that enqueues again
      // must not become a microtask loop that starves I/O. Consumers drain until empty.
      if (!q.scheduled && q.listeners.size) {
        q.scheduled = true
        setImmediate(() => {
          q.scheduled = false
          for (const l of q.listeners) {
            try {
              l()
            } catch {
              // a listener's failure is its own host's business
            }
          }
        })
      }
      return true
    },
    dequeue(id) {
      const q = byId.get(id)
      if (!q) return null
      if (q.head >= q.items.length) return undefined
      const item = q.items[q.head]!
      q.items[q.head++] = EMPTY
      bytes -= item.length
      // Compact now and then so a long-lived queue does not keep a growing array.
      if (q.head > 1024 && q.head * 2 > q.items.length) {
        q.items = q.items.slice(q.head)
        q.head = 0
      }
      return item
    },
    onEnqueue(id, listener) {
      const q = byId.get(id)
      if (!q) return () => {}
      q.listeners.add(listener)
      return () => q.listeners.delete(listener)
    },
  }
}

const EMPTY = new Uint8Array(0)
