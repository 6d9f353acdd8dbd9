import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHECKOUT_SKEW_MS, LeaseStore, signLease, WAITER_TTL_MS } from "../../sidecar/leases/index.js";
import type { ScriptRedis } from "../../sidecar/leases/store-scripts.js";
import type { CheckoutResult, LeaseRecord } from "../../sidecar/leases/types.js";
import type { RedisClient } from "../../sidecar/redis.js";
import { waitForClock } from "../support/wait-for.js";
import { BACKENDS, type OpenBackend, type RedisBackend } from "./redis-backends.js";

let n = 0;
const spec = (resource: string) => ({
  id: `lse_cc${String(++n).padStart(14, "0")}`,
  resource,
  agent: "spiffe://example.org/agent/contention",
  task: { id: `T-cc-${n}` },
  intent: { action: "read" },
});
type Spec = ReturnType<typeof spec>;

/**
 * Larger than what five attempts of 16 signed candidates can serve when every checkout is sent at
 * once (the store used to answer busy after about 70 of them).
 */
const POOL = 100;
const pool = (size: number) => Array.from({ length: size }, (_, i) => `acct-${String(i).padStart(2, "0")}`);
const leases = (rs: readonly CheckoutResult[]): LeaseRecord[] => rs.flatMap((r) => (r.ok ? [r.lease] : []));

function contentionTests(backend: RedisBackend): void {
  describe(`many checkouts of one resource at once on ${backend.name}`, () => {
    let open: OpenBackend;
    let raw: RedisClient;
    /** Two sidecars: separate connections, one prefix, one MAC key. */
    let sidecars: [LeaseStore, LeaseStore];
    const macKey = randomBytes(32);

    beforeAll(async () => {
      open = await backend.open("checkout-contention");
      raw = open.client();
      // Defines the store's scripts on `raw`, to call the checkout script as a sidecar would.
      new LeaseStore({ redis: raw, prefix: open.prefix, macKey });
      sidecars = [
        new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey }),
        new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey }),
      ];
    });
    afterAll(async () => {
      await open?.close();
    });

    /** A resource whose pool both sidecars have seen (their free list is the pool's head). */
    async function warmPool(resource: string): Promise<void> {
      await sidecars[0].syncPool(resource, pool(POOL), "available");
      for (const s of sidecars) {
        const got = await s.checkout(spec(resource), 60_000, 60_000);
        if (!got.ok) throw new Error("warm-up checkout failed");
        await s.end(resource, got.lease.id, "checkin");
        await s.setAccountState(resource, got.lease.account, "available");
      }
    }

    /** `count` checkouts sent at once, alternating between the two sidecars. */
    const burst = (specs: readonly Spec[], waiting: boolean) =>
      Promise.all(
        specs.map((s, i) => sidecars[i % 2 === 0 ? 0 : 1].checkout(s, 60_000, 60_000, waiting ? s.id : "")),
      );

    for (const count of [POOL, 250]) {
      it(`${count} checkouts of a pool of ${POOL}: exactly ${Math.min(POOL, count)} get an account, none is told busy while one is free`, async () => {
        const resource = `burst-${count}`;
        await warmPool(resource);
        const got = await burst(
          Array.from({ length: count }, () => spec(resource)),
          false,
        );
        const ok = leases(got);
        // No account comes back during the burst: a busy answer while one was free shows as a
        // lease short of min(pool, count).
        expect(ok).toHaveLength(Math.min(POOL, count));
        expect(new Set(ok.map((l) => l.account)).size).toBe(ok.length);
        const accounts = await sidecars[0].accounts(resource);
        expect(accounts.filter((a) => a.state === "leased")).toHaveLength(ok.length);
        for (const l of ok) expect((await sidecars[1].use(resource, l.id)).intact).toBe(true);
      });
    }

    it("waiters: as many as there are free accounts are served at once, the rest first come, first served", async () => {
      const resource = "waiters";
      await warmPool(resource);
      const waiters = Array.from({ length: POOL + 20 }, () => spec(resource));
      const first = await burst(waiters, true);
      const served = leases(first);
      expect(served).toHaveLength(POOL);
      expect(await sidecars[0].queueLength(resource)).toBe(20);
      // The queue's order, as the script reads it.
      const queue = await raw.zrange(`${open.prefix}{r:${resource}}:waitq`, 0, -1);
      const queued = waiters.filter((_, i) => !first[i]?.ok);
      expect([...queue].sort()).toEqual(queued.map((w) => w.id).sort());
      const byId = new Map(queued.map((w) => [w.id, w]));
      const again = queue.map((id) => byId.get(id) as Spec);
      // Nothing is free: the queued waiters are told so (and stay queued, in order).
      expect(leases(await burst(again, true))).toEqual([]);
      expect(await raw.zrange(`${open.prefix}{r:${resource}}:waitq`, 0, -1)).toEqual(queue);
      // Ten accounts come back; the waiters call again (within WAITER_TTL_MS), and two newcomers
      // that do not wait ask at the same time: the first ten in the queue get them, no one else.
      const back = served.slice(0, 10);
      await Promise.all(back.map((l) => sidecars[0].end(resource, l.id, "checkin")));
      await Promise.all(back.map((l) => sidecars[1].setAccountState(resource, l.account, "available")));
      const newcomers = [spec(resource), spec(resource)];
      const [second, late] = await Promise.all([burst(again, true), burst(newcomers, false)]);
      expect(leases(late)).toEqual([]);
      const winners = again.filter((_, i) => second[i]?.ok).map((w) => w.id);
      expect(winners).toEqual(queue.slice(0, 10));
      expect(await sidecars[0].queueLength(resource)).toBe(10);
      await Promise.all(queue.map((id) => sidecars[0].leaveQueue(resource, id)));
    });

    it("waiters queue in order of arrival, also when they arrive within one millisecond", async () => {
      const resource = "waiters-same-ms";
      await sidecars[0].syncPool(resource, pool(1), "available");
      const held = await sidecars[0].checkout(spec(resource), 60_000, 60_000);
      expect(held.ok).toBe(true);
      // Names that sort against arrival: with equal scores Redis would order them by name.
      const arrived: string[] = [];
      for (let i = 0; i < 20; i++) {
        for (const name of [`wq-${i}-b`, `wq-${i}-a`]) {
          expect(
            (await sidecars[i % 2 === 0 ? 0 : 1].checkout(spec(resource), 60_000, 60_000, name)).ok,
          ).toBe(false);
          arrived.push(name);
        }
      }
      expect(await raw.zrange(`${open.prefix}{r:${resource}}:waitq`, 0, -1)).toEqual(arrived);
      await Promise.all(arrived.map((w) => sidecars[0].leaveQueue(resource, w)));
    });

    /**
     * One call of the checkout script as a sidecar makes it (the resource's own keys only), signed
     * for `reserved` when given: what a sidecar sends before it dies, or after it stalled.
     */
    async function scriptCall(s: Spec, reserved: string): Promise<[number, number, string?]> {
      const k = (part: string) => `${open.prefix}{r:${s.resource}}:${part}`;
      const now = await sidecars[0].now();
      const [exp, maxexp] = [now + 60_000, now + 60_000];
      const json = JSON.stringify(s);
      const fields = {
        id: s.id,
        resource: s.resource,
        agent: s.agent,
        account: reserved,
        state: "active" as const,
      };
      const mac = signLease(macKey, { ...fields, expires_at: exp, max_expires_at: maxexp, spec: json });
      const keys = ["acct", "free", "due", `lease:${s.id}`, "holder", "waitq", "alive", "rsv", "rsvby"].map(
        k,
      );
      const [code, at, account] = await (raw as ScriptRedis).lhCheckout(
        keys.length,
        ...keys,
        s.id,
        json,
        60_000,
        60_000,
        60_000,
        "",
        WAITER_TTL_MS,
        exp,
        maxexp,
        CHECKOUT_SKEW_MS,
        `${s.resource}/${s.id}`,
        1000,
        s.resource,
        s.agent,
        reserved,
        ...(reserved ? [reserved, mac] : []),
      );
      return [Number(code), Number(at), account];
    }

    it("an account reserved by a sidecar that died is free again once the reservation expires; its late call takes nothing", async () => {
      const resource = "crash";
      await sidecars[0].syncPool(resource, ["only"], "available");
      // A sidecar with no candidate signed: the script reserves the free account for its lease id.
      const dead = spec(resource);
      const [code, at, account] = await scriptCall(dead, "");
      expect([code, account]).toEqual([2, "only"]);
      // Reserved for that lease id only: another lease cannot take it, and no one is told it is free.
      const other = spec(resource);
      expect((await scriptCall(other, "only"))[0]).toBe(-5);
      expect((await sidecars[1].checkout(spec(resource), 60_000, 60_000)).ok).toBe(false);
      expect(await sidecars[0].get(resource, other.id)).toBeNull();
      // The sidecar never comes back: past the reservation's deadline the account is free.
      const deadline = Number(await raw.zscore(`${open.prefix}{r:${resource}}:rsv`, "only"));
      expect(deadline).toBeGreaterThan(at);
      await waitForClock(
        "Redis' clock to pass the reservation's deadline",
        () => sidecars[0].now(),
        deadline,
      );
      const next = await sidecars[1].checkout(spec(resource), 60_000, 60_000);
      expect(next.ok && next.lease.account).toBe("only");
      // Its late call, signed for the account it had reserved, is refused and writes no lease.
      expect((await scriptCall(dead, "only"))[0]).toBe(-5);
      expect(await sidecars[0].get(resource, dead.id)).toBeNull();
      expect((await sidecars[0].accounts(resource)).map((a) => [a.state, a.lease_id])).toEqual([
        ["leased", next.ok ? next.lease.id : ""],
      ]);
    });

    it("counts an account a checkout holds as reserved, not available, until the reservation's deadline", async () => {
      const resource = "held";
      await sidecars[0].syncPool(resource, ["h1", "h2", "h3"], "available");
      await sidecars[0].setAccountState(resource, "h3", "rotating");
      const [code, , account] = await scriptCall(spec(resource), "");
      expect([code, account]).toEqual([2, "h1"]);
      const held = await sidecars[1].resourceStats(resource);
      expect(held.accounts).toEqual({ available: 1, reserved: 1, leased: 0, rotating: 1, quarantined: 0 });
      const deadline = Number(await raw.zscore(`${open.prefix}{r:${resource}}:rsv`, "h1"));
      await waitForClock(
        "Redis' clock to pass the reservation's deadline",
        () => sidecars[0].now(),
        deadline + 1,
      );
      // Not yet collected by a checkout, but no longer held: the next checkout may take it.
      expect(await raw.zscore(`${open.prefix}{r:${resource}}:rsv`, "h1")).not.toBeNull();
      const freed = await sidecars[1].resourceStats(resource);
      expect(freed.accounts).toEqual({ available: 2, reserved: 0, leased: 0, rotating: 1, quarantined: 0 });
    });
  });
}

for (const backend of BACKENDS) contentionTests(backend);
