import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseStore, WAITER_TTL_MS } from "../../sidecar/leases/index.js";
import { waitForClock } from "../support/wait-for.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";

let redis: Redis;
let prefix: string;
let store: LeaseStore;
let n = 0;
const spec = (resource: string) => ({
  id: `lse_wq${String(++n).padStart(14, "0")}`,
  resource,
  agent: "spiffe://example.org/agent/w",
  task: { id: "T" },
  intent: { action: "read" },
});

beforeAll(() => {
  redis = new Redis(REDIS_URL);
  prefix = testPrefix("waitq");
  store = new LeaseStore({ redis, prefix });
});
afterAll(async () => {
  redis.disconnect();
  await dropPrefix(prefix);
});

describe("waiting for an account", () => {
  it("serves waiters first come, first served, and a newcomer does not jump the queue", async () => {
    await store.syncPool("fifo", ["only"], "available");
    const holder = await store.checkout(spec("fifo"), 60_000, 60_000);
    if (!holder.ok) throw new Error("first checkout failed");
    const first = spec("fifo");
    const second = spec("fifo");
    expect((await store.checkout(first, 60_000, 60_000, first.id)).ok).toBe(false);
    expect((await store.checkout(second, 60_000, 60_000, second.id)).ok).toBe(false);
    expect(await store.queueLength("fifo")).toBe(2);
    await store.end("fifo", holder.lease.id, "checkin");
    await store.setAccountState("fifo", "only", "available");
    expect((await store.checkout(spec("fifo"), 60_000, 60_000)).ok).toBe(false);
    expect((await store.checkout(second, 60_000, 60_000, second.id)).ok).toBe(false);
    const got = await store.checkout(first, 60_000, 60_000, first.id);
    expect(got.ok).toBe(true);
    expect(await store.queueLength("fifo")).toBe(1);
  });

  it("a waiter that leaves (or stops refreshing) no longer blocks the queue", async () => {
    await store.syncPool("leave", ["a"], "available");
    const holder = await store.checkout(spec("leave"), 60_000, 60_000);
    if (!holder.ok) throw new Error("first checkout failed");
    const gone = spec("leave");
    const stale = spec("leave");
    const patient = spec("leave");
    await store.checkout(gone, 60_000, 60_000, gone.id);
    await store.checkout(stale, 60_000, 60_000, stale.id);
    // Redis' clock after the stale waiter's last call: its deadline is at most WAITER_TTL_MS later.
    const staleCalledBy = await store.now();
    await store.checkout(patient, 60_000, 60_000, patient.id);
    await store.leaveQueue("leave", gone.id);
    await store.end("leave", holder.lease.id, "checkin");
    await store.setAccountState("leave", "a", "available");
    await waitForClock(
      "Redis' clock to pass the stale waiter's deadline",
      () => store.now(),
      staleCalledBy + WAITER_TTL_MS + 1,
    );
    const got = await store.checkout(patient, 60_000, 60_000, patient.id);
    expect(got.ok).toBe(true);
    expect(await store.queueLength("leave")).toBe(0);
  });

  it("as many waiters as free accounts are served at once", async () => {
    await store.syncPool("two", ["x", "y"], "available");
    const a = spec("two");
    const b = spec("two");
    const [ra, rb] = await Promise.all([
      store.checkout(a, 60_000, 60_000, a.id),
      store.checkout(b, 60_000, 60_000, b.id),
    ]);
    expect(ra.ok && rb.ok).toBe(true);
  });
});
