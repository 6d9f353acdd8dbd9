import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { ApprovalStore } from "../../sidecar/approvals/approval-store.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";

/** Approval expiry on a clock the test holds: no waiting for a TTL to run out. */

const redis = new Redis(REDIS_URL);
const prefixes: string[] = [];

afterAll(async () => {
  await Promise.all(prefixes.map(dropPrefix));
  redis.disconnect();
});

function storeAt(start: number) {
  const clock = { t: start };
  const prefix = testPrefix("approvals");
  prefixes.push(prefix);
  return { clock, store: new ApprovalStore(redis, prefix, { now: () => clock.t }) };
}

const request = {
  agent: "spiffe://example.org/agent/a",
  resource: "orders-db",
  task: { id: "TICKET-7" },
  intent: { action: "write", tool: "psql" },
  ttl: 60,
  policies: ["writes-need-approval"],
};

describe("approval expiry on an injected clock", () => {
  it("stamps request and expiry times from the clock", async () => {
    const { store } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0));
    const a = await store.create(request, 15);
    expect(a.status).toBe("pending");
    expect(a.requested_at).toBe("2030-01-01T12:00:00.000Z");
    expect(a.expires_at).toBe("2030-01-01T12:00:15.000Z");
  });

  it("stays pending until its expiry, then reads as expired and can no longer be approved", async () => {
    const { clock, store } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0));
    const a = await store.create(request, 15);
    clock.t += 14_999;
    expect((await store.get(a.id))?.status).toBe("pending");
    clock.t += 1;
    const expired = await store.get(a.id);
    expect(expired?.status).toBe("expired");
    expect(expired?.decided_at).toBe(a.expires_at);
    // The expiry is stored, not only reported: an approval racing it finds nothing pending.
    const approved = { ...a, status: "approved" as const, approver: "alice" };
    expect(await store.transition(a, "pending", approved)).toBe(false);
    clock.t -= 10_000;
    expect((await store.get(a.id))?.status).toBe("expired");
  });

  it("lists approvals of the last day by the clock, newest first", async () => {
    const { clock, store } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0));
    const old = await store.create(request, 15);
    clock.t += 3600_000;
    const recent = await store.create(request, 15);
    expect((await store.list()).map((a) => a.id)).toEqual([recent.id, old.id]);
    clock.t += 23 * 3600_000 + 1;
    expect((await store.list()).map((a) => a.id)).toEqual([recent.id]);
  });
});
