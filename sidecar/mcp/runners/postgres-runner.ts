import pg from "pg";
import { postgresConfig, postgresSslOption } from "../../../adapters/postgres/index.js";
import { BoundedList, jsonValue, scrub } from "./bounds.js";
import { CALL_TIMEOUT_MS, type RunnerLogin, TargetError } from "./login.js";
import type { SqlRequest, SqlResult } from "./sql.js";

/** The SQLSTATE and message prefix of a statement the sidecar's PostgreSQL listener refused. */
const LISTENER_REFUSAL = { code: "42501", prefix: "leasehold:" };

/** The connection settings of one call: the listener (TLS to its self-signed certificate) or the target. */
function clientConfig(login: RunnerLogin, database: string | undefined): pg.ClientConfig {
  const common = {
    application_name: "leasehold-mcp",
    connectionTimeoutMillis: 10_000,
    // No query_timeout: pg would then answer errors to a callback, never as the Query's 'error'
    // event this runner listens to. The server's statement_timeout bounds the statement; the
    // runner's own timer bounds the wait.
    statement_timeout: CALL_TIMEOUT_MS,
  };
  if (login.kind === "proxy") {
    // The listener is on loopback, named by the sidecar over the agent's authenticated channel;
    // its certificate is made at start and pinned nowhere, so TLS here keeps the token off the
    // wire in clear text but cannot authenticate the listener.
    return {
      ...common,
      host: login.host,
      port: login.port,
      user: login.user,
      password: login.password,
      // The lease id as the database (libpq's default, the user name) is the listener's word for
      // "the registration's own database": sessions are pinned to it and proxy.databases.
      database: database ?? login.user,
      ssl: { rejectUnauthorized: false },
    };
  }
  const target = postgresConfig.parse(login.connection);
  return {
    ...common,
    host: target.host,
    port: target.port,
    user: login.username,
    password: login.password,
    database: database ?? target.database,
    ssl: postgresSslOption(target.ssl),
  };
}

/**
 * Runs one statement (the extended protocol: exactly one, with `$n` parameters) on a fresh
 * connection, closed afterwards. Rows past the limits are read and dropped, so the statement
 * completes as it would for any client; the result says it was cut.
 * @throws TargetError with the server's (or the listener's) refusal, never a password.
 */
export async function runPostgres(login: RunnerLogin, req: SqlRequest): Promise<SqlResult> {
  const client = new pg.Client(clientConfig(login, req.database));
  client.on("error", () => undefined);
  try {
    await client.connect();
    const rows = new BoundedList<unknown[]>(req.maxRows);
    const query = new pg.Query({
      text: req.sql,
      values: [...(req.params ?? [])],
      rowMode: "array",
      queryMode: "extended",
    } as pg.QueryConfig & { queryMode: "extended"; rowMode: "array" });
    let timer: NodeJS.Timeout | undefined;
    const result = await new Promise<pg.QueryResult>((resolve, reject) => {
      timer = setTimeout(() => reject(new TargetError("no answer in time")), CALL_TIMEOUT_MS + 5000);
      query.on("row", (row: unknown[]) => {
        rows.push(row.map(jsonValue));
      });
      query.on("end", (r: pg.QueryResult) => resolve(r));
      query.on("error", reject);
      client.query(query);
    }).finally(() => clearTimeout(timer));
    const isRead = result.command === "SELECT" || (result.fields?.length ?? 0) > 0;
    return {
      columns: (result.fields ?? []).map((f) => f.name),
      rows: rows.items,
      row_count: rows.items.length,
      ...(isRead || typeof result.rowCount !== "number" ? {} : { affected_rows: result.rowCount }),
      ...(result.command ? { command: result.command } : {}),
      truncated: rows.truncated,
    };
  } catch (err) {
    throw postgresError(err, login);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function postgresError(err: unknown, login: RunnerLogin): TargetError {
  if (err instanceof TargetError) return err;
  const e = err as { code?: unknown; message?: unknown; hint?: unknown; detail?: unknown };
  const message = typeof e.message === "string" ? e.message : String(err);
  const code = typeof e.code === "string" ? e.code : undefined;
  const refused = code === LISTENER_REFUSAL.code && message.startsWith(LISTENER_REFUSAL.prefix);
  const parts = [
    message,
    typeof e.detail === "string" ? `detail: ${e.detail}` : "",
    typeof e.hint === "string" ? `hint: ${e.hint}` : "",
    code ? `(SQLSTATE ${code})` : "",
  ].filter(Boolean);
  return new TargetError(scrub(parts.join("; "), [login.password]), refused);
}
