import type { AuditRecord } from "../audit/index.js";
import type { LeaseEventPublisher } from "../events/index.js";
import type { Logger } from "../logger.js";
import type { OpsMetrics } from "./metrics.js";

export interface AuditTapOptions {
  readonly metrics: OpsMetrics;
  /** Where approval events are published: the sidecar's lease-event channel. */
  readonly events: LeaseEventPublisher;
  readonly log: Logger;
}

/**
 * The callback for `AuditLog.open(file, id, onRecord)`: counts each record into the metrics and
 * publishes approval decisions as lease events (`approval_requested`, `approval_decided`, with
 * the record's `approval_id`), so every sidecar's dashboard learns of them without polling.
 * Never throws.
 */
export function createAuditTap(o: AuditTapOptions): (rec: AuditRecord) => void {
  const { events } = o;
  const publish = (event: Parameters<LeaseEventPublisher["publish"]>[0]) => {
    events
      .publish(event)
      .catch((err: unknown) =>
        o.log.warn({ err: { message: (err as Error).message } }, "could not publish an approval event"),
      );
  };
  return (rec) => {
    try {
      o.metrics.observeAudit(rec);
    } catch (err) {
      o.log.warn({ err: { message: (err as Error).message } }, "metrics could not count an audit record");
    }
    if (rec.event !== "decision" || !rec.resource) return;
    if (rec.scope === "approval_requested" && rec.approval_id) {
      publish({
        type: "approval_requested",
        resource: rec.resource,
        agent: rec.agent,
        approval_id: rec.approval_id,
      });
    } else if (rec.scope === "approved" || rec.scope === "denied") {
      publish({
        type: "approval_decided",
        resource: rec.resource,
        agent: rec.agent,
        approval_id: rec.approval_id,
        decision: rec.scope,
      });
    }
  };
}
