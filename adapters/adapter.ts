import type { ZodType } from "zod";

/** A username and the password that goes with it. */
export interface Credential {
  readonly username: string;
  readonly password: string;
}

/** The outcome of a login attempt: a wrong password is a value, not an error. */
export type Verdict = { readonly valid: true } | { readonly valid: false; readonly reason: string };

/** What a rotation must achieve: afterwards `next` logs in as `account` and nothing else does. */
export interface PasswordChange {
  readonly account: string;
  /** The password the account has now, as far as leasehold knows (self mode logs in with it). */
  readonly current?: string | undefined;
  /** The password before `current`, tried when `current` fails (an interrupted rotation). */
  readonly previous?: string | undefined;
  readonly next: string;
}

/** Minimal structured logger (pino's shape). Adapters never log passwords. */
export interface AdapterLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AdapterContext {
  /** Admin credential (rotateWith: admin). Absent in self mode: the account changes its own password. */
  readonly admin?: Credential | undefined;
  readonly log: AdapterLogger;
  /** Upper bound for one call, in milliseconds. */
  readonly timeoutMs: number;
}

/** Limits the target puts on passwords; the generator respects them. */
export interface PasswordConstraints {
  readonly minLength: number;
  readonly maxLength: number;
  /** Characters the target (or its quoting) cannot take in a password. */
  readonly forbidden: string;
}

/**
 * A fault talking to a target. `retryable` is true for a target that is down or slow,
 * false for a definite refusal (bad admin credential, missing privilege, password policy).
 * The message never holds a password.
 */
export class AdapterError extends Error {
  readonly retryable: boolean;
  readonly code:
    | "unreachable"
    | "timeout"
    | "auth_failed"
    | "privilege"
    | "password_rejected"
    | "invalid"
    | "failed";

  constructor(
    code: AdapterError["code"],
    message: string,
    retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AdapterError";
    this.code = code;
    this.retryable = retryable;
  }
}

/** One kind of legacy system whose passwords leasehold verifies and rotates. */
export interface Adapter<C = unknown> {
  readonly id: string;
  /** Human summary shown by `GET /v1/adapters`. */
  readonly description: string;
  /** Connection settings, validated at registration. */
  readonly config: ZodType<C>;
  readonly constraints: PasswordConstraints;
  /** Rejects an account name this adapter cannot handle exactly; returns an error message or null. */
  checkAccountName(name: string): string | null;
  /** Resolves valid:false for a wrong password; throws AdapterError only for faults. */
  verify(target: C, cred: Credential, ctx: AdapterContext): Promise<Verdict>;
  /**
   * Checks the admin credential itself, for systems where the admin is not an account like the
   * managed ones (an LDAP bind DN; a DBA's command that checks it on every call). Absent: the
   * admin credential is checked with verify() as an ordinary login.
   */
  verifyAdmin?(target: C, admin: Credential, ctx: AdapterContext): Promise<Verdict>;
  /**
   * A registration's per-account check, before anything is written: the account exists on the
   * target and `ctx.admin` may change its password (with no `ctx.admin`, self mode: that it
   * exists, where the target can tell without logging in). A missing account or a missing
   * privilege is `valid: false` with the target's own words; throws AdapterError for faults.
   * Absent: registrations can only check accounts by logging in.
   */
  checkAccount?(target: C, account: string, ctx: AdapterContext): Promise<Verdict>;
  /**
   * The account as the target knows it, for the one-owner-per-account index: two registrations
   * naming the same account on the same system give the same string (host and port normalized,
   * the account's name or DN in canonical form); no secret. Absent: the adapter id, the
   * connection settings and the account name.
   */
  accountIdentity?(target: C, account: string): string;
  /** Afterwards verify(next) is valid and verify(current) is not. Safe to repeat. */
  rotate(target: C, change: PasswordChange, ctx: AdapterContext): Promise<void>;
  /** Ends live sessions of the account; returns how many. */
  terminateSessions?(target: C, account: string, ctx: AdapterContext): Promise<number>;
  /**
   * Closes what the adapter keeps open between calls (idle admin connections), for shutdown.
   * Later calls still work; they open connections again.
   */
  close?(): Promise<void>;
}
