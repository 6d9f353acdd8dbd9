import type { SpliceDirection } from "../splice.js";
import { type StatementAuditOptions, StatementTrail } from "../statement-trail.js";
import { MSG } from "./constants.js";
import { changesRolePassword } from "./password-statements.js";
import type { TappedMessage } from "./frame-tap.js";

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

export type { StatementAuditOptions };

/**
 * One `tool_call` record per statement the agent sends (simple Query and extended Parse), with
 * the statement's SHA-256 and, in "text" mode, its text (a StatementTrail: the client is paused
 * while too many records are still being written).
 */
export class StatementAuditor {
  private readonly trail: StatementTrail;

  constructor(o: StatementAuditOptions) {
    this.trail = new StatementTrail(o, "postgres");
  }

  /** The client-to-backend direction to pause under pressure. */
  attach(direction: SpliceDirection): void {
    this.trail.attach(direction);
  }

  /** Types of message the tap should capture. */
  static readonly types: ReadonlySet<number> = new Set([MSG.query, MSG.parse]);

  /** One captured message; `text`, when given, is its SQL text already read (by the statement guard). */
  onMessage = (m: TappedMessage, text: string | undefined = statementText(m)): void => {
    // A password change keeps its digest but never its text: the text holds the password.
    if (text !== undefined) this.trail.record(text, m.truncated, changesRolePassword(text));
  };
}
