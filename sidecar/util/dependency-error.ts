/**
 * Words for the faults of leasehold's dependencies (Redis, Vault): what an operator reads in the
 * logs and in `/readyz` instead of a client library's internals. Never holds a credential.
 */

interface NodeErrorLike {
  readonly name?: string;
  readonly message?: string;
  readonly code?: string;
  readonly cause?: unknown;
}

const SOCKET_CAUSES: Record<string, string> = {
  ECONNREFUSED: "connection refused (ECONNREFUSED)",
  ECONNRESET: "connection reset (ECONNRESET)",
  EPIPE: "connection closed by the server (EPIPE)",
  ETIMEDOUT: "timed out",
  ESOCKETTIMEDOUT: "timed out",
  ECONNABORTED: "timed out",
  UND_ERR_CONNECT_TIMEOUT: "timed out",
  ENOTFOUND: "host not found (ENOTFOUND)",
  EAI_AGAIN: "host name lookup failed (EAI_AGAIN)",
  EHOSTUNREACH: "host unreachable (EHOSTUNREACH)",
  ENETUNREACH: "network unreachable (ENETUNREACH)",
  EACCES: "permission denied (EACCES)",
};

function codeOf(err: NodeErrorLike): string | undefined {
  if (typeof err.code === "string") return err.code;
  const inner = err.cause as NodeErrorLike | undefined;
  return typeof inner?.code === "string" ? inner.code : undefined;
}

/** True when the error comes from a TLS handshake (certificate, protocol, or a peer that hung up mid-handshake). */
function isTlsFault(err: NodeErrorLike, code: string | undefined): boolean {
  const message = err.message ?? "";
  return (
    (code !== undefined && (/^ERR_SSL|^ERR_TLS|CERT|^DEPTH_ZERO/.test(code) || code === "EPROTO")) ||
    /TLS|SSL|certificate/i.test(message)
  );
}

/**
 * The cause of a socket-level fault in leasehold's words (`connection refused (ECONNREFUSED)`,
 * `timed out`, `TLS handshake failed: <reason>`), or undefined when `err` is no such fault.
 */
export function networkCause(err: unknown): string | undefined {
  if (!err || typeof err !== "object") return undefined;
  const e = err as NodeErrorLike;
  const code = codeOf(e);
  if (isTlsFault(e, code)) return `TLS handshake failed: ${scrubUrls(e.message ?? code ?? "unknown reason")}`;
  if (code !== undefined && SOCKET_CAUSES[code]) return SOCKET_CAUSES[code];
  if (/timed? ?out/i.test(e.message ?? "")) return "timed out";
  return undefined;
}

/** `scheme://host:port/path` without its user and password (`redis://:pw@h:1` → `redis://h:1`). */
export function withoutUserinfo(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//");
  }
}

/** Removes the user-info part of every URL in a free text (a library message may quote one). */
export function scrubUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@\s/]*@/gi, "$1");
}

/** The first line of a message, scrubbed of URL credentials and capped at 200 characters. */
export function firstLine(text: string): string {
  const line = scrubUrls(text.split("\n").find((l) => l.trim() !== "") ?? "").trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/**
 * An error's text for a log line: its message and, for a LeaseholdError, its internal detail,
 * which names the dependency's address and the cause (`the secret store (Vault) is unavailable:
 * vault http://127.0.0.1:8200: sealed (read)`). The detail never holds a credential.
 */
export function logText(err: unknown): string {
  const e = err as { message?: unknown; detail?: unknown } | null;
  const message = typeof e?.message === "string" ? e.message : String(err);
  const detail = typeof e?.detail === "string" ? e.detail : "";
  return detail && !message.includes(detail) ? `${message}: ${detail}` : message;
}
