import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LeaseRecord } from "../../sidecar/leases/index.js";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { mysqlStatementCounter } from "../../sidecar/proxy/mysql/session-limits.js";
import { LeaseLimits } from "../../sidecar/proxy/session-limits.js";
import { asSuperuser, type ScramPostgres } from "../support/pg-cluster.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness } from "./harness.js";
import { leaseClient, pgResource, startPgProxy } from "./pg-setup.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-server.js";

const PG = "px-pg-limits";
const RATE = "px-pg-rate";
const REDIS = "px-redis-limits";
const CAP = 200_000;

let h: ProxyHarness;
let cluster: ScramPostgres;
let server: PrivateRedis;
let proxy: ProxyManager;

function lease(id: string, until = Date.now() + 60_000): LeaseRecord {
  return {
    id,
    resource: "r",
    agent: "spiffe://example.org/agent/a",
    task: { id: "T-1" },
    intent: { action: "read" },
    account: "a",
    state: "active",
    issued_at: Date.now(),
    expires_at: until,
    max_expires_at: until,
  };
}

async function limitRecords(leaseId: string): Promise<Array<Record<string, unknown>>> {
  return (await h.auditRecords()).filter(
    (r) => r.event === "decision" && r.scope === "proxy_limit" && r.lease_id === leaseId,
  );
}

beforeAll(async () => {
  const setup = await startPgProxy({ name: "proxy-limits", admin: "pl_admin" });
  ({ h, cluster } = setup);
  const redisAdmin = randomBytes(18).toString("hex");
  server = await startPrivateRedis([
    `rl_admin on >${redisAdmin} ~* &* +@all`,
    `rl_a1 on >${randomBytes(12).toString("hex")} ~* &* +@all`,
  ]);
  h.secrets.push(redisAdmin);
  await asSuperuser(cluster, async (c) => {
    for (let i = 1; i <= 4; i++)
      await c.query(`CREATE ROLE pl_app_${i} LOGIN PASSWORD 'x${i}${setup.admin.password}'`);
    await c.query("CREATE TABLE pl_big (id int, pad text)");
    await c.query("INSERT INTO pl_big SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g");
    await c.query("GRANT SELECT ON pl_big TO PUBLIC");
  });
  await h.register({
    ...pgResource(setup),
    name: PG,
    accounts: ["pl_app_1", "pl_app_2"],
    proxy: { port: 0, limits: { bytesReturned: CAP } },
  });
  await h.register({
    ...pgResource(setup),
    name: RATE,
    accounts: ["pl_app_3"],
    proxy: { port: 0, limits: { statementsPerSecond: 4 } },
  });
  await h.register({
    adapter: "redis-acl",
    connection: { host: server.host, port: server.port },
    admin: { username: "rl_admin", password: redisAdmin },
    reveal: false,
    rotation: { terminateSessions: false },
    name: REDIS,
    accounts: ["rl_a1"],
    proxy: { port: 0, limits: { bytesReturned: CAP } },
  });
  proxy = await h.manager();
}, 120_000);

afterAll(async () => {
  await h?.close();
  await cluster?.stop();
  await server?.stop();
});

async function pgConnect(l: Checkout, resource: string): Promise<pg.Client> {
  const c = leaseClient(l, listenerPort(proxy, resource));
  c.on("error", () => undefined);
  await c.connect();
  return c;
}

describe("proxy.limits, the counters", () => {
  it("a statement bucket: the rate's worth at once, then a debt to wait out", () => {
    let now = 1_000_000;
    const limits = new LeaseLimits(() => now);
    const m = limits.meter(lease("l1"), { statementsPerSecond: 10 });
    if (!m) throw new Error("no meter");
    expect(m.take(10)).toBe(0);
    expect(m.take(5)).toBe(500);
    now += 500;
    expect(m.take(0)).toBe(0);
    now += 10_000;
    expect(m.take(11)).toBe(100);
  });

  it("bytes count per lease across its sessions, for the lease's life; no limits, no meter", () => {
    let now = 1_000_000;
    const limits = new LeaseLimits(() => now);
    const l = lease("l2", now + 1000);
    const a = limits.meter(l, { bytesReturned: 100 });
    expect(a?.returned(60)).toBe(false);
    expect(limits.meter(l, { bytesReturned: 100 })?.returned(41)).toBe(true);
    expect(limits.meter(l, undefined)).toBeUndefined();
    now += 2000;
    // The lease is past its end: its counters go with it.
    expect(limits.meter(l, { bytesReturned: 100 })?.exhausted).toBe(false);
  });

  it("counts MySQL COM_QUERY and COM_STMT_EXECUTE, whatever the chunking", () => {
    const pkt = (seq: number, payload: Buffer) =>
      Buffer.concat([Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, 0, seq]), payload]);
    const stream = Buffer.concat([
      pkt(0, Buffer.from("\x03select 1")),
      pkt(0, Buffer.from("\x16select ?")),
      pkt(0, Buffer.from([0x17, 1, 0, 0, 0])),
      pkt(1, Buffer.from("\x03not a command")),
      pkt(0, Buffer.from("\x0e")),
    ]);
    for (let size = 1; size <= stream.length; size++) {
      const count = mysqlStatementCounter();
      let n = 0;
      for (let i = 0; i < stream.length; i += size) n += count(stream.subarray(i, i + size));
      expect(n).toBe(2);
    }
  });

  it("a registration's limits are validated, naming the field", async () => {
    await expect(
      h.register({
        ...pgResource({ cluster, admin: { username: "pl_admin", password: "x" } }),
        name: "px-pg-bad-limits",
        accounts: ["pl_app_4"],
        proxy: { port: 0, limits: { bytesReturned: 0 } },
      }),
    ).rejects.toThrow(/proxy\.limits\.bytesReturned/);
    await expect(
      h.register({
        ...pgResource({ cluster, admin: { username: "pl_admin", password: "x" } }),
        name: "px-pg-bad-limits",
        accounts: ["pl_app_4"],
        proxy: { port: 0, limits: { rowsPerSecond: 1 } },
      }),
    ).rejects.toThrow(/proxy\.limits/);
  });
});

describe("proxy.limits through the real servers", () => {
  it("PostgreSQL: a SELECT of a table bigger than bytesReturned is cut off (53400), audited; the lease logs in no more", async () => {
    const l = await h.checkout(PG);
    const c = await pgConnect(l, PG);
    expect((await c.query("SELECT count(*)::int AS n FROM pl_big")).rows[0].n).toBe(20000);
    const err = await c.query("SELECT * FROM pl_big").then(
      () => undefined,
      (e: { code?: string; message: string }) => e,
    );
    await c.end().catch(() => undefined);
    // The server's message in progress is finished first, so the client reads the FATAL.
    expect(err).toMatchObject({ code: "53400" });
    expect(err?.message).toContain("returned more than 200000 bytes");
    const recs = await waitFor("the proxy_limit record", async () => {
      const r = await limitRecords(l.leaseId);
      return r.length > 0 ? r : undefined;
    });
    expect(recs[0]).toMatchObject({ decision: "deny", tool: "postgres", intent: "read" });
    expect(String(recs[0]?.reason)).toContain("proxy.limits.bytesReturned");
    const again = leaseClient(l, listenerPort(proxy, PG));
    const refused = await again.connect().then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    await again.end().catch(() => undefined);
    expect(refused?.code).toBe("53400");
    // Another lease has its own count.
    const other = await h.checkout(PG, { agent: "b" });
    const o = await pgConnect(other, PG);
    expect((await o.query("SELECT 1 AS one")).rows[0].one).toBe(1);
    await o.end();
  });

  it("PostgreSQL: a burst over statementsPerSecond is held back, not refused", async () => {
    const l = await h.checkout(RATE);
    const c = await pgConnect(l, RATE);
    try {
      const started = Date.now();
      const results: number[] = [];
      for (let i = 0; i < 14; i++) results.push((await c.query(`SELECT ${i} AS i`)).rows[0].i);
      const elapsed = Date.now() - started;
      expect(results).toEqual(Array.from({ length: 14 }, (_, i) => i));
      // 4 at once, then 4 a second: the client is read again only once the lease is out of debt,
      // so the 14th is not even sent before (13 - 4) / 4 = 2.25 s.
      expect(elapsed).toBeGreaterThanOrEqual(2000);
    } finally {
      await c.end();
    }
  });

  it("Redis: replies past bytesReturned end the session, audited; the lease logs in no more", async () => {
    const l = await h.checkout(REDIS);
    const r = new Redis({
      host: "127.0.0.1",
      port: listenerPort(proxy, REDIS),
      username: l.leaseId,
      password: l.token,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    r.on("error", () => undefined);
    await r.connect();
    await r.set("rl:big", "y".repeat(60_000));
    const got: string[] = [];
    const err = await (async () => {
      for (let i = 0; i < 10; i++) got.push((await r.get("rl:big")) ?? "");
    })().then(
      () => undefined,
      (e: Error) => e,
    );
    r.disconnect();
    expect(err).toBeInstanceOf(Error);
    expect(got.length).toBeLessThanOrEqual(3);
    await waitFor(
      "the proxy_limit record",
      async () => (await limitRecords(l.leaseId)).length > 0 || undefined,
    );
    const again = new Redis({
      host: "127.0.0.1",
      port: listenerPort(proxy, REDIS),
      username: l.leaseId,
      password: l.token,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    const errors: string[] = [];
    again.on("error", (e: Error) => errors.push(e.message));
    await again.connect().catch((e: Error) => errors.push(e.message));
    again.disconnect();
    expect(errors.join("\n")).toContain("proxy.limits.bytesReturned");
  });

  it("no token or password appears in the logs or the audit trail", async () => {
    await h.expectNoSecretLeaked();
  });
});
