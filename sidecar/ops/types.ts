import type { AccountStatus, LeaseEvent, LeaseRecord } from "../leases/index.js";

/** The stream every sidecar of a cluster appends lease events to. */
export function eventStreamKey(prefix: string): string {
  return `${prefix}events`;
}

/**
 * Event types the ops layer adds to the lease event stream besides the lease store's own:
 * approval changes (so every sidecar's dashboard sees them).
 */
export type OpsEventType = LeaseEvent["type"] | "approval_requested" | "approval_decided";

/** One entry of the event stream, as operators' tools receive it. */
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

/** Appends one event to the stream; `LeaseStore.emit` satisfies it. */
export type EmitLeaseEvent = (event: LeaseEvent) => Promise<void>;
