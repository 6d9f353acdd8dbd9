import { createHash } from "node:crypto";
import type { AuditFields, AuditSink } from "../../audit/index.js";
import type { LeaseRecord } from "../../leases/index.js";
import { leaseAuditFields } from "../session-record.js";
import type { SpliceDirection } from "../splice.js";
import { MSG } from "./constants.js";
import { changesRolePassword } from "./password-statements.js";
import type { TappedMessage } from "./frame-tap.js";

/** Pending audit writes of one session past which the client is paused until they land. */
const HIGH_WATER = 256;
const LOW_WATER = 64;

function nulTerminated(buf: Buffer, from: number): { text: string; next: number } {
  const end = buf.indexOf(0, from);
  const stop = end < 0 ? buf.length : end;
  return { text: buf.toString("utf8", from, stop), next: stop + 1 };
}

/** The SQL text of a simple Query or an extended-protocol Parse message. */
export function statementText(m: TappedMessage): string | undefined {
  if (m.type === MSG.query) return nulTerminated(m.body, 0).text;
  if (m.type === MSG.parse) {
    const name = nulTerminated(m.body, 0);
    return name.next <= m.body.length ? nulTerminated(m.body, name.next).text : undefined;
  }
  return undefined;
}

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
 * One `tool_call` record per statement the agent sends (simple Query and extended Parse),
 * with the statement's SHA-256 and, in "text" mode, its text. The client is paused while too
 * many records are still being written, so the trail cannot fall behind without bound.
 */
export class StatementAuditor {
  private pending = 0;
  private holding = false;
  private direction: SpliceDirection | undefined;
  private failed = false;

  constructor(private readonly o: StatementAuditOptions) {}

  /** The client-to-backend direction to pause under pressure. */
  attach(direction: SpliceDirection): void {
    this.direction = direction;
  }

  /** Types of message the tap should capture. */
  static readonly types: ReadonlySet<number> = new Set([MSG.query, MSG.parse]);

  onMessage = (m: TappedMessage): void => {
    const text = statementText(m);
    if (text === undefined || this.failed) return;
    const fields: AuditFields = {
      ...leaseAuditFields(this.o.lease),
      scope: "proxy_statement",
      tool: "postgres",
      target: this.o.client,
      request_id: this.o.requestId,
      digest: `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`,
      // A password change keeps its digest but never its text: the text holds the password.
      statement: this.o.mode === "text" && !changesRolePassword(text) ? text : undefined,
      truncated: m.truncated ? true : undefined,
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
