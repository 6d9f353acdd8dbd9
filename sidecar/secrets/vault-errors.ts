import { firstLine, networkCause, withoutUserinfo } from "../util/dependency-error.js";

interface VaultApiError {
  readonly message?: string;
  readonly response?: { readonly statusCode?: number; readonly body?: unknown };
}

/** The HTTP status of a node-vault error, or undefined when no answer came (network fault). */
export function vaultStatus(err: unknown): number | undefined {
  return (err as VaultApiError | null)?.response?.statusCode;
}

/** Vault's own error text (`errors` of the body), first line only; "" when it gave none. */
function vaultErrorText(err: unknown): string {
  const body = (err as VaultApiError | null)?.response?.body as { errors?: unknown } | undefined;
  const errors = Array.isArray(body?.errors) ? body.errors.map(String) : [];
  return firstLine(
    errors
      .join("; ")
      .replace(/\d+ errors? occurred:\s*/g, "")
      .replace(/\n\t\* /g, "; "),
  );
}

/**
 * The cause of a Vault fault in leasehold's words: `connection refused (ECONNREFUSED)`,
 * `timed out`, `TLS handshake failed: …`, `sealed`, `permission denied (token lacks policy for
 * <path>)`, `permission denied (invalid or expired token)`, `HTTP 503`. `path` is the Vault path
 * the call was for, if any. Never holds the token.
 */
export function vaultCause(err: unknown, path?: string): string {
  const status = vaultStatus(err);
  const text = vaultErrorText(err);
  if (status === undefined) {
    return networkCause(err) ?? (firstLine((err as VaultApiError | null)?.message ?? String(err)) || "error");
  }
  const body = (err as VaultApiError | null)?.response?.body as { sealed?: unknown } | undefined;
  if (/sealed/i.test(text) || body?.sealed === true) return "sealed";
  if (status === 403 || status === 401) {
    if (/invalid token|token.*expired|bad token/i.test(text))
      return "permission denied (invalid or expired token)";
    return path ? `permission denied (token lacks policy for ${path})` : "permission denied";
  }
  if (status === 429) return "rate limited (HTTP 429)";
  return text ? `HTTP ${status}: ${text}` : `HTTP ${status}`;
}

/** `vault <address>: <cause>`, the one form every Vault fault takes in logs and `/readyz`. */
export function describeVaultError(address: string, err: unknown, path?: string): string {
  return `vault ${withoutUserinfo(address)}: ${vaultCause(err, path)}`;
}
