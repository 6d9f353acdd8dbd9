import type { LeaseRecord, ResourceStats } from "../leases/index.js";

export { eventStreamKey } from "../events/index.js";

/**
 * One entry of the event stream, as operators' tools receive it. `type` is a `LeaseEventType`
 * for everything this version writes; a reader keeps whatever else it finds as it is.
 */
export interface StreamEvent {
  /** The Redis stream id (`<ms>-<seq>`); also the SSE `id`. */
  readonly id: string;
  /** RFC 3339 UTC, from the stream id's milliseconds. */
  readonly time: string;
  readonly type: string;
  readonly resource: string;
  readonly account?: string | undefined;
  readonly lease_id?: string | undefined;
  readonly agent?: string | undefined;
  readonly reason?: string | undefined;
  readonly approval_id?: string | undefined;
}

/** The lease store's reads the ops layer needs; `LeaseStore` satisfies it. */
export interface LeaseStateSource {
  resources(): Promise<string[]>;
  /** One resource's counts, computed in Redis (no lease is read into the process). */
  resourceStats(resource: string): Promise<ResourceStats>;
  /** Active leases whose expires_at falls in [fromMs, toMs]. */
  expiringBetween(resource: string, fromMs: number, toMs: number): Promise<LeaseRecord[]>;
  /** Redis' clock, ms. */
  now(): Promise<number>;
}
