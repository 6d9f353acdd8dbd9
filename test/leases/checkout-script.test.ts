import { randomBytes } from "node:crypto";
import type { Cluster } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CHECKOUT_SKEW_MS, LeaseStore } from "../../sidecar/leases/index.js";
import type { RedisClient } from "../../sidecar/redis.js";
import { watchedCommands } from "../support/redis-monitor.js";
import { BACKENDS, type OpenBackend, type RedisBackend } from "./redis-backends.js";

let n = 0;

const spec = (resource: string, agent = "spiffe://example.org/agent/cs") => ({
  id: `lse_cs${String(++n).padStart(14, "0")}`,
  resource,
  agent,
  task: { id: `T-cs-${n}` },
  intent: { action: "read" },
});

const isCluster = (c: RedisClient): c is Cluster => (c as { isCluster?: boolean }).isCluster === true;

function checkoutScriptTests(backend: RedisBackend): void {
  describe(`the checkout script on ${backend.name}`, () => {
    let open: OpenBackend;
    let raw: RedisClient;
    let store: LeaseStore;
    const macKey = randomBytes(32);
    const leaseKey = (resource: string, id: string) => `${open.prefix}{r:${resource}}:lease:${id}`;

    beforeAll(async () => {
      open = await backend.open("checkout-script");
      raw = open.client();
      store = new LeaseStore({
        redis: open.client(),
        prefix: open.prefix,
        macKey,
        eventStream: { key: `${open.prefix}events`, maxLen: 1000 },
      });
    });
    afterAll(async () => {
      await open?.close();
    });
    afterEach(() => {
      vi.restoreAllMocks();
    });

    it("writes the lease record with its MAC in the one script that creates it", async () => {
      await store.syncPool("whole", ["w1", "w2"], "available");
      const s = spec("whole");
      const key = leaseKey("whole", s.id);
      let got: Awaited<ReturnType<LeaseStore["checkout"]>> = { ok: false };
      const lines = await watchedCommands(raw, async () => {
        got = await store.checkout(s, 60_000, 120_000);
      });
      expect(got.ok).toBe(true);
      const touching = lines.filter((l) => l.args.includes(key));
      // From a client, only the script names the lease key (EVAL the first time on a connection);
      // inside it, one HSET writes the record whole.
      const sent = touching.filter((l) => l.source !== "lua").map((l) => l.args[0]?.toLowerCase());
      expect(sent.length).toBeGreaterThan(0);
      for (const name of sent) expect(["eval", "evalsha"]).toContain(name);
      const writes = touching.filter((l) => l.source === "lua" && l.args[0]?.toLowerCase() === "hset");
      expect(writes).toHaveLength(1);
      expect(writes[0]?.args).toContain("mac");
      expect((await store.use("whole", s.id)).intact).toBe(true);
    });

    it("refuses a lease whose expiry a Redis writer moved (the MAC covers the signed expiries)", async () => {
      await store.syncPool("forged", ["f1"], "available");
      const s = spec("forged");
      const c = await store.checkout(s, 60_000, 120_000);
      if (!c.ok) throw new Error("checkout failed");
      await raw.hset(leaseKey("forged", s.id), "expires_at", c.lease.expires_at + 3_600_000);
      const u = await store.use("forged", s.id);
      expect(u.intact).toBe(false);
      expect((await store.renew("forged", s.id, 60_000)).ok).toBe(false);
      await raw.hset(
        leaseKey("forged", s.id),
        "expires_at",
        c.lease.expires_at,
        "max_expires_at",
        c.lease.max_expires_at + 1,
      );
      expect((await store.use("forged", s.id)).intact).toBe(false);
      await raw.hset(leaseKey("forged", s.id), "max_expires_at", c.lease.max_expires_at);
      expect((await store.use("forged", s.id)).intact).toBe(true);
    });

    it("never signs expiries past now + ttl by Redis' clock, even when the sidecar's clock runs ahead", async () => {
      await store.syncPool("skew", ["s1"], "available");
      const ahead = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey });
      const realNow = Date.now.bind(Date);
      vi.spyOn(Date, "now").mockImplementation(() => realNow() + 3_600_000);
      const c = await ahead.checkout(spec("skew"), 60_000, 120_000);
      vi.restoreAllMocks();
      if (!c.ok) throw new Error("checkout failed");
      const redisNow = await store.now();
      expect(c.lease.expires_at).toBeLessThanOrEqual(redisNow + 60_000);
      expect(c.lease.expires_at).toBeGreaterThan(redisNow + 60_000 - CHECKOUT_SKEW_MS - 5_000);
      expect(c.lease.max_expires_at - c.lease.expires_at).toBe(60_000);
      const u = await store.use("skew", c.lease.id);
      expect(u.intact).toBe(true);
      expect(u.lease?.expires_at).toBe(c.lease.expires_at);
    });

    it("finds a free account when the candidates it signed for were taken meanwhile", async () => {
      await store.syncPool("race", ["r1", "r2", "r3"], "available");
      const a = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey });
      const b = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey });
      // a learns the free list, then b takes two of its accounts: a's next candidates are stale.
      const first = await a.checkout(spec("race"), 60_000, 60_000);
      expect(first.ok).toBe(true);
      expect((await b.checkout(spec("race"), 60_000, 60_000)).ok).toBe(true);
      expect((await b.checkout(spec("race"), 60_000, 60_000)).ok).toBe(true);
      expect((await b.checkout(spec("race"), 60_000, 60_000)).ok).toBe(false);
      await store.end("race", first.ok ? first.lease.id : "", "checkin");
      await store.setAccountState("race", first.ok ? first.lease.account : "", "available");
      const again = await a.checkout(spec("race"), 60_000, 60_000);
      expect(again.ok && again.lease.account).toBe(first.ok && first.lease.account);
    });

    it("announces the lease on the event stream from the script on one node, and leaves it to the caller on a Cluster", async () => {
      await store.syncPool("ann", ["n1"], "available");
      const s = spec("ann");
      const c = await store.checkout(s, 60_000, 60_000);
      if (!c.ok) throw new Error("checkout failed");
      const entries = await raw.xrange(`${open.prefix}events`, "-", "+");
      const mine = entries.filter(([, f]) => f.includes(s.id));
      if (isCluster(raw)) {
        expect(c.announced).toBe(false);
        expect(mine).toEqual([]);
      } else {
        expect(c.announced).toBe(true);
        expect(mine.map(([, f]) => f)).toEqual([
          ["type", "issued", "resource", "ann", "account", "n1", "lease_id", s.id, "agent", s.agent],
        ]);
      }
      // The indexes are written either way.
      expect(await store.resourceOf(s.id)).toBe("ann");
      expect((await store.agentLeases(s.agent)).map((l) => l.id)).toContain(s.id);
      expect((await store.taskLeases(s.task.id)).map((l) => l.id)).toEqual([s.id]);
    });

    it("counts a rate hit and reads the active lease count in one call", async () => {
      await store.syncPool("count", ["c1", "c2"], "available");
      const agent = `spiffe://example.org/agent/count-${n}`;
      expect((await store.checkout(spec("count", agent), 60_000, 60_000)).ok).toBe(true);
      const first = await store.hitAndCount(`checkout:${agent}`, 60, agent);
      if (first === "replayed") throw new Error("no one-time key was given");
      expect(first).toMatchObject({ count: 1, activeLeases: 1 });
      expect(first.resetIn).toBeGreaterThanOrEqual(1);
      expect(first.resetIn).toBeLessThanOrEqual(60);
      expect((await store.checkout(spec("count", agent), 60_000, 60_000)).ok).toBe(true);
      expect(await store.hitAndCount(`checkout:${agent}`, 60, agent)).toMatchObject({
        count: 2,
        activeLeases: 2,
      });
      expect((await store.hit(`checkout:${agent}`, 60)).count).toBe(3);
    });

    it("spends a one-time key in the same call; a second spend is a replay and counts nothing", async () => {
      await store.syncPool("spend", ["s1"], "available");
      const agent = `spiffe://example.org/agent/spend-${n}`;
      expect((await store.checkout(spec("spend", agent), 60_000, 60_000)).ok).toBe(true);
      const spend = { key: `${open.prefix}idjti:spend-${n}`, ttlMs: 5_000 };
      expect(await store.hitAndCount(`checkout:${agent}`, 60, agent, spend)).toMatchObject({
        count: 1,
        activeLeases: 1,
      });
      const ttl = await raw.pttl(spend.key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(5_000);
      expect(await store.hitAndCount(`checkout:${agent}`, 60, agent, spend)).toBe("replayed");
      // The replay was not counted: the next hit is the second.
      expect((await store.hit(`checkout:${agent}`, 60)).count).toBe(2);
    });
  });
}

for (const backend of BACKENDS) checkoutScriptTests(backend);
