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

/** LDAP result codes (RFC 4511 appendix A) this adapter tells apart. */
export const ResultCode = {
  operationsError: 1,
  protocolError: 2,
  timeLimitExceeded: 3,
  authMethodNotSupported: 7,
  strongerAuthRequired: 8,
  adminLimitExceeded: 11,
  confidentialityRequired: 13,
  noSuchAttribute: 16,
  undefinedAttributeType: 17,
  constraintViolation: 19,
  invalidAttributeSyntax: 21,
  noSuchObject: 32,
  invalidDNSyntax: 34,
  inappropriateAuthentication: 48,
  invalidCredentials: 49,
  insufficientAccessRights: 50,
  busy: 51,
  unavailable: 52,
  unwillingToPerform: 53,
  objectClassViolation: 65,
} as const;

/** The LDAP result code of a server refusal (an ldapts ResultCodeError), if it is one. */
export function resultCode(err: unknown): number | undefined {
  if (!(err instanceof Error) || !("code" in err) || typeof err.code !== "number") return undefined;
  return err.code;
}

/**
 * Maps anything ldapts throws to an AdapterError whose message is built here: server
 * diagnostics are summarised by result code, never forwarded (a server may quote values
 * back), and ldapts errors are not kept as causes. Socket errors, which carry no LDAP
 * data, keep theirs.
 */
export function toAdapterError(err: unknown, action: string): AdapterError {
  if (err instanceof AdapterError) return err;
  const at = `ldap: ${action}`;
  const code = resultCode(err);
  if (code !== undefined) return fromResultCode(code, at);

  const sys = err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (sys === "ETIMEDOUT" || /timeout|timed out/i.test(message)) {
    return new AdapterError("timeout", `${at} timed out`, true);
  }
  if (
    (sys !== undefined && NETWORK_CODES.has(sys)) ||
    /Connection closed|Socket error|Socket connection not established/i.test(message)
  ) {
    return new AdapterError("unreachable", `${at}: ${networkCause(sys)}`, true, {
      cause: sys === undefined ? undefined : err,
    });
  }
  const tls = tlsCause(err);
  if (tls !== undefined) return new AdapterError("failed", `${at}: ${tls}`, false, { cause: err });
  return new AdapterError(
    "failed",
    `${at} failed (${sys ?? (err instanceof Error ? err.name : "unknown error")})`,
    false,
  );
}

function fromResultCode(code: number, at: string): AdapterError {
  switch (code) {
    case ResultCode.invalidCredentials:
    case ResultCode.inappropriateAuthentication:
      return new AdapterError("auth_failed", `${at}: authentication failed (result ${code})`, false);
    case ResultCode.insufficientAccessRights:
      return new AdapterError("privilege", `${at}: insufficient access rights (result ${code})`, false);
    case ResultCode.noSuchObject:
      return new AdapterError("invalid", `${at}: no such entry (result ${code})`, false);
    case ResultCode.invalidDNSyntax:
      return new AdapterError("invalid", `${at}: invalid DN syntax (result ${code})`, false);
    case ResultCode.undefinedAttributeType:
    case ResultCode.objectClassViolation:
    case ResultCode.noSuchAttribute:
      return new AdapterError(
        "invalid",
        `${at}: the entry cannot hold this password attribute (result ${code})`,
        false,
      );
    case ResultCode.constraintViolation:
    case ResultCode.invalidAttributeSyntax:
      return new AdapterError(
        "password_rejected",
        `${at}: the server's password policy or syntax refused the password (result ${code})`,
        false,
      );
    case ResultCode.confidentialityRequired:
    case ResultCode.strongerAuthRequired:
      return new AdapterError(
        "failed",
        `${at}: the server requires an encrypted connection (result ${code}); use ldaps:// or startTls`,
        false,
      );
    case ResultCode.timeLimitExceeded:
      return new AdapterError("timeout", `${at}: server time limit exceeded (result ${code})`, true);
    case ResultCode.busy:
    case ResultCode.unavailable:
    case ResultCode.adminLimitExceeded:
      return new AdapterError("unreachable", `${at}: server busy or unavailable (result ${code})`, true);
    case ResultCode.unwillingToPerform:
      return new AdapterError(
        "failed",
        `${at}: the server is unwilling to perform it (result ${code})`,
        false,
      );
    default:
      return new AdapterError("failed", `${at} failed (result ${code})`, false);
  }
}
