import type { Connection, RowDataPacket } from "mysql2/promise";
import { AdapterError } from "../adapter.js";
import type { MysqlAccount } from "./account.js";
import { runSelect, runStatement } from "./connection.js";
import { quoteAccount, quoteString } from "./quote.js";

interface SessionRow extends RowDataPacket {
  mode: string;
  version: string;
}

/** The sql_mode and server version of this very session: quoting must follow the session's mode. */
async function session(conn: Connection, deadline: number): Promise<SessionRow> {
  const [row] = await runSelect<SessionRow>(
    conn,
    "SELECT @@SESSION.sql_mode AS mode, VERSION() AS version",
    [],
    deadline,
  );
  if (row === undefined)
    throw new AdapterError("failed", "mysql: reading the session's sql_mode returned no row", false);
  return row;
}

/** The sql_mode of this very session (string literals are quoted for it). */
export async function sessionSqlMode(conn: Connection, deadline: number): Promise<string> {
  return (await session(conn, deadline)).mode;
}

/**
 * As an admin: `ALTER USER <account> IDENTIFIED BY '<password>'`. MySQL takes no bind
 * parameter there, so the account is quoted as identifiers and the password as a literal
 * for the session's sql_mode: `sqlMode` when the caller knows this session's (read with
 * {@link sessionSqlMode} on the same connection), else read on it just before.
 */
export async function alterUserPassword(
  conn: Connection,
  account: MysqlAccount,
  password: string,
  deadline: number,
  sqlMode?: string,
): Promise<void> {
  const mode = sqlMode ?? (await sessionSqlMode(conn, deadline));
  await runStatement(
    conn,
    `ALTER USER ${quoteAccount(account)} IDENTIFIED BY ${quoteString(password, mode)}`,
    deadline,
  );
}

/**
 * As the account itself: MariaDB lets any account run `SET PASSWORD = PASSWORD(...)` but
 * wants CREATE USER for ALTER USER; MySQL 8 dropped PASSWORD() and lets an account
 * `ALTER USER CURRENT_USER()` (without `password_require_current`).
 */
export async function setOwnPassword(conn: Connection, password: string, deadline: number): Promise<void> {
  const { mode, version } = await session(conn, deadline);
  const literal = quoteString(password, mode);
  const sql = /mariadb/i.test(version)
    ? `SET PASSWORD = PASSWORD(${literal})`
    : `ALTER USER CURRENT_USER() IDENTIFIED BY ${literal}`;
  await runStatement(conn, sql, deadline);
}
