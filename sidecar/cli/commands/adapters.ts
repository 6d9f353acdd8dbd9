import { resolve } from "node:path";
import type { Command } from "commander";
import type { ConformanceReport } from "../adapters-test/index.js";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { examples, withOutputOption } from "../help.js";
import { table } from "../table.js";

function addList(adapters: Command, cli: CliContext): void {
  const list = adapters
    .command("list")
    .description("the built-in adapters and those the config loads")
    .addHelpText("after", examples("leasehold adapters list", "leasehold adapters list --output json"));
  withOutputOption(list).action(async () => {
    const { builtinAdapters } = await import("../../../adapters/registry.js");
    const { loadAdapterModules } = await import("../../adapter-modules.js");
    const all = new Map(builtinAdapters);
    let configured: string[] = [];
    try {
      configured = (await cli.config()).adapters.map((a) => a.module);
    } catch {
      // No config: list the built-in adapters only.
    }
    for (const a of await loadAdapterModules(configured, all)) all.set(a.id, a);
    const rows = [...all.values()].map((a) => ({ id: a.id, description: a.description }));
    cli.out({ adapters: rows }, () =>
      table([["ADAPTER", "DESCRIPTION"], ...rows.map((r) => [r.id, r.description])]),
    );
  });
}

/**
 * Passwords the run could not put back are printed only on a terminal (never into a pipe or
 * a log file), since they are the accounts' live credentials.
 */
function printUnrestored(report: ConformanceReport): void {
  if (report.unrestored.length > 0 && process.stdout.isTTY) {
    process.stdout.write(
      "accounts whose original password could not be restored (shown once, on this terminal only):\n",
    );
    for (const u of report.unrestored) process.stdout.write(`  ${u.account}: ${u.password ?? "(unknown)"}\n`);
  } else if (report.unrestored.length > 0) {
    process.stdout.write(
      `${report.unrestored.length} account(s) could not be restored; run on a terminal to see their passwords\n`,
    );
  }
}

function addTest(adapters: Command, cli: CliContext): void {
  adapters
    .command("test <module>")
    .description("run the adapter conformance suite against a real target (MODULE: a file, or a built-in id)")
    .requiredOption("--target <file>", "YAML/JSON target: connection, admin, accounts (see docs/adapters.md)")
    .addHelpText(
      "after",
      examples(
        "leasehold adapters test postgres --target ./pg-target.yaml",
        "leasehold adapters test ./my-adapter.js --target ./target.yaml",
      ),
    )
    .action(async (module: string, opts: { target: string }) => {
      const { createExecAdapter } = await import("../../../adapters/exec/index.js");
      const { builtinAdapters } = await import("../../../adapters/registry.js");
      const { loadAdapterModules } = await import("../../adapter-modules.js");
      const { runConformanceFromFile } = await import("../adapters-test/index.js");
      // The exec adapter runs the config's own commands (exec.commands), as the sidecar does.
      const builtin =
        module === "exec" ? createExecAdapter((await cli.config()).exec) : builtinAdapters.get(module);
      const adapter = builtin ?? (await loadAdapterModules([resolve(module)], builtinAdapters))[0];
      if (!adapter) throw new CliError(`${module}: no adapter found`);
      const report = await runConformanceFromFile(adapter, opts.target, (r) => {
        if (!cli.json()) {
          const detail = "detail" in r && r.detail ? `: ${r.detail}` : "";
          process.stdout.write(
            `${r.outcome === "passed" ? "ok  " : r.outcome === "failed" ? "FAIL" : "skip"} ${r.check}${detail}\n`,
          );
        }
      });
      cli.out(
        {
          passed: report.passed,
          failed: report.failed,
          skipped: report.skipped,
          unrestored: report.unrestored.map((u) => u.account),
        },
        () =>
          `${report.passed.length} passed, ${report.failed.length} failed, ${report.skipped.length} skipped`,
      );
      printUnrestored(report);
      if (report.failed.length > 0 || report.unrestored.length > 0) process.exitCode = 1;
    });
}

/** `leasehold adapters list|test`. */
export function registerAdapterCommands(program: Command, cli: CliContext): void {
  const adapters = program
    .command("adapters")
    .description("legacy-system adapters: list them, test one against a real target")
    .addHelpText(
      "after",
      examples("leasehold adapters list", "leasehold adapters test ./my-adapter.js --target ./target.yaml"),
    );
  addList(adapters, cli);
  addTest(adapters, cli);
}
