import { readFileSync } from "node:fs";
import { Command } from "commander";
import { registerAdapterCommands } from "./commands/adapters.js";
import { registerAgentCommands } from "./commands/agent.js";
import { registerApprovalCommands } from "./commands/approvals.js";
import { registerAuditCommands } from "./commands/audit.js";
import { registerClusterCommands } from "./commands/cluster.js";
import { registerCompletionCommand } from "./commands/completion.js";
import { registerDoctorCommand } from "./commands/doctor.js";
import { registerCheckoutCommands, registerExecCommand } from "./commands/exec-commands.js";
import { registerKeyCommands } from "./commands/keys.js";
import { registerLeaseCommands } from "./commands/leases.js";
import { registerMcpCommand } from "./commands/mcp.js";
import { registerPolicyCommands } from "./commands/policy.js";
import { registerResourceCommands } from "./commands/resources.js";
import { registerServeCommand } from "./commands/serve.js";
import { createCliContext } from "./context.js";
import { examples } from "./help.js";

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
export function buildProgram(): Command {
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
    .showHelpAfterError("(add --help for usage and examples)")
    .showSuggestionAfterError()
    .exitOverride()
    .addHelpText(
      "after",
      examples(
        "leasehold serve --config /etc/leasehold/leasehold.yaml",
        "leasehold leases list --output json",
        "leasehold exec --resource orders-db --task TICKET-1 --intent read -- psql -c 'select 1'",
        "leasehold leases --help          # each command's options and examples",
        "source <(leasehold completion bash)",
      ),
    );
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
  registerMcpCommand(program);
  registerCompletionCommand(program);
  return program;
}
