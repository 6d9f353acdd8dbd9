import type { Client } from "ldapts";
import type { Credential } from "../adapter.js";
import { AdapterError } from "../adapter.js";
import { type AdminSessionDriver, setSocketIdle } from "../admin-sessions.js";
import type { LdapTarget } from "./config.js";
import { closeClient, openClient, withinDeadline } from "./connection.js";

/** A pooled client bound as the admin DN, and the socket that bind holds on. */
export interface LdapAdminSession {
  readonly client: Client;
  readonly socket: unknown;
  closed: boolean;
}

/** ldapts keeps its socket private; a reconnect (anonymous) or StartTLS replaces it. */
function socketOf(client: Client): unknown {
  return (client as unknown as { socket?: unknown }).socket;
}

/**
 * Opens connections bound as the admin DN for the shared pool. ldapts reopens a dropped
 * connection on the next operation, anonymously, and (after StartTLS) does not notice the
 * TLS socket closing; so a session counts as open only while the very socket it bound on
 * is still the client's and has not closed.
 */
export function ldapAdminDriver(
  target: LdapTarget,
  admin: Credential,
  deadline: number,
): AdminSessionDriver<LdapAdminSession> {
  return {
    async open() {
      if (admin.username === "" || admin.password === "") {
        throw new AdapterError(
          "auth_failed",
          `ldap: bind as admin "${admin.username}": empty DN or password`,
          false,
        );
      }
      const client = await openClient(target, deadline);
      try {
        await withinDeadline(client, client.bind(admin.username, admin.password), deadline, "bind");
      } catch (err) {
        await closeClient(client);
        if (err instanceof AdapterError && err.code === "auth_failed") {
          throw new AdapterError(
            "auth_failed",
            `ldap: bind as admin "${admin.username}": authentication failed (invalidCredentials)`,
            false,
          );
        }
        throw err;
      }
      const socket = socketOf(client);
      const session: LdapAdminSession = { client, socket, closed: false };
      const s = socket as { once?: (event: string, fn: () => void) => void } | undefined;
      if (typeof s?.once !== "function") {
        await closeClient(client);
        throw new AdapterError("failed", "ldap: cannot watch the admin connection (ldapts changed)", false);
      }
      s.once("close", () => {
        session.closed = true;
      });
      return session;
    },
    isOpen: (session) => isBound(session),
    // A polite unbind on a live connection, then the socket is dropped: after StartTLS
    // ldapts can wait on an unbind over a dead socket until its message timeout.
    async close(session) {
      if (isBound(session)) await Promise.race([closeClient(session.client), delay(UNBIND_WAIT_MS)]);
      destroy(session.socket);
    },
    setIdle: (session, idle) => setSocketIdle(session.socket, idle),
  };
}

const UNBIND_WAIT_MS = 1_000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function destroy(socket: unknown): void {
  const s = socket as { destroy?: () => void } | undefined;
  if (typeof s?.destroy === "function") s.destroy();
}

function isBound(session: LdapAdminSession): boolean {
  return !session.closed && session.client.isBound && socketOf(session.client) === session.socket;
}

/**
 * Throws a retryable `unreachable` error when the session's connection is gone: checked
 * right before each operation on a pooled client (nothing is awaited in between), so ldapts
 * never sends one anonymously over a connection it reopened.
 */
export function requireBound(session: LdapAdminSession): void {
  if (!isBound(session)) {
    throw new AdapterError("unreachable", "ldap: the admin connection was closed", true);
  }
}
