import type pg from "pg";
import type { Credential } from "../adapter.js";
import { type AdminSessionDriver, setSocketIdle } from "../admin-sessions.js";
import type { PostgresTarget } from "./config.js";
import { closeClient, openClient } from "./connection.js";
import { toAdapterError } from "./errors.js";

/** A pooled admin connection and whether it has been seen to end. */
export interface PostgresAdminSession {
  readonly client: pg.Client;
  ended: boolean;
  /** server_version_num, once read on this connection. */
  serverVersion?: number;
}

/** Opens admin connections for the shared pool: logged in as `admin`, watched for their end. */
export function postgresAdminDriver(
  target: PostgresTarget,
  admin: Credential,
  deadline: number,
): AdminSessionDriver<PostgresAdminSession> {
  return {
    async open() {
      let client: pg.Client;
      try {
        client = await openClient(target, admin, deadline);
      } catch (err) {
        throw toAdapterError(err, `login as admin "${admin.username}"`);
      }
      const session: PostgresAdminSession = { client, ended: false };
      // The server ending the session (pg_terminate_backend, shutdown) or a dropped socket.
      const ended = () => {
        session.ended = true;
      };
      client.on("error", ended);
      client.on("end", ended);
      return session;
    },
    isOpen: (session) => !session.ended,
    close: (session) => closeClient(session.client),
    setIdle: (session, idle) => setSocketIdle(socketOf(session.client), idle),
  };
}

/** The client's socket (pg keeps it as `connection.stream`). */
function socketOf(client: pg.Client): unknown {
  return (client as unknown as { connection?: { stream?: unknown } }).connection?.stream;
}
