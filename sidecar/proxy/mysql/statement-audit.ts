import { createHash } from "node:crypto";
import type { AuditFields, AuditSink } from "../../audit/index.js";
import type { LeaseRecord } from "../../leases/index.js";
import { leaseAuditFields } from "../session-record.js";
import type { SpliceDirection } from "../splice.js";
import type { MysqlStatement } from "./command-guard.js";

/** Pending audit writes of one session past which the client is paused until they land. */
const HIGH_WATER = 256;
const LOW_WATER = 64;

/**
 * Statements that may carry a password in MySQL or MariaDB (`IDENTIFIED BY`, `PASSWORD(...)`,
 * `SET PASSWORD`): their text is never recorded, only their digest. Matching anywhere, comments
 * and literals included, errs on the side of leaving text out.
 */
export function mayCarryPassword(text: string): boolean {
  return /identified|password/i.test(text);
}

export interface MysqlStatementAuditOptions {
  readonly mode: "digest" | "text";
  readonly audit: AuditSink;
  readonly lease: LeaseRecord;
  readonly client: string;
  readonly requestId: string;
  /** Called once if a record cannot be written: the session must end (fail closed). */
  readonly onFailure: (err: Error) => void;
}

/**
 * One `tool_call` record per statement the agent sends through a MySQL listener (COM_QUERY and
 * COM_STMT_PREPARE), as the PostgreSQL listener's StatementAuditor does: its SHA-256 and, in
 * "text" mode, its text. The client is paused while too many records are still being written.
 */
export class MysqlStatementAuditor {
  private pending = 0;
  private holding = false;
  private direction: SpliceDirection | undefined;
  private failed = false;

  constructor(private readonly o: MysqlStatementAuditOptions) {}

  /** The client-to-backend direction to pause under pressure. */
  attach(direction: SpliceDirection): void {
    this.direction = direction;
  }

  onStatement = (s: MysqlStatement): void => {
    if (this.failed) return;
    const text = s.text.toString("utf8");
    const fields: AuditFields = {
      ...leaseAuditFields(this.o.lease),
      scope: "proxy_statement",
      tool: "mysql",
      target: this.o.client,
      request_id: this.o.requestId,
      digest: `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`,
      statement: this.o.mode === "text" && !mayCarryPassword(text) ? text : undefined,
      truncated: s.truncated ? true : undefined,
    };
    this.pending += 1;
    if (this.pending >= HIGH_WATER && !this.holding && this.direction) {
      this.holding = true;
      this.direction.hold();
    }
    this.o.audit.append(fields).then(
      () => this.settle(),
      (err: unknown) => {
        this.settle();
        if (!this.failed) {
          this.failed = true;
          this.o.onFailure(err as Error);
        }
      },
    );
  };

  private settle(): void {
    this.pending -= 1;
    if (this.holding && this.pending <= LOW_WATER) {
      this.holding = false;
      this.direction?.release();
    }
  }
}
