import type { LeasePage, LeasePosition, LeaseRecord, LeaseRef, ResourceStats } from "./types.js";
import { pairsToRecord, type ScriptRedis, STALE_GRACE_MS, STATS_SCAN, toLease } from "./store-scripts.js";

/** What the read side needs of the lease store: its Redis, key names and record reads. */
export interface StoreView {
  readonly redis: ScriptRedis;
  readonly prefix: string;
  k(resource: string, part: string): string;
  isCluster(): boolean;
  resources(): Promise<string[]>;
}

/** Records read per round trip when a listing names its leases one by one. */
const RECORD_BATCH = 500;

/** The lease store's read side for listings and metrics: indexes, pages, counts. */
export class LeaseViews {
  constructor(private readonly s: StoreView) {}

  /**
   * The entries of an agent's or task's index. Each entry is written beside the lease script
   * (another hash slot) and scored by its lease's max_expires_at, so one a crash left behind ages
   * out: entries older than STALE_GRACE_MS past that are dropped first.
   */
  async indexed(key: string): Promise<LeaseRef[]> {
    await this.s.redis.lhAgentCount(key, STALE_GRACE_MS);
    const members = await this.s.redis.zrange(key, 0, -1);
    return members.map((m) => {
      const i = m.lastIndexOf("/");
      return { resource: m.slice(0, i), id: m.slice(i + 1) };
    });
  }

  /**
   * One resource's counts for the metrics, computed in Redis (no lease leaves it): one script, and
   * one more per STATS_SCAN scheduled leases beyond the first, sent together. Under churn the
   * oldest issue time of a resource with more leases than that may miss a lease that moved
   * between two of its scripts.
   */
  async resourceStats(resource: string): Promise<ResourceStats> {
    const lp = this.s.k(resource, "lease:");
    const [active, soonest, oldest, scheduled, available, leased, rotating, quarantined, reserved] = (
      await this.s.redis.lhResourceStats(
        this.s.k(resource, "due"),
        this.s.k(resource, "inflight"),
        this.s.k(resource, "acct"),
        this.s.k(resource, "rsv"),
        lp,
        STATS_SCAN,
      )
    ).map(Number);
    let min = oldest ?? -1;
    const rest: Promise<number>[] = [];
    for (let at = STATS_SCAN; at < (scheduled ?? 0); at += STATS_SCAN) {
      rest.push(this.s.redis.lhOldestIssued(this.s.k(resource, "due"), lp, at, at + STATS_SCAN - 1));
    }
    for (const o of await Promise.all(rest)) {
      const v = Number(o);
      if (v >= 0 && (min < 0 || v < min)) min = v;
    }
    return {
      active: active ?? 0,
      ...(soonest !== undefined && soonest >= 0 ? { soonest_expires_at: soonest } : {}),
      ...(min >= 0 ? { oldest_issued_at: min } : {}),
      accounts: {
        available: available ?? 0,
        reserved: reserved ?? 0,
        leased: leased ?? 0,
        rotating: rotating ?? 0,
        quarantined: quarantined ?? 0,
      },
    };
  }

  /**
   * One page of active leases (of one resource, or all), by resource name, then per resource the
   * leases a reaper has claimed and the scheduled ones soonest expiry first. At most `limit`
   * leases, and at most `budget` looked at (filtering by agent may give a short page): `next`,
   * absent on the last page, is where the following page starts. A full page looks one matching
   * lease ahead (within the budget) to know whether it is the last. One round trip on a single
   * Redis; on Redis Cluster one per resource the page spans, and, for a full page, one per
   * following resource until one holds a matching lease.
   */
  async listPage(q: {
    resource?: string | undefined;
    agent?: string | undefined;
    limit: number;
    budget?: number | undefined;
    after?: LeasePosition | undefined;
  }): Promise<LeasePage> {
    const budget = Math.max(1, q.budget ?? Math.max(q.limit * 4, 2000));
    const call = async (only: string, limit: number, scan: number, after: LeasePosition | undefined) => {
      const [head, ...rows] = await this.s.redis.lhListPage(
        only ? this.s.k(only, "due") : `${this.s.prefix}resources`,
        this.s.prefix,
        only,
        q.agent ?? "",
        limit,
        scan,
        ...(after ?? ["", "", "", ""]),
      );
      const leases: LeaseRecord[] = [];
      for (const [, , flat] of rows) {
        const l = toLease(pairsToRecord(flat));
        if (l) leases.push(l);
      }
      const pos = head.slice(1);
      const next = pos.length === 4 ? (pos as unknown as LeasePosition) : undefined;
      return { leases, next, looked: Number(head[0] ?? 0) };
    };
    if (q.resource !== undefined || !this.s.isCluster()) {
      const { leases, next } = await call(q.resource ?? "", q.limit, budget, q.after);
      return { leases, next };
    }
    // Redis Cluster: one script cannot span resources (hash slots), so the page goes resource by resource.
    const names = (await this.s.resources()).filter((r) => !q.after || r >= q.after[0]);
    const leases: LeaseRecord[] = [];
    let scanned = 0;
    for (const [i, name] of names.entries()) {
      const after = q.after && name === q.after[0] ? q.after : undefined;
      if (after?.[1] === "z") continue;
      const page = await call(name, q.limit - leases.length, budget - scanned, after);
      leases.push(...page.leases);
      // One budget for the whole page: what each call looked at, matching or not.
      scanned += page.looked;
      if (page.next) return { leases, next: page.next };
      const past: LeasePosition = [name, "z", "0", ""];
      if (leases.length < q.limit && scanned < budget) continue;
      if (leases.length < q.limit) return i + 1 < names.length ? { leases, next: past } : { leases };
      // A full page is the last unless a following resource holds a matching lease (within the budget).
      for (const later of names.slice(i + 1)) {
        if (scanned >= budget) return { leases, next: past };
        const ahead = await call(later, 1, budget - scanned, undefined);
        scanned += ahead.looked;
        if (ahead.leases.length > 0 || ahead.next) return { leases, next: past };
      }
      return { leases };
    }
    return { leases };
  }

  /** Active leases of a resource whose expires_at falls in [fromMs, toMs] (one range read of the schedule). */
  async expiringBetween(resource: string, fromMs: number, toMs: number): Promise<LeaseRecord[]> {
    return this.activeOf(resource, await this.s.redis.zrangebyscore(this.s.k(resource, "due"), fromMs, toMs));
  }

  /** Leases of a resource that are active (from the schedule) — for listing. */
  async activeLeases(resource: string): Promise<LeaseRecord[]> {
    const [due, inflight] = await Promise.all([
      this.s.redis.zrange(this.s.k(resource, "due"), 0, -1),
      this.s.redis.zrange(this.s.k(resource, "inflight"), 0, -1),
    ]);
    return this.activeOf(resource, [...new Set([...due, ...inflight])]);
  }

  /**
   * The active ones of a resource's leases `ids`, read RECORD_BATCH records per round trip (one
   * pipeline of HGETALLs: every key is in the resource's hash slot).
   */
  private async activeOf(resource: string, ids: readonly string[]): Promise<LeaseRecord[]> {
    const out: LeaseRecord[] = [];
    for (let i = 0; i < ids.length; i += RECORD_BATCH) {
      const p = this.s.redis.pipeline();
      for (const id of ids.slice(i, i + RECORD_BATCH)) p.hgetall(this.s.k(resource, `lease:${id}`));
      for (const [err, raw] of (await p.exec()) ?? []) {
        if (err) throw err;
        const l = toLease(raw as Record<string, string>);
        if (l && l.state === "active") out.push(l);
      }
    }
    return out;
  }
}
