#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { CliError } from "./cli-error.js";
import { registerAdapterCommands } from "./commands/adapters.js";
import { registerAgentCommands } from "./commands/agent.js";
import { registerApprovalCommands } from "./commands/approvals.js";
import { registerAuditCommands } from "./commands/audit.js";
import { registerClusterCommands } from "./commands/cluster.js";
import { registerCompletionCommand } from "./commands/completion.js";
import { registerDoctorCommand } from "./commands/doctor.js";
import { registerKeyCommands } from "./commands/keys.js";
import { registerLeaseCommands } from "./commands/leases.js";
import { registerPolicyCommands } from "./commands/policy.js";
import { registerResourceCommands } from "./commands/resources.js";
import { registerServeCommand } from "./commands/serve.js";
import { registerCheckoutCommands, registerExecCommand } from "./commands/exec-commands.js";
import { createCliContext } from "./context.js";
import { escapeText } from "../util/escape.js";
import { ApiError, detailLine } from "./api-error.js";

/** The version in the package.json beside dist/ (or beside sidecar/ when run from source). */
function packageVersion(): string {
  for (const up of ["../../../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "leasehold" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // not at this level: dist/sidecar/cli/ is one level deeper than sidecar/cli/
    }
  }
  return "unknown";
}

/** The `leasehold` program: global options, then each command group in the order --help lists them. */
function buildProgram(): Command {
  const program = new Command();
  program
    .name("leasehold")
    .description(
      "Credential sidecar for AI agents: per-agent identity, short leases, rotation after every use.",
    )
    .version(packageVersion(), "-V, --version", "print the version")
    .option("-c, --config <file>", "config file (default: $LEASEHOLD_CONFIG or ./leasehold.yaml)")
    .option("--json", "machine-readable output: JSON on stdout (listing commands also take --output json)")
    .option(
      "--identity-key <file>",
      "act as the operator whose key file this is (policy decides each action) instead of with the admin token",
    )
    .showHelpAfterError()
    .exitOverride();
  const cli = createCliContext(program);
  registerServeCommand(program, cli);
  registerResourceCommands(program, cli);
  registerAdapterCommands(program, cli);
  registerLeaseCommands(program, cli);
  registerApprovalCommands(program, cli);
  registerAuditCommands(program, { config: async () => (await cli.config()).audit });
  registerPolicyCommands(program, cli);
  registerKeyCommands(program, cli);
  registerClusterCommands(program, cli);
  registerAgentCommands(program, cli);
  registerDoctorCommand(program, cli);
  registerExecCommand(program);
  registerCheckoutCommands(program);
  registerCompletionCommand(program);
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const msg =
      err instanceof ApiError || err instanceof CliError || (err as Error).name === "ConfigError"
        ? (err as Error).message
        : ((err as Error).message ?? String(err));
    // The message may carry what a sidecar (of any version) answered: shown, never obeyed.
    // An answer with details (each failed item behind it) gets one line each, then the error.
    if (err instanceof ApiError) {
      for (const d of err.details) process.stderr.write(`  ${escapeText(detailLine(d))}\n`);
    }
    process.stderr.write(`leasehold: ${escapeText(msg.split("\n")[0] ?? "")}\n`);
    process.exitCode = 1;
  }
}

void main();
