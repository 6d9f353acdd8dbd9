import type { ProxySession } from "./types.js";

/** What a session over `proxy.maxConnectionsPerLease` is told, in its protocol's refusal. */
export const leaseCapMessage = (max: number): string =>
  `max number of connections for this lease reached: at most ${max} at a time (proxy.maxConnectionsPerLease)`;

/** Live sessions by lease id, so that the end of a lease closes every connection made with it. */
export class SessionRegistry {
  private readonly byLease = new Map<string, Set<ProxySession>>();
  /** Sessions whose token was accepted, by lease: what `proxy.maxConnectionsPerLease` caps. */
  private readonly admitted = new Map<string, Set<ProxySession>>();
  /** The lease each admitted session counts against. */
  private readonly admittedAs = new Map<ProxySession, string>();

  /**
   * Counts `session` among the lease's authenticated connections unless the lease already has
   * `max` of them; false then (the session must be refused). Checked and taken in one step.
   */
  admit(leaseId: string, session: ProxySession, max: number): boolean {
    let set = this.admitted.get(leaseId);
    if (!set) {
      set = new Set();
      this.admitted.set(leaseId, set);
    }
    if (set.has(session)) return true;
    if (set.size >= max) return false;
    set.add(session);
    this.admittedAs.set(session, leaseId);
    return true;
  }

  /** Frees the session's place among its lease's authenticated connections, if it has one. */
  release(session: ProxySession): void {
    const leaseId = this.admittedAs.get(session);
    if (leaseId === undefined) return;
    this.admittedAs.delete(session);
    const set = this.admitted.get(leaseId);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.admitted.delete(leaseId);
  }

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
    for (const s of set) s.leaseEnded(why);
    return set.size;
  }

  count(leaseId?: string): number {
    if (leaseId !== undefined) return this.byLease.get(leaseId)?.size ?? 0;
    let n = 0;
    for (const set of this.byLease.values()) n += set.size;
    return n;
  }
}
