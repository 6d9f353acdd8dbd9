import { LeaseholdError } from "../errors.js";
import type { LeaseStore } from "../leases/index.js";
import { type LeaseView, leaseView } from "./lease-view.js";

export interface LeaseFilter {
  readonly resource?: string | undefined;
  readonly agent?: string | undefined;
  readonly state?: string | undefined;
}

/** Operators' reads of leases: any one lease, or the active ones with their time left. */
export class LeaseQueries {
  constructor(private readonly leases: LeaseStore) {}

  /** @throws 404 not_found */
  async getAny(leaseId: string): Promise<LeaseView> {
    const resource = await this.leases.resourceOf(leaseId);
    const lease = resource ? await this.leases.get(resource, leaseId) : null;
    if (!lease) throw new LeaseholdError("not_found", "no such lease");
    return leaseView(lease);
  }

  /** Active leases matching the filter, soonest expiry first (ended leases are not listed). */
  async list(filter: LeaseFilter): Promise<{ leases: Array<LeaseView & { ttl_seconds: number }> }> {
    const now = await this.leases.now();
    const names = filter.resource ? [filter.resource] : await this.leases.resources();
    const out: Array<LeaseView & { ttl_seconds: number }> = [];
    if (filter.state === "ended") return { leases: out };
    for (const name of names) {
      for (const l of await this.leases.activeLeases(name)) {
        if (filter.agent && l.agent !== filter.agent) continue;
        out.push({ ...leaseView(l), ttl_seconds: Math.max(0, Math.round((l.expires_at - now) / 1000)) });
      }
    }
    out.sort((a, b) => (a.expires_at ?? "").localeCompare(b.expires_at ?? ""));
    return { leases: out };
  }
}
