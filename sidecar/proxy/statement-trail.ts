import { hash } from "node:crypto";
import Denque from "denque";
import { type AuditFields, type AuditSink, RecordTemplate, TemplatedFields } from "../audit/index.js";
import type { LeaseRecord } from "../leases/index.js";
import { leaseAuditFields } from "./session-record.js";
import type { SpliceDirection } from "./splice.js";

/**
 * Unwritten records (and statement bytes) of one session past which its client is paused until
 * most have landed: a last resort under a disk far slower than the statements (the log flushes
 * every 25 ms), so one busy session slows itself before the log's shared queue has to drop
 * records. A lease's 16 sessions together stay below the log's bound (50,000 records, 64 MiB).
 */
const HIGH_WATER = 2048;
const LOW_WATER = 512;
const HIGH_WATER_BYTES = 2 * 1024 * 1024;
const LOW_WATER_BYTES = 512 * 1024;

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
 * A statement record's own values. When the record keeps the text, its digest is computed when
 * the record is sealed, with its batch, not on the statement's way to the server.
 */
class StatementValues {
  readonly statement: string | undefined;
  readonly truncated: true | undefined;
  private sha: string | undefined;

  constructor(text: string, keepText: boolean, truncated: boolean) {
    this.statement = keepText ? text : undefined;
    this.truncated = truncated ? true : undefined;
    if (!keepText) this.sha = digestOf(text);
  }

  get digest(): string {
    this.sha ??= digestOf(this.statement ?? "");
    return this.sha;
  }
}

function digestOf(text: string): string {
  return `sha256:${hash("sha256", text, "hex")}`;
}

/**
 * A listener session's statement records: one `tool_call` (scope `proxy_statement`) per
 * statement, with its SHA-256 and, in "text" mode, its text unless it may carry a password.
 * Records are deferred (`AuditSink.appendDeferred`): the relay never waits for them; the log
 * writes them in batches (one write and one flush per batch, at most `batchDelayMs` later). The
 * client is paused while too many of this session's records are still unwritten, so the trail
 * cannot fall behind without bound; the first record that cannot be written (or a closed log)
 * ends the session. A record the log's full queue dropped is counted there (`audit_dropped`).
 */
export class StatementTrail {
  private pending = 0;
  private pendingBytes = 0;
  /**
   * The text size of each unwritten record, oldest first (the log settles them in order): a
   * deque, as an array's shift() copies what is left (thousands of records under load).
   */
  private readonly sizes = new Denque<number>();
  private holding = false;
  private direction: SpliceDirection | undefined;
  private failed = false;
  /** The fields every record of this session carries, serialised once; each record adds its own. */
  private readonly template: RecordTemplate<"digest" | "statement" | "truncated">;

  constructor(
    private readonly o: StatementAuditOptions,
    tool: string,
  ) {
    const base: AuditFields<"tool_call"> = {
      ...(leaseAuditFields(o.lease) as AuditFields<"tool_call">),
      scope: "proxy_statement",
      tool,
      target: o.client,
      request_id: o.requestId,
    };
    this.template = new RecordTemplate(base, ["digest", "statement", "truncated"]);
  }

  /** The client-to-backend direction to pause under pressure. */
  attach(direction: SpliceDirection): void {
    this.direction = direction;
  }

  /** Records one statement; `secret` statements keep their digest but never their text. */
  record(text: string, truncated: boolean, secret: boolean): void {
    if (this.failed) return;
    const values = new StatementValues(text, this.o.mode === "text" && !secret, truncated);
    const audit = this.o.audit;
    const size = values.statement?.length ?? 0;
    if (audit.appendDeferred) {
      const outcome = audit.appendDeferred(new TemplatedFields(this.template, values), this.settled);
      if (outcome === "queued") this.track(size);
      else if (outcome === "refused") this.fail(new Error("the audit log is closed"));
      return;
    }
    this.track(size);
    audit.append(this.template.fieldsWith(values) as AuditFields<"tool_call">).then(
      () => this.settled(),
      (err: unknown) => this.settled(err as Error),
    );
  }

  private track(size: number): void {
    this.pending += 1;
    this.pendingBytes += size;
    this.sizes.push(size);
    if (
      (this.pending >= HIGH_WATER || this.pendingBytes >= HIGH_WATER_BYTES) &&
      !this.holding &&
      this.direction
    ) {
      this.holding = true;
      this.direction.hold();
    }
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.o.onFailure(err);
  }

  /** One record of this session was written (or refused: `err`). */
  private readonly settled = (err?: Error): void => {
    this.pending -= 1;
    this.pendingBytes -= this.sizes.shift() ?? 0;
    if (this.holding && this.pending <= LOW_WATER && this.pendingBytes <= LOW_WATER_BYTES) {
      this.holding = false;
      this.direction?.release();
    }
    if (err) this.fail(err);
  };
}
