import type { Config } from "../config.js";
import { LeaseholdError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { McpBackend } from "../mcp/backend.js";
import { McpHttp, type McpSessionInfo, type McpSessionServer } from "../mcp/http-sessions.js";
import { ServiceMcpBackend } from "../mcp/service-backend.js";
import { trustKind } from "../service/decision-gate.js";
import type { Infrastructure } from "./infrastructure.js";
import type { IdentityParts } from "./identity.js";
import type { Services } from "./services.js";

/** The MCP server of one `/mcp` session, acting through `backend`. */
export type McpServerFactory = (backend: McpBackend, session: McpSessionInfo) => McpSessionServer;

const DPOP_ALGORITHMS = ["EdDSA", "ES256", "ES384", "PS256", "RS256"];

/**
 * MCP over HTTP (`mcp.http`): sessions whose tools act in this process as the identity each
 * `/mcp` request proved (ServiceMcpBackend). The leases a session still holds are checked in when
 * it ends. Undefined when `mcp.http` is false or no server factory is given.
 */
export function wireMcpHttp(
  config: Config,
  log: Logger,
  infra: Infrastructure,
  ids: IdentityParts,
  svc: Services,
  serverFor: McpServerFactory | undefined,
): McpHttp | undefined {
  if (!config.mcp.http || serverFor === undefined) return undefined;
  const leases = svc.leaseService;
  const mcp = new McpHttp({
    identity: ids.identity,
    proof: (presented, fields) => leases.auth.proofAtIssue(presented, fields),
    serverFor: (session) => {
      const backend = new ServiceMcpBackend({
        leases,
        context: () => session.context(),
        catalog: async () => {
          throw new LeaseholdError("not_found", "the resource catalog is not available on this sidecar yet");
        },
        toolCall: async (caller, call, meta) => {
          await infra.audit.append({
            event: "tool_call",
            scope: "tool_call",
            agent: caller.subject,
            agent_chain: caller.delegation?.chain,
            trust_kind: trustKind(caller.attributes),
            tool: call.tool,
            intent: call.action,
            target: call.target,
            digest: call.digest,
            request_id: meta.requestId,
          });
        },
      });
      session.onEnd(() => backend.close());
      return serverFor(backend, session);
    },
    idleSeconds: config.mcp.sessionIdleSeconds,
    maxSessionsPerAgent: config.mcp.maxSessionsPerAgent,
    issuers: config.identity.trust.flatMap((t) => (t.kind === "issuer" && t.issuer ? [t.issuer] : [])),
    dpopAlgorithms: config.identity.dpop.algorithms ?? DPOP_ALGORITHMS,
    log: log.child({ module: "mcp" }),
  });
  return mcp;
}
