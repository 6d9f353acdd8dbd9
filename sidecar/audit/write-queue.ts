import { TemplatedFields } from "./record-template.js";
import type { AuditFields } from "./types.js";

export const DEFAULT_MAX_BATCH = 1000;
export const DEFAULT_MAX_QUEUED = 50_000;
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

/** A record waiting for its batch. */
export interface Pending {
  readonly fields: AuditFields | TemplatedFields;
  readonly time: string;
  /** Told once: no argument when the record is on disk, the refusal when it could not be. */
  readonly done: ((err?: Error) => void) | undefined;
  /** A record nobody awaits (appendDeferred). */
  readonly deferred: boolean;
  /** Its rough size, counted against the deferred bound (0 for an awaited record). */
  readonly bytes: number;
}

export interface WriteQueueLimits {
  readonly maxBatch?: number | undefined;
  readonly maxQueued?: number | undefined;
  readonly maxQueuedBytes?: number | undefined;
}

/** About how many bytes a deferred record holds while it waits (its statement text dominates). */
function roughBytes(fields: AuditFields | TemplatedFields): number {
  if (fields instanceof TemplatedFields) {
    const text = (fields.values as Readonly<Record<string, unknown>>).statement;
    return 512 + (typeof text === "string" ? text.length : 0);
  }
  return 512 + (fields.statement?.length ?? 0) + (fields.reason?.length ?? 0);
}

/**
 * The audit log's records waiting to be written, in append order (the chain's order). Awaited
 * records are never refused here; deferred ones are bounded in count and rough bytes, and a
 * deferred record past the bound is dropped and counted.
 */
export class WriteQueue {
  private items: Pending[] = [];
  /** Queued records someone awaits. */
  awaited = 0;
  /** Queued deferred records, and their rough size. */
  deferred = 0;
  private deferredBytes = 0;
  /** Deferred records dropped and not yet told in an `audit_dropped` record. */
  dropped = 0;
  /** Deferred records dropped since the queue was made. */
  droppedTotal = 0;
  readonly maxBatch: number;
  private readonly maxQueued: number;
  private readonly maxQueuedBytes: number;

  constructor(limits: WriteQueueLimits) {
    this.maxBatch = Math.max(1, limits.maxBatch ?? DEFAULT_MAX_BATCH);
    this.maxQueued = Math.max(1, limits.maxQueued ?? DEFAULT_MAX_QUEUED);
    this.maxQueuedBytes = Math.max(1, limits.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES);
  }

  get length(): number {
    return this.items.length;
  }

  pushAwaited(fields: AuditFields, time: string, done: (err?: Error) => void): void {
    this.items.push({ fields, time, done, deferred: false, bytes: 0 });
    this.awaited += 1;
  }

  /** Queues a deferred record; false (and counted) when the queue is full. */
  pushDeferred(
    fields: AuditFields | TemplatedFields,
    time: string,
    done: ((err?: Error) => void) | undefined,
  ): boolean {
    const bytes = roughBytes(fields);
    if (this.deferred >= this.maxQueued || this.deferredBytes + bytes > this.maxQueuedBytes) {
      this.dropped += 1;
      this.droppedTotal += 1;
      return false;
    }
    this.items.push({ fields, time, done, deferred: true, bytes });
    this.deferred += 1;
    this.deferredBytes += bytes;
    return true;
  }

  /** Whether a batch is full of deferred records. */
  full(): boolean {
    return this.deferred >= this.maxBatch;
  }

  /** The next batch: everything when an awaited record waits, else `maxBatch` records. */
  take(): Pending[] {
    const batch = this.items.splice(0, this.awaited > 0 ? this.items.length : this.maxBatch);
    for (const p of batch) {
      if (p.deferred) {
        this.deferred -= 1;
        this.deferredBytes -= p.bytes;
      } else this.awaited -= 1;
    }
    return batch;
  }
}
