import type { Approval, ApprovalStore } from "../approvals/approval-store.js";
import type { AuditSink } from "../audit/index.js";
import type { PolicyDecisionOut, VerifiedCaller } from "./ports.js";
import type { CheckoutRequest } from "./requests.js";

/** An approval as agents and operators see it (a redeeming one shows as approved). */
export function approvalView(a: Approval) {
  return { ...a, status: (a.status as string) === "redeeming" ? "approved" : a.status };
}

export type ApprovalView = ReturnType<typeof approvalView>;

/** Opens a pending approval for a checkout that policy allows only with a human's approval; audited. */
export async function requestApproval(
  store: ApprovalStore,
  audit: AuditSink,
  r: {
    caller: VerifiedCaller;
    req: CheckoutRequest;
    ttl: number;
    ttlSeconds: number;
    policies: PolicyDecisionOut["policies"];
    requestId: string;
  },
): Promise<ApprovalView> {
  const approval = await store.create(
    {
      agent: r.caller.subject,
      resource: r.req.resource,
      task: r.req.task,
      intent: r.req.intent,
      ttl: r.ttl,
      policies: [...r.policies],
    },
    r.ttlSeconds,
  );
  await audit.append({
    event: "decision",
    agent: r.caller.subject,
    agent_chain: r.caller.delegation?.chain,
    task_id: r.req.task.id,
    intent: r.req.intent.action,
    tool: r.req.intent.tool,
    scope: "approval_requested",
    resource: r.req.resource,
    decision: "approval_required",
    policies: r.policies,
    approval_id: approval.id,
    reason: approval.id,
    request_id: r.requestId,
  });
  return approvalView(approval);
}
