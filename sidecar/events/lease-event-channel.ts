import type { LeaseRecord } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import type { LeaseEvent, LeaseEventListener, LeaseEventPublisher } from "./types.js";

/** The stream every sidecar of a cluster appends lease events to. */
export function eventStreamKey(prefix: string): string {
  return `${prefix}events`;
}

/** One stream entry's fields, as operators' tools (SSE, webhook, `leases watch`) read them. */
export interface StreamEntryFields {
  readonly type: LeaseEvent["type"];
  readonly resource: string;
  readonly account?: string | undefined;
  readonly lease_id?: string | undefined;
  readonly agent?: string | undefined;
  readonly reason?: string | undefined;
  readonly approval_id?: string | undefined;
}

/** The entry of a lease event; fields written out, not spread (a spread followed by fields costs µs in Node 20). */
function ofLease(type: LeaseEvent["type"], lease: LeaseRecord, reason?: string): StreamEntryFields {
  const { resource, account, id: lease_id, agent } = lease;
  return reason === undefined
    ? { type, resource, account, lease_id, agent }
    : { type, resource, account, lease_id, agent, reason };
}

/**
 * The event as it is written to the stream: public fields only (never the whole lease record),
 * the same entry format as `LeaseStore.emit`.
 */
export function streamEntry(e: LeaseEvent): StreamEntryFields {
  switch (e.type) {
    case "issued":
    case "renewed":
      return ofLease(e.type, e.lease);
    case "ended":
      return ofLease(e.type, e.lease, e.reason);
    case "expiring_soon":
      return ofLease(e.type, e.lease, `expires in ${e.seconds_left}s`);
    case "caller_mismatch":
      return ofLease(
        e.type,
        e.lease,
        `${e.part === "unattested" ? "caller not attested" : `${e.part} differs`} (${e.action === "revoke" ? "revoked" : "refused"})`,
      );
    case "rotated":
      return { type: e.type, resource: e.resource, account: e.account, lease_id: e.lease_id };
    case "rotation_failed":
    case "quarantined":
      return { type: e.type, resource: e.resource, account: e.account, reason: e.reason };
    case "approval_requested":
      return { type: e.type, resource: e.resource, agent: e.agent, approval_id: e.approval_id };
    case "approval_decided":
      return {
        type: e.type,
        resource: e.resource,
        agent: e.agent,
        reason: e.decision,
        approval_id: e.approval_id,
      };
  }
}

/** Approximate cap on the event stream's length unless configured. */
export const DEFAULT_EVENT_STREAM_MAXLEN = 10_000;

export interface LeaseEventChannelOptions {
  /** The sidecar's shared connection (XADD only; never blocks). */
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly log: Logger;
  /** Approximate cap on the stream's length (XADD MAXLEN ~). @default 10000 */
  readonly maxLen?: number | undefined;
}

/**
 * The one way lease events travel. `publish` tells this sidecar's subscribers (metrics; they
 * get the lease record), then appends the event to the cluster's Redis stream, which the SSE hub,
 * the alert webhook and `leases watch` of every sidecar read.
 */
export class LeaseEventChannel implements LeaseEventPublisher {
  private readonly listeners = new Set<LeaseEventListener>();

  constructor(private readonly o: LeaseEventChannelOptions) {}

  /** The stream and its length cap, for a script that appends an entry itself (`LeaseStore` checkout). */
  get stream(): { readonly key: string; readonly maxLen: number } {
    return { key: eventStreamKey(this.o.prefix), maxLen: this.o.maxLen ?? DEFAULT_EVENT_STREAM_MAXLEN };
  }

  /** Adds a local subscriber; returns the function that removes it. */
  subscribe(listener: LeaseEventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async publish(event: LeaseEvent, opts: { readonly inStream?: boolean } = {}): Promise<void> {
    // Local subscribers first and whatever the stream does: an ended lease must reach them (the
    // proxy closes its sessions) even while Redis is failing.
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.o.log.warn(
          { err: { message: (err as Error).message }, event: event.type },
          "lease event listener failed",
        );
      }
    }
    if (opts.inStream) return;
    const flat = Object.entries(streamEntry(event)).flatMap(([k, v]) =>
      v === undefined ? [] : [k, String(v)],
    );
    await this.o.redis.xadd(
      eventStreamKey(this.o.prefix),
      "MAXLEN",
      "~",
      String(this.o.maxLen ?? DEFAULT_EVENT_STREAM_MAXLEN),
      "*",
      ...flat,
    );
  }
}
