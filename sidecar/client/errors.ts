/** Error codes the sidecar answers with (see the HTTP API). */
export type ServerErrorCode =
  | "invalid_request"
  | "unauthenticated"
  | "lease_expired"
  | "lease_revoked"
  | "caller_mismatch"
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

/**
 * Every failure the SDK reports. `status` is the HTTP status (0 when no answer came);
 * `code` is stable and meant for `switch`; the message never holds a token or password.
 */
export class LeaseholdClientError extends Error {
  override readonly name = "LeaseholdClientError";

  constructor(
    readonly code: LeaseholdClientErrorCode,
    message: string,
    readonly status = 0,
    readonly requestId?: string,
    /** Seconds to wait before retrying, when the sidecar says so (409, 429). */
    readonly retryAfter?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
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
