import type { Adapter, AdapterContext, AdapterLogger, Credential } from "../../../adapters/adapter.js";

/** An account the checks use, with the password it has now; checks that change it keep this up to date. */
export interface TestAccount {
  readonly name: string;
  /** The password the account has now, as far as the checks know. */
  password: string;
  /** Every password a check tried to give the account, oldest first (to find the live one after a failure). */
  readonly history: string[];
}

/** A live login of an account on the target, to check that terminateSessions ends it. */
export interface ConformanceSession {
  /** True while the session still answers a trivial request. */
  alive(): Promise<boolean>;
  close(): Promise<void>;
}

/** What the checks run against: one adapter, one real target, and the means to get accounts. */
export interface CheckEnv<C> {
  readonly adapter: Adapter<C>;
  readonly target: C;
  /** A credential allowed to change other accounts' passwords; undefined when only self rotation is tested. */
  readonly admin: Credential | undefined;
  /** Valid settings naming a target that is not listening; undefined skips that check. */
  readonly unreachableTarget: C | undefined;
  /** An account whose password the hostile-name checks watch for injected changes. */
  readonly sentinel: TestAccount;
  /** An account to use (and change) with its current password. */
  account(): Promise<TestAccount>;
  /** Creates an account with exactly this name; absent when accounts cannot be created (the CLI runner). */
  readonly createAccount: ((name: string, password: string) => Promise<TestAccount>) | undefined;
  /** Opens a session as the account, for terminateSessions; absent skips that part. */
  readonly openSession: ((name: string, password: string) => Promise<ConformanceSession>) | undefined;
  /** Context for admin calls (the env's admin, or `admin` given). */
  adminCtx(admin?: Credential): AdapterContext;
  /** Context for self calls and verify: no admin credential. */
  selfCtx(): AdapterContext;
  /** A new random password within the adapter's constraints, remembered for the leak check. */
  secret(): string;
  /** Adds a line (an error's text) to what the leak check searches. */
  record(line: string): void;
  /** The log every call of the checks writes to (captured for the leak check). */
  readonly log: AdapterLogger;
  /** Every captured log line and recorded error text. */
  readonly lines: readonly string[];
  /** Every password the checks used or were given. */
  readonly secrets: readonly string[];
}

/** A check that does not apply to this target, and why. */
export interface Skipped {
  readonly skipped: string;
}

/** One conformance check: throws (a CheckFailed or any error) when the adapter misbehaves. */
export interface Check<C> {
  readonly name: string;
  /** Hostile-name checks are grouped under one heading by the vitest suite. */
  readonly group?: string;
  run(env: CheckEnv<C>): Promise<Skipped | undefined>;
}

/** Which checks apply. */
export interface CheckPlan {
  /** Random run id, in account names so parallel runs never collide. */
  readonly run: string;
  /** Name of the sentinel account (hostile names quote it in their injection attempts). */
  readonly sentinelName: string;
  /** Admin-mode checks (an admin credential is given). */
  readonly adminRotation: boolean;
  /** Self-mode checks (accounts change their own password). */
  readonly selfRotation: boolean;
}

/** The outcome of `runConformance`. */
export interface ConformanceReport {
  readonly passed: string[];
  readonly failed: Array<{ check: string; error: string }>;
  readonly skipped: Array<{ check: string; reason: string }>;
  /**
   * Accounts whose original password could not be put back: the password each was left
   * with (when known). Show it only to the DBA who ran the test; never log it.
   */
  readonly unrestored: Array<{ account: string; password: string | undefined }>;
}
