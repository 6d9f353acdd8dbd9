import type { AuditFields, AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseRecord } from "../leases/index.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { StoredRegistration } from "../resources/types.js";

/** The audit fields that name who holds a lease and what for (agent, chain, approver, task, intent, tool, resource, account). */
export function leaseSubject(lease: LeaseRecord) {
  return {
    agent: lease.agent,
    agent_chain: lease.agent_chain,
    approver: lease.approver,
    task_id: lease.task.id,
    intent: lease.intent.action,
    tool: lease.intent.tool,
    resource: lease.resource,
    account: lease.account,
    lease_id: lease.id,
  };
}

/** Appends one audit record about a lease; the lease's own fields name its subject. */
export function auditLease(audit: AuditSink, lease: LeaseRecord, fields: AuditFields): Promise<void> {
  // Into the fresh subject, not `{ ...subject, ...fields }`: V8 (Node 20) spends ~10 µs on that spread.
  return audit.append(Object.assign(leaseSubject(lease), fields));
}

/** The registration of `name`. @throws LeaseholdError 404 not_found when it is not registered. */
export async function registeredResource(
  catalog: ResourceCatalog,
  name: string,
): Promise<StoredRegistration> {
  const reg = await catalog.get(name);
  if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
  return reg;
}

/** Seconds left on a lease at `now` (ms), rounded up: the ttl policy sees on lease use. */
export function secondsLeft(lease: LeaseRecord, now: number): number {
  return Math.ceil((lease.expires_at - now) / 1000);
}
