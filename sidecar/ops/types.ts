import type { AccountStatus, LeaseRecord } from "../leases/index.js";

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
  activeLeases(resource: string): Promise<LeaseRecord[]>;
  /** Active leases whose expires_at falls in [fromMs, toMs]. */
  expiringBetween(resource: string, fromMs: number, toMs: number): Promise<LeaseRecord[]>;
  accounts(resource: string): Promise<AccountStatus[]>;
  /** Redis' clock, ms. */
  now(): Promise<number>;
}
