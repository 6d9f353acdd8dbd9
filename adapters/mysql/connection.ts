import type { Connection, ConnectionOptions, RowDataPacket } from "mysql2/promise";
import type { Credential } from "../adapter.js";
import { AdapterError } from "../adapter.js";
import type { MysqlTarget } from "./config.js";

/**
 * Milliseconds left before `deadline` (an epoch-ms instant), for the next network step.
 * @throws AdapterError timeout (retryable) once the deadline has passed.
 */
export function remainingMs(deadline: number, action: string): number {
  const left = deadline - Date.now();
  if (left <= 0) throw new AdapterError("timeout", `mysql: ${action} timed out`, true);
  return left;
}

/** The driver's TLS option for a target's `ssl` setting (certificates checked unless told otherwise). */
export function mysqlSslOption(ssl: MysqlTarget["ssl"]): ConnectionOptions["ssl"] {
  if (ssl === undefined || ssl === false) return undefined;
  if (ssl === true) return { rejectUnauthorized: true };
  return {
    rejectUnauthorized: ssl.rejectUnauthorized ?? true,
    ...(ssl.ca === undefined ? {} : { ca: ssl.ca }),
  };
}

/**
 * Opens a connection as `cred` (its user part; the server picks the account entry by
 * client host), bounded by `deadline`. One statement per call: multi-statements stay off.
 */
export async function openConnection(
  target: MysqlTarget,
  cred: Credential,
  deadline: number,
): Promise<Connection> {
  const left = remainingMs(deadline, "connect");
  const ssl = mysqlSslOption(target.ssl);
  // The driver loads on the first MySQL connection: a sidecar with no MySQL resource never loads it.
  const { createConnection } = await import("mysql2/promise");
  const conn = await createConnection({
    host: target.host,
    port: target.port,
    user: cred.username,
    password: cred.password,
    ...(ssl === undefined ? {} : { ssl }),
    connectTimeout: Math.max(1, Math.min(left, target.connectTimeoutMs ?? left)),
    multipleStatements: false,
    charset: "utf8mb4_general_ci",
    enableKeepAlive: true,
  });
  // A connection killed by the server emits 'error' when idle; without a listener that crashes the process.
  conn.on("error", () => undefined);
  return conn;
}

/** Runs a statement with no parameters (text protocol) within the deadline. */
export async function runStatement(conn: Connection, sql: string, deadline: number): Promise<void> {
  await conn.query({ sql, timeout: remainingMs(deadline, "query") });
}

/** Runs a query with true bind parameters (a server-side prepared statement) within the deadline. */
export async function runSelect<R extends RowDataPacket>(
  conn: Connection,
  sql: string,
  values: ReadonlyArray<string | number>,
  deadline: number,
): Promise<R[]> {
  const [rows] = await conn.execute<R[]>({ sql, timeout: remainingMs(deadline, "query") }, [...values]);
  return rows;
}

/** Closes a connection; never throws. */
export async function closeConnection(conn: Connection): Promise<void> {
  await conn.end().catch(() => conn.destroy());
}
