import { type Command, InvalidArgumentError } from "commander";
import type { CliContext } from "../context.js";
import { examples } from "../help.js";

/** `--wait-for-deps`: a number of seconds, 0 or more, or `forever`. */
function parseWait(value: string): number {
  if (value === "forever") return Number.POSITIVE_INFINITY;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError("must be a number of seconds (0 or more) or 'forever'");
  }
  return n;
}

/**
 * `leasehold serve`: wires the real dependencies once and listens (TCP, or the Unix socket
 * when the config names one). SIGHUP reloads the policy; SIGINT and SIGTERM close and exit 0.
 * A start that cannot finish closes what it opened and exits non-zero with one line on stderr:
 * 1 config or policy, 2 cannot listen, 3 Redis or Vault unreachable (docs/operations.md).
 */
export function registerServeCommand(program: Command, cli: CliContext): void {
  program
    .command("serve")
    .description("run the sidecar")
    .option(
      "--wait-for-deps <seconds>",
      "at start, wait up to this long for Redis and Vault to answer, logging each retry with its " +
        "cause, then exit 3; 0 = one attempt (default: forever, until they answer)",
      parseWait,
    )
    .addHelpText(
      "after",
      "\nExit status when the start fails (one line on stderr says why):\n" +
        "  1  the config, the policy file or another file it names is invalid\n" +
        "  2  cannot listen on listen.host:listen.port or listen.socket (in use, not permitted)\n" +
        "  3  Redis or Vault unreachable (with --wait-for-deps, once that time is up)\n",
    )
    .addHelpText(
      "after",
      examples(
        "leasehold serve --config /etc/leasehold/leasehold.yaml",
        "leasehold serve --wait-for-deps 60   # give Redis and Vault a minute at boot",
      ),
    )
    .action(async (o: { waitForDeps?: number }) => {
      const { runServe } = await import("./serve-run.js");
      await runServe(cli, o.waitForDeps ?? Number.POSITIVE_INFINITY);
    });
}
