import type { LeaseRecord } from "../leases/index.js";
import { buildPolicyContext, type PolicyFacts } from "../policy/index.js";
import type { StoredRegistration } from "../resources/types.js";
import type { DecisionRequest } from "./decision-gate.js";
import type { PolicyActionName } from "./ports.js";

/** An agent's request as policy and the audit record see it. */
export interface AgentDecisionInput extends Omit<PolicyFacts, "approved" | "dpop"> {
  readonly action: PolicyActionName;
  readonly agent: string;
  readonly attrs: Readonly<Record<string, unknown>>;
  readonly reg: StoredRegistration;
  readonly requestId: string;
  readonly approved?: boolean | undefined;
  readonly dpop?: boolean | undefined;
  /** The lease the request uses: its account, id and approver go on the record. */
  readonly lease?: LeaseRecord | undefined;
  /** The human who approved this request (recorded on the decision). */
  readonly approver?: string | undefined;
  readonly allowApproval?: boolean | undefined;
  readonly withAction?: boolean | undefined;
}

/** The decision request of an agent's checkout or lease use: policy context from the facts, record fields from the lease. */
export function agentDecision(i: AgentDecisionInput): DecisionRequest {
  const facts: PolicyFacts = {
    taskId: i.taskId,
    intent: i.intent,
    tool: i.tool,
    ttl: i.ttl,
    now: i.now,
    activeLeases: i.activeLeases,
    approved: i.approved ?? false,
    dpop: i.dpop ?? false,
    chain: i.chain,
    onBehalfOf: i.onBehalfOf,
    caller: i.caller,
  };
  return {
    action: i.action,
    principal: i.agent,
    attrs: i.attrs,
    resource: i.reg.name,
    groups: i.reg.groups,
    context: buildPolicyContext(facts),
    record: {
      agent_chain: i.chain,
      approver: i.lease?.approver ?? i.approver,
      task_id: i.taskId,
      intent: i.intent,
      tool: i.tool,
      account: i.lease?.account,
      lease_id: i.lease?.id,
      request_id: i.requestId,
    },
    allowApproval: i.allowApproval,
    withAction: i.withAction,
  };
}
