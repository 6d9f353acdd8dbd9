import { isAbsolute } from "node:path";
import { EXEC_COMMAND_NAME, type ExecCommands, MAX_TIMEOUT_SECONDS } from "./config.js";
import { lookupOsUser, type OsUser } from "./os-user.js";

/** A command of the operator's table, checked and ready to spawn. */
export interface ResolvedCommand {
  readonly name: string;
  readonly argv: readonly [string, ...string[]];
  readonly timeoutSeconds: number;
  readonly env: Readonly<Record<string, string>> | undefined;
  readonly cwd: string | undefined;
  /** Set when the command runs as another OS user than the sidecar's. */
  readonly runAs: OsUser | undefined;
}

/** The operator's `exec.commands` cannot be used; the message names the key. */
export class ExecCommandsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export interface ResolveOptions {
  /** The sidecar's own uid. @default process.getuid() */
  readonly uid?: number | undefined;
  /** How a user name becomes a uid and gid. @default lookupOsUser */
  readonly lookupUser?: (name: string) => OsUser | undefined;
}

function resolveUser(
  key: string,
  user: string,
  ownUid: number | undefined,
  lookup: (name: string) => OsUser | undefined,
): OsUser | undefined {
  const found = lookup(user);
  if (found === undefined) throw new ExecCommandsError(`${key}: there is no OS user "${user}"`);
  if (found.uid === ownUid) return undefined;
  if (ownUid !== 0) {
    // Running it as the sidecar's user instead would hand the command the sidecar's files
    // (the admin token, the Vault token in /proc): refuse to start rather than fall back.
    throw new ExecCommandsError(
      `${key}: the sidecar does not run as root, so it cannot run a command as "${user}"; run it as root or remove ${key}`,
    );
  }
  return found;
}

/**
 * Checks the operator's table and resolves each `user` to its uid and gid. Throws
 * ExecCommandsError, naming the key, for a name, program, timeout or user that cannot be used,
 * and for any `user` other than the sidecar's own when the sidecar is not root.
 */
export function resolveCommands(
  section: ExecCommands,
  opts: ResolveOptions = {},
): ReadonlyMap<string, ResolvedCommand> {
  const ownUid = "uid" in opts ? opts.uid : process.getuid?.();
  const lookup = opts.lookupUser ?? lookupOsUser;
  const out = new Map<string, ResolvedCommand>();
  for (const [name, c] of Object.entries(section.commands)) {
    const key = `exec.commands.${name}`;
    if (!EXEC_COMMAND_NAME.test(name)) {
      throw new ExecCommandsError(`${key}: a name is 1-63 of a-z 0-9 . _ - starting with a letter or digit`);
    }
    const [program, ...args] = c.command;
    if (program === undefined || !isAbsolute(program)) {
      throw new ExecCommandsError(`${key}.command: the program must be an absolute path`);
    }
    if (c.command.some((a) => a === "" || a.includes("\0"))) {
      throw new ExecCommandsError(`${key}.command: arguments are non-empty and hold no NUL`);
    }
    if (
      !Number.isInteger(c.timeoutSeconds) ||
      c.timeoutSeconds < 1 ||
      c.timeoutSeconds > MAX_TIMEOUT_SECONDS
    ) {
      throw new ExecCommandsError(`${key}.timeoutSeconds: must be 1-${MAX_TIMEOUT_SECONDS}`);
    }
    out.set(name, {
      name,
      argv: [program, ...args],
      timeoutSeconds: c.timeoutSeconds,
      env: c.env,
      cwd: c.cwd,
      runAs: c.user === undefined ? undefined : resolveUser(`${key}.user`, c.user, ownUid, lookup),
    });
  }
  return out;
}
