export type AuditEvent =
  | "decision"
  | "checkout"
  | "reveal"
  | "renew"
  | "tool_call"
  | "checkin"
  | "expiry"
  | "revocation"
  | "rotation_started"
  | "rotation_succeeded"
  | "rotation_failed"
  | "quarantine"
  | "registration"
  | "admin";

/** One audit record; fields are kept apart, never folded into a message. Never a secret. */
export interface AuditFields {
  readonly event: AuditEvent;
  readonly agent?: string | undefined;
  readonly agent_chain?: readonly string[] | undefined;
  readonly approver?: string | undefined;
  readonly task_id?: string | undefined;
  readonly intent?: string | undefined;
  readonly tool?: string | undefined;
  readonly scope?: string | undefined;
  readonly resource?: string | undefined;
  readonly account?: string | undefined;
  readonly lease_id?: string | undefined;
  readonly decision?: "allow" | "deny" | "approval_required" | undefined;
  readonly policies?: readonly string[] | undefined;
  readonly reason?: string | undefined;
  readonly request_id?: string | undefined;
  readonly target?: string | undefined;
  readonly digest?: string | undefined;
}

export interface AuditRecord extends AuditFields {
  readonly time: string;
  readonly sidecar: string;
  readonly seq: number;
  /** SHA-256 (hex) of the previous record's canonical JSON; 64 zeros for the first. */
  readonly prev: string;
  /** SHA-256 (hex) of this record's canonical JSON without `hash`. */
  readonly hash: string;
}

export interface AuditSink {
  append(fields: AuditFields): Promise<void>;
  /** False after a write failed: the sidecar then refuses checkouts (fail closed). */
  healthy(): boolean;
}
