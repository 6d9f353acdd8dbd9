import type { Approval, ApprovalRow, ApprovalStore, VoteResult } from "../approvals/approval-store.js";
import type { AuditFields, AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import { attestedCaller, requirePinnedCaller } from "./caller-binding.js";
import type { LeaseStore } from "../leases/index.js";
import { approvalView } from "./approval-view.js";
import type { Checkout } from "./checkout.js";
import { identityToken, type LeaseAuth, type PresentedToken } from "./lease-auth.js";
import { leaseView } from "./lease-view.js";
import type { IdentityPort, VerifiedCaller } from "./ports.js";
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

/** One page of a list: which approvals, and where the next page starts. */
export interface ApprovalPage {
  /** Approvals per page. */
  readonly limit: number;
  /** The `next` of the previous page. */
  readonly cursor?: string | undefined;
}

/** Keeps the rows an operator may see (policy decides per resource); the admin token sees all. */
export type RowFilter = (rows: readonly ApprovalRow[]) => Promise<readonly ApprovalRow[]>;

/** A name as four-eyes compares it: `user:` prefixes, case and width do not make another person. */
const person = (name: string) =>
  name
    .normalize("NFKC")
    .trim()
    .toLowerCase()
    .replace(/^user:/, "");

const encodeCursor = (row: ApprovalRow) => Buffer.from(`${row.at}:${row.id}`).toString("base64url");

/** Rows after the cursor's row in newest-first order (time, then id, descending). */
function afterCursor(rows: readonly ApprovalRow[], cursor: string | undefined): readonly ApprovalRow[] {
  if (cursor === undefined) return rows;
  const m = /^(\d+):(apr_[A-Za-z0-9_-]+)$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!m) throw new LeaseholdError("invalid_request", "cursor: not a cursor of this list");
  const at = Number(m[1]);
  const id = m[2] ?? "";
  return rows.filter((r) => r.at < at || (r.at === at && r.id < id));
}

/**
 * Human approval of checkouts: the agent polls its request (and redeems it once approved),
 * operators list, approve and deny. Four eyes: nobody approves a request they made or that was
 * made on their behalf, and `minApprovers` distinct approvers are needed. An approval is read and
 * decided by its id; the binding to the checkout's DPoP key holds on every poll.
 */
export class ApprovalDesk {
  constructor(private readonly o: ApprovalDeskOptions) {}

  private store(): ApprovalStore {
    if (!this.o.approvals) throw new LeaseholdError("not_found", "approvals are not enabled");
    return this.o.approvals;
  }

  /**
   * The agent's view of its approval request (identity JWT of the same agent, and a proof by the
   * key the checkout proved when it had one: 401 otherwise, audited). Once approved, the first
   * poll turns it into a lease (policy decides again with approved: true) and returns the lease
   * and its token; later polls show the approval and the lease, never a second token. Every poll
   * spends its identity token's one-time jti (when the sidecar requires them).
   */
  async poll(identity: string | PresentedToken, id: string, meta: RequestMeta) {
    const store = this.store();
    const presented = identityToken(identity);
    // One-time like any state-changing request: a poll may redeem, and a token captured from an
    // earlier poll must not be the one that does.
    const caller = await this.o.identity.verify(presented.token);
    await requirePinnedCaller(caller, attestedCaller(meta), this.o.audit, {
      approval_id: id,
      request_id: meta.requestId,
    });
    const a = await store.get(id);
    if (!a || a.agent !== caller.subject)
      throw new LeaseholdError("not_found", "no such approval for this agent");
    await this.proveBinding(presented, a, caller, meta);
    if (a.status !== "approved" && (a.status as string) !== "redeeming") return { approval: approvalView(a) };
    if (a.lease_id) return this.redeemed(a, a.lease_id);
    if (!(await store.claimRedeem(a))) return { approval: approvalView({ ...a, status: "approved" }) };
    try {
      const out = await this.o.checkout.redeem(a, caller, a.jkt, meta);
      await store.releaseRedeem(a, out.lease.id);
      return {
        approval: {
          ...approvalView({ ...a, lease_id: out.lease.id }),
          lease: out.lease,
          token: out.token,
          token_type: out.token_type,
          ...(out.proxy === undefined ? {} : { proxy: out.proxy }),
        },
      };
    } catch (err) {
      await store.releaseRedeem(a);
      throw err;
    }
  }

  /**
   * RFC 9449 at the poll: a bound approval needs a valid proof by its key; an unbound one takes
   * no proof (the binding is the checkout's, it cannot be chosen later). Refusals are audited.
   */
  private async proveBinding(
    presented: PresentedToken,
    a: Approval,
    caller: VerifiedCaller,
    meta: RequestMeta,
  ): Promise<void> {
    const fields = {
      agent: caller.subject,
      agent_chain: caller.delegation?.chain,
      task_id: a.task.id,
      intent: a.intent.action,
      tool: a.intent.tool,
      resource: a.resource,
      approval_id: a.id,
      request_id: meta.requestId,
    };
    const jkt = await this.o.auth.proofAtIssue(presented, fields);
    if (jkt === a.jkt) return;
    const reason =
      a.jkt === undefined
        ? "the approval was requested without a DPoP proof; poll it without one"
        : jkt === undefined
          ? "DPoP proof missing: the approval is bound to the key of its checkout; poll with a proof by that key"
          : "DPoP proof key does not match the key of the approval's checkout";
    await this.o.audit.append({ ...fields, event: "decision", scope: "dpop", decision: "deny", reason });
    throw new LeaseholdError("unauthenticated", reason);
  }

  /** A later poll of a redeemed approval: the approval and its lease; the token was handed out once. */
  private async redeemed(a: Approval, leaseId: string) {
    const lease = await this.o.leases.get(a.resource, leaseId);
    return { approval: { ...approvalView(a), ...(lease ? { lease: leaseView(lease) } : {}) } };
  }

  /**
   * Approvals of the last day, newest first, one page at a time, with the number that match.
   * `visible` narrows them before counting (an operator identity counts only what it may see).
   * Without `page`, every match (the dashboard's and the metrics' pending list).
   */
  async list(status?: string, page?: ApprovalPage, visible?: RowFilter) {
    const store = this.store();
    let rows: readonly ApprovalRow[] = (await store.rows()).filter((r) => !status || r.status === status);
    if (visible) rows = await visible(rows);
    const total = rows.length;
    const rest = afterCursor(rows, page?.cursor);
    const shown = page ? rest.slice(0, page.limit) : rest;
    const last = shown[shown.length - 1];
    const next = page && last && rest.length > shown.length ? encodeCursor(last) : undefined;
    const approvals = (await store.getMany(shown.map((r) => r.id))).map(approvalView);
    return { approvals, total, ...(next ? { next } : {}) };
  }

  /** The resource an approval request is for, read by its id. @throws 404 not_found */
  async resourceOf(id: string): Promise<string> {
    const a = await this.store().get(id);
    if (!a) throw new LeaseholdError("not_found", "no such approval");
    return a.resource;
  }

  /**
   * An operator approves or denies a pending request, read by its id. Approving is refused (403,
   * audited) to the requester and to every member of its delegation chain; the approval turns
   * approved once `minApprovers` distinct approvers said yes, and any deny denies. Each vote is
   * audited with its approver; the approvers are recorded on the lease.
   */
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
    const record: AuditFields<"decision"> = {
      event: "decision",
      agent: a.agent,
      agent_chain: a.agent_chain,
      approver,
      task_id: a.task.id,
      intent: a.intent.action,
      tool: a.intent.tool,
      resource: a.resource,
      policies: a.policies,
      approval_id: a.id,
      request_id: meta.requestId,
    };
    if (approve) await this.fourEyes(a, approver, record);
    const result = await store.vote(id, { approver, approve, reason });
    const decided = this.outcome(result);
    const complete = decided.status !== "pending";
    await this.o.audit.append({
      ...record,
      scope: !complete ? "approve" : approve ? "approved" : "denied",
      decision: approve ? "allow" : "deny",
      reason: complete
        ? (reason ?? id)
        : `approval ${decided.approvers?.length ?? 0} of ${store.minApprovers}${reason ? `: ${reason}` : ""}`,
    });
    return { approval: approvalView(decided) };
  }

  /** Nobody approves their own request, nor one made on their behalf. @throws 403 policy_denied (audited) */
  private async fourEyes(a: Approval, approver: string, record: AuditFields<"decision">): Promise<void> {
    const parties = [a.agent, ...(a.agent_chain ?? [])];
    if (!parties.some((p) => person(p) === person(approver))) return;
    const reason =
      person(a.agent) === person(approver)
        ? "four eyes: the approver is the requester of this approval"
        : "four eyes: the approver is in the requester's delegation chain";
    await this.o.audit.append({ ...record, scope: "approve", decision: "deny", reason });
    throw new LeaseholdError("policy_denied", reason);
  }

  private outcome(result: VoteResult): Approval {
    switch (result.kind) {
      case "recorded":
        return result.approval;
      case "not_found":
        throw new LeaseholdError("not_found", "no such approval");
      case "not_pending":
        throw new LeaseholdError(
          "conflict",
          `the approval is already ${approvalView(result.approval).status}`,
        );
      case "already_voted":
        throw new LeaseholdError(
          "conflict",
          "this approver has already approved it; another approver is needed",
        );
      case "changed":
        throw new LeaseholdError("conflict", "the approval changed meanwhile");
    }
  }
}
