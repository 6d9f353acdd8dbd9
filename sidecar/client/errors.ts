/** Error codes the sidecar answers with (see the HTTP API). */
export type ServerErrorCode =
  | "invalid_request"
  | "unauthenticated"
  | "lease_expired"
  | "lease_revoked"
  | "policy_denied"
  | "forbidden_host"
  | "forbidden_origin"
  | "not_found"
  | "resource_busy"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "internal"
  | "upstream_unavailable";

/** Codes the SDK adds for outcomes that are not a sidecar error answer. */
export type ClientErrorCode =
  | "unreachable"
  | "bad_response"
  | "approval_denied"
  | "approval_expired"
  | "approval_timeout"
  | "aborted"
  | "invalid_options"
  | "bad_key"
  | "no_proxy";

export type LeaseholdClientErrorCode = ServerErrorCode | ClientErrorCode;

/** One reason behind a sidecar error answer (`error.details`), naming the field it is about. */
export interface LeaseholdErrorDetail {
  /** The item the reason is about, e.g. `registration.accounts.1`. */
  readonly field: string;
  readonly message: string;
}

/** The optional parts of a {@link LeaseholdClientError}. */
export interface LeaseholdClientErrorOptions {
  cause?: unknown;
  /** The answer's `error.details`: one reason per failed item behind the message. */
  details?: readonly LeaseholdErrorDetail[];
  /** The answer's `error.hint`: what to do next (a `policy_denied` names the `leasehold policy check` command). */
  hint?: string;
}

/**
 * Every failure the SDK reports. `status` is the HTTP status (0 when no answer came);
 * `code` is stable and meant for `switch`; the message never holds a token or password.
 * `details` and `hint` are the sidecar's `error.details` and `error.hint`, when it sent them.
 */
export class LeaseholdClientError extends Error {
  override readonly name = "LeaseholdClientError";
  /** Per-item reasons behind the message (the answer's `error.details`), when the sidecar sent any. */
  readonly details?: readonly LeaseholdErrorDetail[];
  /** What the caller can do next (the answer's `error.hint`), when the sidecar sent one. */
  readonly hint?: string;

  constructor(
    readonly code: LeaseholdClientErrorCode,
    message: string,
    readonly status = 0,
    readonly requestId?: string,
    /** Seconds to wait before retrying, when the sidecar says so (409, 429). */
    readonly retryAfter?: number,
    options?: LeaseholdClientErrorOptions,
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.details !== undefined) this.details = options.details;
    if (options?.hint !== undefined) this.hint = options.hint;
  }

  /** True when the same call may succeed later. */
  get retryable(): boolean {
    return (
      this.code === "resource_busy" ||
      this.code === "rate_limited" ||
      this.code === "upstream_unavailable" ||
      this.code === "unreachable"
    );
  }
}
