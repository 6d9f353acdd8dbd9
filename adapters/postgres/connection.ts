import pg from "pg";
import type { Credential } from "../adapter.js";
import { AdapterError } from "../adapter.js";
import type { PostgresTarget } from "./config.js";

/**
 * Milliseconds left before `deadline` (an epoch-ms instant), for the next network step.
 * @throws AdapterError timeout (retryable) once the deadline has passed.
 */
export function remainingMs(deadline: number, action: string): number {
  const left = deadline - Date.now();
  if (left <= 0) throw new AdapterError("timeout", `postgres: ${action} timed out`, true);
  return left;
}

/** The driver's TLS option for a target's `ssl` setting (certificates checked unless told otherwise). */
export function postgresSslOption(ssl: PostgresTarget["ssl"]): pg.ClientConfig["ssl"] {
  if (ssl === undefined || ssl === false) return false;
  if (ssl === true) return { rejectUnauthorized: true };
  return {
    rejectUnauthorized: ssl.rejectUnauthorized ?? true,
    ...(ssl.ca === undefined ? {} : { ca: ssl.ca }),
  };
}

/**
 * Opens a connection as `cred`, bounded by `deadline`. Every setting is explicit so the
 * PG* environment variables of the sidecar's process never change whom we log in as.
 * Rejects with pg's own error (callers classify it).
 */
export async function openClient(
  target: PostgresTarget,
  cred: Credential,
  deadline: number,
): Promise<pg.Client> {
  const left = remainingMs(deadline, "connect");
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    database: target.database,
    user: cred.username,
    password: cred.password,
    ssl: postgresSslOption(target.ssl),
    application_name: "leasehold",
    connectionTimeoutMillis: Math.max(1, Math.min(left, target.connectTimeoutMs ?? left)),
    statement_timeout: left,
    lock_timeout: left,
    keepAlive: true,
  });
  // A connection ended by the server (terminateSessions, shutdown) emits 'error' on an idle
  // client; without a listener that would crash the process.
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    void client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/** Runs one parameterised statement within the deadline; rejects with pg's error. */
export async function runQuery<R extends pg.QueryResultRow>(
  client: pg.Client,
  text: string,
  values: readonly unknown[],
  deadline: number,
): Promise<R[]> {
  // Options pg honours but its typings omit: a per-query read timeout, and the extended
  // protocol even without parameters, which runs exactly one statement (defence in depth
  // should quoting ever fail: no `; DROP ...` can ride along).
  const config: pg.QueryConfig & { query_timeout: number; queryMode: "extended" } = {
    text,
    values: [...values],
    query_timeout: remainingMs(deadline, "query"),
    queryMode: "extended",
  };
  const result = await client.query<R>(config);
  return result.rows;
}

/** Closes a connection; never throws (the work it served is already done or failed). */
export async function closeClient(client: pg.Client): Promise<void> {
  await client.end().catch(() => undefined);
}
