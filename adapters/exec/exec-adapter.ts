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
import { type ResolvedCommand, type ResolveOptions, resolveCommands } from "./commands.js";
import {
  EXEC_COMMAND_NAME,
  type ExecCommands,
  type ExecTarget,
  execConfig,
  UNKNOWN_COMMAND,
} from "./config.js";
import { ExitStatus, errorForExit } from "./exit-status.js";
import { checkPassword } from "./password-check.js";
import { runCommand } from "./run-command.js";
import { logExcerpt, scrubAndCap } from "./scrub.js";

/** Printable ASCII: any command can read it from JSON, whatever its language or locale. */
const constraints: PasswordConstraints = { minLength: 16, maxLength: 128, forbidden: "" };

/** Characters of each output stream that reach the log, after scrubbing. */
const LOGGED_CHARS = 1024;
/** Characters of stdout's last line read as terminate's session count. */
const COUNT_CHARS = 200;

/** The JSON document a command reads on stdin (docs/adapters.md, "exec"). */
export interface ExecRequest {
  readonly version: 1;
  readonly action: "verify" | "verify-admin" | "check-account" | "rotate" | "terminate";
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

/**
 * The operator's command a stored connection names. A connection that names none (a
 * registration from before commands were the operator's, with a program in it) never runs.
 */
function commandOf(table: ReadonlyMap<string, ResolvedCommand>, target: unknown): ResolvedCommand {
  const name = (target as { command?: unknown } | null)?.command;
  const found = typeof name === "string" ? table.get(name) : undefined;
  if (found) return found;
  const named = typeof name === "string" && EXEC_COMMAND_NAME.test(name) ? ` "${name}"` : "";
  throw new AdapterError(
    "invalid",
    `exec: connection.command${named}: ${UNKNOWN_COMMAND}; register the resource again with one of them`,
    false,
  );
}

/**
 * Runs the operator's command with `request` as JSON on stdin (never in argv or the
 * environment). No output of the command goes into an error: errors say only the exit status.
 * The log gets a bounded, scrubbed, control-free excerpt. Resolves the exit status when it is
 * 0 or one of `answers`; throws for every other outcome.
 */
async function invoke(
  command: ResolvedCommand,
  request: ExecRequest,
  ctx: AdapterContext,
  answers: readonly number[] = [],
): Promise<Finished> {
  const at = `exec: ${request.action}`;
  const secrets = secretsOf(request);
  const outcome = await runCommand({
    argv: command.argv,
    env: command.env,
    cwd: command.cwd,
    input: `${JSON.stringify(request)}\n`,
    timeoutMs: Math.max(1, Math.min(ctx.timeoutMs, command.timeoutSeconds * 1000)),
    runAs: command.runAs,
  });
  const where = { adapter: "exec", command: command.name, action: request.action, account: request.account };
  if (outcome.kind === "spawn_failed") {
    ctx.log.warn({ ...where, error: outcome.code }, "exec: command could not start");
    throw new AdapterError("invalid", `${at}: cannot start the command (${outcome.code})`, false);
  }
  const stdout = logExcerpt(outcome.stdout, secrets, LOGGED_CHARS);
  const stderr = logExcerpt(outcome.stderr, secrets, LOGGED_CHARS);
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
  if (!ok && !answers.includes(outcome.exitCode)) throw errorForExit(outcome.exitCode, at);
  const lastLine = outcome.stdoutTail.trim().split("\n").pop()?.trim() ?? "";
  return { exitCode: outcome.exitCode, lastLine: scrubAndCap(lastLine, secrets, COUNT_CHARS) };
}

function adminOf(ctx: AdapterContext): { admin?: Credential } {
  return ctx.admin === undefined
    ? {}
    : { admin: { username: ctx.admin.username, password: ctx.admin.password } };
}

/** The check-account request and what its exit status means (see the adapter's checkAccount). */
async function checkAccountWith(
  command: ResolvedCommand,
  account: string,
  ctx: AdapterContext,
): Promise<Verdict> {
  const { exitCode } = await invoke(
    command,
    { version: 1, action: "check-account", account, ...adminOf(ctx) },
    ctx,
    [ExitStatus.invalid, ExitStatus.usage, ExitStatus.noUser, ExitStatus.noPerm],
  );
  switch (exitCode) {
    case ExitStatus.usage:
      ctx.log.warn(
        { adapter: "exec", command: command.name, account },
        "exec: the command cannot check accounts up front (exit 64); the account is checked at its first rotation",
      );
      return { valid: true };
    case ExitStatus.noUser:
      return {
        valid: false,
        reason: `the command reports no such account ${JSON.stringify(account)} (exit 67)`,
      };
    case ExitStatus.noPerm:
      return {
        valid: false,
        reason: `the command reports the credential may not change account ${JSON.stringify(account)} (exit 77)`,
      };
    case ExitStatus.invalid:
      return {
        valid: false,
        reason: `the command reports account ${JSON.stringify(account)} cannot be used (exit 1)`,
      };
    default:
      return { valid: true };
  }
}

/**
 * The `exec` adapter over the operator's commands (`exec.commands` in leasehold.yaml): a
 * registration names one (`connection: { command: "<name>" }`) and its `config` schema refuses
 * anything else, a path or an argument list above all, before anything runs. leasehold sends
 * `{version, action, account, current?, previous?, next?, admin?}` as JSON on stdin; exit 0
 * means done (verify: 0 valid, 1 invalid), sysexits-style statuses say why not
 * (docs/adapters.md). A timeout kills the command's process group. Throws ExecCommandsError
 * when the table cannot be used (see resolveCommands).
 */
export function createExecAdapter(section: ExecCommands, opts: ResolveOptions = {}): Adapter<ExecTarget> {
  const table = resolveCommands(section, opts);
  const config = execConfig.superRefine((target, issues) => {
    // zod runs this even after the name's own check failed: one issue per field is enough.
    const name: unknown = target.command;
    if (typeof name === "string" && EXEC_COMMAND_NAME.test(name) && !table.has(name)) {
      issues.addIssue({ code: "custom", path: ["command"], message: UNKNOWN_COMMAND });
    }
  });
  return {
    id: "exec",
    description:
      "An operator's command, named in the sidecar's config: JSON request on stdin, exit status as the answer, no output in any answer",
    config,
    constraints,

    checkAccountName: checkExecAccountName,

    async verify(target: ExecTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> {
      const command = commandOf(table, target);
      requireAccount(cred.username);
      const { exitCode } = await invoke(
        command,
        { version: 1, action: "verify", account: cred.username, current: cred.password },
        ctx,
        [ExitStatus.invalid],
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
      const command = commandOf(table, target);
      const { exitCode } = await invoke(
        command,
        { version: 1, action: "verify-admin", account: admin.username, admin },
        ctx,
        [ExitStatus.invalid, ExitStatus.usage],
      );
      if (exitCode === ExitStatus.usage) {
        ctx.log.warn(
          { command: command.name },
          "exec: the command cannot check the admin credential up front",
        );
        return { valid: true };
      }
      return exitCode === ExitStatus.ok
        ? { valid: true }
        : { valid: false, reason: "the command refused the admin credential (exit 1)" };
    },

    /**
     * `{action: "check-account", account, admin?}`: exit 0 the account exists and the credential
     * may change it; 67 no such account; 77 the credential may not change it; 1 it cannot be
     * used otherwise. A command that does not know the action (exit 64, as every command written
     * before it does) cannot check up front: the account passes, and a warning says so.
     */
    async checkAccount(target: ExecTarget, account: string, ctx: AdapterContext): Promise<Verdict> {
      const command = commandOf(table, target);
      requireAccount(account);
      return checkAccountWith(command, account, ctx);
    },

    /** `exec://<command>/<account>`: the operator's command stands for the system it manages. */
    accountIdentity(target: ExecTarget, account: string): string {
      return `exec://${target.command}/${encodeURIComponent(account)}`;
    },

    async rotate(target: ExecTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> {
      const command = commandOf(table, target);
      requireAccount(change.account);
      const problem = checkPassword(change.next, constraints);
      if (problem !== null) throw new AdapterError("invalid", `exec: ${problem}`, false);
      await invoke(
        command,
        {
          version: 1,
          action: "rotate",
          account: change.account,
          ...(change.current === undefined ? {} : { current: change.current }),
          ...(change.previous === undefined ? {} : { previous: change.previous }),
          next: change.next,
          ...adminOf(ctx),
        },
        ctx,
      );
    },

    async terminateSessions(target: ExecTarget, account: string, ctx: AdapterContext): Promise<number> {
      const command = commandOf(table, target);
      requireAccount(account);
      const { lastLine } = await invoke(
        command,
        { version: 1, action: "terminate", account, ...adminOf(ctx) },
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
}

/**
 * The `exec` adapter of the explicit registry, before the sidecar's config is read: it knows no
 * command, so it refuses every registration and runs nothing. The sidecar replaces it with
 * `createExecAdapter(config.exec)`.
 */
export const execAdapter: Adapter<ExecTarget> = createExecAdapter({ commands: {} });
