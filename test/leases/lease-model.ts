import fc, { type Arbitrary, type AsyncCommand } from "fast-check";
import { expect } from "vitest";
import type { LeaseStore } from "../../sidecar/leases/index.js";
import { WAITER_TTL_MS } from "../../sidecar/leases/store-scripts.js";
import type { AccountState, EndReason, LeaseRecord } from "../../sidecar/leases/types.js";
import { waitForClock } from "../support/wait-for.js";

/**
 * A model of one resource's pool and leases, driven by random commands from two LeaseStore
 * instances ("two sidecars") against real Redis. All times come from Redis' clock.
 */

export interface ModelLease {
  readonly id: string;
  readonly agent: string;
  readonly account: string;
  readonly maxExpiresAt: number;
  expiresAt: number;
  state: "active" | "ended";
  reason?: EndReason;
}

export interface Model {
  readonly accounts: Map<string, AccountState>;
  readonly leases: ModelLease[];
  /** Leases claimed by a reaper that died, with an upper bound of their visibility deadline. */
  readonly hidden: Map<string, number>;
  /** How many end() calls reported `ended: true`, per lease id, over both stores (I5: at most 1). */
  readonly ends: Map<string, number>;
  /**
   * Waiters that asked and were not served (nor left), in the order they joined, with the Redis
   * time read just before their last call. A superset of Redis' queue: Redis drops a waiter that
   * stopped calling for WAITER_TTL_MS when a later checkout walks past it.
   */
  readonly queue: Array<{ waiter: string; refreshedAt: number }>;
  /** Set when a waiter that may have been dropped called again: Redis may have queued it last. */
  orderUncertain: boolean;
}

/** A waiter whose last call is this recent is surely still queued (margin for slow calls). */
const SURELY_ALIVE_MS = WAITER_TTL_MS - 500;

export interface Real {
  readonly stores: readonly [LeaseStore, LeaseStore];
  readonly resource: string;
  readonly pool: readonly string[];
  /** The run's agents (the agent index spans resources, so each run has its own). */
  readonly agents: readonly string[];
  readonly waiters: readonly string[];
}

/** Waiter ids of one model run (the sidecar uses the waiting request's lease id). */
export function runWaiters(run: string): string[] {
  return [0, 1, 2].map((k) => `${run}-waiter-${k}`);
}

/** Three agents of one model run. */
export function runAgents(run: string): string[] {
  return ["a", "b", "c"].map((x) => `spiffe://example.org/agent/model-${run}-${x}`);
}

type Via = 0 | 1;
type Cmd = AsyncCommand<Model, Real>;

let seq = 0;
function leaseId(): string {
  return `lse_model${String(++seq).padStart(10, "0")}_${process.pid}`;
}

function reader(r: Real, via: Via): LeaseStore {
  return r.stores[via === 0 ? 1 : 0];
}

function pick(m: Readonly<Model>, i: number): ModelLease {
  const l = m.leases[i % m.leases.length];
  if (!l) throw new Error("no lease to pick");
  return l;
}

function active(m: Readonly<Model>): ModelLease[] {
  return m.leases.filter((l) => l.state === "active");
}

/** Records a successful end (from whichever caller) in the model. */
function recordEnd(m: Model, lease: LeaseRecord): void {
  const ml = m.leases.find((l) => l.id === lease.id);
  if (!ml) throw new Error(`ended an unknown lease ${lease.id}`);
  m.ends.set(lease.id, (m.ends.get(lease.id) ?? 0) + 1);
  expect(m.ends.get(lease.id), `I5: lease ${lease.id} ended twice`).toBe(1);
  expect(ml.state, `lease ${lease.id} ended although the model had it ended`).toBe("active");
  ml.state = "ended";
  ml.reason = lease.end_reason;
  m.hidden.delete(ml.id);
  m.accounts.set(ml.account, "rotating");
}

/**
 * I5 (claimable): every active lease whose expiry is at or before `t` (a Redis time no later
 * than the claim script's), and which no dead reaper hides any more, must be among `claimed`.
 */
function expectDueClaimed(m: Readonly<Model>, claimed: readonly string[], t: number): void {
  for (const l of active(m)) {
    const hiddenUntil = m.hidden.get(l.id);
    if (l.expiresAt <= t && (hiddenUntil === undefined || hiddenUntil <= t)) {
      expect(claimed, `I5: due lease ${l.id} (expired ${t - l.expiresAt} ms ago) was not claimed`).toContain(
        l.id,
      );
    }
  }
}

async function reap(m: Model, r: Real, via: Via): Promise<void> {
  const store = r.stores[via];
  const t0 = await store.now();
  const ids = await store.claimDue(r.resource, 1000, 30_000);
  expectDueClaimed(m, ids, t0);
  for (const id of ids) {
    const ml = m.leases.find((l) => l.id === id);
    expect(ml?.state, `claimed ${id}, which is not an active lease`).toBe("active");
    const res = await store.end(r.resource, id, "expired");
    expect(res.ended, `claimed due lease ${id} did not end as expired`).toBe(true);
    if (res.ended) {
      expect(res.lease.end_reason).toBe("expired");
      expect(res.lease.expires_at).toBeLessThanOrEqual(res.lease.ended_at ?? 0);
      recordEnd(m, res.lease);
    }
  }
}

/** Checks I1, I4 and I5 against what Redis holds, through the given store. */
export async function checkInvariants(m: Readonly<Model>, r: Real, via: Via): Promise<void> {
  const store = reader(r, via);
  const [uses, accounts, scheduled, counts] = await Promise.all([
    Promise.all(m.leases.map((l) => store.use(r.resource, l.id))),
    store.accounts(r.resource),
    store.activeLeases(r.resource),
    Promise.all(r.agents.map((a) => store.activeCount(a))),
  ]);
  const activeReal = uses.flatMap((u) => (u.lease?.state === "active" ? [u.lease] : []));
  // I1: one active lease per account, never more active leases than accounts.
  const held = activeReal.map((l) => l.account);
  expect(new Set(held).size, "I1: two active leases share an account").toBe(held.length);
  expect(activeReal.length).toBeLessThanOrEqual(r.pool.length);
  for (const a of accounts) {
    expect(a.state, `account ${a.name}`).toBe(m.accounts.get(a.name));
    const holder = activeReal.find((l) => l.account === a.name);
    if (a.state === "leased") expect(a.lease_id).toBe(holder?.id);
    else expect(holder, `account ${a.name} is ${a.state} but held by a lease`).toBeUndefined();
  }
  expect(accounts.filter((a) => a.state === "leased")).toHaveLength(activeReal.length);
  m.leases.forEach((ml, i) => {
    const got = uses[i]?.lease;
    expect(got, `lease ${ml.id} vanished`).not.toBeNull();
    if (ml.state === "ended") {
      // I4: an ended lease reads ended, with its one reason, on the next use from any sidecar.
      expect(got?.state, `I4: ended lease ${ml.id} reads active`).toBe("ended");
      expect(got?.end_reason).toBe(ml.reason);
    } else {
      expect(got?.state).toBe("active");
      expect(got?.account).toBe(ml.account);
      expect(got?.expires_at).toBe(ml.expiresAt);
      expect(got?.expires_at).toBeLessThanOrEqual(ml.maxExpiresAt);
    }
  });
  // I5: every active lease is on the expiry schedule (due or in flight), so a reaper will end it.
  expect(scheduled.map((l) => l.id).sort()).toEqual(
    active(m)
      .map((l) => l.id)
      .sort(),
  );
  // The agent index counts exactly the active leases (policy's active_leases, revoke --agent).
  r.agents.forEach((a, i) => {
    expect(counts[i], `active leases of ${a}`).toBe(active(m).filter((l) => l.agent === a).length);
  });
  for (const [id, n] of m.ends) expect(n, `I5: lease ${id} ended ${n} times`).toBe(1);
  // The wait queue holds no one the model does not know to be waiting.
  const queued = await store.queueLength(r.resource);
  expect(queued).toBeLessThanOrEqual(m.queue.length);
}

/**
 * What a checkout must answer, given the free accounts and the queue: `true` (must get an
 * account), `false` (must not) or `null` (either, when the queue's liveness or order is unsure).
 * `waiter` is the waiting request's id, or "" for a request that does not wait.
 */
function expectedCheckout(m: Readonly<Model>, free: number, waiter: string, now: number): boolean | null {
  if (free === 0) return false;
  const at = m.queue.findIndex((q) => q.waiter === waiter);
  const ahead = waiter !== "" && at >= 0 ? m.queue.slice(0, at) : m.queue.filter((q) => q.waiter !== waiter);
  // Fewer requests possibly ahead than free accounts: served, whatever their liveness.
  if (ahead.length < free) return true;
  const sure = !m.orderUncertain && m.queue.every((q) => now - q.refreshedAt < SURELY_ALIVE_MS);
  // First come, first served: as many live waiters ahead as free accounts, so no account.
  return sure ? false : null;
}

/** Records in the model that `waiter` called checkout at `now` and got (or did not get) an account. */
function recordWaiter(m: Model, waiter: string, now: number, served: boolean): void {
  if (waiter === "") return;
  const at = m.queue.findIndex((q) => q.waiter === waiter);
  const entry = m.queue[at];
  if (entry && now - entry.refreshedAt >= SURELY_ALIVE_MS) m.orderUncertain = true;
  if (served) {
    if (at >= 0) m.queue.splice(at, 1);
  } else if (entry) entry.refreshedAt = now;
  else m.queue.push({ waiter, refreshedAt: now });
  if (m.queue.length === 0) m.orderUncertain = false;
}

/** One command: a label, a precondition on the model, an action, then the invariants. */
class Step implements Cmd {
  constructor(
    private readonly label: string,
    private readonly via: Via,
    private readonly pre: (m: Readonly<Model>) => boolean,
    private readonly act: (m: Model, r: Real) => Promise<void>,
  ) {}

  check(m: Readonly<Model>): boolean {
    return this.pre(m);
  }

  async run(m: Model, r: Real): Promise<void> {
    await this.act(m, r);
    await checkInvariants(m, r, this.via);
  }

  toString(): string {
    return this.label;
  }
}

const via = fc.constantFrom<Via>(0, 1);
const always = () => true;
const someLease = (m: Readonly<Model>) => m.leases.length > 0;

async function checkout(
  m: Model,
  r: Real,
  v: Via,
  agentNo: number,
  ttl: number,
  extra: number,
  waiterNo: number | null,
) {
  const agent = r.agents[agentNo] ?? "";
  const waiter = waiterNo === null ? "" : (r.waiters[waiterNo] ?? "");
  const free = [...m.accounts].filter(([, s]) => s === "available").map(([a]) => a);
  const spec = {
    id: leaseId(),
    resource: r.resource,
    agent,
    task: { id: "T-model" },
    intent: { action: "read" },
  };
  const now = await r.stores[v].now();
  const expected = expectedCheckout(m, free.length, waiter, now);
  const got = await r.stores[v].checkout(spec, ttl, ttl + extra, waiter);
  const why = `checkout by ${waiter || "a non-waiter"} with ${free.length} free, queue ${JSON.stringify(m.queue.map((q) => [q.waiter.slice(-1), now - q.refreshedAt]))}`;
  if (expected !== null) expect(got.ok, why).toBe(expected);
  recordWaiter(m, waiter, now, got.ok);
  if (!got.ok) return;
  const l = got.lease;
  expect(free).toContain(l.account);
  expect(l.expires_at - l.issued_at).toBe(ttl);
  expect(l.max_expires_at - l.issued_at).toBe(ttl + extra);
  m.accounts.set(l.account, "leased");
  m.leases.push({
    id: l.id,
    agent,
    account: l.account,
    expiresAt: l.expires_at,
    maxExpiresAt: l.max_expires_at,
    state: "active",
  });
}

const checkoutCmd = fc
  .record({
    v: via,
    agent: fc.nat(2),
    ttl: fc.integer({ min: 5, max: 150 }),
    extra: fc.nat(300),
    waiter: fc.option(fc.nat(2), { freq: 2 }),
  })
  .map(
    ({ v, agent, ttl, extra, waiter }) =>
      new Step(
        `checkout(via ${v}, agent ${agent}, ttl ${ttl}, max +${extra}${waiter === null ? "" : `, waiter ${waiter}`})`,
        v,
        always,
        (m, r) => checkout(m, r, v, agent, ttl, extra, waiter),
      ),
  );

/** A waiting request gives up (or its client went away). */
const leaveCmd = fc.record({ v: via, k: fc.nat(2) }).map(
  ({ v, k }) =>
    new Step(`leaveQueue(via ${v}, waiter ${k})`, v, always, async (m, r) => {
      const waiter = r.waiters[k] ?? "";
      await r.stores[v].leaveQueue(r.resource, waiter);
      const at = m.queue.findIndex((q) => q.waiter === waiter);
      if (at >= 0) m.queue.splice(at, 1);
      if (m.queue.length === 0) m.orderUncertain = false;
    }),
);

/** Both sidecars check out at the same instant: no more leases than free accounts, on distinct accounts. */
const raceCheckoutCmd = fc.integer({ min: 5, max: 150 }).map(
  (ttl) =>
    new Step(`raceCheckout(ttl ${ttl})`, 0, always, async (m, r) => {
      const free = [...m.accounts].filter(([, s]) => s === "available").map(([a]) => a);
      const specs = [0, 1].map((i) => ({
        id: leaseId(),
        resource: r.resource,
        agent: r.agents[i] ?? "",
        task: { id: "T-race" },
        intent: { action: "read" },
      }));
      const now = await r.stores[0].now();
      const got = await Promise.all(specs.map((s, i) => r.stores[i === 0 ? 0 : 1].checkout(s, ttl, ttl)));
      const ok = got.flatMap((g) => (g.ok ? [g.lease] : []));
      // Waiters come first: only accounts beyond the queue go to these two newcomers.
      const sure = !m.orderUncertain && m.queue.every((q) => now - q.refreshedAt < SURELY_ALIVE_MS);
      const least = Math.min(2, Math.max(0, free.length - m.queue.length));
      const most = sure ? least : Math.min(2, free.length);
      const why = `I1: ${ok.length} leases from ${free.length} free accounts, ${m.queue.length} waiting`;
      expect(ok.length, why).toBeGreaterThanOrEqual(least);
      expect(ok.length, why).toBeLessThanOrEqual(most);
      for (const l of ok) {
        expect(free).toContain(l.account);
        m.accounts.set(l.account, "leased");
        m.leases.push({
          id: l.id,
          agent: l.agent,
          account: l.account,
          expiresAt: l.expires_at,
          maxExpiresAt: l.max_expires_at,
          state: "active",
        });
      }
    }),
);

const renewCmd = fc.record({ v: via, i: fc.nat(), ttl: fc.integer({ min: 5, max: 300 }) }).map(
  ({ v, i, ttl }) =>
    new Step(`renew(via ${v}, #${i}, ttl ${ttl})`, v, someLease, async (m, r) => {
      const ml = pick(m, i);
      const store = r.stores[v];
      const before = await store.now();
      const res = await store.renew(r.resource, ml.id, ttl);
      if (ml.state === "ended") {
        expect(res.ok, `renewed ended lease ${ml.id}`).toBe(false);
        return;
      }
      if (res.ok) {
        expect(res.lease.expires_at).toBeLessThanOrEqual(ml.maxExpiresAt);
        expect(res.lease.expires_at).toBeGreaterThanOrEqual(Math.min(before + ttl, ml.maxExpiresAt));
        ml.expiresAt = res.lease.expires_at;
      } else {
        // Refused while active: only because it was already past expires_at.
        expect(ml.expiresAt).toBeLessThanOrEqual(await store.now());
      }
    }),
);

const endCmd = fc
  .record({ v: via, i: fc.nat(), reason: fc.constantFrom<EndReason>("checkin", "revoked") })
  .map(
    ({ v, i, reason }) =>
      new Step(`end(via ${v}, #${i}, ${reason})`, v, someLease, async (m, r) => {
        const ml = pick(m, i);
        const wasActive = ml.state === "active";
        const res = await r.stores[v].end(r.resource, ml.id, reason);
        expect(res.ended).toBe(wasActive);
        if (res.ended) {
          expect(res.lease.end_reason).toBe(reason);
          recordEnd(m, res.lease);
        } else {
          expect(res.lease?.state).toBe("ended");
          expect(res.lease?.end_reason).toBe(ml.reason);
        }
      }),
  );

/** An 'expired' end asked for directly (a reaper acting on a stale claim): only a due lease ends. */
const expireCmd = fc.record({ v: via, i: fc.nat() }).map(
  ({ v, i }) =>
    new Step(`expire(via ${v}, #${i})`, v, someLease, async (m, r) => {
      const ml = pick(m, i);
      const store = r.stores[v];
      const before = await store.now();
      const wasActive = ml.state === "active";
      const res = await store.end(r.resource, ml.id, "expired");
      const after = await store.now();
      if (res.ended) {
        expect(wasActive).toBe(true);
        expect(ml.expiresAt).toBeLessThanOrEqual(after);
        recordEnd(m, res.lease);
      } else {
        expect(!wasActive || ml.expiresAt > before, `due lease ${ml.id} did not end as expired`).toBe(true);
        if (wasActive) expect(res.lease?.state).toBe("active");
      }
    }),
);

/** Waits for Redis' clock to pass the earliest expiry of an active lease by a few ms (at most 100 ms on). */
const sleepCmd = fc.integer({ min: 1, max: 5 }).map(
  (extra) =>
    new Step(`sleepPastDue(+${extra} ms)`, 0, always, async (m, r) => {
      const next = Math.min(...active(m).map((l) => l.expiresAt));
      const now = await r.stores[0].now();
      const wait = Number.isFinite(next) ? next - now + extra : extra;
      await waitForClock(
        "Redis' clock to move on",
        () => r.stores[0].now(),
        now + Math.min(100, Math.max(1, wait)),
      );
    }),
);

const reapCmd = via.map((v) => new Step(`reap(via ${v})`, v, always, (m, r) => reap(m, r, v)));

/** A reaper that claims and dies before ending anything; its claims return after `vis` ms. */
const crashedReapCmd = fc.record({ v: via, vis: fc.integer({ min: 10, max: 80 }) }).map(
  ({ v, vis }) =>
    new Step(`claimAndDie(via ${v}, visibility ${vis} ms)`, v, always, async (m, r) => {
      const store = r.stores[v];
      const t0 = await store.now();
      const ids = await store.claimDue(r.resource, 1000, vis);
      const t1 = await store.now();
      expectDueClaimed(m, ids, t0);
      for (const id of ids) {
        const ml = m.leases.find((l) => l.id === id);
        expect(ml?.state).toBe("active");
        expect(ml?.expiresAt).toBeLessThanOrEqual(t1);
        m.hidden.set(id, t1 + vis);
      }
    }),
);

/** The holder (or an operator) ends a lease while the other sidecar's reaper runs: one end wins. */
const raceEndCmd = fc
  .record({ v: via, i: fc.nat(), reason: fc.constantFrom<EndReason>("checkin", "revoked") })
  .map(
    ({ v, i, reason }) =>
      new Step(`raceEnd(via ${v}, #${i}, ${reason} vs reaper)`, v, someLease, async (m, r) => {
        const ml = pick(m, i);
        const wasActive = ml.state === "active";
        const me = r.stores[v];
        const reaper = r.stores[v === 0 ? 1 : 0];
        const [mine, reaped] = await Promise.all([
          me.end(r.resource, ml.id, reason),
          (async () => {
            const ids = await reaper.claimDue(r.resource, 1000, 30_000);
            return Promise.all(ids.map((id) => reaper.end(r.resource, id, "expired")));
          })(),
        ]);
        const results = [mine, ...reaped.filter((x) => x.lease?.id === ml.id)];
        expect(results.filter((x) => x.ended)).toHaveLength(wasActive ? 1 : 0);
        for (const x of [mine, ...reaped]) if (x.ended) recordEnd(m, x.lease);
        // Claimed leases that the holder ended first were not ended again: nothing stays in flight.
        for (const x of reaped) if (!x.ended) expect(x.lease?.state).toBe("ended");
      }),
  );

/** Rotation finished: the account goes back to the pool; a leased account refuses. */
const rotatedCmd = fc.record({ v: via, a: fc.nat() }).map(
  ({ v, a }) =>
    new Step(`rotationDone(via ${v}, account #${a})`, v, always, async (m, r) => {
      const account = r.pool[a % r.pool.length] ?? "";
      const state = m.accounts.get(account);
      const ok = await r.stores[v].setAccountState(r.resource, account, "available");
      expect(ok, `setAccountState(${account}: ${state} → available)`).toBe(state !== "leased");
      if (ok) m.accounts.set(account, "available");
    }),
);

/** Every command kind, weighted towards the ones that change the pool. */
export const COMMANDS: Arbitrary<Cmd>[] = [
  checkoutCmd,
  checkoutCmd,
  checkoutCmd,
  leaveCmd,
  raceCheckoutCmd,
  renewCmd,
  endCmd,
  expireCmd,
  sleepCmd,
  reapCmd,
  crashedReapCmd,
  raceEndCmd,
  rotatedCmd,
  rotatedCmd,
];
