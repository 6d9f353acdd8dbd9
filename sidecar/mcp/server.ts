import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { McpBackend } from "./backend.js";
import { INSTRUCTIONS, registerGuide } from "./guide.js";
import { McpSession } from "./session.js";
import { registerCheckoutTools } from "./tools/checkout-tools.js";
import { registerLeaseTools } from "./tools/lease-tools.js";
import { registerQueryTools } from "./tools/query-tools.js";

export interface LeaseholdMcpServerOptions {
  /** The server's version in `initialize`. @default "0.0.0" */
  readonly version?: string;
  /** Where the server says what it does (stderr for stdio); never given a password or token. */
  readonly log?: ((message: string) => void) | undefined;
  /** How often a checkout waiting for approval reports progress, ms. @default 5000 */
  readonly progressIntervalMs?: number;
}

/** Each server's session, which the stdio command reaches for at exit (`checkinAll`). */
const SESSIONS = new WeakMap<McpServer, McpSession>();

/**
 * An MCP server with leasehold's tools (`list_resources`, `checkout`, `sql_query`,
 * `redis_command`, `ldap_search`, `renew`, `checkin`, `lease_status`), the `leasehold://leases`
 * resource and the `use-a-database` prompt, acting through `backend`. It holds this session's
 * leases (their tokens and revealed passwords stay in this process) and records every tool call
 * as a `tool_call` with the tool, the digest of its arguments and the MCP client's name. A tool
 * that fails answers `isError: true` with what the model may do next. When the transport closes,
 * the session's leases are checked in (see {@link checkinAll}).
 */
export function createLeaseholdMcpServer(
  backend: McpBackend,
  options: LeaseholdMcpServerOptions = {},
): McpServer {
  const server = new McpServer(
    { name: "leasehold", version: options.version ?? "0.0.0" },
    { capabilities: { tools: {}, resources: {}, prompts: {} }, instructions: INSTRUCTIONS },
  );
  const session = new McpSession(backend, server, options.log ?? (() => undefined));
  registerCheckoutTools(server, session, options);
  registerLeaseTools(server, session);
  registerQueryTools(server, session);
  registerGuide(server, session);
  SESSIONS.set(server, session);
  server.server.onclose = () => {
    void session.checkinAll();
  };
  return server;
}

/** Checks in every lease `server`'s session holds (once; later calls wait for the same). */
export async function checkinAll(server: McpServer): Promise<void> {
  await SESSIONS.get(server)?.checkinAll();
}
