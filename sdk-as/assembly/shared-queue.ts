// Named FIFO queues shared across instances; the owner's root context gets `onQueueReady`.

import { dequeueSharedQueue, enqueueSharedQueue, registerSharedQueue, resolveSharedQueue } from "./hostcalls";
import { Status } from "./types";

/**
 * A shared queue handle.
 *
 * @example
 * // in the consumer's onConfigure:
 * this.queue = SharedQueue.register("events");
 * // in onQueueReady(queueId):
 * let item = this.queue!.dequeue();
 * while (item !== null) { ...; item = this.queue!.dequeue(); }
 */
export class SharedQueue {
  constructor(public readonly id: u32) {}

  /** Creates (or opens) the queue `name` owned by this VM; null on failure. */
  static register(name: string): SharedQueue | null {
    const id = registerSharedQueue(name);
    return id == 0 ? null : new SharedQueue(id);
  }

  /** Opens the existing queue `name` of VM `vmId`; null when there is none. */
  static resolve(vmId: string, name: string): SharedQueue | null {
    const id = resolveSharedQueue(vmId, name);
    return id == 0 ? null : new SharedQueue(id);
  }

  enqueue(data: ArrayBuffer): Status {
    return enqueueSharedQueue(this.id, data);
  }

  enqueueString(data: string): Status {
    return enqueueSharedQueue(this.id, String.UTF8.encode(data));
  }

  /** The oldest item, or null when the queue is empty. */
  dequeue(): ArrayBuffer | null {
    return dequeueSharedQueue(this.id);
  }
}
