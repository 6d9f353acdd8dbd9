import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../sidecar/audit/index.js";
import { LeaseholdError } from "../../sidecar/errors.js";
import { LeaseEventChannel } from "../../sidecar/events/index.js";
import { LeaseStore } from "../../sidecar/leases/index.js";
import { createLogger } from "../../sidecar/logger.js";
import {
  createAuditTap,
  createMetrics,
  InstrumentedRedis,
  instrumentSecretStore,
  type OpsMetrics,
} from "../../sidecar/ops/index.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { waitForClock } from "../support/wait-for.js";

const prefix = testPrefix("ops-metrics");
const AGENT = "spiffe://example.org/agent/metrics-secret-agent";
let redis: Redis;
let store: LeaseStore;
let dir: string;
let vault: VaultHandle;

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  store = new LeaseStore({ redis, prefix });
  dir = await mkdtemp(join(tmpdir(), "leasehold-ops-metrics-"));
  vault = await useVault();
});

afterAll(async () => {
  await dropPrefix(prefix);
  redis.disconnect();
  await vault.close();
  await rm(dir, { recursive: true, force: true });
});

/** The value of one series in the exposition text, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function scrape(m: OpsMetrics): Promise<string> {
  return (await m.render()).body;
}

describe("metrics", () => {
  it("reads active leases, expiry, accounts by state and pending approvals from Redis on scrape", async () => {
    const m = createMetrics({ processMetrics: false, stateCacheMs: 0 });
    m.addStateSources({
      leases: store,
      pendingApprovals: async () => [{ resource: "orders-db" }, { resource: "orders-db" }],
    });
    await store.syncPool("orders-db", ["acct_1", "acct_2", "acct_3"], "available");
    await store.setAccountState("orders-db", "acct_3", "quarantined", true);
    const got = await store.checkout(
      {
        id: "lse_metrics_0001",
        resource: "orders-db",
        agent: AGENT,
        task: { id: "T" },
        intent: { action: "read" },
      },
      90_000,
      180_000,
    );
    expect(got.ok).toBe(true);
    const text = await scrape(m);
    expect(sample(text, "leasehold_state_up")).toBe(1);
    expect(sample(text, "leasehold_leases_active", { resource: "orders-db" })).toBe(1);
    const soonest = sample(text, "leasehold_lease_soonest_expiry_seconds", { resource: "orders-db" });
    expect(soonest).toBeGreaterThan(0);
    expect(soonest).toBeLessThanOrEqual(90);
    expect(sample(text, "leasehold_accounts", { resource: "orders-db", state: "leased" })).toBe(1);
    expect(sample(text, "leasehold_accounts", { resource: "orders-db", state: "available" })).toBe(1);
    // Held for a checkout in progress: counted apart from available (none here; see checkout-contention).
    expect(sample(text, "leasehold_accounts", { resource: "orders-db", state: "reserved" })).toBe(0);
    expect(sample(text, "leasehold_accounts_quarantined", { resource: "orders-db" })).toBe(1);
    expect(sample(text, "leasehold_approvals_pending", { resource: "orders-db" })).toBe(2);
    // Bounded labels: never a lease id or an agent id.
    expect(text).not.toContain("lse_metrics_0001");
    expect(text).not.toContain("metrics-secret-agent");

    const ended = await store.end("orders-db", "lse_metrics_0001", "revoked");
    expect(ended.ended).toBe(true);
    if (ended.ended) m.observeLeaseEnded(ended.lease);
    const after = await scrape(m);
    expect(sample(after, "leasehold_leases_active", { resource: "orders-db" })).toBe(0);
    expect(
      sample(after, "leasehold_lease_duration_seconds_count", { resource: "orders-db", reason: "revoked" }),
    ).toBe(1);
  });

  it("computes the lease gauges in Redis, and they agree with the leases themselves", async () => {
    const m = createMetrics({ processMetrics: false, stateCacheMs: 0 });
    m.addStateSources({ leases: store });
    const names = Array.from({ length: 6 }, (_, i) => `gauge-${i}`);
    for (const [i, name] of names.entries()) {
      await store.syncPool(name, ["a", "b", "c", "d", "e"], "available");
      for (let k = 0; k < i % 4; k++) {
        const c = await store.checkout(
          {
            id: `lse_gauge_${i}_${k}_x`,
            resource: name,
            agent: AGENT,
            task: { id: "T" },
            intent: { action: "read" },
          },
          60_000 + k * 1000,
          180_000,
        );
        expect(c.ok).toBe(true);
      }
    }
    await store.setAccountState("gauge-2", "e", "quarantined", true);
    await store.setAccountState("gauge-2", "d", "rotating", true);
    // A lease a reaper has claimed (in flight, not in the schedule) is still active, and overdue.
    const due = await store.checkout(
      {
        id: "lse_gauge_due_x0",
        resource: "gauge-5",
        agent: AGENT,
        task: { id: "T" },
        intent: { action: "read" },
      },
      20,
      180_000,
    );
    if (!due.ok) throw new Error("checkout failed");
    await waitForClock(
      "Redis' clock to pass the lease's expiry",
      () => store.now(),
      due.lease.expires_at + 1,
    );
    expect(await store.claimDue("gauge-5", 10, 60_000)).toEqual([due.lease.id]);

    const before = await store.now();
    const text = await scrape(m);
    const after = await store.now();
    for (const name of names) {
      const leases = await store.activeLeases(name);
      const accounts = await store.accounts(name);
      expect(sample(text, "leasehold_leases_active", { resource: name })).toBe(leases.length);
      for (const state of ["available", "leased", "rotating", "quarantined"]) {
        expect(sample(text, "leasehold_accounts", { resource: name, state })).toBe(
          accounts.filter((a) => a.state === state).length,
        );
      }
      const soonest = sample(text, "leasehold_lease_soonest_expiry_seconds", { resource: name });
      const oldest = sample(text, "leasehold_lease_oldest_age_seconds", { resource: name });
      if (leases.length === 0) {
        expect(soonest).toBeUndefined();
        expect(oldest).toBeUndefined();
        continue;
      }
      const exp = Math.min(...leases.map((l) => l.expires_at));
      const iss = Math.min(...leases.map((l) => l.issued_at));
      expect(soonest).toBeGreaterThanOrEqual((exp - after) / 1000);
      expect(soonest).toBeLessThanOrEqual((exp - before) / 1000);
      expect(oldest).toBeGreaterThanOrEqual((before - iss) / 1000);
      expect(oldest).toBeLessThanOrEqual((after - iss) / 1000);
    }
    expect(sample(text, "leasehold_leases_active", { resource: "gauge-5" })).toBe(2);
    expect(sample(text, "leasehold_lease_soonest_expiry_seconds", { resource: "gauge-5" })).toBeLessThan(0);
  });

  it("observes reaper lag for expired leases from the lease's own times", () => {
    const m = createMetrics({ processMetrics: false });
    const base = {
      id: "lse_x",
      resource: "r1",
      agent: AGENT,
      task: { id: "T" },
      intent: { action: "read" },
      account: "a",
      state: "ended" as const,
      max_expires_at: 0,
    };
    m.observeLeaseEnded({
      ...base,
      issued_at: 0,
      expires_at: 10_000,
      ended_at: 10_300,
      end_reason: "expired",
    });
    m.observeLeaseEnded({
      ...base,
      issued_at: 0,
      expires_at: 10_000,
      ended_at: 4_000,
      end_reason: "checkin",
    });
    return scrape(m).then((text) => {
      expect(sample(text, "leasehold_reaper_lag_seconds_count", { resource: "r1" })).toBe(1);
      expect(sample(text, "leasehold_reaper_lag_seconds_sum", { resource: "r1" })).toBeCloseTo(0.3);
      expect(sample(text, "leasehold_reaper_lag_seconds_bucket", { resource: "r1", le: "0.25" })).toBe(0);
      expect(sample(text, "leasehold_reaper_lag_seconds_bucket", { resource: "r1", le: "0.5" })).toBe(1);
      expect(
        sample(text, "leasehold_lease_duration_seconds_sum", { resource: "r1", reason: "checkin" }),
      ).toBe(4);
    });
  });

  it("observes ended leases and expiry notices published on the lease event channel", async () => {
    const m = createMetrics({ processMetrics: false });
    const events = new LeaseEventChannel({ redis, prefix, log: createLogger("silent") });
    const unsubscribe = events.subscribe((e) => m.observeLeaseEvent(e));
    const lease = {
      id: "lse_channel_m1",
      resource: "r2",
      agent: AGENT,
      task: { id: "T" },
      intent: { action: "read" },
      account: "a",
      state: "ended" as const,
      issued_at: 0,
      expires_at: 10_000,
      max_expires_at: 20_000,
    };
    await events.publish({ type: "expiring_soon", lease: { ...lease, state: "active" }, seconds_left: 5 });
    await events.publish({
      type: "ended",
      lease: { ...lease, ended_at: 10_500, end_reason: "expired" },
      reason: "expired",
    });
    unsubscribe();
    await events.publish({
      type: "ended",
      lease: { ...lease, ended_at: 2_000, end_reason: "checkin" },
      reason: "checkin",
    });
    const text = await scrape(m);
    expect(sample(text, "leasehold_expiring_soon_total", { resource: "r2" })).toBe(1);
    expect(
      sample(text, "leasehold_lease_duration_seconds_count", { resource: "r2", reason: "expired" }),
    ).toBe(1);
    expect(sample(text, "leasehold_reaper_lag_seconds_sum", { resource: "r2" })).toBeCloseTo(0.5);
    expect(
      sample(text, "leasehold_lease_duration_seconds_count", { resource: "r2", reason: "checkin" }),
    ).toBeUndefined();
  });

  it("counts checkouts, approvals and rotations from real audit records, and publishes approval events", async () => {
    const m = createMetrics({ processMetrics: false });
    const log = createLogger("silent");
    const audit = await AuditLog.open(
      join(dir, "audit.jsonl"),
      "test",
      createAuditTap({ metrics: m, events: new LeaseEventChannel({ redis, prefix, log }), log }),
    );
    const d = { event: "decision" as const, agent: AGENT, resource: "orders-db" };
    await audit.append({ ...d, scope: "checkout", decision: "allow" });
    await audit.append({ ...d, scope: "checkout", decision: "allow" });
    await audit.append({ ...d, scope: "checkout", decision: "deny" });
    await audit.append({ ...d, scope: "checkout", decision: "approval_required" });
    await audit.append({
      ...d,
      scope: "approval_requested",
      decision: "approval_required",
      approval_id: "apr_ABCDEFGHIJKL",
      reason: "writes need a human",
    });
    await audit.append({
      ...d,
      scope: "approved",
      decision: "allow",
      approver: "alice",
      approval_id: "apr_ABCDEFGHIJKL",
    });
    await audit.append({ ...d, scope: "reveal", decision: "allow" });
    const r = { resource: "orders-db", account: "acct_1" };
    await audit.append({ event: "rotation_started", ...r });
    await audit.append({ event: "rotation_succeeded", ...r });
    await audit.append({ event: "rotation_started", ...r });
    await audit.append({ event: "rotation_failed", ...r, reason: "target down" });
    await audit.append({ event: "quarantine", ...r, reason: "target down" });
    await audit.close();

    const text = await scrape(m);
    expect(sample(text, "leasehold_checkouts_total", { resource: "orders-db", decision: "allow" })).toBe(2);
    expect(sample(text, "leasehold_checkouts_total", { resource: "orders-db", decision: "deny" })).toBe(1);
    expect(
      sample(text, "leasehold_checkouts_total", { resource: "orders-db", decision: "approval_required" }),
    ).toBe(1);
    expect(
      sample(text, "leasehold_approval_decisions_total", { resource: "orders-db", decision: "approved" }),
    ).toBe(1);
    expect(sample(text, "leasehold_rotations_total", { resource: "orders-db", result: "succeeded" })).toBe(1);
    expect(sample(text, "leasehold_rotations_total", { resource: "orders-db", result: "failed" })).toBe(1);
    expect(sample(text, "leasehold_rotations_total", { resource: "orders-db", result: "quarantined" })).toBe(
      1,
    );
    expect(
      sample(text, "leasehold_rotation_duration_seconds_count", {
        resource: "orders-db",
        result: "succeeded",
      }),
    ).toBe(1);
    expect(
      sample(text, "leasehold_rotation_duration_seconds_count", { resource: "orders-db", result: "failed" }),
    ).toBe(1);
    expect(text).not.toContain("metrics-secret-agent");

    const stream = (await redis.xrange(`${prefix}events`, "-", "+")) as Array<[string, string[]]>;
    const types = stream.map(([, f]) => f[f.indexOf("type") + 1]);
    expect(types).toContain("approval_requested");
    expect(types).toContain("approval_decided");
    const requested = stream.find(([, f]) => f.includes("approval_requested"));
    expect(requested?.[1]).toContain("apr_ABCDEFGHIJKL");
    // The approval id is its own field; the record's free-text reason stays out of the event.
    const fields = (entry: [string, string[]] | undefined) =>
      Object.fromEntries((entry?.[1] ?? []).flatMap((v, i, f) => (i % 2 === 0 ? [[v, f[i + 1]]] : [])));
    expect(fields(requested)).toEqual({
      type: "approval_requested",
      resource: "orders-db",
      agent: AGENT,
      approval_id: "apr_ABCDEFGHIJKL",
    });
    expect(fields(stream.find(([, f]) => f.includes("approval_decided")))).toEqual({
      type: "approval_decided",
      resource: "orders-db",
      agent: AGENT,
      reason: "approved",
      approval_id: "apr_ABCDEFGHIJKL",
    });
  });

  it("keeps resource label values bounded", async () => {
    const m = createMetrics({ processMetrics: false, maxResources: 2 });
    for (const name of ["a", "b", "c", "d"]) {
      m.observeAudit({
        event: "decision",
        scope: "checkout",
        decision: "deny",
        resource: name,
        time: new Date().toISOString(),
        sidecar: "s",
        seq: 0,
        prev: "",
        hash: "",
      });
    }
    const text = await scrape(m);
    expect(sample(text, "leasehold_checkouts_total", { resource: "a", decision: "deny" })).toBe(1);
    expect(sample(text, "leasehold_checkouts_total", { resource: "c", decision: "deny" })).toBeUndefined();
    expect(sample(text, "leasehold_checkouts_total", { resource: "_other", decision: "deny" })).toBe(2);
  });

  it("times Redis commands and counts their errors (InstrumentedRedis)", async () => {
    const m = createMetrics({ processMetrics: false });
    const r = new InstrumentedRedis((c, s, res) => m.observeRedisCall(c, s, res), REDIS_URL, {});
    try {
      await r.set(`${prefix}k`, "v");
      await r.get(`${prefix}k`);
      await r.multi().get(`${prefix}k`).get(`${prefix}k`).exec();
      await expect(r.hget(`${prefix}k`, "f")).rejects.toThrow(/WRONGTYPE/);
    } finally {
      r.disconnect();
    }
    const text = await scrape(m);
    expect(
      sample(text, "leasehold_redis_command_duration_seconds_count", { command: "set", result: "ok" }),
    ).toBe(1);
    expect(
      sample(text, "leasehold_redis_command_duration_seconds_count", { command: "get", result: "ok" }),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(text, "leasehold_redis_errors_total", { command: "hget" })).toBe(1);
  });

  it("times Vault calls and tells CAS conflicts from faults (instrumentSecretStore)", async () => {
    const m = createMetrics({ processMetrics: false });
    const log = createLogger("silent");
    const real = new VaultStore({
      address: vault.address,
      auth: { method: "token", token: vault.token },
      mount: vault.mount,
      prefix: `leasehold-ops-metrics-${prefix.split(":")[2]}`,
      timeoutMs: 2000,
      log,
    });
    const s = instrumentSecretStore(real, (op, sec, res) => m.observeVaultCall(op, sec, res));
    try {
      expect(await s.read(["nothing", "here"])).toBeNull();
      const v = await s.write(["k"], { a: 1 }, 0);
      expect(v).toBe(1);
      await expect(s.write(["k"], { a: 2 }, 0)).rejects.toBeInstanceOf(LeaseholdError);
      expect((await s.read<{ a: number }>(["k"]))?.data.a).toBe(1);
    } finally {
      s.close();
    }
    const down = instrumentSecretStore(
      new VaultStore({
        address: "http://127.0.0.1:9",
        auth: { method: "token", token: "x" },
        mount: "secret",
        prefix: "p",
        timeoutMs: 500,
        log,
        retries: 0,
      }),
      (op, sec, res) => m.observeVaultCall(op, sec, res),
    );
    await expect(down.read(["x"])).rejects.toThrow();
    down.close();
    const text = await scrape(m);
    expect(sample(text, "leasehold_vault_request_duration_seconds_count", { op: "read", result: "ok" })).toBe(
      2,
    );
    expect(
      sample(text, "leasehold_vault_request_duration_seconds_count", { op: "write", result: "conflict" }),
    ).toBe(1);
    expect(sample(text, "leasehold_vault_errors_total", { op: "write" })).toBeUndefined();
    expect(sample(text, "leasehold_vault_errors_total", { op: "read" })).toBe(1);
  });
});
