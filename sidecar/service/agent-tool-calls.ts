import type { LeaseStore } from "../leases/index.js";
import { limitAgentRate } from "./agent-rate.js";
import { type AgentRequestDeps, verifyAgent, vetAgent } from "./agent-request.js";
import type { VerifiedCaller } from "./ports.js";
import { trustKind } from "./decision-gate.js";
import type { PresentedToken } from "./lease-auth.js";
import type { RequestMeta } from "./request-meta.js";
import type { ToolCallRequest } from "./requests.js";
import { toolCallFields } from "./tool-call-audit.js";

export interface AgentToolCallsOptions extends AgentRequestDeps {
  readonly leases: Pick<LeaseStore, "hit">;
  /** Tool calls without a lease one agent may report per minute (its own count); 0 or absent = no limit. */
  readonly perMinute?: number | undefined;
}

/**
 * Tool calls an agent makes without a lease (`POST /v1/tool-calls`: listing resources, a checkout
 * policy refused, an MCP tool that needs no lease). There is no resource to decide on, so policy
 * is not asked: the call is one `tool_call` record of the agent (and its delegation chain), with
 * no lease. State-changing: the identity JWT's one-time `jti` is spent, and the calls are
 * rate-limited per agent like checkouts.
 */
export class AgentToolCalls {
  constructor(private readonly o: AgentToolCallsOptions) {}

  async record(
    identity: string | PresentedToken,
    req: ToolCallRequest,
    meta: RequestMeta,
    delegation?: string,
  ): Promise<void> {
    const { caller } = await verifyAgent(this.o, identity, meta, { oneTime: true, delegation });
    await this.recordFor(caller, req, meta);
  }

  /** {@link record} for a caller already verified (`/mcp`'s session), pinned callers checked. */
  async recordAs(caller: VerifiedCaller, req: ToolCallRequest, meta: RequestMeta): Promise<void> {
    await vetAgent(this.o, caller, meta);
    await this.recordFor(caller, req, meta);
  }

  private async recordFor(caller: VerifiedCaller, req: ToolCallRequest, meta: RequestMeta): Promise<void> {
    await limitAgentRate(this.o.leases, "tool_call", caller.subject, this.o.perMinute);
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
