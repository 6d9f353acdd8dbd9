import type { Command } from "commander";
import type { Config } from "../config.js";
import { escapeLines, jsonSafe } from "../util/escape.js";
import type { ClientSettings } from "./client-settings.js";
import type { SidecarClient } from "./http-client.js";

/** The options every `leasehold` command takes. */
export interface GlobalOpts {
  config?: string;
  json?: boolean;
  identityKey?: string;
}

/**
 * What each command group needs from the program around it. Everything that loads more than a
 * few lines of code (the config schema, the HTTP client) is imported when first asked for, so a
 * command pays only for what it uses.
 */
export interface CliContext {
  /** The global options, as parsed for the command running now. */
  globals(): GlobalOpts;
  /**
   * The whole config file named by --config, $LEASEHOLD_CONFIG or ./leasehold.yaml, validated,
   * every `${…}` expanded (for `serve` and the commands that act on the server's own files);
   * rejects with a ConfigError.
   */
  config(): Promise<Config>;
  /**
   * What a client of the running sidecar needs, and only that: its address and the admin token
   * file (client-settings.ts: --config's `listen` and `admin` only, or LEASEHOLD_ADDR /
   * LEASEHOLD_SOCKET and LEASEHOLD_ADMIN_TOKEN_FILE).
   */
  clientSettings(): Promise<ClientSettings>;
  /** A client of the running sidecar, with the admin token or the --identity-key. */
  client(): Promise<SidecarClient>;
  /** Whether the command running now prints JSON: the global --json, or its own `--output json`. */
  json(): boolean;
  /**
   * Prints `value` as JSON with --json (or the command's `--output json`), else the text `human()` returns. Either way nothing
   * non-printable reaches the terminal raw: JSON keeps its value (`\u…` escapes), text shows
   * `\x1b`-style escapes.
   */
  out(value: unknown, human: () => string): void;
}

/** The context of `program`: its global options are read when a command runs, not before. */
export function createCliContext(program: Command): CliContext {
  const globals = (): GlobalOpts => program.opts<GlobalOpts>();
  let running: Command | undefined;
  program.hook("preAction", (_program, action) => {
    running = action;
  });
  const json = (): boolean =>
    globals().json === true || running?.opts<{ output?: string }>().output === "json";
  const clientSettings = async (): Promise<ClientSettings> => {
    const { clientSettings: read } = await import("./client-settings.js");
    return read(globals().config, process.env);
  };
  return {
    globals,
    config: async () => {
      const { configPathFrom, loadConfig } = await import("../config.js");
      return loadConfig(configPathFrom(globals().config));
    },
    clientSettings,
    json,
    client: async () => {
      const { SidecarClient } = await import("./http-client.js");
      return SidecarClient.connect(await clientSettings(), { identityKey: globals().identityKey });
    },
    out(value, human) {
      process.stdout.write(
        json() ? `${jsonSafe(JSON.stringify(value, null, 2))}\n` : `${escapeLines(human())}\n`,
      );
    },
  };
}
