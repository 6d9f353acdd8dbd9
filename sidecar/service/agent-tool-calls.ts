import { LeaseholdError } from "../errors.js";
import { type AgentRequestDeps, verifyAgent, vetAgent } from "./agent-request.js";
import { trustKind } from "./decision-gate.js";
import type { PresentedToken } from "./lease-auth.js";
import type { ClusterPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";
import type { ToolCallRequest } from "./requests.js";
import { toolCallFields } from "./tool-call-audit.js";

export interface AgentToolCallsOptions extends AgentRequestDeps {
  /** Tool calls without a lease one agent may report per minute (`limits.toolCallsPerMinute`); 0 or absent = no limit. */
  readonly perMinute?: number | undefined;
  /** The cluster identity: as checkouts, tool calls are refused (503) unless Vault and Redis form one cluster. */
  readonly cluster?: ClusterPort | undefined;
}

/**
 * Tool calls an agent makes without a lease (`POST /v1/tool-calls`: listing resources, a checkout
 * policy refused, an MCP tool that needs no lease). There is no resource to decide on, so policy
 * is not asked: the call is one `tool_call` record of the agent (and its delegation chain), with
 * no lease. State-changing: the identity JWT's one-time `jti` is spent; the agent's rate
 * (`limits.toolCallsPerMinute`) is counted before its caller pin and DPoP proof are checked; as a
 * checkout, a call is refused (503) while the sidecar is fenced or its audit log cannot be written.
 */
export class AgentToolCalls {
  constructor(private readonly o: AgentToolCallsOptions) {}

  async record(
    identity: string | PresentedToken,
    req: ToolCallRequest,
    meta: RequestMeta,
    delegation?: string,
  ): Promise<void> {
    const { caller } = await verifyAgent(this.o, identity, meta, {
      oneTime: true,
      delegation,
      rate: this.rate(),
    });
    await this.recordFor(caller, req, meta);
  }

  /** {@link record} for a caller already verified (`/mcp`'s session): its rate and pin checked. */
  async recordAs(caller: VerifiedCaller, req: ToolCallRequest, meta: RequestMeta): Promise<void> {
    await vetAgent(this.o, caller, meta, this.rate());
    await this.recordFor(caller, req, meta);
  }

  private rate() {
    return { kind: "tool_call" as const, perMinute: this.o.perMinute };
  }

  private async recordFor(caller: VerifiedCaller, req: ToolCallRequest, meta: RequestMeta): Promise<void> {
    this.o.cluster?.assertServing();
    if (!this.o.audit.healthy()) {
      throw new LeaseholdError(
        "upstream_unavailable",
        "the audit log cannot be written; tool calls are refused",
      );
    }
    await this.o.audit.append({
      event: "tool_call",
      scope: "tool_call",
      agent: caller.subject,
      agent_chain: caller.delegation?.chain,
      trust_kind: trustKind(caller.attributes),
      ...toolCallFields(req, meta),
    });
  }
}
