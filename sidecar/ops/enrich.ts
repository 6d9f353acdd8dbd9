import type { LeaseEventType } from "../events/index.js";
import type { EnrichedEvent } from "./event-hub.js";
import { type OpsServices, pendingApprovals } from "./snapshot.js";
import type { StreamEvent } from "./types.js";

const LEASE_TYPES: ReadonlySet<string> = new Set<LeaseEventType>([
  "issued",
  "renewed",
  "expiring_soon",
  "ended",
]);

/**
 * Attaches what viewers need to an event: the lease (task, intent, times) for lease events,
 * the pending approvals for approval events. A lease that is gone is left out.
 */
export function createEnricher(services: OpsServices): (e: StreamEvent) => Promise<EnrichedEvent> {
  return async (e) => {
    if (LEASE_TYPES.has(e.type) && e.lease_id) {
      const lease = await services.leases.getAny(e.lease_id).catch(() => undefined);
      // Object.assign, not a spread followed by a field (µs per event in Node 20's V8).
      return lease ? Object.assign({}, e, { lease }) : e;
    }
    if (e.type === "approval_requested" || e.type === "approval_decided") {
      return Object.assign({}, e, { approvals: (await pendingApprovals(services)) ?? [] });
    }
    return e;
  };
}
