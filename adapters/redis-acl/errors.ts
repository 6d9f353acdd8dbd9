import { AdapterError } from "../adapter.js";
import { networkCause, tlsCause } from "../target-address.js";

/** Socket errors that mean the server is down or unreachable for now. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** The error prefix of a Redis error reply (`WRONGPASS`, `NOPERM`, `ERR`, ...), if `err` is one. */
export function replyPrefix(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.name !== "ReplyError") return undefined;
  return /^([A-Z]+)\b/.exec(err.message)?.[1] ?? "ERR";
}

/**
 * Maps anything ioredis throws to an AdapterError whose message is built here. Reply
 * messages are summarised by their prefix, never forwarded, and ioredis errors are never
 * kept as causes: they carry the command's arguments (`err.command.args`), which for
 * `ACL SETUSER` and `AUTH` include the password.
 */
export function toAdapterError(err: unknown, action: string): AdapterError {
  if (err instanceof AdapterError) return err;
  const at = `redis-acl: ${action}`;
  const prefix = replyPrefix(err);
  if (prefix !== undefined) return fromReply(prefix, at);

  const code = err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (code === "ETIMEDOUT" || /timed out|timeout/i.test(message)) {
    return new AdapterError("timeout", `${at} timed out`, true);
  }
  if (
    (code !== undefined && NETWORK_CODES.has(code)) ||
    /Connection is closed|Stream isn't writeable|connect E[A-Z]+/i.test(message)
  ) {
    const known = code ?? /connect (E[A-Z]+)/.exec(message)?.[1];
    return new AdapterError("unreachable", `${at}: ${networkCause(known)}`, true);
  }
  const tls = tlsCause(err);
  if (tls !== undefined) return new AdapterError("failed", `${at}: ${tls}`, false);
  return new AdapterError(
    "failed",
    `${at} failed (${code ?? (err instanceof Error ? err.name : "unknown error")})`,
    false,
  );
}

function fromReply(prefix: string, at: string): AdapterError {
  switch (prefix) {
    case "WRONGPASS":
    case "NOAUTH":
      return new AdapterError("auth_failed", `${at}: authentication failed (${prefix})`, false);
    case "NOPERM":
      return new AdapterError("privilege", `${at}: the ACL user lacks a permission (${prefix})`, false);
    case "LOADING":
    case "BUSY":
    case "MASTERDOWN":
    case "TRYAGAIN":
    case "CLUSTERDOWN":
      return new AdapterError("unreachable", `${at}: server not ready (${prefix})`, true);
    default:
      return new AdapterError("failed", `${at}: the server refused it (${prefix})`, false);
  }
}
