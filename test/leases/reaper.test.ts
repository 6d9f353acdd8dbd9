import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../sidecar/logger.js";
import { LeaseStore, Reaper } from "../../sidecar/leases/index.js";
import { InstrumentedRedis } from "../../sidecar/ops/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { waitFor, waitForClock } from "../support/wait-for.js";
import { BACKENDS, type OpenBackend, type RedisBackend } from "./redis-backends.js";

let n = 0;
const spec = (resource: string) => ({
  id: `lse_reap${String(++n).padStart(12, "0")}`,
  resource,
  agent: `spiffe://example.org/agent/r${n % 3}`,
  task: { id: "T-REAP" },
  intent: { action: "read" },
});

/** Checks out `each` leases on every resource, all due `ttlMs` from now; returns them. */
async function dueLeases(store: LeaseStore, resources: readonly string[], each: number, ttlMs: number) {
  await Promise.all(
    resources.map((r) =>
      store.syncPool(
        r,
        Array.from({ length: each }, (_, i) => `a${i}`),
        "available",
      ),
    ),
  );
  const got = await Promise.all(
    resources.flatMap((r) => Array.from({ length: each }, () => store.checkout(spec(r), ttlMs, 60_000))),
  );
  return got.map((g) => {
    if (!g.ok) throw new Error("checkout failed");
    return g.lease;
  });
}

describe("Reaper on a single Redis", () => {
  const prefix = testPrefix("reaper-rt");
  const sent: string[] = [];
  const counted = new InstrumentedRedis((command) => sent.push(command), REDIS_URL);
  const writer = new InstrumentedRedis(() => undefined, REDIS_URL);
  const macKey = randomBytes(32);
  const store = new LeaseStore({ redis: counted, prefix, macKey });
  const setup = new LeaseStore({ redis: writer, prefix, macKey });

  afterAll(async () => {
    counted.disconnect();
    writer.disconnect();
    await dropPrefix(prefix);
  });

  it("claims the due leases of many resources in one round trip, batch at most, sharing it out", async () => {
    const resources = Array.from({ length: 40 }, (_, i) => `rt-${String(i).padStart(2, "0")}`);
    const leases = await dueLeases(setup, resources, 3, 20);
    // One lease that is not due, which no pass may claim.
    const [late] = await dueLeases(setup, ["rt-late"], 1, 600_000);
    await waitForClock(
      "Redis' clock to pass every lease's expiry",
      () => setup.now(),
      Math.max(...leases.map((l) => l.expires_at)),
    );
    // The script is loaded once (EVALSHA, then EVAL on NOSCRIPT); warm it on an empty schedule.
    await new LeaseStore({ redis: counted, prefix: testPrefix("reaper-warm") }).claimDueAll(1, 1000);
    sent.length = 0;
    const first = await store.claimDueAll(50, 30_000);
    expect(sent).toEqual(["evalsha"]);
    expect(first).toHaveLength(50);
    // The equal share first: every resource gets one before any gets a second.
    expect(new Set(first.map((r) => r.resource)).size).toBe(40);
    sent.length = 0;
    const rest = await store.claimDueAll(500, 30_000);
    expect(sent).toEqual(["evalsha"]);
    const all = [...first, ...rest].map((r) => `${r.resource}/${r.id}`).sort();
    expect(all).toEqual(leases.map((l) => `${l.resource}/${l.id}`).sort());
    expect(all).not.toContain(`rt-late/${late?.id}`);
    expect(await store.claimDueAll(500, 30_000)).toEqual([]);
  });
});

/** Two sidecars' reapers on one deployment form. */
function twoReapers(backend: RedisBackend): void {
  describe(`two Reapers on ${backend.name}`, () => {
    let open: OpenBackend;
    const macKey = randomBytes(32);

    beforeAll(async () => {
      open = await backend.open("reapers");
    });
    afterAll(async () => {
      await open?.close();
    });

    it("never end a lease twice, and end every due lease of every resource", async () => {
      const setup = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey });
      const resources = Array.from({ length: 12 }, (_, i) => `two-${i}`);
      const leases = await dueLeases(setup, resources, 10, 30);
      const endedBy = new Map<string, number>();
      const reapers = [0, 1].map(() => {
        const s = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey });
        return new Reaper({
          leases: s,
          expire: async (resource, id) => {
            const r = await s.end(resource, id, "expired");
            if (r.ended) endedBy.set(`${resource}/${id}`, (endedBy.get(`${resource}/${id}`) ?? 0) + 1);
          },
          intervalMs: 10,
          batch: 25,
          log: createLogger("silent"),
        });
      });
      await waitForClock(
        "Redis' clock to pass every lease's expiry",
        () => setup.now(),
        Math.max(...leases.map((l) => l.expires_at)),
      );
      await waitFor("both reapers to end every lease", async () => {
        await Promise.all(reapers.map((r) => r.runOnce()));
        return endedBy.size === leases.length;
      });
      expect([...endedBy.values()].every((c) => c === 1)).toBe(true);
      const records = await Promise.all(leases.map((l) => setup.get(l.resource, l.id)));
      expect(records.every((l) => l?.state === "ended" && l.end_reason === "expired")).toBe(true);
      expect(await Promise.all(reapers.map((r) => r.runOnce()))).toEqual([0, 0]);
    });
  });
}

for (const backend of BACKENDS) twoReapers(backend);
