import type { LeaseRecord, CheckoutResult, LeaseSpec } from "./types.js";
import { signLeaseForAccounts } from "./lease-mac.js";
import {
  CANDIDATES,
  CHECKOUT_ATTEMPTS,
  CHECKOUT_SKEW_MS,
  type ScriptRedis,
  WAITER_TTL_MS,
} from "./store-scripts.js";

/** What the checkout needs of the lease store: its Redis, MAC key, settings and key names. */
export interface CheckoutContext {
  readonly redis: ScriptRedis;
  readonly macKey: Uint8Array;
  readonly retentionMs: number;
  /** One Redis node (not Cluster): the script may write keys of other hash slots. */
  readonly oneNode: boolean;
  readonly eventStream: { readonly key: string; readonly maxLen: number } | undefined;
  k(resource: string, part: string): string;
  indexKey(id: string): string;
  agentKey(agent: string): string;
  taskKey(taskId: string): string;
}

/**
 * The checkout script's caller. The script picks the account, but the MAC key never reaches Redis,
 * so the store signs the record in advance for a few candidate accounts (the first free ones the
 * last reply listed), with expiries from its estimate of Redis' clock that the script checks; the
 * script takes the first free candidate and writes the record with its MAC: one round trip.
 *
 * Many checkouts at once all sign for the same few listed accounts, and retrying with other guesses
 * (more candidates, a random offset, a list without those tried) can lose again on every attempt
 * while accounts stay free: no bound on attempts is correct under every interleaving. So when none
 * of its candidates is free but an account is free for the request (the fairness rule passed), the
 * same call reserves the pool's head for this lease id and returns it; the store signs for exactly
 * that account and a second call takes it. A reservation is exclusive (out of the free list, owned by one lease id), so the second
 * call fails only when the reservation outlived RESERVATION_MS (then it went back to the free
 * list) or an operator changed the account: the store then starts over. Hence "busy" means the
 * script found no account free for the request, under any interleaving; the common case stays one
 * round trip and a contended one takes two. A waiter leaves the queue when its account is
 * reserved (it is served; it would otherwise count twice against the others); should that
 * reservation be lost, it queues again, last.
 *
 * On one Redis node the same script writes the lease-of, agent and task index entries and (with
 * `eventStream`) the `issued` stream entry. With Redis Cluster those keys live in other hash slots,
 * so they are written beside it.
 */
export class CheckoutScript {
  /** Redis' clock minus ours, as of the last checkout reply (an estimate; never trusted). */
  private clockOffset = 0;
  /** Per resource: the free accounts the last checkout reply listed, head first. */
  private readonly freeSeen = new Map<string, string[]>();
  /** Per resource: accounts that checkouts in flight here were signed for (spread the next ones). */
  private readonly inFlight = new Map<string, Map<string, number>>();

  constructor(private readonly s: CheckoutContext) {}

  /**
   * Atomically takes a free account of the pool and creates the lease on it, signed: the record
   * never exists without its MAC. With `waiter`, the request queues first come, first served: call
   * again with the same waiter until it succeeds, at least every `WAITER_TTL_MS`, and `leaveQueue`
   * when giving up. On one Redis node the same script writes the lease-of, agent and task index
   * entries and (with `eventStream`) the `issued` stream entry: one round trip. With Redis Cluster
   * those keys live in other hash slots, so they are written beside it, sent together.
   */
  async checkout(spec: LeaseSpec, ttlMs: number, maxTtlMs: number, waiter = ""): Promise<CheckoutResult> {
    const key = this.s.k(spec.resource, `lease:${spec.id}`);
    const specJson = JSON.stringify(spec);
    const member = `${spec.resource}/${spec.id}`;
    const keys = [
      this.s.k(spec.resource, "acct"),
      this.s.k(spec.resource, "free"),
      this.s.k(spec.resource, "due"),
      key,
      this.s.k(spec.resource, "holder"),
      this.s.k(spec.resource, "waitq"),
      this.s.k(spec.resource, "alive"),
      this.s.k(spec.resource, "rsv"),
      this.s.k(spec.resource, "rsvby"),
    ];
    if (this.s.oneNode)
      keys.push(this.s.indexKey(spec.id), this.s.agentKey(spec.agent), this.s.taskKey(spec.task.id));
    const announced = this.s.oneNode && this.s.eventStream !== undefined;
    if (announced && this.s.eventStream) keys.push(this.s.eventStream.key);
    /** The account the script reserved for this lease id, to sign for and take next. */
    let reserved = "";
    // A reservation is not a miss: the call after it takes the account (or misses).
    for (let misses = 0; misses < CHECKOUT_ATTEMPTS; ) {
      const est = Date.now() + this.clockOffset;
      const maxexp = est + maxTtlMs;
      const exp = Math.min(est + ttlMs, maxexp);
      const candidates = reserved ? [reserved] : this.candidates(spec.resource, CANDIDATES);
      const macs = signLeaseForAccounts(
        this.s.macKey,
        {
          id: spec.id,
          resource: spec.resource,
          agent: spec.agent,
          state: "active",
          expires_at: exp,
          max_expires_at: maxexp,
          spec: specJson,
        },
        candidates,
      );
      const signed: string[] = [];
      candidates.forEach((account, i) => {
        signed.push(account, macs[i] as string);
      });
      this.hold(spec.resource, candidates, 1);
      let reply: Awaited<ReturnType<ScriptRedis["lhCheckout"]>>;
      try {
        reply = await this.s.redis.lhCheckout(
          keys.length,
          ...keys,
          spec.id,
          specJson,
          ttlMs,
          maxTtlMs,
          this.s.retentionMs,
          waiter,
          WAITER_TTL_MS,
          exp,
          maxexp,
          CHECKOUT_SKEW_MS,
          member,
          this.s.eventStream?.maxLen ?? 10_000,
          spec.resource,
          spec.agent,
          reserved,
          ...signed,
        );
      } finally {
        this.hold(spec.resource, candidates, -1);
      }
      const [code, now, account, free] = reply;
      this.clockOffset = Number(now) - Date.now();
      if (free) this.freeSeen.set(spec.resource, free.map(String));
      // A reply to a call that already named its reservation never reserves again (else: busy).
      if (code === 2 && account && !reserved) {
        reserved = String(account);
        continue;
      }
      if (code === -3 || code === -5) {
        if (code === -5) reserved = "";
        misses++;
        continue;
      }
      // Only an account this call signed for: the record's MAC names it.
      if (code !== 1 || !account || !candidates.includes(String(account))) return { ok: false };
      // Object.assign, not a spread followed by fields (~10 µs in Node 20's V8).
      const lease: LeaseRecord = Object.assign({}, spec, {
        account: String(account),
        state: "active" as const,
        issued_at: est,
        expires_at: exp,
        max_expires_at: maxexp,
      });
      if (!this.s.oneNode) await this.writeIndexes(spec, lease);
      return { ok: true, lease, announced };
    }
    // Only after repeated stalls or operator changes; a reservation still held expires back to free.
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
      this.s.redis.set(
        this.s.indexKey(spec.id),
        spec.resource,
        "PX",
        lease.max_expires_at - lease.issued_at + this.s.retentionMs,
      ),
      this.s.redis.zadd(this.s.agentKey(spec.agent), lease.max_expires_at, member),
      this.s.redis.zadd(this.s.taskKey(spec.task.id), lease.max_expires_at, member),
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
}
