import type { RedisClient } from "../leases/lease-store.js";
import type { AuditRecord } from "../audit/index.js";
import type { Logger } from "../logger.js";
import type { OpsMetrics } from "./metrics.js";
import { eventStreamKey } from "./types.js";

export interface AuditTapOptions {
  readonly metrics: OpsMetrics;
  /** The sidecar's shared connection (XADD only; never blocks). */
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly log: Logger;
}

/**
 * The callback for `AuditLog.open(file, id, onRecord)`: counts each record into the metrics and
 * turns approval decisions into stream events (`approval_requested`, `approval_decided`), so
 * every sidecar's dashboard learns of them without polling. Never throws.
 */
export function createAuditTap(o: AuditTapOptions): (rec: AuditRecord) => void {
  const stream = eventStreamKey(o.prefix);
  const emit = (fields: Record<string, string | undefined>) => {
    const flat = Object.entries(fields).flatMap(([k, v]) => (v === undefined ? [] : [k, v]));
    o.redis
      .xadd(stream, "MAXLEN", "~", "10000", "*", ...flat)
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
    if (rec.scope === "approval_requested") {
      // The lease service records the new approval's id as the decision's reason.
      emit({ type: "approval_requested", resource: rec.resource, agent: rec.agent, approval_id: rec.reason });
    } else if (rec.scope === "approved" || rec.scope === "denied") {
      emit({ type: "approval_decided", resource: rec.resource, agent: rec.agent, reason: rec.scope });
    }
  };
}
