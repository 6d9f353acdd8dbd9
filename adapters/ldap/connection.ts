import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { Client } from "ldapts";
import { AdapterError } from "../adapter.js";
import type { LdapTarget } from "./config.js";
import { toAdapterError } from "./errors.js";

/**
 * Milliseconds left before `deadline` (an epoch-ms instant), for the next network step.
 * @throws AdapterError timeout (retryable) once the deadline has passed.
 */
export function remainingMs(deadline: number, action: string): number {
  const left = deadline - Date.now();
  if (left <= 0) throw new AdapterError("timeout", `ldap: ${action} timed out`, true);
  return left;
}

/** The URL's host name, without IPv6 brackets. */
export function urlHost(url: string): string {
  const host = new URL(url).hostname;
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function tlsOptions(target: LdapTarget): ConnectionOptions {
  const host = urlHost(target.url);
  const servername = target.tls?.servername ?? (isIP(host) === 0 ? host : undefined);
  return {
    // Node checks the certificate against servername, else host: never its 'localhost' default.
    host: servername ?? host,
    ...(servername === undefined ? {} : { servername }),
    rejectUnauthorized: target.tls?.rejectUnauthorized ?? true,
    ...(target.tls?.ca === undefined ? {} : { ca: target.tls.ca }),
  };
}

/** True when the target's connection is encrypted (ldaps:// or StartTLS). */
export function isEncrypted(target: LdapTarget): boolean {
  return /^ldaps:/i.test(target.url) || target.startTls === true;
}

/** Closes a connection; never throws (the work it served is already done or failed). */
export async function closeClient(client: Client): Promise<void> {
  await client.unbind().catch(() => undefined);
}

/**
 * Awaits one LDAP operation, but no longer than `deadline`: past it the connection is
 * dropped (so nothing is left waiting on the socket) and a retryable timeout is thrown.
 * Other failures are mapped by `toAdapterError` with `action` in the message.
 */
export async function withinDeadline<T>(
  client: Client,
  operation: Promise<T>,
  deadline: number,
  action: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    const left = deadline - Date.now();
    timer = setTimeout(
      () => {
        void closeClient(client);
        reject(new AdapterError("timeout", `ldap: ${action} timed out`, true));
      },
      Math.max(0, left),
    );
  });
  // The loser of the race must not surface as an unhandled rejection.
  operation.catch(() => undefined);
  try {
    return await Promise.race([operation, expired]);
  } catch (err) {
    throw toAdapterError(err, action);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A client for `target`, connected and (with `startTls`) upgraded to TLS before anything
 * else is sent, bounded by `deadline`. ldap:// without startTls connects on the first bind.
 * Rejects with an AdapterError.
 */
export async function openClient(target: LdapTarget, deadline: number): Promise<Client> {
  const left = remainingMs(deadline, "connect");
  const implicitTls = /^ldaps:/i.test(target.url);
  const client = new Client({
    url: target.url,
    connectTimeout: Math.max(1, Math.min(left, target.connectTimeoutMs ?? left)),
    timeout: left,
    // Handing TLS options to ldapts for an ldap:// URL would make it speak TLS at once
    // instead of StartTLS, so they only go here for ldaps://.
    ...(implicitTls ? { tlsOptions: tlsOptions(target) } : {}),
  });
  if (target.startTls === true) {
    try {
      await withinDeadline(client, client.startTLS(tlsOptions(target)), deadline, "StartTLS");
    } catch (err) {
      await closeClient(client);
      throw err;
    }
  }
  return client;
}
