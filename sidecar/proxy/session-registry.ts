import type { ProxySession } from "./types.js";

/** Live sessions by lease id, so that the end of a lease closes every connection made with it. */
export class SessionRegistry {
  private readonly byLease = new Map<string, Set<ProxySession>>();

  add(leaseId: string, session: ProxySession): void {
    let set = this.byLease.get(leaseId);
    if (!set) {
      set = new Set();
      this.byLease.set(leaseId, set);
    }
    set.add(session);
  }

  remove(leaseId: string, session: ProxySession): void {
    const set = this.byLease.get(leaseId);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.byLease.delete(leaseId);
  }

  /** Terminates every session of the lease; returns how many there were. */
  endLease(leaseId: string, why: string): number {
    const set = this.byLease.get(leaseId);
    if (!set) return 0;
    this.byLease.delete(leaseId);
    for (const s of set) s.terminate(why);
    return set.size;
  }

  count(leaseId?: string): number {
    if (leaseId !== undefined) return this.byLease.get(leaseId)?.size ?? 0;
    let n = 0;
    for (const set of this.byLease.values()) n += set.size;
    return n;
  }
}
