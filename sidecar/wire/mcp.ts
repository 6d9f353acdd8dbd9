import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import type { McpBackend } from "../mcp/backend.js";
import type { McpHttp, McpSessionInfo, McpSessionServer } from "../mcp/http-sessions.js";
import type { IdentityParts } from "./identity.js";
import type { Services } from "./services.js";

/** The MCP server of one `/mcp` session, acting through `backend`. */
export type McpServerFactory = (
  backend: McpBackend,
  session: McpSessionInfo,
) => McpSessionServer | Promise<McpSessionServer>;

const DPOP_ALGORITHMS = ["EdDSA", "ES256", "ES384", "PS256", "RS256"];

/**
 * MCP over HTTP (`mcp.http`): sessions whose tools act in this process as the identity each
 * `/mcp` request proved (ServiceMcpBackend). The leases a session still holds are checked in when
 * it ends. `serverFor` builds each session's MCP server (default: leasehold's tools, `server.ts`).
 * Undefined when `mcp.http` is false; the SDK and the tools load with the
 * first session either way.
 */
export async function wireMcpHttp(
  config: Config,
  log: Logger,
  ids: IdentityParts,
  svc: Services,
  serverFor: McpServerFactory | undefined,
): Promise<McpHttp | undefined> {
  if (!config.mcp.http) return undefined;
  const [{ McpHttp }, { ServiceMcpBackend }] = await Promise.all([
    import("../mcp/http-sessions.js"),
    import("../mcp/service-backend.js"),
  ]);
  const leases = svc.leaseService;
  const mcpLog = log.child({ module: "mcp" });
  // leasehold's tools and the MCP SDK load with the first session, not with the sidecar.
  let tools: Promise<typeof import("../mcp/server.js")> | undefined;
  const build: McpServerFactory =
    serverFor ??
    (async (backend) => {
      tools ??= import("../mcp/server.js");
      const { createLeaseholdMcpServer } = await tools;
      return createLeaseholdMcpServer(backend, { log: (m) => mcpLog.debug(m) });
    });
  const mcp = new McpHttp({
    identity: ids.identity,
    proof: (presented, fields) => leases.auth.proofAtIssue(presented, fields),
    serverFor: (session) => {
      const backend = new ServiceMcpBackend({
        leases,
        context: () => session.context(),
        catalog: async (caller, meta) => (await leases.catalogAs(caller, meta)).resources,
        toolCall: (caller, call, meta) => leases.reportToolCallAs(caller, call, meta),
      });
      session.onEnd(() => backend.close());
      return build(backend, session);
    },
    idleSeconds: config.mcp.sessionIdleSeconds,
    maxSessionsPerAgent: config.mcp.maxSessionsPerAgent,
    issuers: config.identity.trust.flatMap((t) => (t.kind === "issuer" && t.issuer ? [t.issuer] : [])),
    dpopAlgorithms: config.identity.dpop.algorithms ?? DPOP_ALGORITHMS,
    log: mcpLog,
  });
  return mcp;
}
