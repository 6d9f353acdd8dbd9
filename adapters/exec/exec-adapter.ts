import type {
  Adapter,
  AdapterContext,
  Credential,
  PasswordChange,
  PasswordConstraints,
  Verdict,
} from "../adapter.js";
import { AdapterError } from "../adapter.js";
import { checkExecAccountName } from "./account-name.js";
import { type ExecTarget, execConfig } from "./config.js";
import { ExitStatus, errorForExit } from "./exit-status.js";
import { checkPassword } from "./password-check.js";
import { runCommand } from "./run-command.js";
import { scrubAndCap } from "./scrub.js";

/** Printable ASCII: any command can read it from JSON, whatever its language or locale. */
const constraints: PasswordConstraints = { minLength: 16, maxLength: 128, forbidden: "" };

/** Characters of each output stream that reach the log, after scrubbing. */
const LOGGED_CHARS = 4096;
/** Characters of stderr quoted in an error message. */
const DETAIL_CHARS = 200;

/** The JSON document a command reads on stdin (docs/adapters.md, "exec"). */
export interface ExecRequest {
  readonly version: 1;
  readonly action: "verify" | "verify-admin" | "rotate" | "terminate";
  readonly account: string;
  /** verify: the password to check; rotate: the account's password as leasehold knows it. */
  readonly current?: string;
  /** rotate: the password before `current`, should an earlier rotation have been cut short. */
  readonly previous?: string;
  /** rotate: the password to set. */
  readonly next?: string;
  /** rotate and terminate in admin mode: the admin credential. */
  readonly admin?: Credential;
}

interface Finished {
  readonly exitCode: number;
  /** The last non-empty line of stdout, scrubbed (terminate's session count). */
  readonly lastLine: string;
}

function requireAccount(name: string): void {
  const problem = checkExecAccountName(name);
  if (problem !== null) throw new AdapterError("invalid", `exec: ${problem}`, false);
}

function secretsOf(request: ExecRequest): string[] {
  return [request.current, request.previous, request.next, request.admin?.password].filter(
    (s): s is string => s !== undefined && s !== "",
  );
}

function firstLines(text: string): string {
  return text.trim().split("\n").slice(0, 3).join(" | ").slice(0, DETAIL_CHARS);
}

/**
 * Runs the target's command with `request` as JSON on stdin (never in argv or the
 * environment). Output is scrubbed of every secret in the request before it is logged or
 * quoted. Resolves the exit status; throws for faults that are not an exit status.
 */
async function invoke(target: ExecTarget, request: ExecRequest, ctx: AdapterContext): Promise<Finished> {
  const [program, ...args] = target.command;
  if (program === undefined) throw new AdapterError("invalid", "exec: command is empty", false);
  const at = `exec: ${request.action}`;
  const secrets = secretsOf(request);
  const outcome = await runCommand({
    argv: [program, ...args],
    env: target.env,
    cwd: target.cwd,
    input: `${JSON.stringify(request)}\n`,
    timeoutMs: Math.max(1, Math.min(ctx.timeoutMs, target.timeoutSeconds * 1000)),
  });
  const where = { adapter: "exec", program, action: request.action, account: request.account };
  if (outcome.kind === "spawn_failed") {
    ctx.log.warn({ ...where, error: outcome.code }, "exec: command could not start");
    throw new AdapterError("invalid", `${at}: cannot start the command (${outcome.code})`, false);
  }
  const stdout = scrubAndCap(outcome.stdout, secrets, LOGGED_CHARS);
  const stderr = scrubAndCap(outcome.stderr, secrets, LOGGED_CHARS);
  if (outcome.kind === "timeout") {
    ctx.log.warn({ ...where, stdout, stderr }, "exec: command timed out; its process group was killed");
    throw new AdapterError("timeout", `${at}: the command timed out and was killed`, true);
  }
  const ok = outcome.exitCode === ExitStatus.ok;
  const fields = { ...where, exitCode: outcome.exitCode, signal: outcome.signal, stdout, stderr };
  if (ok) ctx.log.info(fields, "exec: command finished");
  else ctx.log.warn(fields, "exec: command failed");
  if (outcome.exitCode === null) {
    // Killed by someone else (the OOM killer, an operator): worth another try.
    throw new AdapterError("failed", `${at}: the command was killed (${outcome.signal ?? "signal"})`, true);
  }
  const verifying = request.action === "verify" || request.action === "verify-admin";
  if (!ok && !(verifying && outcome.exitCode === ExitStatus.invalid)) {
    throw errorForExit(outcome.exitCode, at, firstLines(stderr));
  }
  const lastLine = outcome.stdoutTail.trim().split("\n").pop()?.trim() ?? "";
  return { exitCode: outcome.exitCode, lastLine: scrubAndCap(lastLine, secrets, DETAIL_CHARS) };
}

/**
 * The `exec` adapter: a DBA's own command for systems nothing else covers. leasehold
 * sends `{version, action, account, current?, previous?, next?, admin?}` as JSON on stdin;
 * exit 0 means done (verify: 0 valid, 1 invalid), sysexits-style statuses say why not
 * (docs/adapters.md). A timeout kills the command's process group.
 */
export const execAdapter: Adapter<ExecTarget> = {
  id: "exec",
  description:
    "A DBA-supplied command: JSON request on stdin, exit status as the answer, output logged without secrets",
  config: execConfig,
  constraints,

  checkAccountName: checkExecAccountName,

  async verify(target: ExecTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> {
    requireAccount(cred.username);
    const { exitCode } = await invoke(
      target,
      { version: 1, action: "verify", account: cred.username, current: cred.password },
      ctx,
    );
    return exitCode === ExitStatus.ok
      ? { valid: true }
      : { valid: false, reason: "the command reported the password invalid (exit 1)" };
  },

  /**
   * `{action: "verify-admin", admin}`: exit 0 valid, 1 invalid. A command that does not know the
   * action (exit 64) cannot check it up front; it still checks the admin on every rotate.
   */
  async verifyAdmin(target: ExecTarget, admin: Credential, ctx: AdapterContext): Promise<Verdict> {
    try {
      const { exitCode } = await invoke(
        target,
        { version: 1, action: "verify-admin", account: admin.username, admin },
        ctx,
      );
      return exitCode === ExitStatus.ok
        ? { valid: true }
        : { valid: false, reason: "the command refused the admin credential (exit 1)" };
    } catch (err) {
      if (err instanceof AdapterError && err.code === "invalid" && /\b64\b|usage/i.test(err.message)) {
        ctx.log.warn(
          { command: target.command[0] },
          "exec: the command cannot check the admin credential up front",
        );
        return { valid: true };
      }
      throw err;
    }
  },

  async rotate(target: ExecTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> {
    requireAccount(change.account);
    const problem = checkPassword(change.next, constraints);
    if (problem !== null) throw new AdapterError("invalid", `exec: ${problem}`, false);
    await invoke(
      target,
      {
        version: 1,
        action: "rotate",
        account: change.account,
        ...(change.current === undefined ? {} : { current: change.current }),
        ...(change.previous === undefined ? {} : { previous: change.previous }),
        next: change.next,
        ...(ctx.admin === undefined
          ? {}
          : { admin: { username: ctx.admin.username, password: ctx.admin.password } }),
      },
      ctx,
    );
  },

  async terminateSessions(target: ExecTarget, account: string, ctx: AdapterContext): Promise<number> {
    requireAccount(account);
    const { lastLine } = await invoke(
      target,
      {
        version: 1,
        action: "terminate",
        account,
        ...(ctx.admin === undefined
          ? {}
          : { admin: { username: ctx.admin.username, password: ctx.admin.password } }),
      },
      ctx,
    );
    if (!/^\d{1,9}$/.test(lastLine)) {
      throw new AdapterError(
        "failed",
        "exec: terminate: the command must print the number of sessions it ended as its last line",
        false,
      );
    }
    return Number(lastLine);
  },
};
