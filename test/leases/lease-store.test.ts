import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseStore } from "../../sidecar/leases/index.js";
import { waitForClock } from "../support/wait-for.js";
import { BACKENDS, type OpenBackend, type RedisBackend } from "./redis-backends.js";

let n = 0;

const spec = (resource: string, agent = "spiffe://example.org/agent/a") => ({
  id: `lse_test${String(++n).padStart(12, "0")}`,
  resource,
  agent,
  task: { id: "T-1" },
  intent: { action: "read" },
});

/** The LeaseStore suite against one Redis deployment form. */
function leaseStoreTests(backend: RedisBackend): void {
  describe(`LeaseStore on ${backend.name}`, () => {
    let open: OpenBackend;
    let store: LeaseStore;
    /** A second sidecar: its own connection, same prefix. */
    let other: LeaseStore;

    beforeAll(async () => {
      open = await backend.open("leases");
      // Two sidecars of one cluster share its lease MAC key.
      const macKey = randomBytes(32);
      store = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey });
      other = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey });
    });

    afterAll(async () => {
      await open?.close();
    });

    it("hands out each account of a pool to one lease at a time (I1)", async () => {
      await store.syncPool("pool", ["a1", "a2"], "available");
      const got = await Promise.all(
        Array.from({ length: 6 }, (_, i) => (i % 2 ? other : store).checkout(spec("pool"), 60_000, 120_000)),
      );
      const ok = got.filter((g) => g.ok);
      expect(ok).toHaveLength(2);
      const accounts = ok.map((g) => (g.ok ? g.lease.account : "")).sort();
      expect(accounts).toEqual(["a1", "a2"]);
      const states = await store.accounts("pool");
      expect(states.map((s) => s.state)).toEqual(["leased", "leased"]);
    });

    it("ends a lease exactly once and never returns its account to the pool before rotation (I2)", async () => {
      await store.syncPool("once", ["x"], "available");
      const c = await store.checkout(spec("once"), 60_000, 120_000);
      if (!c.ok) throw new Error("checkout failed");
      const ends = await Promise.all([
        store.end("once", c.lease.id, "checkin"),
        other.end("once", c.lease.id, "revoked"),
        store.end("once", c.lease.id, "checkin"),
      ]);
      expect(ends.filter((e) => e.ended)).toHaveLength(1);
      expect((await store.accounts("once"))[0]?.state).toBe("rotating");
      expect((await store.checkout(spec("once"), 60_000, 120_000)).ok).toBe(false);
      await store.setAccountState("once", "x", "available");
      expect((await store.checkout(spec("once"), 60_000, 120_000)).ok).toBe(true);
    });

    it("a revoked lease reads as ended on its next use, from any sidecar (I4)", async () => {
      await store.syncPool("rev", ["r"], "available");
      const c = await store.checkout(spec("rev"), 60_000, 120_000);
      if (!c.ok) throw new Error("checkout failed");
      expect((await other.use("rev", c.lease.id)).lease?.state).toBe("active");
      await store.end("rev", c.lease.id, "revoked");
      const u = await other.use("rev", c.lease.id);
      expect(u.lease?.state).toBe("ended");
      expect(u.lease?.end_reason).toBe("revoked");
    });

    it("a lease past expires_at reads so on use (Redis' clock) before any reaper ran", async () => {
      await store.syncPool("late", ["l"], "available");
      const c = await store.checkout(spec("late"), 30, 60_000);
      if (!c.ok) throw new Error("checkout failed");
      const fresh = await store.use("late", c.lease.id);
      expect(fresh.lease?.expires_at).toBe(c.lease.expires_at);
      await waitForClock("Redis' clock to pass the lease's expiry", () => store.now(), c.lease.expires_at);
      const u = await other.use("late", c.lease.id);
      expect(u.lease?.state).toBe("active");
      expect(u.now).toBeGreaterThanOrEqual(c.lease.expires_at);
    });

    it("renews within max_expires_at only", async () => {
      await store.syncPool("renew", ["r"], "available");
      const c = await store.checkout(spec("renew"), 30_000, 60_000);
      if (!c.ok) throw new Error("checkout failed");
      const r = await other.renew("renew", c.lease.id, 120_000);
      expect(r.ok).toBe(true);
      if (r.ok) expect(r.lease.expires_at).toBe(c.lease.max_expires_at);
    });

    it("refuses to renew an ended or expired lease", async () => {
      await store.syncPool("norenew", ["a", "b"], "available");
      const ended = await store.checkout(spec("norenew"), 60_000, 60_000);
      const expiring = await store.checkout(spec("norenew"), 20, 60_000);
      if (!ended.ok || !expiring.ok) throw new Error("checkout failed");
      await store.end("norenew", ended.lease.id, "checkin");
      expect((await store.renew("norenew", ended.lease.id, 60_000)).ok).toBe(false);
      await waitForClock(
        "Redis' clock to pass the lease's expiry",
        () => store.now(),
        expiring.lease.expires_at,
      );
      const r = await store.renew("norenew", expiring.lease.id, 60_000);
      expect(r.ok).toBe(false);
      expect(r.lease?.expires_at).toBe(expiring.lease.expires_at);
    });

    it("claims due leases once across competing reapers, and an expiry of a renewed lease is refused (I5)", async () => {
      await store.syncPool("due", ["d1", "d2", "d3"], "available");
      const leases = [];
      for (let i = 0; i < 3; i++) {
        const c = await store.checkout(spec("due"), 50, 60_000);
        if (c.ok) leases.push(c.lease);
      }
      expect(leases).toHaveLength(3);
      const due = Math.max(...leases.map((l) => l.expires_at));
      await waitForClock("Redis' clock to pass every lease's expiry", () => store.now(), due);
      const [a, b] = await Promise.all([
        store.claimDue("due", 10, 30_000),
        other.claimDue("due", 10, 30_000),
      ]);
      const all = [...(a ?? []), ...(b ?? [])].sort();
      expect(all).toEqual(leases.map((l) => l.id).sort());
      const ended = await Promise.all(all.map((id) => store.end("due", id, "expired")));
      expect(ended.every((e) => e.ended)).toBe(true);
      expect((await store.claimDue("due", 10, 30_000)).length).toBe(0);
    });

    it("an 'expired' end of a lease that is not due is refused and the lease stays scheduled", async () => {
      await store.syncPool("notdue", ["n"], "available");
      const c = await store.checkout(spec("notdue"), 60_000, 60_000);
      if (!c.ok) throw new Error("checkout failed");
      const r = await other.end("notdue", c.lease.id, "expired");
      expect(r.ended).toBe(false);
      expect(r.lease?.state).toBe("active");
      expect((await store.activeLeases("notdue")).map((l) => l.id)).toEqual([c.lease.id]);
    });

    it("pages every active lease exactly once whatever the page size, ended ones never", async () => {
      const names = ["page-a", "page-b", "page-c", "page-d"];
      const active: string[] = [];
      for (const [i, name] of names.entries()) {
        await store.syncPool(name, ["p1", "p2", "p3", "p4", "p5", "p6"], "available");
        for (let k = 0; k < 2 + i; k++) {
          const c = await store.checkout(
            spec(name, `spiffe://example.org/agent/pager-${k % 2}`),
            60_000 + k,
            120_000,
          );
          if (!c.ok) throw new Error("checkout failed");
          active.push(c.lease.id);
        }
      }
      // One lease claimed by a reaper (still active), one ended (not listed).
      const claimed = await store.checkout(spec("page-b"), 20, 120_000);
      const ended = await store.checkout(spec("page-c"), 60_000, 120_000);
      if (!claimed.ok || !ended.ok) throw new Error("checkout failed");
      await store.end("page-c", ended.lease.id, "checkin");
      await waitForClock(
        "Redis' clock to pass the lease's expiry",
        () => store.now(),
        claimed.lease.expires_at,
      );
      expect(await store.claimDue("page-b", 10, 60_000)).toEqual([claimed.lease.id]);
      active.push(claimed.lease.id);

      const mine = (ids: string[]) => ids.filter((id) => active.includes(id) || id === ended.lease.id);
      for (const limit of [1, 3, 5, 1000]) {
        const seen: string[] = [];
        let after: Parameters<LeaseStore["listPage"]>[0]["after"];
        let pages = 0;
        do {
          const page = await store.listPage({ limit, after });
          expect(page.leases.length).toBeLessThanOrEqual(limit);
          expect(page.leases.every((l) => l.state === "active")).toBe(true);
          seen.push(...page.leases.map((l) => l.id));
          after = page.next;
          pages++;
        } while (after && pages < 1000);
        expect(mine(seen).sort()).toEqual([...active].sort());
      }
      const one = await store.listPage({ resource: "page-d", limit: 1000 });
      expect(one.next).toBeUndefined();
      expect(one.leases.map((l) => l.id)).toEqual(
        active.filter((_, i) => i >= 2 + 3 + 4 && i < 2 + 3 + 4 + 5),
      );
      const byAgent = await store.listPage({
        resource: "page-d",
        agent: "spiffe://example.org/agent/pager-1",
        limit: 1000,
      });
      expect(byAgent.leases.map((l) => l.agent)).toEqual([
        "spiffe://example.org/agent/pager-1",
        "spiffe://example.org/agent/pager-1",
      ]);
    });

    it("claims whose claimer died come back after the visibility timeout", async () => {
      await store.syncPool("vis", ["v"], "available");
      const c = await store.checkout(spec("vis"), 20, 60_000);
      if (!c.ok) throw new Error("checkout failed");
      await waitForClock("Redis' clock to pass the lease's expiry", () => store.now(), c.lease.expires_at);
      // A visibility far longer than two Redis calls, so the second claim surely falls inside it.
      expect(await store.claimDue("vis", 10, 1_000)).toEqual([c.lease.id]);
      const claimedBy = await store.now();
      expect(await other.claimDue("vis", 10, 1_000)).toEqual([]);
      await waitForClock(
        "Redis' clock to pass the claim's visibility",
        () => store.now(),
        claimedBy + 1_000 + 1,
      );
      expect(await other.claimDue("vis", 10, 1_000)).toEqual([c.lease.id]);
    });

    it("indexes a lease by id and by agent, and revokes by agent", async () => {
      await store.syncPool("agent", ["g1", "g2"], "available");
      const who = `spiffe://example.org/agent/counted-${n}`;
      const one = await store.checkout(spec("agent", who), 60_000, 60_000);
      await other.checkout(spec("agent", who), 60_000, 60_000);
      if (!one.ok) throw new Error("checkout failed");
      expect(await other.resourceOf(one.lease.id)).toBe("agent");
      expect(await store.activeCount(who)).toBe(2);
      for (const l of await other.agentLeases(who)) await other.end(l.resource, l.id, "revoked");
      expect(await store.activeCount(who)).toBe(0);
      expect((await store.accounts("agent")).map((a) => a.state)).toEqual(["rotating", "rotating"]);
    });

    it("indexes a lease by task, whichever agent holds it, until the lease ends", async () => {
      await store.syncPool("task-a", ["t1", "t2"], "available");
      await store.syncPool("task-b", ["t3"], "available");
      const task = `T-index-${n}`;
      const withTask = (resource: string, agent: string) => ({
        ...spec(resource, agent),
        task: { id: task },
      });
      const a = "spiffe://example.org/agent/task-a";
      const b = "spiffe://example.org/agent/task-b";
      const got = [
        await store.checkout(withTask("task-a", a), 60_000, 60_000),
        await other.checkout(withTask("task-b", a), 60_000, 60_000),
        await store.checkout(withTask("task-a", b), 60_000, 60_000),
      ];
      const ids = got.map((g) => (g.ok ? g.lease.id : expect.fail("checkout failed")));
      await store.syncPool("task-c", ["t4"], "available");
      // Another task of the same agent is not in this task's index.
      expect((await store.checkout(spec("task-c", a), 60_000, 60_000)).ok).toBe(true);
      const listed = await other.taskLeases(task);
      expect(listed.map((l) => l.id).sort()).toEqual([...ids].sort());
      expect(listed.find((l) => l.id === ids[1])?.resource).toBe("task-b");
      await other.end("task-b", ids[1] as string, "checkin");
      expect((await store.taskLeases(task)).map((l) => l.id).sort()).toEqual([ids[0], ids[2]].sort());
      for (const l of await store.taskLeases(task)) await other.end(l.resource, l.id, "revoked");
      expect(await store.taskLeases(task)).toEqual([]);
      expect((await store.agentLeases(a)).map((l) => l.resource)).toEqual(["task-c"]);
    });

    it("setAccountState never frees a leased account unless forced", async () => {
      await store.syncPool("guard", ["g"], "available");
      const c = await store.checkout(spec("guard"), 60_000, 60_000);
      if (!c.ok) throw new Error("checkout failed");
      expect(await other.setAccountState("guard", "g", "available")).toBe(false);
      expect((await store.checkout(spec("guard"), 60_000, 60_000)).ok).toBe(false);
      expect((await store.accounts("guard"))[0]).toEqual({
        name: "g",
        state: "leased",
        lease_id: c.lease.id,
      });
    });

    it("syncPool forgets unlisted accounts but keeps a leased one", async () => {
      await store.syncPool("sync", ["keep", "held", "drop"], "available");
      const c = await store.checkout(spec("sync"), 60_000, 60_000);
      if (!c.ok) throw new Error("checkout failed");
      const held = c.lease.account;
      await other.syncPool("sync", [held === "keep" ? "drop" : "keep"], "available");
      const names = (await store.accounts("sync")).map((a) => a.name);
      expect(names).toContain(held);
      expect(names).toHaveLength(2);
      expect(await store.resources()).toContain("sync");
    });
  });
}

for (const backend of BACKENDS) leaseStoreTests(backend);
