import { attestedCaller, requirePinnedCaller } from "./caller-binding.js";
import type { AuditSink } from "../audit/index.js";
import type { LeaseRef, LeaseStore } from "../leases/index.js";
import { identityToken, type PresentedToken } from "./lease-auth.js";
import type { LeaseEnd, RevokeGate } from "./lease-end.js";
import { type LeaseView, leaseView } from "./lease-view.js";
import type { IdentityPort } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

export interface TaskTeardownOptions {
  readonly identity: IdentityPort;
  readonly leases: LeaseStore;
  readonly end: LeaseEnd;
  readonly audit: AuditSink;
}

/**
 * Task teardown: every lease of one task ends at once. The agent completes its own task (each of
 * its leases of that task is checked in); an operator revokes a task (every agent's leases of it).
 * Each lease ends once through LeaseEnd, with its own audit record and its rotation scheduled; the
 * teardown itself is one more record (`task_teardown`) with the number of leases it ended.
 */
export class TaskTeardown {
  constructor(private readonly o: TaskTeardownOptions) {}

  /**
   * The calling agent checks in every active lease it holds for `taskId`. Task ids are the
   * agents' own choice, so only the caller's leases count: those issued to the verified subject,
   * which for a delegated token is the acting agent (as at checkout), never the party it acts for.
   * Like check-in, no policy decides it. The identity token's one-time jti is spent.
   * @throws 401 unauthenticated for anything but a valid identity JWT (a replay included)
   */
  async complete(
    identity: string | PresentedToken,
    taskId: string,
    meta: RequestMeta,
    delegation?: string,
  ): Promise<{ leases: LeaseView[] }> {
    const presented = identityToken(identity);
    const caller = await this.o.identity.verify(
      presented.token,
      delegation === undefined ? undefined : { delegation },
    );
    await requirePinnedCaller(caller, attestedCaller(meta), this.o.audit, {
      task_id: taskId,
      request_id: meta.requestId,
    });
    const ended: LeaseView[] = [];
    for (const { resource, id } of await this.heldBy(caller.subject, taskId)) {
      const lease = await this.o.end.endLease(resource, id, "checkin", meta.requestId);
      if (lease) ended.push(leaseView(lease));
    }
    await this.o.audit.append({
      event: "task_teardown",
      scope: "complete",
      agent: caller.subject,
      agent_chain: caller.delegation?.chain,
      task_id: taskId,
      lease_count: ended.length,
      request_id: meta.requestId,
    });
    return { leases: ended };
  }

  /**
   * An operator revokes every active lease of `taskId`, whichever agent holds it. With `gate`
   * (an operator identity), every resource involved is decided before any lease ends.
   */
  async revoke(
    taskId: string,
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
    gate?: RevokeGate,
  ): Promise<{ leases: LeaseView[] }> {
    const indexed = await this.o.leases.taskLeases(taskId);
    const leases = await Promise.all(indexed.map((ref) => this.o.leases.get(ref.resource, ref.id)));
    const found = indexed.filter((_, i) => leases[i]?.task.id === taskId);
    const out = await this.o.end.revokeMany(found, reason, actor, meta, gate);
    await this.o.audit.append({
      event: "task_teardown",
      scope: "revoke",
      agent: actor,
      task_id: taskId,
      lease_count: out.leases.length,
      reason,
      request_id: meta.requestId,
    });
    return out;
  }

  /**
   * The agent's active leases of the task, found through the agent's own index (another agent's
   * leases never enter the search, however many share the task id), each record's MAC checked so
   * that its agent and task are the ones signed at checkout.
   */
  private async heldBy(agent: string, taskId: string): Promise<LeaseRef[]> {
    const indexed = await this.o.leases.agentLeases(agent);
    const read = await Promise.all(indexed.map((ref) => this.o.leases.getVerified(ref.resource, ref.id)));
    return indexed.filter((_, i) => {
      const { lease, intact } = read[i] ?? { lease: null, intact: false };
      return intact && lease?.state === "active" && lease.agent === agent && lease.task.id === taskId;
    });
  }
}
