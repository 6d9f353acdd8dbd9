import { AdapterError } from "../adapter.js";

/**
 * Exit statuses a command uses to say why it failed, after sysexits.h. Anything else
 * non-zero is a non-retryable failure; for `verify`, 1 means "wrong password".
 */
export const ExitStatus = {
  ok: 0,
  /** verify only: the password is wrong (or the account unknown). */
  invalid: 1,
  /** EX_USAGE: the command does not understand the request or the action. */
  usage: 64,
  /** EX_DATAERR: the target refused the new password (policy, history, length). */
  passwordRejected: 65,
  /** EX_NOUSER: no such account on the target. */
  noUser: 67,
  /** EX_UNAVAILABLE: the target cannot be reached now (retryable). */
  unavailable: 69,
  /** EX_TEMPFAIL: a temporary failure; try again later (retryable). */
  tempFail: 75,
  /** EX_NOPERM: the admin credential, or the account's own current password, was refused. */
  noPerm: 77,
} as const;

/**
 * The AdapterError for a command that exited with `code` (not 0, and not 1 for verify). The
 * message says the status only: a command's output never reaches an API answer.
 */
export function errorForExit(code: number, at: string): AdapterError {
  switch (code) {
    case ExitStatus.usage:
      return new AdapterError("invalid", `${at}: the command refused the request (exit 64)`, false);
    case ExitStatus.passwordRejected:
      return new AdapterError(
        "password_rejected",
        `${at}: the target refused the new password (exit 65)`,
        false,
      );
    case ExitStatus.noUser:
      return new AdapterError("invalid", `${at}: no such account (exit 67)`, false);
    case ExitStatus.unavailable:
      return new AdapterError("unreachable", `${at}: target unavailable (exit 69)`, true);
    case ExitStatus.tempFail:
      return new AdapterError("failed", `${at}: temporary failure (exit 75)`, true);
    case ExitStatus.noPerm:
      return new AdapterError("auth_failed", `${at}: credential refused (exit 77)`, false);
    default:
      return new AdapterError("failed", `${at}: the command failed (exit ${code})`, false);
  }
}
