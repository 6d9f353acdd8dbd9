import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseStore } from "../../sidecar/leases/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";

let redis: Redis;
let prefix: string;
let store: LeaseStore;
let n = 0;

const spec = (resource: string, agent = "spiffe://example.org/agent/a") => ({
  id: `lse_test${String(++n).padStart(12, "0")}`,
  resource,
  agent,
  task: { id: "T-1" },
  intent: { action: "read" },
});

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  prefix = testPrefix("leases");
  store = new LeaseStore({ redis, prefix });
});

afterAll(async () => {
  redis.disconnect();
  await dropPrefix(prefix);
});

describe("LeaseStore", () => {
  it("hands out each account of a pool to one lease at a time (I1)", async () => {
    await store.syncPool("pool", ["a1", "a2"], "available");
    const got = await Promise.all(
      Array.from({ length: 6 }, () => store.checkout(spec("pool"), 60_000, 120_000)),
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
      store.end("once", c.lease.id, "revoked"),
      store.end("once", c.lease.id, "checkin"),
    ]);
    expect(ends.filter((e) => e.ended)).toHaveLength(1);
    expect((await store.accounts("once"))[0]?.state).toBe("rotating");
    expect((await store.checkout(spec("once"), 60_000, 120_000)).ok).toBe(false);
    await store.setAccountState("once", "x", "available");
    expect((await store.checkout(spec("once"), 60_000, 120_000)).ok).toBe(true);
  });

  it("a revoked lease reads as ended on its next use (I4)", async () => {
    await store.syncPool("rev", ["r"], "available");
    const c = await store.checkout(spec("rev"), 60_000, 120_000);
    if (!c.ok) throw new Error("checkout failed");
    expect((await store.use("rev", c.lease.id)).lease?.state).toBe("active");
    await store.end("rev", c.lease.id, "revoked");
    const u = await store.use("rev", c.lease.id);
    expect(u.lease?.state).toBe("ended");
    expect(u.lease?.end_reason).toBe("revoked");
  });

  it("renews within max_expires_at only", async () => {
    await store.syncPool("renew", ["r"], "available");
    const c = await store.checkout(spec("renew"), 1_000, 5_000);
    if (!c.ok) throw new Error("checkout failed");
    const r = await store.renew("renew", c.lease.id, 60_000);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.lease.expires_at).toBe(c.lease.max_expires_at);
  });

  it("claims due leases once across competing reapers, and an expiry of a renewed lease is refused (I5)", async () => {
    await store.syncPool("due", ["d1", "d2", "d3"], "available");
    const leases = [];
    for (let i = 0; i < 3; i++) {
      const c = await store.checkout(spec("due"), 50, 60_000);
      if (c.ok) leases.push(c.lease);
    }
    expect(leases).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 120));
    const [a, b] = await Promise.all([store.claimDue("due", 10, 30_000), store.claimDue("due", 10, 30_000)]);
    const all = [...(a ?? []), ...(b ?? [])].sort();
    expect(all).toEqual(leases.map((l) => l.id).sort());
    const ended = await Promise.all(all.map((id) => store.end("due", id, "expired")));
    expect(ended.every((e) => e.ended)).toBe(true);
    expect((await store.claimDue("due", 10, 30_000)).length).toBe(0);
  });

  it("claims whose claimer died come back after the visibility timeout", async () => {
    await store.syncPool("vis", ["v"], "available");
    const c = await store.checkout(spec("vis"), 20, 60_000);
    if (!c.ok) throw new Error("checkout failed");
    await new Promise((r) => setTimeout(r, 60));
    expect(await store.claimDue("vis", 10, 50)).toEqual([c.lease.id]);
    expect(await store.claimDue("vis", 10, 50)).toEqual([]);
    await new Promise((r) => setTimeout(r, 80));
    expect(await store.claimDue("vis", 10, 50)).toEqual([c.lease.id]);
  });

  it("counts an agent's active leases and revokes them by agent", async () => {
    await store.syncPool("agent", ["g1", "g2"], "available");
    const who = "spiffe://example.org/agent/counted";
    await store.checkout(spec("agent", who), 60_000, 60_000);
    await store.checkout(spec("agent", who), 60_000, 60_000);
    expect(await store.activeCount(who)).toBe(2);
    for (const l of await store.agentLeases(who)) await store.end(l.resource, l.id, "revoked");
    expect(await store.activeCount(who)).toBe(0);
  });
});
