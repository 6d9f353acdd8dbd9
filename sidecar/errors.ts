/** Every error code leasehold answers with, and its HTTP status. */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthenticated: 401,
  lease_expired: 401,
  lease_revoked: 401,
  caller_mismatch: 401,
  policy_denied: 403,
  forbidden_host: 403,
  forbidden_origin: 403,
  not_found: 404,
  resource_busy: 409,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  upstream_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface LeaseholdErrorOptions {
  /** Internal detail for logs; never sent to a client. */
  detail?: string;
  /** True when the same call may succeed later (faults of Vault, Redis, a target). */
  retryable?: boolean;
  /** Seconds a client should wait before retrying (409 resource_busy, 429). */
  retryAfter?: number;
  cause?: unknown;
  /**
   * Per-field reasons behind the message (one per failed item, e.g. each account of a
   * registration). Sent to the client with the message (so never a secret).
   */
  details?: readonly ErrorDetail[];
  /**
   * What the caller can do next (e.g. the `leasehold policy check …` command that reproduces a
   * refusal). Sent to the client with the message (so never a secret).
   */
  hint?: string;
}

/** One reason behind an error, naming the field it is about (`registration.accounts.1`). */
export interface ErrorDetail {
  readonly field: string;
  readonly message: string;
}

/**
 * The one error type that crosses module boundaries. `message` and `details` are safe to show
 * to a client (status < 500, or upstream_unavailable) and never hold a secret; `detail` stays
 * in the process.
 */
export class LeaseholdError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly expose: boolean;
  readonly detail: string | undefined;
  readonly retryAfter: number | undefined;
  readonly details: readonly ErrorDetail[] | undefined;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: LeaseholdErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "LeaseholdError";
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.retryable = options.retryable ?? this.status >= 500;
    this.expose = this.status < 500 || code === "upstream_unavailable";
    this.detail = options.detail;
    this.retryAfter = options.retryAfter;
    this.details = options.details;
    this.hint = options.hint;
  }
}

export function isLeaseholdError(err: unknown): err is LeaseholdError {
  return err instanceof LeaseholdError;
}
