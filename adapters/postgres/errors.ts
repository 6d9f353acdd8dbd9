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

/** The SQLSTATE of a server error (a pg DatabaseError), if it is one. */
export function sqlState(err: unknown): string | undefined {
  if (!(err instanceof Error) || !("code" in err) || typeof err.code !== "string") return undefined;
  // SQLSTATEs are five characters; node socket codes start with E and are longer.
  return /^[0-9A-Z]{5}$/.test(err.code) && "severity" in err ? err.code : undefined;
}

/** True when the server refused the login itself: a wrong password, unknown role or NOLOGIN role. */
export function isLoginRefused(err: unknown): boolean {
  const state = sqlState(err);
  return state === "28P01" || state === "28000";
}

/** Why a login was refused, for a `{ valid: false, reason }` verdict. */
export function loginRefusedReason(err: unknown): string {
  return sqlState(err) === "28000"
    ? "login refused: the role may not log in, or no pg_hba.conf rule allows it (SQLSTATE 28000)"
    : "password authentication failed (SQLSTATE 28P01)";
}

/**
 * Maps anything `pg` throws to an AdapterError whose message is built here: server
 * messages are summarised by SQLSTATE, never forwarded, so no statement text (and no
 * secret) can leak through them. Only client-side errors, which carry no SQL, keep a cause.
 */
export function toAdapterError(err: unknown, action: string): AdapterError {
  if (err instanceof AdapterError) return err;
  const state = sqlState(err);
  if (state !== undefined) return fromSqlState(state, action);

  const code = err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (code === "ETIMEDOUT" || /timeout|timed out/i.test(message)) {
    return new AdapterError("timeout", `postgres: ${action} timed out`, true, { cause: err });
  }
  if ((code !== undefined && NETWORK_CODES.has(code)) || /Connection terminated/i.test(message)) {
    return new AdapterError("unreachable", `postgres: ${action}: ${networkCause(code)}`, true, {
      cause: err,
    });
  }
  const tls = /server does not support SSL/i.test(message)
    ? "TLS handshake failed: the server does not offer TLS"
    : tlsCause(err);
  if (tls !== undefined)
    return new AdapterError("failed", `postgres: ${action}: ${tls}`, false, { cause: err });
  return new AdapterError("failed", `postgres: ${action} failed: ${message.slice(0, 200)}`, false, {
    cause: err,
  });
}

function fromSqlState(state: string, action: string): AdapterError {
  const at = `postgres: ${action}`;
  switch (state) {
    case "28P01":
    case "28000":
      return new AdapterError(
        "auth_failed",
        `${at}: ${state === "28P01" ? "authentication failed" : "login refused"} (SQLSTATE ${state})`,
        false,
      );
    case "42501":
      return new AdapterError("privilege", `${at}: insufficient privilege (SQLSTATE ${state})`, false);
    case "42704":
      return new AdapterError("invalid", `${at}: role does not exist (SQLSTATE ${state})`, false);
    case "3D000":
      return new AdapterError("invalid", `${at}: database does not exist (SQLSTATE ${state})`, false);
    case "57014":
    case "55P03":
      return new AdapterError("timeout", `${at}: statement timed out (SQLSTATE ${state})`, true);
    case "40001":
    case "40P01":
      return new AdapterError("failed", `${at}: transaction conflict (SQLSTATE ${state})`, true);
    default:
      break;
  }
  // Class 08 connection exception, 53 insufficient resources, 57P0x shutdown / starting up.
  if (state.startsWith("08") || state.startsWith("53") || /^57P0[1-3]$/.test(state)) {
    return new AdapterError("unreachable", `${at}: server unavailable (SQLSTATE ${state})`, true);
  }
  return new AdapterError("failed", `${at} failed (SQLSTATE ${state})`, false);
}
