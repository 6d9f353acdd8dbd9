import { createHash } from "node:crypto";
import type { AuditSink } from "../audit/index.js";
import type { LeaseRecord } from "../leases/index.js";
import { leaseAuditFields } from "./session-record.js";
import type { SpliceDirection } from "./splice.js";

/** Pending audit writes of one session past which the client is paused until they land. */
const HIGH_WATER = 256;
const LOW_WATER = 64;

export interface StatementAuditOptions {
  readonly mode: "digest" | "text";
  readonly audit: AuditSink;
  readonly lease: LeaseRecord;
  readonly client: string;
  readonly requestId: string;
  /** Called once if a record cannot be written: the session must end (fail closed). */
  readonly onFailure: (err: Error) => void;
}

/**
 * A listener session's statement records: one `tool_call` (scope `proxy_statement`) per
 * statement, with its SHA-256 and, in "text" mode, its text unless it may carry a password. The
 * client is paused while too many records are still being written, so the trail cannot fall
 * behind without bound; the first record that cannot be written ends the session.
 */
export class StatementTrail {
  private pending = 0;
  private holding = false;
  private direction: SpliceDirection | undefined;
  private failed = false;

  constructor(
    private readonly o: StatementAuditOptions,
    private readonly tool: string,
  ) {}

  /** The client-to-backend direction to pause under pressure. */
  attach(direction: SpliceDirection): void {
    this.direction = direction;
  }

  /** Records one statement; `secret` statements keep their digest but never their text. */
  record(text: string, truncated: boolean, secret: boolean): void {
    if (this.failed) return;
    this.pending += 1;
    if (this.pending >= HIGH_WATER && !this.holding && this.direction) {
      this.holding = true;
      this.direction.hold();
    }
    this.o.audit
      .append({
        ...leaseAuditFields(this.o.lease),
        scope: "proxy_statement",
        tool: this.tool,
        target: this.o.client,
        request_id: this.o.requestId,
        digest: `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`,
        statement: this.o.mode === "text" && !secret ? text : undefined,
        truncated: truncated ? true : undefined,
      })
      .then(
        () => this.settle(),
        (err: unknown) => {
          this.settle();
          if (!this.failed) {
            this.failed = true;
            this.o.onFailure(err as Error);
          }
        },
      );
  }

  private settle(): void {
    this.pending -= 1;
    if (this.holding && this.pending <= LOW_WATER) {
      this.holding = false;
      this.direction?.release();
    }
  }
}
