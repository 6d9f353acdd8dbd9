import type { AuditSink } from "../audit/index.js";
import type { LeaseEventPublisher } from "../events/index.js";
import { LeaseholdError } from "../errors.js";
import type { EndReason, LeaseRecord, LeaseRef, LeaseStore } from "../leases/index.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import { leaseSubject, type RotationEngine } from "../rotation/index.js";
import { auditLease, registeredResource } from "./lease-audit.js";
import type { LeaseAuth, PresentedToken } from "./lease-auth.js";
import { type LeaseView, leaseView } from "./lease-view.js";
import type { RequestMeta } from "./request-meta.js";

export interface LeaseEndOptions {
  readonly leases: LeaseStore;
  readonly catalog: ResourceCatalog;
  readonly rotation: RotationEngine;
  readonly audit: AuditSink;
  readonly events: LeaseEventPublisher;
  readonly auth: LeaseAuth;
}

/**
 * Decides, before any lease is touched, that the caller may revoke leases of each of these
 * resources; throws (403 policy_denied) otherwise. Absent for the admin token.
 */
export type RevokeGate = (resources: readonly string[]) => Promise<void>;

const AUDIT_EVENT = { checkin: "checkin", expired: "expiry", revoked: "revocation" } as const;

/**
 * How leases end: check-in by the holder, revocation by an operator, expiry by the reaper. Each
 * lease ends once (whoever is first), is audited, announced, and its account's rotation scheduled
 * (invariant I2: an account seen by a lease is never handed out before it is rotated).
 */
export class LeaseEnd {
  constructor(private readonly o: LeaseEndOptions) {}

  /** Check-in by the holder: always allowed; rotation follows. */
  async checkin(
    token: string | PresentedToken,
    leaseId: string,
    meta: RequestMeta,
  ): Promise<{ lease: LeaseView }> {
    const { lease } = await this.o.auth.authenticate(token, leaseId, meta);
    const ended = await this.endLease(lease.resource, lease.id, "checkin", meta.requestId);
    return { lease: leaseView(ended ?? lease) };
  }

  /** Operator revocation of one lease. @throws 404 not_found for an unknown lease */
  async revoke(
    leaseId: string,
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
  ): Promise<{ lease: LeaseView }> {
    const resource = await this.o.leases.resourceOf(leaseId);
    const lease = resource ? await this.o.leases.get(resource, leaseId) : null;
    if (!resource || !lease) throw new LeaseholdError("not_found", "no such lease");
    const ended = await this.endLease(
      resource,
      leaseId,
      "revoked",
      meta.requestId,
      reason ?? `revoked by ${actor}`,
    );
    return { lease: leaseView(ended ?? lease) };
  }

  /** Revokes every active lease of one agent at once (all or nothing under `gate`). */
  async revokeAgent(
    agent: string,
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
    gate?: RevokeGate,
  ): Promise<{ leases: LeaseView[] }> {
    return this.revokeMany(await this.o.leases.agentLeases(agent), reason, actor, meta, gate);
  }

  /**
   * Revokes the leases named that are still active. With `gate`, every resource they are on is
   * decided first, so a refusal leaves them all untouched; a lease that ended meanwhile is skipped.
   */
  async revokeMany(
    refs: readonly LeaseRef[],
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
    gate?: RevokeGate,
  ): Promise<{ leases: LeaseView[] }> {
    const leases = await Promise.all(refs.map((ref) => this.o.leases.get(ref.resource, ref.id)));
    const active = refs.filter((_, i) => leases[i]?.state === "active");
    await gate?.([...new Set(active.map((l) => l.resource))]);
    return this.revokeAll(active, reason, actor, meta);
  }

  /** Revokes every active lease of one resource at once. @throws 404 not_found for an unknown resource */
  async revokeResource(
    resource: string,
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
  ): Promise<{ leases: LeaseView[] }> {
    await registeredResource(this.o.catalog, resource);
    const active = await this.o.leases.activeLeases(resource);
    return this.revokeAll(
      active.map((l) => ({ resource, id: l.id })),
      reason,
      actor,
      meta,
    );
  }

  private async revokeAll(
    leases: readonly { resource: string; id: string }[],
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
  ): Promise<{ leases: LeaseView[] }> {
    const out: LeaseView[] = [];
    for (const { resource, id } of leases) {
      const ended = await this.endLease(
        resource,
        id,
        "revoked",
        meta.requestId,
        reason ?? `revoked by ${actor}`,
      );
      if (ended) out.push(leaseView(ended));
    }
    return { leases: out };
  }

  /**
   * Ends a lease once (whoever is first: holder, reaper, operator), audits it and schedules the
   * rotation. Returns the ended lease, or null when it had already ended.
   */
  async endLease(
    resource: string,
    id: string,
    reason: EndReason,
    requestId?: string,
    why?: string,
  ): Promise<LeaseRecord | null> {
    const r = await this.o.leases.end(resource, id, reason);
    if (!r.ended) return null;
    const lease = r.lease;
    await auditLease(this.o.audit, lease, { event: AUDIT_EVENT[reason], request_id: requestId, reason: why });
    await this.o.events.publish({ type: "ended", lease, reason });
    this.o.rotation.schedule({
      resource,
      account: lease.account,
      reason,
      leaseId: id,
      subject: leaseSubject(lease),
    });
    return lease;
  }
}
