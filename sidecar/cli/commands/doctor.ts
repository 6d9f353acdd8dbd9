import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { examples } from "../help.js";

/**
 * `leasehold doctor`: checks a deployment (config, Node, files, Redis, Vault, cluster identity,
 * every registered target) and prints one line per check, with a fix under each problem. Changes
 * nothing. Exit status 1 when any check fails. Self-contained: its modules load only when it runs.
 */
export function registerDoctorCommand(program: Command, cli: CliContext): void {
  program
    .command("doctor")
    .description("check this deployment (config, Redis, Vault, targets, files, Node); changes nothing")
    .addHelpText(
      "after",
      examples(
        "leasehold doctor --config /etc/leasehold/leasehold.yaml",
        "leasehold --json doctor | jq '.checks[] | select(.status != \"ok\")'",
      ),
    )
    .action(async () => {
      const { configPathFrom } = await import("../../config.js");
      const { formatReport, passed, runDoctor } = await import("../../doctor/index.js");
      const checks = await runDoctor({ configFile: configPathFrom(cli.globals().config) });
      const healthy = passed(checks);
      cli.out({ ok: healthy, checks }, () => formatReport(checks));
      if (!healthy) process.exitCode = 1;
    });
}
