import type { Command } from "commander";
import { CliError } from "../cli-error.js";
import { withExamples } from "../help.js";

/**
 * `leasehold mcp`: leasehold's tools for an MCP client, on stdio, acting with the agent's key.
 * The server, the SDK and the drivers load when the command runs.
 */
export function registerMcpCommand(program: Command): void {
  withExamples(
    program
      .command("mcp")
      .description(
        "serve leasehold's tools to an MCP client on stdio (checkout, sql_query, redis_command, ldap_search, checkin)",
      )
      .option("--key <file>", "the agent's key file (default: $LEASEHOLD_AGENT_KEY)")
      .action(async (opts: { key?: string }) => {
        const keyFile = opts.key ?? process.env.LEASEHOLD_AGENT_KEY;
        if (!keyFile) throw new CliError("give --key FILE or set LEASEHOLD_AGENT_KEY (the agent's key file)");
        const { sidecarAddress } = await import("./exec.js");
        const address = sidecarAddress(program.opts<{ config?: string }>().config);
        const { runStdioMcpServer } = await import("../../mcp/stdio.js");
        await runStdioMcpServer({ ...address, keyFile, version: program.version() ?? "unknown" });
      }),
    "LEASEHOLD_ADDR=http://127.0.0.1:7733 LEASEHOLD_AGENT_KEY=./agent.key.jwk leasehold mcp",
    "leasehold mcp --key ./agent.key.jwk   # the sidecar from ./leasehold.yaml's listen",
  );
}
