import { randomBytes } from "node:crypto";
import type { Adapter, Credential } from "../../../adapters/adapter.js";
import { conformanceChecks, leakCheck } from "./checks.js";
import { Recorder } from "./harness.js";
import { type ConformanceTarget, loadConformanceTarget } from "./target-file.js";
import type { Check, CheckEnv, ConformanceReport, TestAccount } from "./types.js";

const DEFAULT_TIMEOUT_MS = 15_000;

/** What `runConformance` runs against. */
export interface RunConformanceOptions<C = unknown> {
  adapter: Adapter<C>;
  /** The adapter's connection settings, unvalidated: the adapter's schema checks them (defaults applied). */
  target: unknown;
  /** Needed for rotateWith admin; with self it also enables the admin-mode checks. */
  admin?: Credential | undefined;
  /** Existing test accounts and their current passwords; changed during the run, put back at the end. */
  accounts: ReadonlyArray<{ readonly name: string; readonly password: string }>;
  /** @default "admin" */
  rotateWith?: "admin" | "self" | undefined;
  /** Settings of the same kind pointing where nothing listens; absent skips that check. */
  unreachable?: unknown;
  /** Upper bound for one adapter call, ms. @default 15000 */
  timeoutMs?: number | undefined;
  /** Told about each check as it finishes (progress output). Never given a password. */
  onResult?:
    | ((result: { check: string; outcome: "passed" | "failed" | "skipped"; detail?: string }) => void)
    | undefined;
}

interface PoolAccount extends TestAccount {
  readonly original: string;
  /** False once no known password verifies any more. */
  known: boolean;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = "code" in err && typeof err.code === "string" ? ` [${err.code}]` : "";
  return `${err.name}${code}: ${err.message}`;
}

function schemaProblems(adapter: Adapter<unknown>, value: unknown): string | null {
  const result = adapter.config.safeParse(value);
  if (result.success) return null;
  return result.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ");
}

type Outcome = "passed" | "failed" | "skipped";
type Note = (check: string, outcome: Outcome, detail?: string) => void;

const PRECONDITIONS = "the target file describes a usable target";
const RESTORED = "every account gets its original password back";

/** Records each outcome in `report` and tells `onResult` as it happens. */
function noter(report: ConformanceReport, onResult: RunConformanceOptions["onResult"]): Note {
  return (check, outcome, detail) => {
    if (outcome === "passed") report.passed.push(check);
    else if (outcome === "failed") report.failed.push({ check, error: detail ?? "failed" });
    else report.skipped.push({ check, reason: detail ?? "" });
    onResult?.(detail === undefined ? { check, outcome } : { check, outcome, detail });
  };
}

/** What makes the run unusable before anything is changed: a misconfigured run changes nothing. */
function preconditionProblems<C>(opts: RunConformanceOptions<C>): string[] {
  const adapter = opts.adapter as Adapter<unknown>;
  const problems: string[] = [];
  const targetProblem = schemaProblems(adapter, opts.target);
  if (targetProblem !== null) problems.push(`connection: ${targetProblem}`);
  if (opts.unreachable !== undefined) {
    const p = schemaProblems(adapter, opts.unreachable);
    if (p !== null) problems.push(`unreachable: ${p}`);
  }
  if ((opts.rotateWith ?? "admin") === "admin" && opts.admin === undefined)
    problems.push("admin: required with rotateWith: admin");
  if (opts.accounts.length === 0) problems.push("accounts: at least one is needed");
  const { minLength, maxLength, forbidden } = adapter.constraints;
  opts.accounts.forEach((a, i) => {
    const refusal = adapter.checkAccountName(a.name);
    if (refusal !== null) problems.push(`accounts.${i}.name: the adapter refuses it (${refusal})`);
    const fits =
      a.password.length >= minLength &&
      a.password.length <= maxLength &&
      ![...forbidden].some((ch) => a.password.includes(ch));
    if (!fits) {
      problems.push(
        `accounts.${i}.password: outside the adapter's constraints (${minLength}-${maxLength} characters, none of ${JSON.stringify(forbidden)}), so it could not be put back after the run`,
      );
    }
  });
  return problems;
}

type Verifies = (name: string, password: string) => Promise<boolean>;

/** Every given password must work before anything is changed: the problem, or null. */
async function unusableAccount(pool: readonly PoolAccount[], verifies: Verifies): Promise<string | null> {
  try {
    for (const [i, a] of pool.entries()) {
      if (!(await verifies(a.name, a.password))) return `accounts.${i}: the given password does not verify`;
    }
  } catch (err) {
    return `verifying the given accounts failed: ${describeError(err)}`;
  }
  return null;
}

/** After a failed check: find each account's live password among those it has had. */
async function findLivePasswords(pool: readonly PoolAccount[], verifies: Verifies): Promise<void> {
  for (const a of pool) {
    if (!a.known) continue;
    try {
      if (await verifies(a.name, a.password)) continue;
      const live = [...a.history].reverse();
      let found: string | undefined;
      for (const candidate of live) {
        if (await verifies(a.name, candidate)) {
          found = candidate;
          break;
        }
      }
      if (found === undefined) a.known = false;
      else a.password = found;
    } catch {
      // The target is failing; the restore step reports what could not be put back.
      return;
    }
  }
}

/** The checks' view of the run: accounts are handed out in turn, the sentinel kept aside. */
function checkEnv<C>(p: {
  opts: RunConformanceOptions<C>;
  target: C;
  unreachable: C | undefined;
  pool: readonly PoolAccount[];
  sentinel: PoolAccount;
  recorder: Recorder;
}): CheckEnv<C> {
  const { pool, sentinel, recorder } = p;
  let turn = 0;
  return {
    adapter: p.opts.adapter,
    target: p.target,
    admin: p.opts.admin,
    unreachableTarget: p.unreachable,
    sentinel,
    async account() {
      // The sentinel is shared only when it is the one account given.
      const usable = pool.filter((a) => a.known && (a !== sentinel || pool.length === 1));
      const next = usable[turn % Math.max(1, usable.length)];
      turn += 1;
      if (next === undefined) throw new Error("no test account with a known password is left");
      return next;
    },
    createAccount: undefined,
    openSession: undefined,
    adminCtx: (admin) => recorder.adminCtx(admin),
    selfCtx: () => recorder.selfCtx(),
    secret: () => recorder.secret(),
    record: (line) => recorder.record(line),
    log: recorder.log,
    lines: recorder.lines,
    secrets: recorder.secrets,
  };
}

/**
 * Runs the adapter conformance checks (the ones the vitest suite runs, from the same
 * code) against a real target with existing test accounts, for `leasehold adapters test`:
 * a DBA proves an adapter before registering resources with it. Accounts are used in turn
 * and their passwords changed; at the end each gets its original password back (reported
 * in `unrestored` when that fails). Checks that cannot apply (no admin, self rotation not
 * asked for, no unreachable connection, no terminateSessions) are reported as skipped.
 * Hostile account names are never created: they must be refused, or acting on them must
 * fail without creating them and without touching the real accounts.
 *
 * Never throws for an adapter's misbehaviour (that is a failed check); messages never hold
 * a password. Note for targets with lockout policies: the run makes a few logins with
 * wrong passwords (one with a wrong admin password).
 */
export async function runConformance<C>(opts: RunConformanceOptions<C>): Promise<ConformanceReport> {
  const report: ConformanceReport = { passed: [], failed: [], skipped: [], unrestored: [] };
  const note = noter(report, opts.onResult);
  const adapter = opts.adapter;
  const problems = preconditionProblems(opts);
  if (problems.length > 0) {
    note(PRECONDITIONS, "failed", problems.join("; "));
    return report;
  }
  const target = adapter.config.parse(opts.target);
  const unreachable = opts.unreachable === undefined ? undefined : adapter.config.parse(opts.unreachable);

  const recorder = new Recorder(adapter.constraints, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, opts.admin);
  const pool: PoolAccount[] = opts.accounts.map((a) => {
    recorder.remember(a.password);
    return { name: a.name, password: a.password, original: a.password, history: [a.password], known: true };
  });
  const verifies: Verifies = async (name, password) =>
    (await adapter.verify(target, { username: name, password }, recorder.selfCtx())).valid;
  const unusable = await unusableAccount(pool, verifies);
  if (unusable !== null) {
    note(PRECONDITIONS, "failed", unusable);
    return report;
  }
  note(PRECONDITIONS, "passed");

  const [sentinel] = pool;
  if (sentinel === undefined) return report;
  const env = checkEnv({ opts, target, unreachable, pool, sentinel, recorder });
  const checks: Check<C>[] = conformanceChecks<C>({
    run: randomBytes(3).toString("hex"),
    sentinelName: sentinel.name,
    adminRotation: opts.admin !== undefined,
    selfRotation: (opts.rotateWith ?? "admin") === "self",
  });
  for (const check of checks) {
    const label = check.group === undefined ? check.name : `${check.group}: ${check.name}`;
    try {
      const outcome = await check.run(env);
      if (outcome === undefined) note(label, "passed");
      else note(label, "skipped", outcome.skipped);
    } catch (err) {
      recorder.record(`thrown ${describeError(err)}`);
      note(label, "failed", describeError(err));
      await findLivePasswords(pool, verifies);
    }
  }

  const restoreErrors = await restore(pool, opts, target, recorder, report.unrestored);
  if (restoreErrors.length === 0) note(RESTORED, "passed");
  else note(RESTORED, "failed", restoreErrors.join("; "));

  const leaks = leakCheck<C>();
  try {
    await leaks.run(env);
    note(leaks.name, "passed");
  } catch (err) {
    note(leaks.name, "failed", describeError(err));
  }
  return report;
}

/**
 * Puts every account's original password back, rotating as the run did (admin or self).
 * Accounts it cannot restore go to `unrestored`, with the password they were left with.
 */
async function restore<C>(
  pool: readonly PoolAccount[],
  opts: RunConformanceOptions<C>,
  target: C,
  recorder: Recorder,
  unrestored: ConformanceReport["unrestored"],
): Promise<string[]> {
  const errors: string[] = [];
  for (const a of pool) {
    if (a.known && a.password === a.original) continue;
    try {
      if (!a.known) throw new Error("no password the run gave it verifies any more");
      const ctx = opts.admin !== undefined ? recorder.adminCtx() : recorder.selfCtx();
      await opts.adapter.rotate(target, { account: a.name, current: a.password, next: a.original }, ctx);
      const verdict = await opts.adapter.verify(
        target,
        { username: a.name, password: a.original },
        recorder.selfCtx(),
      );
      if (!verdict.valid) throw new Error("the original password does not verify after restoring it");
      a.password = a.original;
    } catch (err) {
      errors.push(`${a.name}: ${describeError(err)}`);
      unrestored.push({ account: a.name, password: a.known ? a.password : undefined });
    }
  }
  return errors;
}

/**
 * `runConformance` from a target FILE (YAML or JSON, docs/adapters.md), for
 * `leasehold adapters test MODULE --target FILE`.
 * @throws LeaseholdError invalid_request when the file cannot be read or is invalid.
 */
export async function runConformanceFromFile<C>(
  adapter: Adapter<C>,
  file: string,
  onResult?: RunConformanceOptions<C>["onResult"],
): Promise<ConformanceReport> {
  const spec: ConformanceTarget = await loadConformanceTarget(file);
  return runConformance({
    adapter,
    target: spec.connection,
    admin: spec.admin,
    accounts: spec.accounts,
    rotateWith: spec.rotateWith,
    unreachable: spec.unreachable,
    timeoutMs: spec.timeoutMs,
    onResult,
  });
}
