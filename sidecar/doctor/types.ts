/** How one doctor check came out: `ok`, `warn` (works, but not as docs/operations.md recommends) or `FAIL`. */
export type CheckStatus = "ok" | "warn" | "FAIL";

/** One line of `leasehold doctor`: what was checked, what was found, and for a problem what to do. */
export interface DoctorCheck {
  readonly status: CheckStatus;
  /** What was checked, e.g. `redis 127.0.0.1:6379 authentication`. */
  readonly check: string;
  /** What was found (never a secret). */
  readonly detail: string;
  /** For `warn` and `FAIL`: the concrete step that fixes it. */
  readonly fix?: string | undefined;
}

/** An `ok` line. */
export function ok(check: string, detail: string): DoctorCheck {
  return { status: "ok", check, detail };
}

/** A `FAIL` line with its fix. */
export function fail(check: string, detail: string, fix: string): DoctorCheck {
  return { status: "FAIL", check, detail, fix };
}

/** A `warn` line with its fix. */
export function warn(check: string, detail: string, fix: string): DoctorCheck {
  return { status: "warn", check, detail, fix };
}
