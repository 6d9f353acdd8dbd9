import type { AuditFields, AuditSink } from "../audit/index.js";
import type { LeaseRecord } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ProxyProtocol } from "./types.js";

/** Lease fields every proxy audit record carries, once the lease is known. */
export function leaseAuditFields(lease: LeaseRecord): AuditFields {
  return {
    event: "tool_call",
    agent: lease.agent,
    agent_chain: lease.agent_chain,
    approver: lease.approver,
    task_id: lease.task.id,
    intent: lease.intent.action,
    resource: lease.resource,
    account: lease.account,
    lease_id: lease.id,
  };
}

/** A user-supplied lease id, cut to a length fit for an audit record. */
function claimed(id: string | undefined): string | undefined {
  return id === undefined ? undefined : id.slice(0, 100);
}

/**
 * The one audit record of a proxied connection: who (lease, agent, account), from where,
 * how many bytes each way, how long, and how it ended (or why it was refused).
 */
export class SessionRecord {
  /** The lease, once its token has been checked. */
  lease: LeaseRecord | undefined;
  /** The lease id the client named, before it is checked. */
  claimedLeaseId: string | undefined;
  /** Why the connection was refused before it was spliced, e.g. "28P01 lease_revoked". */
  refusal: string | undefined;
  /** The database the client asked for (PostgreSQL), once known. */
  database: string | undefined;
  /** How a spliced session ended. */
  ending = "closed";
  bytesIn = 0;
  bytesOut = 0;
  private readonly started = Date.now();
  private written = false;

  constructor(
    private readonly o: {
      readonly audit: AuditSink;
      readonly log: Logger;
      readonly resource: string;
      readonly protocol: ProxyProtocol;
      readonly client: string;
      readonly requestId: string;
    },
  ) {}

  get client(): string {
    return this.o.client;
  }

  get requestId(): string {
    return this.o.requestId;
  }

  /** Writes the record once; a failed write is logged (the connection is gone either way). */
  finish(): void {
    if (this.written) return;
    this.written = true;
    const base: AuditFields = this.lease
      ? leaseAuditFields(this.lease)
      : { event: "tool_call", resource: this.o.resource, lease_id: claimed(this.claimedLeaseId) };
    const fields: AuditFields = {
      ...base,
      scope: "proxy_session",
      tool: this.o.protocol,
      target: this.o.client,
      request_id: this.o.requestId,
      decision: this.refusal === undefined ? "allow" : "deny",
      reason: this.refusal ?? this.ending,
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      duration_ms: Date.now() - this.started,
      ...(this.database === undefined ? {} : { database: this.database }),
    };
    this.o.audit.append(fields).catch((err: unknown) => {
      this.o.log.error(
        { err: { message: (err as Error).message }, resource: this.o.resource },
        "proxy audit write failed",
      );
    });
    this.o.log.debug(
      {
        resource: this.o.resource,
        lease_id: this.lease?.id,
        client: this.o.client,
        refusal: this.refusal,
        ending: this.ending,
        bytes_in: this.bytesIn,
        bytes_out: this.bytesOut,
      },
      "proxy connection closed",
    );
  }
}
