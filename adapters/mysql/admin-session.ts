import type { Connection } from "mysql2/promise";
import type { Credential } from "../adapter.js";
import { type AdminSessionDriver, setSocketIdle } from "../admin-sessions.js";
import { parseAccount } from "./account.js";
import type { MysqlTarget } from "./config.js";
import { closeConnection, openConnection } from "./connection.js";
import { toAdapterError } from "./errors.js";

/** A pooled admin connection, whether it has been seen to end, and its session's sql_mode once read. */
export interface MysqlAdminSession {
  readonly conn: Connection;
  ended: boolean;
  /**
   * The session's sql_mode, read on first use. Only a statement on this very session can
   * change it, and the pool runs none that does, so it stays exact for the connection's life.
   */
  sqlMode: string | undefined;
}

/** Opens admin connections for the shared pool: logged in as `admin`, watched for their end. */
export function mysqlAdminDriver(
  target: MysqlTarget,
  admin: Credential,
  deadline: number,
): AdminSessionDriver<MysqlAdminSession> {
  return {
    async open() {
      let conn: Connection;
      try {
        // An admin given as user@host logs in with its user part; the server picks the entry.
        conn = await openConnection(
          target,
          { username: parseAccount(admin.username).user, password: admin.password },
          deadline,
        );
      } catch (err) {
        throw toAdapterError(err, `login as admin "${admin.username}"`);
      }
      const session: MysqlAdminSession = { conn, ended: false, sqlMode: undefined };
      // KILL, a server restart or a dropped socket: mysql2 reports each as 'error' or 'end'.
      const ended = () => {
        session.ended = true;
      };
      conn.on("error", ended);
      conn.on("end", ended);
      return session;
    },
    isOpen: (session) => !session.ended,
    close: (session) => closeConnection(session.conn),
    setIdle: (session, idle) => setSocketIdle(socketOf(session.conn), idle),
  };
}

/** The connection's socket (mysql2 keeps it as `connection.stream`). */
function socketOf(conn: Connection): unknown {
  return (conn as unknown as { connection?: { stream?: unknown } }).connection?.stream;
}
