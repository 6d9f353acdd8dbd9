import type { Command } from "commander";
import { type Config, configPathFrom, loadConfig } from "../config.js";
import { escapeLines, jsonSafe } from "../util/text.js";
import { SidecarClient } from "./http-client.js";

/** The options every `leasehold` command takes. */
export interface GlobalOpts {
  config?: string;
  json?: boolean;
  identityKey?: string;
}

/** What each command group needs from the program around it. */
export interface CliContext {
  /** The global options, as parsed for the command running now. */
  globals(): GlobalOpts;
  /** The config file named by --config, $LEASEHOLD_CONFIG or ./leasehold.yaml; throws ConfigError. */
  config(): Config;
  /** A client of the running sidecar, with the admin token or the --identity-key. */
  client(): Promise<SidecarClient>;
  /**
   * Prints `value` as JSON with --json, else the text `human()` returns. Either way nothing
   * non-printable reaches the terminal raw: JSON keeps its value (`\u…` escapes), text shows
   * `\x1b`-style escapes.
   */
  out(value: unknown, human: () => string): void;
}

/** The context of `program`: its global options are read when a command runs, not before. */
export function createCliContext(program: Command): CliContext {
  const globals = (): GlobalOpts => program.opts<GlobalOpts>();
  const config = (): Config => loadConfig(configPathFrom(globals().config));
  return {
    globals,
    config,
    client: async () => SidecarClient.fromConfig(config(), { identityKey: globals().identityKey }),
    out(value, human) {
      process.stdout.write(
        globals().json ? `${jsonSafe(JSON.stringify(value, null, 2))}\n` : `${escapeLines(human())}\n`,
      );
    },
  };
}
