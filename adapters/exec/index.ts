export { checkExecAccountName } from "./account-name.js";
export { type ExecTarget, execConfig, MAX_TIMEOUT_SECONDS } from "./config.js";
export { type ExecRequest, execAdapter } from "./exec-adapter.js";
export { ExitStatus } from "./exit-status.js";
export { type CommandOutcome, type CommandSpec, DEFAULT_PATH, runCommand } from "./run-command.js";
export { REDACTED, scrubAndCap, scrubSecrets } from "./scrub.js";
