import { isIP } from "node:net";
import { AdapterError } from "./adapter.js";

/** The names one machine answers to on its loopback interface: one host for the account index. */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1"]);

/**
 * A host as the account index compares it: lowercased, without IPv6 brackets or a trailing
 * dot, IP addresses in their canonical form (`0:0::1` is `::1`, `127.000.0.1` is
 * `127.0.0.1`), and `localhost`, `127.0.0.1` and `::1` all `localhost`.
 */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (isIP(h) === 6) h = canonicalIp(`[${h}]`).slice(1, -1);
  else if (/^[0-9.]+$/.test(h)) h = canonicalIp(h);
  return LOOPBACK.has(h) ? "localhost" : h;
}

/** The WHATWG URL parser's form of an IP address (compressed IPv6, dotted-decimal IPv4). */
function canonicalIp(host: string): string {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return host;
  }
}

/** `host:port` for messages and logs: `127.0.0.1:5432`, `[::1]:5432`. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The one-owner index's name of an account: `<adapter>://<host>:<port>/<account>`, the host
 * normalized ({@link normalizeHost}) and the account percent-encoded (so any name, `/` and
 * `@` included, stays one unambiguous path segment). Holds no secret.
 */
export function accountIdentityOf(adapterId: string, host: string, port: number, account: string): string {
  const h = normalizeHost(host);
  const shownHost = isIP(h) === 6 ? `[${h}]` : h;
  return `${adapterId}://${shownHost}:${port}/${encodeURIComponent(account)}`;
}

/** Socket error codes, in leasehold's words. */
const SOCKET_CAUSES: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by the server",
  EPIPE: "connection closed by the server",
  EHOSTUNREACH: "host unreachable",
  EHOSTDOWN: "host down",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network down",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed for now",
  ETIMEDOUT: "connection timed out",
  PROTOCOL_CONNECTION_LOST: "connection lost",
};

/** Why a connection failed, from a socket error code: `connection refused (ECONNREFUSED)`. */
export function networkCause(code: string | undefined): string {
  if (code === undefined) return "connection closed";
  return `${SOCKET_CAUSES[code] ?? "server unreachable"} (${code})`;
}

const TLS_CODE = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|HOSTNAME|ERR_OSSL)/;

/**
 * `TLS handshake failed: <Node's reason> (<code>)` for a TLS error, else undefined. Node's TLS
 * messages name certificates and host names only, never a credential; they are capped anyway.
 */
export function tlsCause(err: unknown): string | undefined {
  const code = err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
  if (code === undefined || !TLS_CODE.test(code)) return undefined;
  const message = err instanceof Error ? err.message : "";
  // OpenSSL's `<id>:error:<code>:<library>:<function>:<reason>:<file>:<line>:` form: its reason.
  const openssl = /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):/.exec(message)?.[1];
  const reason = (openssl ?? message).replace(/\s+/g, " ").trim().slice(0, 160);
  return reason === "" || reason === code
    ? `TLS handshake failed (${code})`
    : `TLS handshake failed: ${reason} (${code})`;
}

/**
 * Runs one adapter call and names the target in every AdapterError it throws: the adapter's
 * own `<id>: ` prefix becomes `<id> <address>: ` (the address as the operator wrote it, no
 * credentials), and a timeout says how long the call had: `postgres 127.0.0.1:5433: connect
 * timed out after 10000 ms`. Code, retryability and cause are kept.
 */
export async function namingTarget<T>(
  adapterId: string,
  address: string,
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw withAddress(err, adapterId, address, timeoutMs);
  }
}

/** The error with the target's address in its message (see {@link namingTarget}). */
export function withAddress(err: unknown, adapterId: string, address: string, timeoutMs: number): unknown {
  if (!(err instanceof AdapterError)) return err;
  const label = `${adapterId} ${address}`;
  if (err.message.startsWith(`${label}:`)) return err;
  const own = `${adapterId}: `;
  let message = err.message.startsWith(own)
    ? `${label}: ${err.message.slice(own.length)}`
    : `${label}: ${err.message}`;
  if (err.code === "timeout" && /timed out$/.test(message)) message += ` after ${timeoutMs} ms`;
  return new AdapterError(err.code, message, err.retryable, { cause: err.cause });
}
