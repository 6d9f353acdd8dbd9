// An error answer of the sidecar as the CLI shows it; light, so main.ts can name it on every start.

/** One per-field reason of an error answer (`error.details`), as the sidecar sent it. */
export interface ApiErrorDetail {
  readonly field: string;
  readonly message: string;
}

/** An error answer of the sidecar, as the CLI shows it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The answer's `error.details`, when it had any (each failed item behind the message). */
    readonly details: readonly ApiErrorDetail[] = [],
  ) {
    super(message);
  }
}

/**
 * How the CLI shows one detail of an error answer: `FAIL  account NAME: reason` for an account of
 * a registration (its message starts with the account's name), else `FAIL  FIELD: reason`.
 */
export function detailLine(d: ApiErrorDetail): string {
  return /^registration\.accounts\.\d+$/.test(d.field)
    ? `FAIL  account ${d.message}`
    : `FAIL  ${d.field}: ${d.message}`;
}
