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

function storeAt(start: number, options: { minApprovers?: number; maxPendingPerAgent?: number } = {}) {
  const clock = { t: start };
  const prefix = testPrefix("approvals");
  prefixes.push(prefix);
  const store = new ApprovalStore(redis, prefix, { now: () => clock.t, ...options });
  /** Opens an approval the cap admits. */
  const open = async (input = request, ttl = 15) => {
    const r = await store.create(input, ttl);
    if (!r.ok) throw new Error("refused by the pending cap");
    return r.approval;
  };
  return { clock, store, open };
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
    const { open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0));
    const a = await open();
    expect(a.status).toBe("pending");
    expect(a.requested_at).toBe("2030-01-01T12:00:00.000Z");
    expect(a.expires_at).toBe("2030-01-01T12:00:15.000Z");
  });

  it("stays pending until its expiry, then reads as expired and can no longer be approved", async () => {
    const { clock, store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0));
    const a = await open();
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
    const { clock, store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0));
    const old = await open();
    clock.t += 3600_000;
    const recent = await open();
    expect((await store.rows()).map((a) => a.id)).toEqual([recent.id, old.id]);
    clock.t += 23 * 3600_000 + 1;
    expect((await store.rows()).map((a) => a.id)).toEqual([recent.id]);
  });
});

describe("the pending cap per agent", () => {
  it("refuses the request beyond the cap, writing nothing, with the time until the soonest expiry", async () => {
    const { clock, store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0), { maxPendingPerAgent: 2 });
    await open(request, 15);
    clock.t += 5_000;
    await open(request, 15);
    const refused = await store.create(request, 15);
    expect(refused).toEqual({ ok: false, pending: 2, retryAfterSeconds: 10 });
    expect(await store.rows()).toHaveLength(2);
    // Another agent has its own cap.
    expect((await store.create({ ...request, agent: "spiffe://example.org/agent/b" }, 15)).ok).toBe(true);
  });

  it("a decided or expired approval frees its place", async () => {
    const { clock, store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0), { maxPendingPerAgent: 1 });
    const a = await open(request, 15);
    expect((await store.create(request, 15)).ok).toBe(false);
    expect((await store.vote(a.id, { approver: "alice", approve: false })).kind).toBe("recorded");
    const b = await open(request, 15);
    clock.t += 15_000;
    expect((await store.get(b.id))?.status).toBe("expired");
    expect((await store.create(request, 15)).ok).toBe(true);
  });
});

describe("votes", () => {
  it("needs minApprovers distinct approvers; the same approver twice is not a second one", async () => {
    const { store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0), { minApprovers: 2 });
    const a = await open();
    const first = await store.vote(a.id, { approver: "alice", approve: true });
    expect(first).toMatchObject({ kind: "recorded", approval: { status: "pending", approvers: ["alice"] } });
    expect((await store.vote(a.id, { approver: "ALICE", approve: true })).kind).toBe("already_voted");
    const second = await store.vote(a.id, { approver: "bob", approve: true, reason: "ok" });
    expect(second).toMatchObject({
      kind: "recorded",
      approval: { status: "approved", approvers: ["alice", "bob"], approver: "alice, bob" },
    });
    expect((await store.vote(a.id, { approver: "carol", approve: true })).kind).toBe("not_pending");
  });

  it("a deny by any approver denies, even after another approved", async () => {
    const { store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0), { minApprovers: 2 });
    const a = await open();
    await store.vote(a.id, { approver: "alice", approve: true });
    const denied = await store.vote(a.id, { approver: "bob", approve: false, reason: "no" });
    expect(denied).toMatchObject({ kind: "recorded", approval: { status: "denied", approver: "bob" } });
  });

  it("concurrent votes are all counted: none overwrites another", async () => {
    const { store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0), { minApprovers: 3 });
    const a = await open();
    const votes = await Promise.all(
      ["alice", "bob", "carol"].map((approver) => store.vote(a.id, { approver, approve: true })),
    );
    expect(votes.every((v) => v.kind === "recorded")).toBe(true);
    const after = await store.get(a.id);
    expect(after?.status).toBe("approved");
    expect([...(after?.approvers ?? [])].sort()).toEqual(["alice", "bob", "carol"]);
  });

  it("an approval beyond any list is still decided by its id", async () => {
    const { store, open } = storeAt(Date.UTC(2030, 0, 1, 12, 0, 0), { maxPendingPerAgent: 1000 });
    const real = await open();
    for (let i = 0; i < 250; i++) await open();
    expect(await store.rows()).toHaveLength(251);
    expect((await store.vote(real.id, { approver: "alice", approve: true })).kind).toBe("recorded");
    expect((await store.get(real.id))?.status).toBe("approved");
  });
});
