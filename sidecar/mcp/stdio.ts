import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { ClientOptions } from "../client/types.js";
import { createSdkBackend } from "./sdk-backend.js";
import { checkinAll, createLeaseholdMcpServer } from "./server.js";

/**
 * `leasehold mcp`: leasehold's MCP server on stdin/stdout (stdout carries only the protocol;
 * what it says goes to stderr). When stdin closes or a SIGTERM / SIGINT / SIGHUP arrives, it
 * checks in the leases it holds and exits.
 * @returns once the session is over and its leases are checked in.
 */
export async function runStdioMcpServer(opts: ClientOptions & { version?: string }): Promise<void> {
  const log = (m: string) => process.stderr.write(`leasehold mcp: ${m}\n`);
  const { version, ...clientOptions } = opts;
  const backend = createSdkBackend(clientOptions);
  const server = createLeaseholdMcpServer(backend, { log, ...(version === undefined ? {} : { version }) });
  const transport = new StdioServerTransport();
  const done = new Promise<void>((resolve) => {
    const finish = () => {
      void checkinAll(server).then(resolve);
    };
    transport.onclose = finish;
    process.stdin.once("end", finish);
    process.stdin.once("close", finish);
    for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.once(sig, finish);
  });
  await server.connect(transport);
  log("ready on stdio");
  await done;
  await server.close().catch(() => undefined);
}
