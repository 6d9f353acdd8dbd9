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
  "PROTOCOL_CONNECTION_LOST",
]);

/** Server errors that refuse a login: wrong password, unknown user, locked, expired, host not allowed. */
const LOGIN_REFUSED = new Map<number, string>([
  [1045, "access denied: wrong password or unknown user (ER_ACCESS_DENIED_ERROR)"],
  [1698, "access denied (ER_ACCESS_DENIED_NO_PASSWORD_ERROR)"],
  [1130, "this client host may not log in as the user (ER_HOST_NOT_PRIVILEGED)"],
  [1862, "the password has expired (ER_MUST_CHANGE_PASSWORD_LOGIN)"],
  [3118, "the account is locked (ER_ACCOUNT_HAS_BEEN_LOCKED)"],
  [4151, "the account is locked (ER_ACCOUNT_HAS_BEEN_LOCKED)"],
]);

/** The server error number, when `err` is an error the server sent. */
export function serverErrno(err: unknown): number | undefined {
  if (!(err instanceof Error) || !("sqlState" in err) || !("errno" in err)) return undefined;
  return typeof err.errno === "number" && typeof err.sqlState === "string" ? err.errno : undefined;
}

/** The reason a login was refused, or undefined when `err` is not such a refusal. */
export function loginRefusedReason(err: unknown): string | undefined {
  const errno = serverErrno(err);
  return errno === undefined ? undefined : LOGIN_REFUSED.get(errno);
}

/**
 * Maps anything mysql2 throws to an AdapterError whose message is built here. Server
 * messages are summarised by error number and never forwarded: a syntax error quotes the
 * statement, and mysql2 errors carry the statement (`sql`) itself, which may hold the new
 * password. So server errors keep no cause; only socket errors do.
 */
export function toAdapterError(err: unknown, action: string): AdapterError {
  if (err instanceof AdapterError) return err;
  const at = `mysql: ${action}`;
  const errno = serverErrno(err);
  if (errno !== undefined) return fromErrno(errno, at);

  const code = err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
  if (code === "ETIMEDOUT" || code === "PROTOCOL_SEQUENCE_TIMEOUT") {
    return new AdapterError("timeout", `${at} timed out`, true, { cause: err });
  }
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new AdapterError("unreachable", `${at}: ${networkCause(code)}`, true, { cause: err });
  }
  const tls =
    code === "HANDSHAKE_NO_SSL_SUPPORT"
      ? "TLS handshake failed: the server does not offer TLS (HANDSHAKE_NO_SSL_SUPPORT)"
      : tlsCause(err);
  if (tls !== undefined) return new AdapterError("failed", `${at}: ${tls}`, false, { cause: err });
  // Client-side faults (TLS, protocol, unsupported auth plugin) name no SQL; a code is enough.
  return new AdapterError(
    "failed",
    `${at} failed (${code ?? (err instanceof Error ? err.name : "unknown error")})`,
    false,
  );
}

function fromErrno(errno: number, at: string): AdapterError {
  const refused = LOGIN_REFUSED.get(errno);
  if (refused !== undefined)
    return new AdapterError("auth_failed", `${at}: authentication failed: ${refused}`, false);
  switch (errno) {
    case 1044:
    case 1142:
    case 1143:
    case 1227:
      return new AdapterError("privilege", `${at}: insufficient privilege (error ${errno})`, false);
    case 1396:
      return new AdapterError(
        "invalid",
        `${at}: no such account, or the operation is refused for it (error ${errno})`,
        false,
      );
    case 1819:
      return new AdapterError(
        "password_rejected",
        `${at}: the server's password policy refused the password (error ${errno})`,
        false,
      );
    case 1820:
      return new AdapterError(
        "password_rejected",
        `${at}: the account's password has expired (error ${errno})`,
        false,
      );
    case 1205:
    case 1969:
    case 3024:
      return new AdapterError("timeout", `${at}: statement timed out (error ${errno})`, true);
    case 1213:
      return new AdapterError("failed", `${at}: deadlock (error ${errno})`, true);
    case 1040:
    case 1053:
    case 1203:
    case 1927:
    case 2002:
    case 2003:
    case 2006:
    case 2013:
      return new AdapterError("unreachable", `${at}: server unavailable (error ${errno})`, true);
    default:
      return new AdapterError("failed", `${at} failed (error ${errno})`, false);
  }
}
