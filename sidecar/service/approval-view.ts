import type { Approval, ApprovalStore } from "../approvals/approval-store.js";
import type { AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { PolicyDecisionOut, VerifiedCaller } from "./ports.js";
import type { CheckoutRequest } from "./requests.js";

/**
 * An approval as agents and operators see it: a redeeming one shows as approved, and the key
 * thumbprint it is bound to stays inside (the binding is enforced, not advertised).
 */
export function approvalView(a: Approval) {
  const { jkt: _bound, ...shown } = a;
  return { ...shown, status: (a.status as string) === "redeeming" ? "approved" : a.status };
}

export type ApprovalView = ReturnType<typeof approvalView>;

/**
 * Opens a pending approval for a checkout that policy allows only with a human's approval, bound
 * to the DPoP key the checkout proved (`jkt`) and naming the requester's delegation chain (whose
 * members may not approve it); audited. An agent at its cap of pending approvals is refused
 * (audited too) and nothing is stored. @throws 429 rate_limited with retry_after
 */
export async function requestApproval(
  store: ApprovalStore,
  audit: AuditSink,
  r: {
    caller: VerifiedCaller;
    req: CheckoutRequest;
    ttl: number;
    ttlSeconds: number;
    policies: PolicyDecisionOut["policies"];
    jkt: string | undefined;
    requestId: string;
  },
): Promise<ApprovalView> {
  const chain = r.caller.delegation?.chain;
  const created = await store.create(
    {
      agent: r.caller.subject,
      ...(chain?.length ? { agent_chain: [...chain] } : {}),
      resource: r.req.resource,
      task: r.req.task,
      intent: r.req.intent,
      ttl: r.ttl,
      policies: [...r.policies],
      ...(r.jkt === undefined ? {} : { jkt: r.jkt }),
    },
    r.ttlSeconds,
  );
  const record = {
    event: "decision" as const,
    agent: r.caller.subject,
    agent_chain: chain,
    task_id: r.req.task.id,
    intent: r.req.intent.action,
    tool: r.req.intent.tool,
    scope: "approval_requested" as const,
    resource: r.req.resource,
    policies: r.policies,
    request_id: r.requestId,
  };
  if (!created.ok) {
    const reason = `the agent already has ${created.pending} pending approvals (at most ${store.maxPendingPerAgent})`;
    await audit.append({ ...record, decision: "deny", reason });
    throw new LeaseholdError("rate_limited", reason, { retryAfter: created.retryAfterSeconds });
  }
  const approval = created.approval;
  await audit.append({
    ...record,
    decision: "approval_required",
    approval_id: approval.id,
    reason: approval.id,
  });
  return approvalView(approval);
}
