import type { CallerMismatchAction, CallerPart, EndReason, LeaseRecord } from "../leases/index.js";

/**
 * Everything that happens to leases, accounts and approvals that operators' tools follow, as one
 * discriminated union. Lease events carry the lease record itself: local subscribers (metrics,
 * the proxy) get all of it, while the stream gets its public fields only (see `streamEntry`).
 */
export type LeaseEvent =
  | { readonly type: "issued"; readonly lease: LeaseRecord }
  | { readonly type: "renewed"; readonly lease: LeaseRecord }
  | { readonly type: "ended"; readonly lease: LeaseRecord; readonly reason: EndReason }
  | { readonly type: "expiring_soon"; readonly lease: LeaseRecord; readonly seconds_left: number }
  | {
      /** A bound lease was used by another local caller (issue 22); `part` is the first that differed. */
      readonly type: "caller_mismatch";
      readonly lease: LeaseRecord;
      readonly part: CallerPart | "unattested" | "host";
      readonly action: CallerMismatchAction;
    }
  | {
      readonly type: "rotated";
      readonly resource: string;
      readonly account: string;
      readonly lease_id?: string | undefined;
    }
  | {
      readonly type: "rotation_failed" | "quarantined";
      readonly resource: string;
      readonly account: string;
      readonly reason: string;
    }
  | {
      readonly type: "approval_requested";
      readonly resource: string;
      readonly agent?: string | undefined;
      readonly approval_id: string;
    }
  | {
      readonly type: "approval_decided";
      readonly resource: string;
      readonly agent?: string | undefined;
      readonly approval_id?: string | undefined;
      readonly decision: "approved" | "denied";
    };

export type LeaseEventType = LeaseEvent["type"];

/** Every event type, in the order of the union. */
export const LEASE_EVENT_TYPES = [
  "issued",
  "renewed",
  "ended",
  "expiring_soon",
  "caller_mismatch",
  "rotated",
  "rotation_failed",
  "quarantined",
  "approval_requested",
  "approval_decided",
] as const satisfies readonly LeaseEventType[];

/** Told of each event this sidecar publishes; must not throw (a throw is logged and ignored). */
export type LeaseEventListener = (event: LeaseEvent) => void;

/** What a producer of events needs: `LeaseEventChannel` satisfies it. */
export interface LeaseEventPublisher {
  /**
   * Tells this sidecar's subscribers at once, then appends the event to the cluster's stream.
   * Rejects when the stream write fails (the local subscribers have heard it regardless).
   * `inStream`: the stream already has the entry (the lease script wrote it), so tell only this
   * sidecar's subscribers.
   */
  publish(event: LeaseEvent, opts?: { readonly inStream?: boolean }): Promise<void>;
}
