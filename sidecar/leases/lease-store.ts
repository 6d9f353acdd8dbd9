import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { RedisClient } from "../redis.js";
import { LEASE_MAC_KEY_BYTES, signLease, verifyLease } from "./lease-mac.js";
import {
  CAS_ATTEMPTS,
  macFields,
  pairsToRecord,
  SCRIPTS,
  type ScriptRedis,
  STALE_GRACE_MS,
  toLease,
} from "./store-scripts.js";
import { CheckoutScript } from "./lease-checkout.js";
import { LeaseViews } from "./lease-views.js";
import { openVerifier, type ScramVerifier, sealVerifier } from "./token-verifier.js";
import type {
  AccountState,
  AccountStatus,
  CheckoutResult,
  EndReason,
  EndResult,
  LeasePage,
  LeaseRecord,
  LeaseRef,
  LeaseSpec,
  LeaseUse,
  OneTimeSpend,
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

/**
 * Leases, account pools and the expiry schedule in Redis. Every multi-key script works on
 * the keys of one resource, which share a hash tag, so Redis Cluster can run them.
 */
export class LeaseStore {
  private readonly redis: ScriptRedis;
  private readonly p: string;
  private readonly retentionMs: number;
  private readonly macKey: Uint8Array;
  /** Cluster only: the resources the next claimDueAll claims over. */
  private claimedOver: string[] | undefined;
  private readonly oneNode: boolean;
  private readonly eventStream: LeaseStoreOptions["eventStream"];
  private readonly views: LeaseViews;
  private readonly checkoutScript: CheckoutScript;

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
    this.checkoutScript = new CheckoutScript({
      redis: this.redis,
      macKey: this.macKey,
      retentionMs: this.retentionMs,
      oneNode: this.oneNode,
      eventStream: this.eventStream,
      k: (resource, part) => this.k(resource, part),
      indexKey: (id) => this.indexKey(id),
      agentKey: (agent) => this.agentKey(agent),
      taskKey: (taskId) => this.taskKey(taskId),
    });
    this.views = new LeaseViews({
      redis: this.redis,
      prefix: this.p,
      k: (resource, part) => this.k(resource, part),
      isCluster: () => this.isCluster(),
      resources: () => this.resources(),
    });
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
      this.k(resource, "rsv"),
      this.k(resource, "rsvby"),
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
   * never exists without its MAC (CheckoutScript.checkout). With `waiter`, the request queues first
   * come, first served: call again with the same waiter until it succeeds, at least every
   * `WAITER_TTL_MS`, and `leaveQueue` when giving up.
   */
  checkout(spec: LeaseSpec, ttlMs: number, maxTtlMs: number, waiter = ""): Promise<CheckoutResult> {
    return this.checkoutScript.checkout(spec, ttlMs, maxTtlMs, waiter);
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
      const renewed: LeaseRecord = Object.assign({}, lease, {
        expires_at: Math.min(Number(now) + ttlMs, lease.max_expires_at),
      });
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
        ? signLease(
            this.macKey,
            macFields(resource, id, Object.assign({}, lease, { state: "ended" as const }), spec),
          )
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
      const ended: LeaseRecord = Object.assign({}, lease, {
        state: "ended" as const,
        ended_at: Number(now),
        end_reason: reason,
      });
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
  agentLeases(agent: string): Promise<LeaseRef[]> {
    return this.views.indexed(this.agentKey(agent));
  }

  /**
   * The leases checked out for one task id, by any agent (all resources), from the task's index:
   * entries may name leases that just ended (see LeaseViews.indexed).
   */
  taskLeases(taskId: string): Promise<LeaseRef[]> {
    return this.views.indexed(this.taskKey(taskId));
  }

  /** One resource's counts for the metrics, computed in Redis (LeaseViews.resourceStats). */
  resourceStats(resource: string): Promise<ResourceStats> {
    return this.views.resourceStats(resource);
  }

  /** One page of active leases (LeaseViews.listPage). */
  listPage(q: Parameters<LeaseViews["listPage"]>[0]): Promise<LeasePage> {
    return this.views.listPage(q);
  }

  /** Active leases of a resource whose expires_at falls in [fromMs, toMs]. */
  expiringBetween(resource: string, fromMs: number, toMs: number): Promise<LeaseRecord[]> {
    return this.views.expiringBetween(resource, fromMs, toMs);
  }

  /** Leases of a resource that are active (from the schedule). */
  activeLeases(resource: string): Promise<LeaseRecord[]> {
    return this.views.activeLeases(resource);
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
   * Redis node; with Redis Cluster (other hash slots) two commands sent together. With `spend`
   * the same round trip first spends that one-time key (SET NX) and counts nothing when it was
   * spent before ("replayed"); on Redis Cluster the spend is a round trip of its own, first.
   */
  async hitAndCount(
    subject: string,
    windowSeconds: number,
    agent: string,
    spend?: OneTimeSpend,
  ): Promise<{ count: number; resetIn: number; activeLeases: number } | "replayed"> {
    if (!this.oneNode) {
      if (spend && (await this.redis.set(spend.key, "1", "PX", spend.ttlMs, "NX")) !== "OK")
        return "replayed";
      const [hit, activeLeases] = await Promise.all([
        this.hit(subject, windowSeconds),
        this.activeCount(agent),
      ]);
      return { ...hit, activeLeases };
    }
    const [count, leftMs, active] = spend
      ? await this.spendHitAndCount(spend, subject, windowSeconds, agent)
      : await this.redis.lhHitAndCount(
          `${this.p}rl:${subject}`,
          this.agentKey(agent),
          windowSeconds,
          STALE_GRACE_MS,
        );
    if (count === undefined) return "replayed";
    return {
      count: Number(count),
      resetIn: Math.max(1, Math.ceil(Number(leftMs) / 1000)),
      activeLeases: Number(active),
    };
  }

  /** The spending variant of the hit-and-count script: undefined count when `spend` was spent before. */
  private async spendHitAndCount(
    spend: OneTimeSpend,
    subject: string,
    windowSeconds: number,
    agent: string,
  ): Promise<[number?, number?, number?]> {
    const [fresh, ...rest] = await this.redis.lhSpendHitAndCount(
      spend.key,
      `${this.p}rl:${subject}`,
      this.agentKey(agent),
      windowSeconds,
      STALE_GRACE_MS,
      spend.ttlMs,
    );
    return Number(fresh) === 1 ? rest : [];
  }
}
