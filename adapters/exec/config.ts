import { z } from "zod";

/** The longest an operator may let one command run. */
export const MAX_TIMEOUT_SECONDS = 600;

/** What names a command in the operator's table, and what a registration may say. */
export const EXEC_COMMAND_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Why a registration's `connection.command` is refused; never echoes what was sent. */
export const NOT_A_COMMAND_NAME =
  "must be the name of a command the sidecar's config lists under exec.commands; a registration never carries a program, a path or arguments";

/** Why a well-formed name is refused: the operator's table lists no such command. */
export const UNKNOWN_COMMAND = "not one of the commands this sidecar's config lists (exec.commands)";

/**
 * Connection settings of an `exec` resource: which of the operator's commands it uses. Unknown
 * keys are refused. The program, its arguments, environment and user belong to the sidecar's
 * config (`exec.commands`), so whoever may register a resource cannot choose what runs.
 */
export const execConfig = z.strictObject({
  /**
   * The name of one of the commands the sidecar's config lists under `exec.commands`
   * (`rotate-mainframe`). A path, a program or an argument list is refused.
   */
  command: z.string({ error: NOT_A_COMMAND_NAME }).regex(EXEC_COMMAND_NAME, NOT_A_COMMAND_NAME),
});

/** A validated `exec` connection: the name of an operator's command. */
export type ExecTarget = z.output<typeof execConfig>;

/**
 * One command of the operator's table (`exec.commands.<name>` in leasehold.yaml, validated by
 * sidecar/config.ts): what runs, for how long, as whom.
 */
export interface ExecCommand {
  /** Program (absolute path) and fixed arguments; no shell. */
  readonly command: readonly string[];
  readonly timeoutSeconds: number;
  /** OS user to run as (the sidecar must be root); absent: the sidecar's own user. */
  readonly user?: string | undefined;
  /** The command's whole environment besides PATH. */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** Working directory, absolute; absent: the program's folder. */
  readonly cwd?: string | undefined;
}

/** The `exec:` section of leasehold.yaml as the adapter needs it. */
export interface ExecCommands {
  readonly commands: Readonly<Record<string, ExecCommand>>;
}
