import type { SpliceDirection } from "../splice.js";
import { type StatementAuditOptions, StatementTrail } from "../statement-trail.js";
import type { MysqlStatement } from "./command-guard.js";

/**
 * Statements that may carry a password in MySQL or MariaDB (`IDENTIFIED BY`, `PASSWORD(...)`,
 * `SET PASSWORD`): their text is never recorded, only their digest. Matching anywhere, comments
 * and literals included, errs on the side of leaving text out.
 */
export function mayCarryPassword(text: string): boolean {
  return /identified|password/i.test(text);
}

export type MysqlStatementAuditOptions = StatementAuditOptions;

/**
 * One `tool_call` record per statement the agent sends through a MySQL listener (COM_QUERY and
 * COM_STMT_PREPARE), as the PostgreSQL listener's StatementAuditor does (a StatementTrail).
 */
export class MysqlStatementAuditor {
  private readonly trail: StatementTrail;

  constructor(o: MysqlStatementAuditOptions) {
    this.trail = new StatementTrail(o, "mysql");
  }

  /** The client-to-backend direction to pause under pressure. */
  attach(direction: SpliceDirection): void {
    this.trail.attach(direction);
  }

  onStatement = (s: MysqlStatement): void => {
    const text = s.text.toString("utf8");
    this.trail.record(text, s.truncated, mayCarryPassword(text));
  };
}
