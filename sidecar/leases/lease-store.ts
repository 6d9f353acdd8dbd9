import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { RedisClient } from "../redis.js";
import { LEASE_MAC_KEY_BYTES, type LeaseMacFields, signLease, verifyLease } from "./lease-mac.js";
import {
  AGENT_COUNT,
  CHECKOUT,
  CLAIM_DUE,
  CLAIM_DUE_ALL,
  END,
  HIT,
  HIT_AND_COUNT,
  LIST_PAGE,
  OLDEST_ISSUED,
  RENEW,
  RESOURCE_STATS,
  SET_ACCOUNT,
  USE,
} from "./scripts.js";
import { openVerifier, type ScramVerifier, sealVerifier } from "./token-verifier.js";
import type {
  AccountState,
  AccountStatus,
  CheckoutResult,
  EndReason,
  EndResult,
  LeasePage,
  LeasePosition,
  LeaseRecord,
  LeaseRef,
  LeaseSpec,
  LeaseUse,
  RenewResult,
  ResourceStats,
} from "./types.js";

export interface LeaseStoreOptions {
  redis: RedisClient;
  /** Key prefix shared by every sidecar of one cluster, e.g. "leasehold:". */
  prefix: string;
  /** How long an ended lease stays readable (so its token gets a precise refusal). @default 24 h */
  retentionMs?: number;
  /**
   * The cluster's lease MAC key (`loadLeaseMacKey`: kept in Vault, the same for every sidecar).
   * Without it the store signs with a random key of its own, which no other process accepts.
   */
  macKey?: Uint8Array;
  /**
   * The lease event stream (`eventStreamKey`) and its length cap: on one Redis node the checkout
   * script appends the `issued` entry itself. Without it (or with Redis Cluster, where the stream
   * lives in another hash slot) the caller publishes it.
   */
  eventStream?: { readonly key: string; readonly maxLen: number } | undefined;
}

interface ScriptCommands {
  lhCheckout(
    numKeys: number,
    ...keysAndArgs: (string | number)[]
  ): Promise<[number, number, string?, string[]?]>;
  lhUse(k1: string): Promise<[number, string[]]>;
  lhRenew(...keysAndArgs: (string | number)[]): Promise<number>;
  lhEnd(...keysAndArgs: (string | number)[]): Promise<[number, number]>;
  lhClaimDue(k1: string, k2: string, limit: number, visibilityMs: number): Promise<string[]>;
  lhClaimDueAll(k1: string, prefix: string, limit: number, visibilityMs: number): Promise<string[]>;
  lhSetAccount(
    k1: string,
    k2: string,
    k3: string,
    account: string,
    state: string,
    force: string,
  ): Promise<number>;
  lhAgentCount(k1: string, graceMs: number): Promise<number>;
  lhListPage(k1: string, ...args: (string | number)[]): Promise<[string[], ...[string, string, string[]][]]>;
  lhResourceStats(k1: string, k2: string, k3: string, leasePrefix: string, scan: number): Promise<number[]>;
  lhOldestIssued(k1: string, leasePrefix: string, start: number, stop: number): Promise<number>;
  lhHit(k1: string, windowSeconds: number): Promise<[number, number]>;
  lhHitAndCount(
    k1: string,
    k2: string,
    windowSeconds: number,
    graceMs: number,
  ): Promise<[number, number, number]>;
}
type ScriptRedis = RedisClient & ScriptCommands;

const SCRIPTS = {
  lhCheckout: { lua: CHECKOUT },
  lhUse: { numberOfKeys: 1, lua: USE },
  lhRenew: { numberOfKeys: 2, lua: RENEW },
  lhEnd: { numberOfKeys: 5, lua: END },
  lhClaimDue: { numberOfKeys: 2, lua: CLAIM_DUE },
  lhClaimDueAll: { numberOfKeys: 1, lua: CLAIM_DUE_ALL },
  lhSetAccount: { numberOfKeys: 3, lua: SET_ACCOUNT },
  lhAgentCount: { numberOfKeys: 1, lua: AGENT_COUNT },
  lhListPage: { numberOfKeys: 1, lua: LIST_PAGE },
  lhResourceStats: { numberOfKeys: 3, lua: RESOURCE_STATS },
  lhOldestIssued: { numberOfKeys: 1, lua: OLDEST_ISSUED },
  lhHit: { numberOfKeys: 1, lua: HIT },
  lhHitAndCount: { numberOfKeys: 2, lua: HIT_AND_COUNT },
} as const;

function pairsToRecord(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

function toLease(h: Record<string, string>): LeaseRecord | null {
  if (!h.json) return null;
  const spec = JSON.parse(h.json) as LeaseSpec;
  return {
    ...spec,
    account: h.account ?? "",
    state: h.state === "active" ? "active" : "ended",
    issued_at: Number(h.issued_at),
    expires_at: Number(h.expires_at),
    max_expires_at: Number(h.max_expires_at),
    ended_at: h.ended_at === undefined ? undefined : Number(h.ended_at),
    end_reason: h.end_reason as EndReason | undefined,
  };
}

/** The MAC's inputs as a record read from `resource`/`id`'s key shows them. */
function macFields(resource: string, id: string, l: LeaseRecord, spec: string): LeaseMacFields {
  return {
    id,
    resource,
    agent: l.agent,
    account: l.account,
    state: l.state,
    expires_at: l.expires_at,
    max_expires_at: l.max_expires_at,
    spec,
  };
}

/** Scheduled leases one stats script reads; a resource with more is read in further scripts of this many. */
const STATS_SCAN = 2000;

/** Attempts at a renew or end whose record changed between its read and its script. */
const CAS_ATTEMPTS = 3;

/**
 * Leases, account pools and the expiry schedule in Redis. Every multi-key script works on
 * the keys of one resource, which share a hash tag, so Redis Cluster can run them.
 */
/** How long after max_expires_at a lease may still be waiting for the reaper before its index entry is dropped. */
const STALE_GRACE_MS = 10 * 60 * 1000;

/** A waiter that has not called checkout again within this time leaves the queue. */
export const WAITER_TTL_MS = 2000;

/**
 * How much earlier than now + ttl (by Redis' clock) the expiries the store signs may fall: the
 * store estimates Redis' clock from its last reply, so a lease may be this much shorter than asked.
 */
export const CHECKOUT_SKEW_MS = 2000;

/** Checkout attempts whose candidates were taken meanwhile (or whose clock estimate was off). */
const CHECKOUT_ATTEMPTS = 5;

/** Accounts signed for per checkout attempt: more on each retry. */
const CANDIDATES = [4, 8, 16, 16, 16] as const;

export class LeaseStore {
  private readonly redis: ScriptRedis;
  private readonly p: string;
  private readonly retentionMs: number;
  private readonly macKey: Uint8Array;
  /** Cluster only: the resources the next claimDueAll claims over. */
  private claimedOver: string[] | undefined;
  private readonly oneNode: boolean;
  private readonly eventStream: LeaseStoreOptions["eventStream"];
  /** Redis' clock minus ours, as of the last checkout reply (an estimate; never trusted). */
  private clockOffset = 0;
  /** Per resource: the free accounts the last checkout reply listed, head first. */
  private readonly freeSeen = new Map<string, string[]>();
  /** Per resource: accounts that checkouts in flight here were signed for (spread the next ones). */
  private readonly inFlight = new Map<string, Map<string, number>>();

  constructor(opts: LeaseStoreOptions) {
    for (const [name, def] of Object.entries(SCRIPTS)) {
      if (!(name in opts.redis)) opts.redis.defineCommand(name, def);
    }
    this.redis = opts.redis as ScriptRedis;
    this.p = opts.prefix;
    this.retentionMs = opts.retentionMs ?? 24 * 3600 * 1000;
    this.macKey = opts.macKey ?? randomBytes(LEASE_MAC_KEY_BYTES);
    this.oneNode = (opts.redis as { isCluster?: boolean }).isCluster !== true;
    this.eventStream = opts.eventStream;
  }

  /** A raw lease hash, parsed, and whether its MAC holds for the key it was read from. */
  private verified(resource: string, id: string, h: Record<string, string>) {
    const lease = toLease(h);
    const intact =
      lease !== null && verifyLease(this.macKey, macFields(resource, id, lease, h.json as string), h.mac);
    return { lease, intact, mac: h.mac ?? "", spec: h.json ?? "" };
  }

  private k(resource: string, part: string): string {
    return `${this.p}{r:${resource}}:${part}`;
  }

  private leaseKey(resource: string, id: string): string {
    return this.k(resource, `lease:${id}`);
  }

  private agentKey(agent: string): string {
    return `${this.p}agent:${agent}`;
  }

  /** The leases of one task id, any agent's (a task id is the agent's choice: never trusted alone). */
  private taskKey(taskId: string): string {
    return `${this.p}task:${taskId}`;
  }

  /** Redis' clock, in milliseconds. */
  async now(): Promise<number> {
    const [s, us] = await (this.redis as Redis).time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  /**
   * Puts accounts under the store's management. New accounts start in `initial`; known ones keep
   * their state; accounts no longer listed are forgotten unless leased.
   */
  async syncPool(resource: string, accounts: readonly string[], initial: AccountState): Promise<void> {
    await this.redis.sadd(`${this.p}resources`, resource);
    const current = await this.redis.hgetall(this.k(resource, "acct"));
    for (const name of accounts) {
      if (current[name] === undefined) await this.setAccountState(resource, name, initial);
    }
    for (const name of Object.keys(current)) {
      if (!accounts.includes(name) && current[name] !== "leased") {
        await this.redis
          .multi()
          .hdel(this.k(resource, "acct"), name)
          .zrem(this.k(resource, "free"), name)
          .exec();
      }
    }
  }

  /** Forgets a resource's pool and schedule (its ended leases age out). */
  async removePool(resource: string): Promise<void> {
    await this.redis.del(
      this.k(resource, "acct"),
      this.k(resource, "free"),
      this.k(resource, "holder"),
      this.k(resource, "due"),
      this.k(resource, "inflight"),
      this.k(resource, "waitq"),
      this.k(resource, "alive"),
    );
    await this.redis.srem(`${this.p}resources`, resource);
  }

  async resources(): Promise<string[]> {
    return (await this.redis.smembers(`${this.p}resources`)).sort();
  }

  /** Sets an account's state; returns false when the account is leased (only a lease end changes that). */
  async setAccountState(
    resource: string,
    account: string,
    state: AccountState,
    force = false,
  ): Promise<boolean> {
    const r = await this.redis.lhSetAccount(
      this.k(resource, "acct"),
      this.k(resource, "free"),
      this.k(resource, "holder"),
      account,
      state,
      force ? "force" : "",
    );
    return r === 1;
  }

  async accounts(resource: string): Promise<AccountStatus[]> {
    const [states, holders] = await Promise.all([
      this.redis.hgetall(this.k(resource, "acct")),
      this.redis.hgetall(this.k(resource, "holder")),
    ]);
    return Object.keys(states)
      .sort()
      .map((name) => ({ name, state: states[name] as AccountState, lease_id: holders[name] }));
  }

  /**
   * Atomically takes a free account of the pool and creates the lease on it, signed: the record
   * never exists without its MAC. With `waiter`, the request queues first come, first served: call
   * again with the same waiter until it succeeds, at least every `WAITER_TTL_MS`, and `leaveQueue`
   * when giving up. On one Redis node the same script writes the lease-of, agent and task index
   * entries and (with `eventStream`) the `issued` stream entry: one round trip. With Redis Cluster
   * those keys live in other hash slots, so they are written beside it, sent together.
   */
  async checkout(spec: LeaseSpec, ttlMs: number, maxTtlMs: number, waiter = ""): Promise<CheckoutResult> {
    const key = this.leaseKey(spec.resource, spec.id);
    const specJson = JSON.stringify(spec);
    const member = `${spec.resource}/${spec.id}`;
    const keys = [
      this.k(spec.resource, "acct"),
      this.k(spec.resource, "free"),
      this.k(spec.resource, "due"),
      key,
      this.k(spec.resource, "holder"),
      this.k(spec.resource, "waitq"),
      this.k(spec.resource, "alive"),
    ];
    if (this.oneNode)
      keys.push(this.indexKey(spec.id), this.agentKey(spec.agent), this.taskKey(spec.task.id));
    const announced = this.oneNode && this.eventStream !== undefined;
    if (announced && this.eventStream) keys.push(this.eventStream.key);
    for (let attempt = 0; attempt < CHECKOUT_ATTEMPTS; attempt++) {
      const est = Date.now() + this.clockOffset;
      const maxexp = est + maxTtlMs;
      const exp = Math.min(est + ttlMs, maxexp);
      const candidates = this.candidates(spec.resource, CANDIDATES[attempt] ?? 16);
      const signed: string[] = [];
      for (const account of candidates) {
        signed.push(
          account,
          signLease(this.macKey, {
            id: spec.id,
            resource: spec.resource,
            agent: spec.agent,
            account,
            state: "active",
            expires_at: exp,
            max_expires_at: maxexp,
            spec: specJson,
          }),
        );
      }
      this.hold(spec.resource, candidates, 1);
      let reply: Awaited<ReturnType<ScriptCommands["lhCheckout"]>>;
      try {
        reply = await this.redis.lhCheckout(
          keys.length,
          ...keys,
          spec.id,
          specJson,
          ttlMs,
          maxTtlMs,
          this.retentionMs,
          waiter,
          WAITER_TTL_MS,
          exp,
          maxexp,
          CHECKOUT_SKEW_MS,
          member,
          this.eventStream?.maxLen ?? 10_000,
          spec.resource,
          spec.agent,
          ...signed,
        );
      } finally {
        this.hold(spec.resource, candidates, -1);
      }
      const [code, now, account, free] = reply;
      this.clockOffset = Number(now) - Date.now();
      if (free) this.freeSeen.set(spec.resource, free.map(String));
      if (code === -3 || code === -4) continue;
      if (code !== 1 || !account) return { ok: false };
      const lease: LeaseRecord = {
        ...spec,
        account: String(account),
        state: "active",
        issued_at: est,
        expires_at: exp,
        max_expires_at: maxexp,
      };
      if (!this.oneNode) await this.writeIndexes(spec, lease);
      return { ok: true, lease, announced };
    }
    return { ok: false };
  }

  /**
   * The lease-of, agent and task index entries, beside the lease script (Redis Cluster: other hash
   * slots, so separate commands, sent together). The index entry lives as long as the lease hash;
   * the agent's and task's entries are scored by the lease's latest possible end, so one left
   * behind by a crash ages out instead of counting forever.
   */
  private async writeIndexes(spec: LeaseSpec, lease: LeaseRecord): Promise<void> {
    const member = `${spec.resource}/${spec.id}`;
    await Promise.all([
      this.redis.set(
        this.indexKey(spec.id),
        spec.resource,
        "PX",
        lease.max_expires_at - lease.issued_at + this.retentionMs,
      ),
      this.redis.zadd(this.agentKey(spec.agent), lease.max_expires_at, member),
      this.redis.zadd(this.taskKey(spec.task.id), lease.max_expires_at, member),
    ]);
  }

  /**
   * Up to `n` accounts to sign a checkout for: those the last reply listed as free, the ones no
   * checkout in flight here was signed for first (concurrent checkouts then rarely want the same).
   */
  private candidates(resource: string, n: number): string[] {
    const seen = this.freeSeen.get(resource) ?? [];
    const busy = this.inFlight.get(resource);
    const idle = seen.filter((a) => !busy?.has(a));
    return [...idle, ...seen.filter((a) => busy?.has(a))].slice(0, n);
  }

  private hold(resource: string, accounts: readonly string[], delta: 1 | -1): void {
    let m = this.inFlight.get(resource);
    if (!m) {
      m = new Map();
      this.inFlight.set(resource, m);
    }
    for (const a of accounts) {
      const v = (m.get(a) ?? 0) + delta;
      if (v > 0) m.set(a, v);
      else m.delete(a);
    }
  }

  /** Removes a waiter from a resource's queue (it gave up, or its client went away). */
  async leaveQueue(resource: string, waiter: string): Promise<void> {
    await Promise.all([
      this.redis.zrem(this.k(resource, "waitq"), waiter),
      this.redis.hdel(this.k(resource, "alive"), waiter),
    ]);
  }

  /** How many live requests are waiting for an account of the resource. */
  async queueLength(resource: string): Promise<number> {
    return this.redis.zcard(this.k(resource, "waitq"));
  }

  /** Which resource a lease id belongs to, or null (falls back to a search when the index entry is missing). */
  async resourceOf(id: string): Promise<string | null> {
    const hit = await this.redis.get(this.indexKey(id));
    if (hit) return hit;
    for (const resource of await this.resources()) {
      if ((await this.redis.exists(this.leaseKey(resource, id))) === 1) return resource;
    }
    return null;
  }

  private indexKey(id: string): string {
    return `${this.p}lease-of:${id}`;
  }

  async get(resource: string, id: string): Promise<LeaseRecord | null> {
    return toLease(await this.redis.hgetall(this.leaseKey(resource, id)));
  }

  /**
   * A lease and whether its MAC holds. For decisions taken on a record (is this account still
   * leased?), where `get`'s unverified fields, writable by anyone with Redis access, must not count.
   */
  async getVerified(resource: string, id: string): Promise<{ lease: LeaseRecord | null; intact: boolean }> {
    const { lease, intact } = this.verified(
      resource,
      id,
      await this.redis.hgetall(this.leaseKey(resource, id)),
    );
    return { lease, intact };
  }

  /**
   * The lease and Redis' clock in one round trip: the check made on every token use. `intact`
   * is true only when the record's MAC holds (checked locally); a caller must refuse it otherwise.
   */
  async use(resource: string, id: string): Promise<LeaseUse> {
    const [now, flat] = await this.redis.lhUse(this.leaseKey(resource, id));
    const { lease, intact } = this.verified(resource, id, pairsToRecord(flat));
    return { now: Number(now), lease, intact };
  }

  /**
   * Extends an active, unexpired lease whose MAC holds to now + ttl, never past max_expires_at;
   * the new expiry and its MAC are written together. A record that fails its MAC is not renewed.
   */
  async renew(resource: string, id: string, ttlMs: number): Promise<RenewResult> {
    const key = this.leaseKey(resource, id);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const [now, flat] = await this.redis.lhUse(key);
      const { lease, intact, mac, spec } = this.verified(resource, id, pairsToRecord(flat));
      if (!lease || !intact || lease.state !== "active" || lease.expires_at <= Number(now)) {
        return { ok: false, lease };
      }
      const renewed: LeaseRecord = {
        ...lease,
        expires_at: Math.min(Number(now) + ttlMs, lease.max_expires_at),
      };
      const next = signLease(this.macKey, macFields(resource, id, renewed, spec));
      const r = await this.redis.lhRenew(key, this.k(resource, "due"), id, renewed.expires_at, mac, next);
      if (r === 1) return { ok: true, lease: renewed };
      if (r !== -2) return { ok: false, lease: await this.get(resource, id) };
    }
    return { ok: false, lease: await this.get(resource, id) };
  }

  /**
   * Ends an active lease exactly once, whoever asks first (check-in, reaper, revoke), and signs
   * the ended state. A record that fails its MAC is ended too, whatever its expiry claims (a
   * forged extension cannot keep a lease from the reaper), and stays unsigned.
   */
  async end(resource: string, id: string, reason: EndReason): Promise<EndResult> {
    const key = this.leaseKey(resource, id);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { lease, intact, mac, spec } = this.verified(resource, id, await this.redis.hgetall(key));
      if (!lease) return { ended: false, lease: null };
      const next = intact
        ? signLease(this.macKey, macFields(resource, id, { ...lease, state: "ended" }, spec))
        : "";
      const [r, now] = await this.redis.lhEnd(
        key,
        this.k(resource, "acct"),
        this.k(resource, "holder"),
        this.k(resource, "due"),
        this.k(resource, "inflight"),
        id,
        reason,
        this.retentionMs,
        intact ? mac : "",
        next,
      );
      if (r === -2) continue;
      if (r !== 1) return { ended: false, lease: await this.get(resource, id) };
      await Promise.all([
        this.redis.zrem(this.agentKey(lease.agent), `${resource}/${id}`),
        this.redis.zrem(this.taskKey(lease.task.id), `${resource}/${id}`),
      ]);
      const ended: LeaseRecord = { ...lease, state: "ended", ended_at: Number(now), end_reason: reason };
      return { ended: true, lease: ended };
    }
    return { ended: false, lease: await this.get(resource, id) };
  }

  /** Claims up to `limit` due leases of a resource for `visibilityMs`. */
  async claimDue(resource: string, limit: number, visibilityMs: number): Promise<string[]> {
    return this.redis.lhClaimDue(this.k(resource, "due"), this.k(resource, "inflight"), limit, visibilityMs);
  }

  /**
   * Claims due leases of every resource for `visibilityMs`, at most `limit` in all (an equal share
   * per resource first), in one round trip on a single Redis. On Redis Cluster, where one script
   * cannot span hash slots, each resource's claim (at most `limit`) is sent at once, so the
   * pass costs one round trip per node; the resource list it claims over is the one read
   * alongside the previous pass (read first on the first pass).
   */
  async claimDueAll(limit: number, visibilityMs: number): Promise<LeaseRef[]> {
    if (!this.isCluster()) {
      const flat = await this.redis.lhClaimDueAll(`${this.p}resources`, this.p, limit, visibilityMs);
      const out: LeaseRef[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2)
        out.push({ resource: flat[i] as string, id: flat[i + 1] as string });
      return out;
    }
    const names = this.claimedOver ?? (await this.resources());
    const [next, ...claims] = await Promise.all([
      this.resources(),
      ...names.map((resource) => this.claimDue(resource, limit, visibilityMs)),
    ]);
    this.claimedOver = next;
    return claims.flatMap((ids, i) => ids.map((id) => ({ resource: names[i] as string, id })));
  }

  private isCluster(): boolean {
    return (this.redis as { isCluster?: boolean }).isCluster === true;
  }

  /**
   * Active leases of one agent (all resources), in one round trip. Index entries of leases that
   * ended long ago without being removed (a crash between the lease script and the index write)
   * are dropped first: each is scored by its lease's max_expires_at, and the reaper ends every
   * lease well within STALE_GRACE_MS of that.
   */
  async activeCount(agent: string): Promise<number> {
    return this.redis.lhAgentCount(this.agentKey(agent), STALE_GRACE_MS);
  }

  /** The leases one agent holds (all resources), from its index: entries may name leases that just ended. */
  async agentLeases(agent: string): Promise<LeaseRef[]> {
    return this.indexed(this.agentKey(agent));
  }

  /**
   * The leases checked out for one task id, by any agent (all resources), from the task's index:
   * entries may name leases that just ended. Like the agent's index, each entry is written beside
   * the lease script (another hash slot) and scored by its lease's max_expires_at, so one a crash
   * left behind ages out.
   */
  async taskLeases(taskId: string): Promise<LeaseRef[]> {
    return this.indexed(this.taskKey(taskId));
  }

  private async indexed(key: string): Promise<LeaseRef[]> {
    await this.redis.lhAgentCount(key, STALE_GRACE_MS);
    const members = await this.redis.zrange(key, 0, -1);
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
    const lp = this.k(resource, "lease:");
    const [active, soonest, oldest, scheduled, available, leased, rotating, quarantined] = (
      await this.redis.lhResourceStats(
        this.k(resource, "due"),
        this.k(resource, "inflight"),
        this.k(resource, "acct"),
        lp,
        STATS_SCAN,
      )
    ).map(Number);
    let min = oldest ?? -1;
    const rest: Promise<number>[] = [];
    for (let at = STATS_SCAN; at < (scheduled ?? 0); at += STATS_SCAN) {
      rest.push(this.redis.lhOldestIssued(this.k(resource, "due"), lp, at, at + STATS_SCAN - 1));
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
   * absent once the listing is complete, is where the following page starts. One round trip on a
   * single Redis; on Redis Cluster one per resource the page spans.
   */
  async listPage(q: {
    resource?: string | undefined;
    agent?: string | undefined;
    limit: number;
    budget?: number | undefined;
    after?: LeasePosition | undefined;
  }): Promise<LeasePage> {
    const budget = q.budget ?? Math.max(q.limit * 4, 2000);
    const call = async (only: string, limit: number, scan: number, after: LeasePosition | undefined) => {
      const [pos, ...rows] = await this.redis.lhListPage(
        only ? this.k(only, "due") : `${this.p}resources`,
        this.p,
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
      return { leases, next: pos.length === 4 ? (pos as unknown as LeasePosition) : undefined };
    };
    if (q.resource !== undefined || !this.isCluster())
      return call(q.resource ?? "", q.limit, budget, q.after);
    // Redis Cluster: one script cannot span resources (hash slots), so the page goes resource by resource.
    const names = (await this.resources()).filter((r) => !q.after || r >= q.after[0]);
    const leases: LeaseRecord[] = [];
    let scanned = 0;
    for (const [i, name] of names.entries()) {
      const after = q.after && name === q.after[0] ? q.after : undefined;
      if (after?.[1] === "z") continue;
      const page = await call(name, q.limit - leases.length, budget - scanned, after);
      leases.push(...page.leases);
      scanned += page.leases.length;
      if (page.next) return { leases, next: page.next };
      if (leases.length >= q.limit || scanned >= budget) {
        return i + 1 < names.length ? { leases, next: [name, "z", "0", ""] } : { leases };
      }
    }
    return { leases };
  }

  /** Active leases of a resource whose expires_at falls in [fromMs, toMs] (one range read of the schedule). */
  async expiringBetween(resource: string, fromMs: number, toMs: number): Promise<LeaseRecord[]> {
    const ids = await this.redis.zrangebyscore(this.k(resource, "due"), fromMs, toMs);
    const out: LeaseRecord[] = [];
    for (const id of ids) {
      const l = await this.get(resource, id);
      if (l && l.state === "active") out.push(l);
    }
    return out;
  }

  /** Leases of a resource that are active (from the schedule) — for listing. */
  async activeLeases(resource: string): Promise<LeaseRecord[]> {
    const ids = [
      ...(await this.redis.zrange(this.k(resource, "due"), 0, -1)),
      ...(await this.redis.zrange(this.k(resource, "inflight"), 0, -1)),
    ];
    const out: LeaseRecord[] = [];
    for (const id of new Set(ids)) {
      const l = await this.get(resource, id);
      if (l && l.state === "active") out.push(l);
    }
    return out;
  }

  /**
   * Stores the SCRAM verifier of a lease's token in its record (field `scram`, under its own MAC).
   * Only while the record exists: a lease that already aged out gets no key without an expiry.
   */
  async setTokenVerifier(resource: string, id: string, v: ScramVerifier): Promise<void> {
    await this.redis.eval(
      "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'scram', ARGV[1]) end return 1",
      1,
      this.leaseKey(resource, id),
      sealVerifier(this.macKey, resource, id, v),
    );
  }

  /** The SCRAM verifier stored for a lease's token, or undefined when there is none or its MAC fails. */
  async tokenVerifier(resource: string, id: string): Promise<ScramVerifier | undefined> {
    return openVerifier(
      this.macKey,
      resource,
      id,
      await this.redis.hget(this.leaseKey(resource, id), "scram"),
    );
  }

  /**
   * Counts one request of `subject` in the current fixed window (Redis' clock), in one round
   * trip; returns the count so far and the seconds left in the window.
   */
  async hit(subject: string, windowSeconds: number): Promise<{ count: number; resetIn: number }> {
    const [count, leftMs] = await this.redis.lhHit(`${this.p}rl:${subject}`, windowSeconds);
    return { count: Number(count), resetIn: Math.max(1, Math.ceil(Number(leftMs) / 1000)) };
  }

  /**
   * `hit(subject, windowSeconds)` and `activeCount(agent)` in one round trip: one script on one
   * Redis node; with Redis Cluster (other hash slots) two commands sent together.
   */
  async hitAndCount(
    subject: string,
    windowSeconds: number,
    agent: string,
  ): Promise<{ count: number; resetIn: number; activeLeases: number }> {
    if (!this.oneNode) {
      const [hit, activeLeases] = await Promise.all([
        this.hit(subject, windowSeconds),
        this.activeCount(agent),
      ]);
      return { ...hit, activeLeases };
    }
    const [count, leftMs, active] = await this.redis.lhHitAndCount(
      `${this.p}rl:${subject}`,
      this.agentKey(agent),
      windowSeconds,
      STALE_GRACE_MS,
    );
    return {
      count: Number(count),
      resetIn: Math.max(1, Math.ceil(Number(leftMs) / 1000)),
      activeLeases: Number(active),
    };
  }
}
