import type { Approval, ApprovalStore } from "../approvals/approval-store.js";
import type { AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseStore } from "../leases/index.js";
import { approvalView } from "./approval-view.js";
import type { Checkout } from "./checkout.js";
import { identityToken, type LeaseAuth, type PresentedToken } from "./lease-auth.js";
import { leaseView } from "./lease-view.js";
import type { IdentityPort } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

export interface ApprovalDeskOptions {
  readonly approvals?: ApprovalStore | undefined;
  readonly identity: IdentityPort;
  readonly leases: LeaseStore;
  readonly audit: AuditSink;
  readonly auth: LeaseAuth;
  readonly checkout: Checkout;
  readonly now: () => number;
}

const tokenType = (jkt: string | undefined) => (jkt === undefined ? ("Bearer" as const) : ("DPoP" as const));

/**
 * Human approval of checkouts: the agent polls its request (and redeems it once approved),
 * operators list, approve and deny. The approver is recorded on the decision and the lease.
 */
export class ApprovalDesk {
  constructor(private readonly o: ApprovalDeskOptions) {}

  private store(): ApprovalStore {
    if (!this.o.approvals) throw new LeaseholdError("not_found", "approvals are not enabled");
    return this.o.approvals;
  }

  /**
   * The agent's view of its approval request (identity JWT of the same agent). Once approved,
   * the first poll turns it into a lease (policy decides again with approved: true) and returns
   * the lease and its token; later polls return the same lease with a fresh token.
   */
  async poll(identity: string | PresentedToken, id: string, meta: RequestMeta) {
    const store = this.store();
    const presented = identityToken(identity);
    const caller = await this.o.identity.verify(presented.token);
    const a = await store.get(id);
    if (!a || a.agent !== caller.subject)
      throw new LeaseholdError("not_found", "no such approval for this agent");
    // The token of an approved checkout is bound to the key that proves itself on this poll.
    const jkt = await this.o.auth.proofAtIssue(presented, {
      agent: caller.subject,
      agent_chain: caller.delegation?.chain,
      task_id: a.task.id,
      intent: a.intent.action,
      tool: a.intent.tool,
      resource: a.resource,
      approval_id: a.id,
      request_id: meta.requestId,
    });
    if (a.status !== "approved" && (a.status as string) !== "redeeming") return { approval: approvalView(a) };
    if (a.lease_id) return this.redeemed(a, a.lease_id, jkt);
    if (!(await store.claimRedeem(a))) return { approval: approvalView({ ...a, status: "approved" }) };
    try {
      const out = await this.o.checkout.redeem(a, caller, jkt, meta);
      await store.releaseRedeem(a, out.lease.id);
      return {
        approval: {
          ...approvalView({ ...a, lease_id: out.lease.id }),
          lease: out.lease,
          token: out.token,
          token_type: out.token_type,
        },
      };
    } catch (err) {
      await store.releaseRedeem(a);
      throw err;
    }
  }

  /** A later poll of a redeemed approval: the same lease, with a fresh token while it is active. */
  private async redeemed(a: Approval, leaseId: string, jkt: string | undefined) {
    const lease = await this.o.leases.get(a.resource, leaseId);
    if (!lease) return { approval: approvalView(a) };
    const token = lease.state === "active" ? await this.o.checkout.mint(lease, jkt) : undefined;
    return {
      approval: {
        ...approvalView(a),
        lease: leaseView(lease),
        ...(token ? { token, token_type: tokenType(jkt) } : {}),
      },
    };
  }

  async list(status?: string) {
    const all = await this.store().list();
    return { approvals: all.map(approvalView).filter((a) => !status || a.status === status) };
  }

  /** The resource an approval request is for. @throws 404 not_found */
  async resourceOf(id: string): Promise<string> {
    const a = await this.store().get(id);
    if (!a) throw new LeaseholdError("not_found", "no such approval");
    return a.resource;
  }

  /** An operator approves or denies a pending request; the approver is recorded on the lease and in the audit. */
  async decide(
    id: string,
    approve: boolean,
    approver: string,
    reason: string | undefined,
    meta: RequestMeta,
  ) {
    const store = this.store();
    const a = await store.get(id);
    if (!a) throw new LeaseholdError("not_found", "no such approval");
    if (a.status !== "pending")
      throw new LeaseholdError("conflict", `the approval is already ${approvalView(a).status}`);
    const next: Approval = {
      ...a,
      status: approve ? "approved" : "denied",
      approver,
      reason,
      decided_at: new Date(this.o.now()).toISOString(),
    };
    if (!(await store.transition(a, "pending", next)))
      throw new LeaseholdError("conflict", "the approval changed meanwhile");
    await this.o.audit.append({
      event: "decision",
      agent: a.agent,
      approver,
      task_id: a.task.id,
      intent: a.intent.action,
      tool: a.intent.tool,
      scope: approve ? "approved" : "denied",
      resource: a.resource,
      decision: approve ? "allow" : "deny",
      policies: a.policies,
      approval_id: a.id,
      reason: reason ?? id,
      request_id: meta.requestId,
    });
    return { approval: approvalView(next) };
  }
}
