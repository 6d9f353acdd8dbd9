import { type ConnectionOptions, createConnection } from "mysql2";
import { mysqlConfig, mysqlSslOption } from "../../../adapters/mysql/index.js";
import { BoundedList, jsonValue, scrub } from "./bounds.js";
import { CALL_TIMEOUT_MS, type RunnerLogin, TargetError } from "./login.js";
import type { SqlRequest, SqlResult } from "./sql.js";

function connectionOptions(login: RunnerLogin): ConnectionOptions {
  const common = {
    connectTimeout: 10_000,
    multipleStatements: false,
    charset: "utf8mb4_general_ci",
    // Dates and big numbers as the server wrote them: no time-zone or precision surprises.
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  };
  if (login.kind === "proxy") {
    return { ...common, host: login.host, port: login.port, user: login.user, password: login.password };
  }
  const target = mysqlConfig.parse(login.connection);
  const ssl = mysqlSslOption(target.ssl);
  return {
    ...common,
    host: target.host,
    port: target.port,
    user: login.username,
    password: login.password,
    ...(ssl === undefined ? {} : { ssl }),
  };
}

/**
 * Runs one statement (multi-statements off; `?` placeholders filled by the driver's escaping)
 * on a fresh connection, closed afterwards. Rows past the limits are read and dropped.
 * @throws TargetError with the server's refusal, never a password.
 */
export async function runMysql(login: RunnerLogin, req: SqlRequest): Promise<SqlResult> {
  const conn = createConnection(connectionOptions(login));
  conn.on("error", () => undefined);
  try {
    const rows = new BoundedList<unknown[]>(req.maxRows);
    let columns: string[] = [];
    let affected: number | undefined;
    await new Promise<void>((resolve, reject) => {
      const q = conn.query({
        sql: req.sql,
        values: [...(req.params ?? [])],
        rowsAsArray: true,
        timeout: CALL_TIMEOUT_MS,
      });
      q.on("fields", (fields: unknown) => {
        columns = (fields as Array<{ name: string }>).map((f) => f.name);
      });
      q.on("result", (r: unknown) => {
        if (Array.isArray(r)) rows.push(r.map(jsonValue));
        else if (typeof (r as { affectedRows?: unknown }).affectedRows === "number") {
          affected = (r as { affectedRows: number }).affectedRows;
        }
      });
      q.on("error", reject);
      q.on("end", () => resolve());
    });
    return {
      columns,
      rows: rows.items,
      row_count: rows.items.length,
      ...(affected === undefined ? {} : { affected_rows: affected }),
      truncated: rows.truncated,
    };
  } catch (err) {
    const e = err as { message?: unknown; code?: unknown; sqlState?: unknown };
    const message = typeof e.message === "string" ? e.message : String(err);
    const code =
      typeof e.code === "string"
        ? ` (${e.code}${typeof e.sqlState === "string" ? `, SQLSTATE ${e.sqlState}` : ""})`
        : "";
    throw new TargetError(scrub(`${message}${code}`, [login.password]));
  } finally {
    await new Promise<void>((resolve) => conn.end(() => resolve()));
    conn.destroy();
  }
}
