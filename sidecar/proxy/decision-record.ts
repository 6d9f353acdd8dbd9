import { createHash } from "node:crypto";
import type { SessionContext } from "./session-context.js";
import { leaseAuditFields, type SessionRecord } from "./session-record.js";
import type { ProxyProtocol } from "./types.js";

/** The `sha256:<hex>` of a statement or command, the only trace of it a refusal record keeps. */
export function digestOf(data: string | Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export interface ProxyDecision {
  readonly ctx: SessionContext;
  readonly record: SessionRecord;
  readonly tool: ProxyProtocol;
  /** `statement` (policy), `proxy_statement` (the sealed-password guard), `proxy_limit` (`proxy.limits`). */
  readonly scope: "statement" | "proxy_statement" | "proxy_limit";
  readonly reason: string;
  readonly digest?: string | undefined;
  readonly policies?: readonly string[] | undefined;
  /** The warning logged with it. */
  readonly message: string;
  /** The record could not be written: the session must end (fail closed). */
  readonly onFailure: (why: string) => void;
}

/**
 * A `deny` decision record of the listener on the session's lease (none before the lease is
 * known), and a warning in the log; a record that cannot be written ends the session.
 */
export function recordDenial(d: ProxyDecision): void {
  const lease = d.record.lease;
  if (!lease) return;
  d.ctx.log.warn(
    { resource: d.ctx.resource, lease_id: lease.id, client: d.record.client, scope: d.scope },
    d.message,
  );
  d.ctx.audit
    .append({
      ...leaseAuditFields(lease),
      event: "decision",
      scope: d.scope,
      decision: "deny",
      tool: d.tool,
      target: d.record.client,
      request_id: d.record.requestId,
      digest: d.digest,
      reason: d.reason,
      ...(d.policies ? { policies: [...d.policies] } : {}),
    })
    .catch((err: unknown) => {
      d.ctx.log.error(
        { err: { message: (err as Error).message }, resource: d.ctx.resource },
        "proxy audit write failed",
      );
      d.onFailure("the audit log cannot be written");
    });
}
