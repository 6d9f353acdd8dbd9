export { checkExecAccountName } from "./account-name.js";
export { ExecCommandsError, type ResolvedCommand, type ResolveOptions, resolveCommands } from "./commands.js";
export {
  EXEC_COMMAND_NAME,
  type ExecCommand,
  type ExecCommands,
  type ExecTarget,
  execConfig,
  MAX_TIMEOUT_SECONDS,
  NOT_A_COMMAND_NAME,
  UNKNOWN_COMMAND,
} from "./config.js";
export { createExecAdapter, type ExecRequest, execAdapter } from "./exec-adapter.js";
export { ExitStatus } from "./exit-status.js";
export { lookupOsUser, OS_USER_NAME, type OsUser } from "./os-user.js";
export { type CommandOutcome, type CommandSpec, DEFAULT_PATH, runCommand } from "./run-command.js";
export { logExcerpt, REDACTED, scrubAndCap, scrubSecrets } from "./scrub.js";
